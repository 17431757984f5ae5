"""The typed views' cache policy (aioimds.typed.lifetime): what cannot change while the instance
runs is read once; everything else is read fresh unless the caller gives ``max_age``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aioimds import IMDSClient, clock
from aioimds.coalesce import FOREVER
from aioimds.emulator import Emulator
from aioimds.typed.lifetime import CACHED, RUNNING_MAX_AGE, default_max_age

View = Callable[[IMDSClient], Awaitable[Any]]

CACHED_FOR_GOOD: list[tuple[str, View, str, Any]] = [
    ("instance-id", lambda i: i.instance_id(), "i-0a1b2c3d4e5f60718", "i-0ffffffffffffffff"),
    ("ami-id", lambda i: i.ami_id(), "ami-0f1e2d3c4b5a69788", "ami-0000000000000000f"),
    ("ami-launch-index", lambda i: i.ami_launch_index(), 0, "3"),
    ("placement/region", lambda i: i.region(), "ap-northeast-1", "eu-west-3"),
    ("placement/availability-zone", lambda i: i.availability_zone(), "ap-northeast-1a",
     "eu-west-3b"),
    ("placement/availability-zone-id", lambda i: i.availability_zone_id(), "apne1-az4",
     "euw3-az2"),
]
"""(leaf under meta-data/, view, value served, a new value set afterwards)."""

FRESH: list[tuple[str, str]] = [
    ("public_ipv4", "/latest/meta-data/public-ipv4"),
    ("local_ipv4", "/latest/meta-data/local-ipv4"),
    ("spot_instance_action", "/latest/meta-data/spot/instance-action"),
    ("rebalance_recommendation", "/latest/meta-data/events/recommendations/rebalance"),
    ("scheduled_maintenance_events", "/latest/meta-data/events/maintenance/scheduled"),
    ("target_lifecycle_state", "/latest/meta-data/autoscaling/target-lifecycle-state"),
    ("iam_info", "/latest/meta-data/iam/info"),
    ("tags", "/latest/meta-data/tags/instance/"),
    ("public_keys", "/latest/meta-data/public-keys/"),
    ("network_interfaces", "/latest/meta-data/network/interfaces/macs/"),
]
"""(view, a path it reads every time)."""


def gets(emu: Emulator, path: str) -> int:
    return sum(1 for t in emu.counters.trace if t.method == "GET" and t.path == path)


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Move the library's clock on by some seconds (the cache reads ``aioimds.clock.now``)."""
    offset = [0.0]
    real = clock.now
    monkeypatch.setattr(clock, "now", lambda: real() + offset[0])

    def advance(seconds: float) -> None:
        offset[0] += seconds

    return advance


async def test_ten_thousand_concurrent_cold_instance_id_calls_are_one_put_and_one_get(
    emulator: Emulator,
) -> None:
    async with IMDSClient(endpoint=emulator.url) as imds:
        got = await asyncio.gather(*(imds.instance_id() for _ in range(10_000)))
        assert set(got) == {"i-0a1b2c3d4e5f60718"}
        assert await imds.instance_id() == "i-0a1b2c3d4e5f60718"
    assert [(t.method, t.path) for t in emulator.counters.trace] == [
        ("PUT", "/latest/api/token"), ("GET", "/latest/meta-data/instance-id")]


@pytest.mark.parametrize(("leaf", "view", "value", "changed"), CACHED_FOR_GOOD,
                         ids=[c[0] for c in CACHED_FOR_GOOD])
async def test_a_value_fixed_for_the_instance_life_is_read_once(
    emulator: Emulator, later: Callable[[float], None], leaf: str, view: View, value: Any,
    changed: str,
) -> None:
    path = "/latest/meta-data/" + leaf
    async with IMDSClient(endpoint=emulator.url) as imds:
        assert await view(imds) == value
        emulator.set_leaf(path, changed)
        later(86_400 * 365)
        assert await view(imds) == value
        assert gets(emulator, path) == 1
        fresh = await imds.get("meta-data/" + leaf)
        assert fresh == changed  # get() without max_age always asks


async def test_the_instance_type_and_identity_document_are_cached_for_a_minute(
    emulator: Emulator, later: Callable[[float], None],
) -> None:
    doc_path = "/latest/dynamic/instance-identity/document"
    async with IMDSClient(endpoint=emulator.url) as imds:
        assert await imds.instance_type() == "t3.micro"
        doc = await imds.identity_document()
        assert doc is not None and doc.instance_type == "t3.micro"
        assert await imds.account_id() == doc.account_id
        emulator.set_leaf("/latest/meta-data/instance-type", "m7g.large")
        later(RUNNING_MAX_AGE - 1)
        assert await imds.instance_type() == "t3.micro"
        assert gets(emulator, "/latest/meta-data/instance-type") == 1
        assert gets(emulator, doc_path) == 1
        later(2)  # a hibernated instance woke on another type: seen within the minute
        assert await imds.instance_type() == "m7g.large"
        assert await imds.account_id() == doc.account_id
        assert gets(emulator, doc_path) == 2


@pytest.mark.parametrize(("view", "path"), FRESH, ids=[f[0] for f in FRESH])
async def test_everything_else_is_read_fresh_unless_the_caller_gives_a_max_age(
    emulator: Emulator, view: str, path: str,
) -> None:
    async with IMDSClient(endpoint=emulator.url) as imds:
        first = await getattr(imds, view)()
        assert await getattr(imds, view)() == first
        assert gets(emulator, path) == 2
        emulator.counters.reset()
        assert await getattr(imds, view)(max_age=60) == first
        assert await getattr(imds, view)(max_age=60) == first
        assert gets(emulator, path) == 1


async def test_max_age_zero_asks_and_cache_false_always_asks(emulator: Emulator) -> None:
    region = "/latest/meta-data/placement/region"
    async with IMDSClient(endpoint=emulator.url) as imds:
        assert await imds.region() == "ap-northeast-1"
        emulator.set_leaf(region, "eu-west-3")
        assert await imds.region(max_age=0) == "eu-west-3"
        assert await imds.region() == "eu-west-3"  # and that answer is kept
    assert gets(emulator, region) == 2
    emulator.counters.reset()
    async with IMDSClient(endpoint=emulator.url, cache=False) as imds:
        for _ in range(3):
            assert await imds.region() == "eu-west-3"
            assert (await imds.placement()).region == "eu-west-3"
    assert gets(emulator, region) == 6


def test_the_policy_names_leaves_the_default_tree_serves_and_keeps_the_callers_max_age(
) -> None:
    from aioimds.emulator import default_snapshot

    tree = default_snapshot()
    served = {path for path in CACHED if "/latest/" + path in tree.responses}
    assert served >= {"meta-data/instance-id", "meta-data/ami-id", "meta-data/instance-type",
                      "meta-data/placement/region", "dynamic/instance-identity/document"}
    assert all(v in (FOREVER, RUNNING_MAX_AGE) for v in CACHED.values())
    assert default_max_age("meta-data/instance-id") == math.inf
    assert default_max_age("meta-data/instance-id", 5) == 5
    assert default_max_age("meta-data/spot/instance-action") is None
    assert not any(p.startswith("meta-data/iam/") for p in CACHED)  # credentials: own rules


async def test_a_404_is_not_kept_for_good_for_a_value_fixed_for_the_instance_life(
    emulator: Emulator, later: Callable[[float], None],
) -> None:
    from aioimds.client import NOT_FOUND_MAX_AGE
    path = "/latest/meta-data/placement/availability-zone-id"
    emulator.remove(path)
    async with IMDSClient(endpoint=emulator.url) as imds:
        assert await imds.availability_zone_id() is None
        assert await imds.availability_zone_id() is None  # within the short keep: no request
        assert gets(emulator, path) == 1
        emulator.set_leaf(path, "apne1-az4")
        later(NOT_FOUND_MAX_AGE + 0.5)
        assert await imds.availability_zone_id() == "apne1-az4"
        later(86_400)
        assert await imds.availability_zone_id() == "apne1-az4"  # a 200 is kept for good
        assert gets(emulator, path) == 2
