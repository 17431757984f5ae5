"""Scheduled changes of the emulator (aioimds.emulator.schedule): notices, lifecycle states and
credential rotation, through the Emulator methods and the ``serve`` options."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from aioimds import IMDSClient, IMDSConfig
from aioimds.emulator import Emulator
from aioimds.emulator.schedule import (
    CREDENTIAL_OVERLAP,
    DEFAULT_CREDENTIAL_LIFETIME,
    MAINTENANCE_NOTICE_LEAD,
    MAINTENANCE_WINDOW,
    SPOT_NOTICE_LEAD,
    iso_time,
)
from aioimds.snapshot import Record
from aioimds.typed.credentials import CredentialsProvider
from aioimds.typed.documents import parse_maintenance_events
from aioimds.wire import format_event_time as event_time

META = "/latest/meta-data/"
SPOT = META + "spot/instance-action"
ROLE = META + "iam/security-credentials/aioimds-demo-role"
EXTENDED = META + "iam/security-credentials-extended/aioimds-demo-role"


def entries(emu: Emulator, listing: str) -> list[str]:
    return emu.snapshot[listing].body.decode().split("\n")


def document(emu: Emulator, path: str) -> Any:
    return json.loads(emu.snapshot[path].body)


def near(when: datetime, expected: datetime, seconds: float = 5) -> bool:
    return abs((when - expected).total_seconds()) < seconds


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def test_constants_have_the_documented_values() -> None:
    assert (SPOT_NOTICE_LEAD, CREDENTIAL_OVERLAP, DEFAULT_CREDENTIAL_LIFETIME) == (
        120.0, 300.0, 21600.0)
    leads = (MAINTENANCE_NOTICE_LEAD.total_seconds(), MAINTENANCE_WINDOW.total_seconds())
    assert leads == (7 * 86400, 2 * 3600)


def test_time_formats_are_those_imds_writes() -> None:
    when = datetime(2019, 1, 21, 9, 0, 43, tzinfo=timezone.utc)
    assert (iso_time(when), event_time(when)) == ("2019-01-21T09:00:43Z",
                                                  "21 Jan 2019 09:00:43 GMT")


@pytest.mark.usefixtures("virtual_time")
async def test_spot_action_appears_at_its_time_with_its_listings(
    imds_emulator: Emulator,
) -> None:
    assert SPOT not in imds_emulator.snapshot and "spot/" not in entries(imds_emulator, META)
    imds_emulator.schedule_spot_action(0.2, "terminate")
    await asyncio.sleep(0.05)
    assert SPOT not in imds_emulator.snapshot
    await asyncio.sleep(0.2)
    doc = document(imds_emulator, SPOT)
    assert doc["action"] == "terminate"
    two_minutes = datetime.now(timezone.utc) + timedelta(seconds=SPOT_NOTICE_LEAD)
    assert near(parse_iso(doc["time"]), two_minutes)
    assert imds_emulator.snapshot[META + "spot/termination-time"].body == doc["time"].encode()
    assert entries(imds_emulator, META + "spot/") == ["instance-action", "termination-time"]
    listing = entries(imds_emulator, META)
    assert "spot/" in listing and listing == sorted(listing)


async def test_hibernate_notice_carries_its_own_time_and_no_termination_time(
    imds_emulator: Emulator,
) -> None:
    imds_emulator.schedule_spot_action(0, "hibernate")
    doc = document(imds_emulator, SPOT)
    assert doc["action"] == "hibernate"
    assert near(parse_iso(doc["time"]), datetime.now(timezone.utc))
    assert entries(imds_emulator, META + "spot/") == ["instance-action"]


@pytest.mark.parametrize("call", [
    pytest.param(lambda e: e.schedule_spot_action(1, "reboot"), id="unknown-action"),
    pytest.param(lambda e: e.schedule_spot_action(-1), id="negative-delay"),
    pytest.param(lambda e: e.schedule_rebalance(float("inf")), id="infinite-delay"),
    pytest.param(lambda e: e.schedule_lifecycle_state(1, ""), id="empty-state"),
    pytest.param(lambda e: e.schedule_lifecycle_state(1, "In\nService"), id="two-lines"),
    pytest.param(lambda e: e.rotate_credentials(every=0), id="zero-every"),
])
async def test_bad_arguments_are_refused(imds_emulator: Emulator, call: Any) -> None:
    with pytest.raises(ValueError):
        call(imds_emulator)


async def test_rebalance_is_added_to_the_empty_recommendations_listing(
    imds_emulator: Emulator,
) -> None:
    assert imds_emulator.snapshot[META + "events/recommendations/"].body == b""
    imds_emulator.schedule_rebalance(0)
    assert entries(imds_emulator, META + "events/recommendations/") == ["rebalance"]
    doc = document(imds_emulator, META + "events/recommendations/rebalance")
    assert near(parse_iso(doc["noticeTime"]), datetime.now(timezone.utc))


async def test_maintenance_events_are_appended_in_the_imds_format(
    imds_emulator: Emulator,
) -> None:
    path = META + "events/maintenance/scheduled"
    start = datetime(2031, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    first = imds_emulator.schedule_maintenance_event(0, "instance-stop", not_before=start)
    second = imds_emulator.schedule_maintenance_event(
        0, "system-reboot", "host reboot", event_id="instance-event-0123456789abcdef0",
        not_before_deadline=start)
    events = parse_maintenance_events(imds_emulator.snapshot[path].body.decode(), path)
    assert [(e.event_id, e.code, e.state) for e in events] == [
        (first, "instance-stop", "active"), (second, "system-reboot", "active")]
    assert first.startswith("instance-event-0") and len(first) == len(second)
    assert (events[0].not_before, events[0].not_after) == (start, start + MAINTENANCE_WINDOW)
    assert events[0].description == "scheduled instance-stop"
    assert (events[1].description, events[1].not_before_deadline) == ("host reboot", start)
    assert near(events[1].not_before, datetime.now(timezone.utc) + MAINTENANCE_NOTICE_LEAD)
    imds_emulator.schedule_maintenance_event(0, event_id=first, state="completed")
    events = parse_maintenance_events(imds_emulator.snapshot[path].body.decode(), path)
    assert [(e.event_id, e.state) for e in events] == [(second, "active"), (first, "completed")]


@pytest.mark.usefixtures("virtual_time")
async def test_lifecycle_state_changes_at_its_time(imds_emulator: Emulator) -> None:
    path = META + "autoscaling/target-lifecycle-state"
    imds_emulator.schedule_lifecycle_state(0.05, "Warmed:Stopped")
    assert imds_emulator.snapshot[path].body == b"InService"
    await asyncio.sleep(0.15)
    assert imds_emulator.snapshot[path].body == b"Warmed:Stopped"


@pytest.mark.usefixtures("virtual_time")
async def test_credentials_rotate_with_their_expiration(imds_emulator: Emulator) -> None:
    imds_emulator.set_leaf(META + "iam/security-credentials-extended/aioimds-demo-role",
                           json.dumps({**document(imds_emulator, ROLE), "AccountId": "1"}))
    before = document(imds_emulator, ROLE)
    imds_emulator.rotate_credentials(every=0.1, lifetime=60)
    first = document(imds_emulator, ROLE)
    assert first["AccessKeyId"] != before["AccessKeyId"]
    assert first["AccessKeyId"].startswith("ASIA") and len(first["AccessKeyId"]) == 20
    assert first["Code"] == "Success" and first["Type"] == "AWS-HMAC"
    assert near(parse_iso(first["Expiration"]), datetime.now(timezone.utc) + timedelta(minutes=1))
    extended = document(imds_emulator, EXTENDED)
    assert (extended["AccountId"], extended["Token"]) == ("1", first["Token"])
    await asyncio.sleep(0.25)
    second = document(imds_emulator, ROLE)
    assert len({before["Token"], first["Token"], second["Token"]}) == 3
    await imds_emulator.stop()  # stop cancels the rotation
    stopped = document(imds_emulator, ROLE)
    await asyncio.sleep(0.15)
    assert document(imds_emulator, ROLE) == stopped


async def test_one_rotation_without_every_lasts_the_default_lifetime(
    imds_emulator: Emulator, imds_client: IMDSClient,
) -> None:
    imds_emulator.rotate_credentials()
    creds = await CredentialsProvider(imds_client).get()
    served = document(imds_emulator, ROLE)
    assert (creds.access_key_id, creds.token) == (served["AccessKeyId"], served["Token"])
    later = datetime.now(timezone.utc) + timedelta(seconds=DEFAULT_CREDENTIAL_LIFETIME)
    assert near(creds.expiration, later)


async def test_a_credential_document_that_is_not_json_is_left_alone(
    imds_emulator: Emulator,
) -> None:
    imds_emulator.set_response(ROLE, Record(b"not json", 200))
    imds_emulator.rotate_credentials()
    assert imds_emulator.snapshot[ROLE].body == b"not json"


@pytest.mark.usefixtures("virtual_time")
async def test_stop_cancels_pending_changes(imds_emulator: Emulator) -> None:
    imds_emulator.schedule_spot_action(0.05)
    imds_emulator.schedule_rebalance(0.05)
    await imds_emulator.stop()
    await asyncio.sleep(0.1)
    assert SPOT not in imds_emulator.snapshot


async def test_serve_options_schedule_every_change() -> None:
    args = ["--spot-action-in", "0", "--spot-action", "stop", "--rebalance-in", "0",
            "--maintenance-in", "0", "--maintenance-code", "instance-retirement",
            "--lifecycle-state-in", "0", "--lifecycle-state", "Standby",
            "--rotate-credentials-every", "3600"]
    env = {**os.environ, "AWS_CONFIG_FILE": os.devnull}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioimds", "serve", "--port", "0", *args, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        async with IMDSClient(IMDSConfig(endpoint=url)) as imds:
            spot = await imds.get_json("meta-data/spot/instance-action")
            rebalance = await imds.get_json("meta-data/events/recommendations/rebalance")
            (event,) = await imds.get_json("meta-data/events/maintenance/scheduled")
            state = await imds.get("meta-data/autoscaling/target-lifecycle-state")
            creds = await imds.get_json(ROLE.removeprefix("/latest/"))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert (spot["action"], state, event["Code"]) == ("stop", "Standby", "instance-retirement")
    assert "noticeTime" in rebalance
    expected = datetime.now(timezone.utc) + timedelta(seconds=3600 + CREDENTIAL_OVERLAP)
    assert near(parse_iso(creds["Expiration"]), expected)
