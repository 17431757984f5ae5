"""Real-world failures of other IMDS clients replayed through the typed views and the
credentials provider, against the emulator; each test names the upstream report."""

from __future__ import annotations

import logging

import pytest

from aioimds import CredentialsProvider, IMDSClient, Record, Snapshot
from aioimds.emulator import Emulator, PathFault, default_snapshot
from aioimds.paths import request_path
from aioimds.render import nested

MD = "/latest/meta-data/"


async def test_c08_each_leaf_is_parsed_by_what_it_is() -> None:
    """amazon.aws #1134: ``ami-launch-index`` answers ``0``; maintenance events answer ``[]``."""
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(MD + "ami-launch-index", "0")
        emu.set_leaf(MD + "events/maintenance/scheduled", "[]")
        emu.set_leaf(MD + "events/maintenance/history", "[]")
        index = await imds.ami_launch_index()
        scheduled = await imds.scheduled_maintenance_events()
        history = await imds.past_maintenance_events()
    assert index == 0 and isinstance(index, int)
    assert scheduled == [] and history == []


TAGS = {
    "aws:autoscaling:groupName": "my-asg",
    "my-tag": "",
    "Name": "web 1",
    "team=platform": "a, b + c",
    "k.with+odd,chars@x:y": "odd, value = with spaces",
    "key with spaces": " padded ",
}


async def test_c11_every_tag_keeps_its_exact_key_and_value() -> None:
    """amazon.aws PR #3038: tag keys with ``:``, ``=``, ``,``, ``+``, ``@``, ``.`` and spaces."""
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.remove(MD + "tags/instance/Name")
        emu.set_leaf(MD + "tags/instance/", "\n".join(TAGS))
        for key, value in TAGS.items():
            emu.set_leaf(request_path("meta-data/tags/instance/" + key), value)  # encoded key
        tags = await imds.tags()
    assert tags == TAGS


@pytest.mark.usefixtures("virtual_time")
async def test_c31_absent_public_addresses_are_none_without_log_spam(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """vector #8677: ``public-ipv4`` and ``public-hostname`` answer 404 on a private instance."""
    responses = dict(default_snapshot())
    for leaf in ("public-ipv4", "public-hostname"):
        responses[MD + leaf] = Record(b"", 404)
    mac = MD + "network/interfaces/macs/06:5a:3b:1c:2d:01/"
    responses[mac + "public-hostname"] = Record(b"", 404)
    caplog.set_level(logging.DEBUG)
    async with Emulator(Snapshot(responses)) as emu, IMDSClient(endpoint=emu.url) as imds:
        assert await imds.public_ipv4() is None
        interfaces = await imds.network_interfaces()
        dump = await imds.dump()
    assert interfaces["06:5a:3b:1c:2d:01"].public_hostname is None
    assert "public-ipv4" not in nested(dump)["meta-data"]
    assert "public-hostname" not in nested(dump)["meta-data"]
    assert not [r for r in caplog.records if "public-" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_c22_a_throttled_credentials_leaf_is_retried() -> None:
    """ex_aws PR #625: the credentials leaf answers 429 once, then 200 JSON."""
    role = MD + "iam/security-credentials/aioimds-demo-role"
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.faults.path_faults.append(PathFault(role, status=429))
        creds = await CredentialsProvider(imds).get()
    assert creds.role_name == "aioimds-demo-role"
    assert [t.status for t in emu.counters.trace if t.path == role] == [429, 200]
