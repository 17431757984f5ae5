"""Real-world failures of metadata readers over what a leaf or a listing says, replayed against the
emulator over loopback: C45 (JSON whatever the Content-Type) and C47 (listed keys that answer
404 for a while; optional keys that never answer) of ../shared/cases/real-world-bugs.md. Each
test's docstring names the upstream reports.

Time: the listed-404 retries wait for real (the schedule's waits total 0.85-1.7 s), so each
test that spends them costs about that once; spacing is checked from the emulator's own clock.
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import datetime, timezone

import aiohttp
import pytest

from aioimds import (
    CredentialsProvider,
    IMDSClient,
    IMDSNotFoundError,
    IMDSResponseError,
    Snapshot,
)
from aioimds import clock as aioimds_clock
from aioimds.emulator import Emulator, PathFault, TraceEntry, default_snapshot
from aioimds.retry import (
    LISTED_404_BASE,
    LISTED_404_CAP,
    LISTED_404_RETRIES,
    LISTED_404_SECONDS,
)

MD = "/latest/meta-data/"
CREDS = MD + "iam/security-credentials/aioimds-demo-role"
IAM_INFO = MD + "iam/info"
DOCUMENT = "/latest/dynamic/instance-identity/document"
JSON_LEAVES = (CREDS, IAM_INFO, DOCUMENT)

MAC2 = MD + "network/interfaces/macs/06:5a:3b:1c:2d:02/"
DEVICE, SUBNET, IPV6S = MAC2 + "device-number", MAC2 + "subnet-ipv4-cidr-block", MAC2 + "ipv6s"
ZONE_ID = MD + "placement/availability-zone-id"
PROPAGATING = (DEVICE, SUBNET)


def rel(path: str) -> str:
    return path.removeprefix("/latest/")


# -- C45 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ctype", ["text/plain", "application/json", ""],
                         ids=["text-plain", "application-json", "none"])
async def test_c45_json_is_read_from_the_body_whatever_the_content_type(ctype: str) -> None:
    """amazon-ec2-metadata-mock #207, firecracker PR #5226, ydb-python-sdk PR #106: role
    credentials, ``iam/info`` and the identity document served as ``text/plain`` (as IMDS
    does), as ``application/json`` and with no Content-Type at all: every reader parses the
    body, and a dump keeps each record's Content-Type as served, through a snapshot file and a
    second emulator serving it."""
    tree = default_snapshot()
    async with Emulator() as emu:
        for path in JSON_LEAVES:
            emu.set_leaf(path, tree[path].body, ctype)
        async with aiohttp.ClientSession() as http:
            async with http.get(emu.url + IAM_INFO, headers=await _token(http, emu.url)) as resp:
                served = resp.headers.getall("Content-Type", [])
        async with IMDSClient(endpoint=emu.url) as imds:
            for path in JSON_LEAVES:
                assert await imds.get_json(rel(path)) == json.loads(tree[path].body)
            info = await imds.iam_info()
            doc = await imds.identity_document()
            creds = await CredentialsProvider(
                imds, clock=lambda: datetime(2029, 1, 1, tzinfo=timezone.utc)).get()
            snap = await imds.dump()
    assert served == ([ctype] if ctype else [])
    assert info is not None and info.instance_profile_id == "AIPAEXAMPLEEXAMPLE001"
    assert doc is not None and doc.account_id == "111122223333"
    assert creds.access_key_id == "ASIAEXAMPLEEXAMPLE01" and not creds.extended
    for path in JSON_LEAVES:
        assert snap[path].content_type == ctype and snap[path].body == tree[path].body
    assert snap[MD + "instance-id"].content_type == "text/plain"

    saved = json.loads(snap.dumps())["responses"]
    assert [saved[p].get("content_type") for p in JSON_LEAVES] == (
        [None] * 3 if ctype == "text/plain" else [ctype] * 3)
    async with Emulator(Snapshot.loads(snap.dumps())) as again, \
            IMDSClient(endpoint=again.url) as imds:
        assert await imds.dump() == snap


@pytest.mark.parametrize("ctype", ["text/html", "Text/HTML; charset=UTF-8"])
async def test_c45_only_text_html_trips_the_portal_guard(ctype: str) -> None:
    """amazon-ec2-metadata-mock #207, firecracker PR #5226, ydb-python-sdk PR #106: the same
    JSON body served as ``text/html`` (in any case, with parameters) is what a proxy or captive
    portal answers: every reader refuses it naming the path, and a dump fails that path."""
    async with Emulator() as emu:
        emu.set_leaf(IAM_INFO, default_snapshot()[IAM_INFO].body, ctype)
        async with IMDSClient(endpoint=emu.url) as imds:
            with pytest.raises(IMDSResponseError) as direct:
                await imds.get_json(rel(IAM_INFO))
            with pytest.raises(IMDSResponseError) as typed:
                await imds.iam_info()
            result = await imds.dump(partial=True)
    for err in (direct.value, typed.value, result.failures[IAM_INFO]):
        assert err.path == IAM_INFO and err.status == 200 and "HTML" in err.message
    assert list(result.failures) == [IAM_INFO]
    assert result.snapshot[MD + "iam/security-credentials/"].body == b"aioimds-demo-role"


async def _token(http: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with http.put(url + "/latest/api/token",
                        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}) as resp:
        return {"X-aws-ec2-metadata-token": await resp.text()}


# -- C47 --------------------------------------------------------------------------------------


class Stamps:
    """Every request the emulator answered, with the emulator loop's clock when it was."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, TraceEntry]] = []

    def __call__(self, entry: TraceEntry) -> None:
        self.seen.append((aioimds_clock.now(), entry))

    def times(self, path: str) -> list[float]:
        return [t for t, e in self.seen if e.method == "GET" and e.path == path]

    def statuses(self, path: str) -> list[int]:
        return [e.status for _, e in self.seen if e.method == "GET" and e.path == path]


def hot_attached(first_404s: int) -> tuple[Emulator, Stamps]:
    """The default tree with a second MAC whose ``device-number`` and
    ``subnet-ipv4-cidr-block`` answer 404 for their first ``first_404s`` requests, and with no
    ``availability-zone-id`` and no ``ipv6s`` on that MAC (404 always, unlisted)."""
    stamps = Stamps()
    emu = Emulator(on_request=stamps)
    emu.remove(ZONE_ID)
    emu.remove(IPV6S)
    emu.faults.path_faults = [PathFault(p, status=404, count=first_404s) for p in PROPAGATING]
    return emu, stamps


def assert_spaced_retries(stamps: Stamps, path: str) -> None:
    """``path`` was asked once and retried LISTED_404_RETRIES times, each wait at least half
    its capped ceiling, all within LISTED_404_SECONDS."""
    times = stamps.times(path)
    assert stamps.statuses(path) == [404] * (1 + LISTED_404_RETRIES)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    floors = [min(LISTED_404_CAP, LISTED_404_BASE * 2 ** i) / 2 for i in range(len(gaps))]
    assert all(gap >= floor * 0.99 for gap, floor in zip(gaps, floors, strict=True)), gaps
    assert times[-1] - times[0] <= LISTED_404_SECONDS


async def test_c47_a_dump_retries_listed_404s_with_spaced_backoff_then_records_404() -> None:
    """amazon-ec2-net-utils #38, amazon-ec2-net-utils #129, ec2-metadata #349: a second MAC is
    listed but its ``device-number`` and ``subnet-ipv4-cidr-block`` answer 404 for their first
    20 requests; ``availability-zone-id`` and ``ipv6s`` answer 404 always. The dump asks each
    listed key a handful of times with spaced, capped backoff (not 60 quick tries), then
    records 404 and completes; keys nothing lists are never asked."""
    emu, stamps = hot_attached(20)
    async with emu, IMDSClient(endpoint=emu.url) as imds:
        result = await imds.dump(partial=True)
    assert result.complete
    snap = result.snapshot
    for path in PROPAGATING:
        assert snap[path].status == 404
        assert_spaced_retries(stamps, path)
    assert snap[MAC2 + "interface-id"].body == b"eni-0a1b2c3d4e5f60002"
    assert ZONE_ID not in snap and IPV6S not in snap
    assert stamps.times(ZONE_ID) == stamps.times(IPV6S) == []
    # Only the listed 404s were asked again: every other path once.
    asked = [e.path for _, e in stamps.seen if e.method == "GET"]
    assert sorted(set(asked)) == sorted(snap)
    assert len(asked) == len(snap) + 2 * LISTED_404_RETRIES


async def test_c47_a_dump_gets_a_listed_key_that_appears_within_its_retries() -> None:
    """amazon-ec2-net-utils #38: the keys of a hot-attached interface answer 404 for a moment
    after the MAC is listed; when they appear within the retries the dump has their values."""
    emu, stamps = hot_attached(2)
    async with emu, IMDSClient(endpoint=emu.url) as imds:
        snap = await imds.dump()
    assert snap[DEVICE].body == b"1" and snap[SUBNET].body == b"10.0.2.0/24"
    assert stamps.statuses(DEVICE) == stamps.statuses(SUBNET) == [404, 404, 200]


async def test_c47_typed_views_retry_listed_keys_and_give_optional_keys_none_at_once() -> None:
    """amazon-ec2-net-utils #38, amazon-ec2-net-utils #129, ec2-metadata #349: the interface
    view reads only the keys its MAC listing names, so a 404 there is retried like the dump's,
    then the field is empty; ``placement/availability-zone-id`` (absent on older instances) is
    read without a listing naming it: ``None`` after one request; an unlisted ``ipv6s`` is
    never asked. A plain ``get`` of a listed key is one request and one 404."""
    emu, stamps = hot_attached(20)
    async with emu, IMDSClient(endpoint=emu.url) as imds:
        placement = await imds.placement()
        assert stamps.statuses(ZONE_ID) == [404]
        interfaces = await imds.network_interfaces()
        with pytest.raises(IMDSNotFoundError):
            await imds.get(rel(DEVICE))
    assert placement.availability_zone_id is None
    assert placement.availability_zone == "ap-northeast-1a"
    second = interfaces["06:5a:3b:1c:2d:02"]
    assert second.device_number is None and second.subnet_ipv4_cidr_block is None
    assert second.interface_id == "eni-0a1b2c3d4e5f60002" and second.ipv6s == ()
    assert interfaces["06:5a:3b:1c:2d:01"].device_number == 0
    assert_spaced_retries(stamps, SUBNET)
    # The view's retries, then the plain get's single request.
    assert stamps.statuses(DEVICE) == [404] * (1 + LISTED_404_RETRIES + 1)
    assert stamps.times(IPV6S) == []


async def test_c47_the_interface_view_gets_keys_that_appear_within_its_retries() -> None:
    """amazon-ec2-net-utils #38: ``device-number`` and ``subnet-ipv4-cidr-block`` of a
    hot-attached interface answer 404 twice, then their values: the view has them."""
    emu, stamps = hot_attached(2)
    async with emu, IMDSClient(endpoint=emu.url) as imds:
        second = (await imds.network_interfaces())["06:5a:3b:1c:2d:02"]
    assert second.device_number == 1 and second.subnet_ipv4_cidr_block == "10.0.2.0/24"
    assert stamps.statuses(DEVICE) == [404, 404, 200]


async def test_c47_a_kept_404_of_a_listed_key_is_asked_again_and_the_answer_kept() -> None:
    """amazon-ec2-net-utils #38: a cached read (``max_age``) of a hot-attached interface key
    kept its 404; the interface view, which knows the MAC listing names the key, doubts that
    404, asks the service again and keeps the value it then gets."""
    emu, stamps = hot_attached(2)
    async with emu, IMDSClient(endpoint=emu.url) as imds:
        with pytest.raises(IMDSNotFoundError):
            await imds.get(rel(DEVICE), max_age=math.inf)
        second = (await imds.network_interfaces(max_age=math.inf))["06:5a:3b:1c:2d:02"]
        assert await imds.get(rel(DEVICE), max_age=math.inf) == "1"
    assert second.device_number == 1
    assert stamps.statuses(DEVICE) == [404, 404, 200]
