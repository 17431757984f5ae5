"""Typed metadata views: parsed from the default tree and every shared fixture, checked leaf by
leaf against the raw snapshot they were served from; parsers of the documented formats."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, fixture_params

from aioimds import (
    IMDSClient,
    IMDSResponseError,
    MaintenanceEvent,
    NetworkInterface,
    Placement,
    Snapshot,
)
from aioimds.emulator import Emulator, default_snapshot
from aioimds.paths import request_path
from aioimds.typed._fields import parse_time
from aioimds.typed.documents import (
    parse_iam_info,
    parse_identity_document,
    parse_maintenance_events,
    parse_rebalance_recommendation,
    parse_spot_instance_action,
)

MD = "meta-data/"
UTC = timezone.utc


def raw(snap: Snapshot, rel: str) -> str | None:
    """The body of ``rel`` as the snapshot serves it, or None when it does not (404)."""
    rec = snap.get(request_path(rel))
    return rec.body.decode("utf-8") if rec is not None and rec.status == 200 else None


def one(snap: Snapshot, rel: str) -> str | None:
    text = raw(snap, rel)
    return (text or "").strip() or None


def entries(snap: Snapshot, rel: str) -> list[str]:
    text = raw(snap, rel)
    return [] if text is None else [e for e in text.split("\n") if e]


def trees() -> list[Any]:
    return [pytest.param(None, id="default"), *fixture_params()]


def load(path: Path | None) -> Snapshot:
    return default_snapshot() if path is None else Snapshot.load(path)


# -- every view against the raw leaves, for every tree -----------------------------------------

@pytest.mark.parametrize("path", trees())
async def test_scalar_views_equal_their_leaves(path: Path | None) -> None:
    snap = load(path)
    async with Emulator(snap) as emu, IMDSClient(endpoint=emu.url) as imds:
        got = {
            "placement/region": await imds.region(),
            "placement/availability-zone": await imds.availability_zone(),
            "instance-id": await imds.instance_id(),
            "instance-type": await imds.instance_type(),
            "public-ipv4": await imds.public_ipv4(),
            "local-ipv4": await imds.local_ipv4(),
            "autoscaling/target-lifecycle-state": await imds.target_lifecycle_state(),
        }
        index = await imds.ami_launch_index()
        placement = await imds.placement()
    assert got == {leaf: one(snap, MD + leaf) for leaf in got}
    launch = one(snap, MD + "ami-launch-index")
    assert index == (None if launch is None else int(launch))
    leaves: dict[str, Any] = {f.name: one(snap, MD + "placement/" + f.name.replace("_", "-"))
                              for f in dataclasses.fields(Placement)}
    if leaves["partition_number"] is not None:
        leaves["partition_number"] = int(leaves["partition_number"])
    assert placement == Placement(**leaves)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


@pytest.mark.parametrize("path", trees())
async def test_documents_equal_their_json(path: Path | None) -> None:
    snap = load(path)
    async with Emulator(snap) as emu, IMDSClient(endpoint=emu.url) as imds:
        identity = await imds.identity_document()
        iam = await imds.iam_info()
        spot = await imds.spot_instance_action()
        rebalance = await imds.rebalance_recommendation()
        scheduled = await imds.scheduled_maintenance_events()
        history = await imds.past_maintenance_events()
    doc_text = raw(snap, "dynamic/instance-identity/document")
    assert (identity is None) == (doc_text is None)
    if identity is not None and doc_text is not None:
        doc = json.loads(doc_text)
        for field in dataclasses.fields(identity):
            value, expected = getattr(identity, field.name), doc.get(_camel(field.name))
            if isinstance(value, datetime):
                assert value.tzinfo is not None
                value = value.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert value == (tuple(expected) if isinstance(expected, list) else expected)
    iam_text = raw(snap, MD + "iam/info")
    assert (iam is None) == (iam_text is None)
    if iam is not None and iam_text is not None:
        info = json.loads(iam_text)
        assert (iam.code, iam.instance_profile_arn, iam.instance_profile_id) == (
            info["Code"], info["InstanceProfileArn"], info["InstanceProfileId"])
    assert spot is None and rebalance is None  # no fixture has a pending notice
    for events, leaf in ((scheduled, "scheduled"), (history, "history")):
        served = json.loads(raw(snap, MD + "events/maintenance/" + leaf) or "[]")
        assert [e.event_id for e in events] == [e["EventId"] for e in served]
        assert [(e.code, e.state) for e in events] == [(e["Code"], e["State"]) for e in served]


INT_FIELDS = {"device_number", "network_card_index"}


def expected_interface(snap: Snapshot, mac: str) -> dict[str, Any]:
    """What each NetworkInterface field must be, read from the raw leaves: a leaf name with
    hyphens or underscores is the field name; lists are the leaf's lines."""
    base = f"{MD}network/interfaces/macs/{mac}/"
    want: dict[str, Any] = {f.name: f.default if f.default is not dataclasses.MISSING else {}
                            for f in dataclasses.fields(NetworkInterface)}
    want["mac"] = mac
    for entry in entries(snap, base):
        name = entry.replace("-", "_")
        if entry.endswith("/") or name not in want:
            continue
        text = raw(snap, base + entry) or ""
        if isinstance(want[name], tuple):
            want[name] = tuple(line.strip() for line in text.splitlines() if line.strip())
        elif name in INT_FIELDS:
            want[name] = int(text)
        else:
            want[name] = text.strip() or None
    for public in entries(snap, base + "ipv4-associations/"):
        want["ipv4_associations"][public] = one(snap, base + "ipv4-associations/" + public)
    return want


@pytest.mark.parametrize("path", trees())
async def test_network_interfaces_equal_every_leaf(path: Path | None) -> None:
    snap = load(path)
    async with Emulator(snap) as emu, IMDSClient(endpoint=emu.url) as imds:
        interfaces = await imds.network_interfaces()
    macs = [m.rstrip("/") for m in entries(snap, MD + "network/interfaces/macs/")]
    assert list(interfaces) == macs
    for mac, iface in interfaces.items():
        assert dataclasses.asdict(iface) == expected_interface(snap, mac), mac


@pytest.mark.parametrize("path", trees())
async def test_public_keys_and_tags_equal_their_leaves(path: Path | None) -> None:
    snap = load(path)
    async with Emulator(snap) as emu, IMDSClient(endpoint=emu.url) as imds:
        keys = await imds.public_keys()
        tags = await imds.tags()
    want_keys = {}
    for entry in entries(snap, MD + "public-keys/"):
        index, _, name = entry.partition("=")
        want_keys[name] = (raw(snap, f"{MD}public-keys/{index}/openssh-key") or "").strip()
    assert keys == want_keys
    listing = MD + "tags/instance/"
    if raw(snap, listing) is None:  # tags in metadata not enabled on this instance
        assert tags is None
    else:
        assert tags == {key: raw(snap, listing + key) for key in entries(snap, listing)}


async def test_underscore_leaf_names_are_read_as_hyphenated() -> None:
    path = FIXTURES / "cloud-init-secondary-ip-2018.snapshot.json"
    async with Emulator(Snapshot.load(path)) as emu, IMDSClient(endpoint=emu.url) as imds:
        interfaces = await imds.network_interfaces()
    assert interfaces["0a:07:84:3d:6e:38"].subnet_ipv6_cidr_blocks == ("2600:1f16:292:100::/64",)


# -- behaviour ---------------------------------------------------------------------------------

@pytest.mark.usefixtures("virtual_time")
async def test_network_interface_leaves_are_fetched_concurrently() -> None:
    async with Emulator(latency=0.05) as emu, IMDSClient(endpoint=emu.url) as imds:
        await imds.get("meta-data/mac")  # the token PUT is out of the way
        emu.counters.reset()
        start = asyncio.get_running_loop().time()
        interfaces = await imds.network_interfaces()
        elapsed = asyncio.get_running_loop().time() - start
    assert len(interfaces) == 2
    assert emu.counters.max_in_flight >= 20  # the leaves of both interfaces at once
    assert elapsed < 8 * 0.05  # four round trips, where one at a time takes over forty


async def test_absent_categories_are_empty_not_errors(caplog: pytest.LogCaptureFixture) -> None:
    snap = Snapshot({"/latest/": default_snapshot()["/latest/"]})
    caplog.set_level(logging.DEBUG, logger="aioimds")
    async with Emulator(snap) as emu, IMDSClient(endpoint=emu.url) as imds:
        assert await imds.identity_document() is None and await imds.iam_info() is None
        assert await imds.network_interfaces() == {} and await imds.public_keys() == {}
        assert await imds.tags() is None and await imds.placement() == Placement()
        assert await imds.scheduled_maintenance_events() == []
        assert await imds.ami_launch_index() is None and await imds.region() is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(("leaf", "body", "view"), [
    ("meta-data/iam/info", "{", "iam_info"),
    ("meta-data/iam/info", '{"Code": "Success"}', "iam_info"),
    ("meta-data/ami-launch-index", "zero", "ami_launch_index"),
    ("meta-data/placement/partition-number", "1.5", "placement"),
    ("meta-data/spot/instance-action", '{"action": "stop", "time": "soon"}',
     "spot_instance_action"),
    ("meta-data/events/maintenance/scheduled", "{}", "scheduled_maintenance_events"),
    ("dynamic/instance-identity/document", "[]", "identity_document"),
    ("meta-data/network/interfaces/macs/06:5a:3b:1c:2d:01/device-number", "eth0",
     "network_interfaces"),
], ids=["iam-not-json", "iam-missing-field", "launch-index", "partition", "spot-time",
        "events-object", "identity-array", "device-number"])
async def test_a_malformed_leaf_is_a_response_error_naming_its_path(
    leaf: str, body: str, view: str
) -> None:
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(request_path(leaf), body)
        with pytest.raises(IMDSResponseError) as info:
            await getattr(imds, view)()
    assert info.value.path == request_path(leaf)
    assert request_path(leaf) in str(info.value)


async def test_a_listed_public_key_without_an_index_is_refused() -> None:
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf("/latest/meta-data/public-keys/", "../x=evil")
        with pytest.raises(IMDSResponseError, match="no numeric index"):
            await imds.public_keys()


# -- parsers -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("2017-09-18T08:22:00Z", datetime(2017, 9, 18, 8, 22, tzinfo=UTC)),
    ("2017-09-18T08:22:00", datetime(2017, 9, 18, 8, 22, tzinfo=UTC)),
    ("2017-09-18T10:22:00+02:00", datetime(2017, 9, 18, 8, 22, tzinfo=UTC)),
    ("2020-11-05T08:22:00.123Z", datetime(2020, 11, 5, 8, 22, 0, 123000, tzinfo=UTC)),
    ("21 Jan 2019 09:00:43 GMT", datetime(2019, 1, 21, 9, 0, 43, tzinfo=UTC)),
    ("1 Dec 2021 23:59:59 GMT", datetime(2021, 12, 1, 23, 59, 59, tzinfo=UTC)),
], ids=["iso-z", "iso-naive", "iso-offset", "iso-millis", "gmt", "gmt-one-digit-day"])
def test_both_imds_time_formats_parse_to_aware_utc(text: str, expected: datetime) -> None:
    got = parse_time(text, "/p", "t")
    assert got == expected and got.tzinfo == UTC


@pytest.mark.parametrize("text", ["21 Foo 2019 09:00:43 GMT", "31 Feb 2019 09:00:43 GMT",
                                  "yesterday", "", "2019-13-01T00:00:00Z"])
def test_bad_times_are_response_errors(text: str) -> None:
    with pytest.raises(IMDSResponseError, match="not a time"):
        parse_time(text, "/latest/p", "field 'time'")


def test_documented_examples_parse() -> None:
    spot = parse_spot_instance_action('{"action": "terminate", "time": "2017-09-18T08:22:00Z"}',
                                      "/p")
    assert (spot.action, spot.time) == ("terminate", datetime(2017, 9, 18, 8, 22, tzinfo=UTC))
    rebalance = parse_rebalance_recommendation('{"noticeTime": "2020-11-05T08:22:00Z"}', "/p")
    assert rebalance.notice_time == datetime(2020, 11, 5, 8, 22, tzinfo=UTC)
    events = parse_maintenance_events(json.dumps([{
        "NotBefore": "21 Jan 2019 09:00:43 GMT", "Code": "system-reboot",
        "Description": "scheduled reboot", "EventId": "instance-event-0d59937288b749b32",
        "NotAfter": "21 Jan 2019 09:17:23 GMT", "State": "active"}]), "/p")
    assert events == [MaintenanceEvent(
        "system-reboot", "scheduled reboot", "instance-event-0d59937288b749b32", "active",
        datetime(2019, 1, 21, 9, 0, 43, tzinfo=UTC), datetime(2019, 1, 21, 9, 17, 23, tzinfo=UTC))]
    assert parse_maintenance_events("[]", "/p") == []
    info = parse_iam_info(json.dumps({"Code": "Success", "LastUpdated": "2024-05-01T00:00:12Z",
                                      "InstanceProfileArn": "arn", "InstanceProfileId": "id"}),
                          "/p")
    assert info.last_updated == datetime(2024, 5, 1, 0, 0, 12, tzinfo=UTC)


def test_identity_document_nulls_and_lists() -> None:
    doc = json.loads(default_snapshot()["/latest/dynamic/instance-identity/document"].body)
    doc.update(marketplaceProductCodes=["abc"], kernelId=None, privateIp=None)
    parsed = parse_identity_document(json.dumps(doc), "/p")
    assert parsed.marketplace_product_codes == ("abc",)
    assert (parsed.kernel_id, parsed.private_ip, parsed.billing_products) == (None, None, None)
    doc["billingProducts"] = "bp-1"
    with pytest.raises(IMDSResponseError, match="'billingProducts' is not an array"):
        parse_identity_document(json.dumps(doc), "/p")
