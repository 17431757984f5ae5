"""The emulator's throttle shapes (aioimds.emulator.throttle): the limiters on a clock passed in,
as faults of a running emulator and as `serve` options, and dumps against each of them."""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import pytest
from emulator_http import REGION, get, raw

from aioimds import IMDSClient, IMDSConfigError
from aioimds.emulator import Emulator, Faults
from aioimds.emulator.serve import add_serve_arguments, faults_from_args
from aioimds.emulator.throttle import (
    FixedWindow,
    SlidingWindow,
    Throttle,
    TokenBucket,
    make_limiter,
)

# -- the limiters, on a clock passed in -----------------------------------------------------


def takes(limiter: TokenBucket | FixedWindow | SlidingWindow, times: list[float]) -> list[bool]:
    return [limiter.take(t) for t in times]


def test_token_bucket_grants_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(10.0, burst=3, now=0.0)
    assert takes(bucket, [0.0, 0.0, 0.0, 0.0]) == [True, True, True, False]
    assert takes(bucket, [0.05, 0.1, 0.1]) == [False, True, False]
    assert takes(bucket, [10.0] * 4) == [True, True, True, False]  # never more than the burst


def test_token_bucket_default_burst_is_a_tenth_of_the_rate_and_at_least_one() -> None:
    assert TokenBucket(200.0).burst == 20 and TokenBucket(4.0).burst == 1


def test_token_bucket_retuned_keeps_its_level() -> None:
    bucket = TokenBucket(100.0, burst=10, now=0.0)
    assert all(takes(bucket, [0.0] * 10))
    bucket.retune(10.0, 0.05)  # 5 tokens accrued at the old rate
    assert (bucket.burst, bucket.level) == (1.0, 1.0)  # the new rate's burst caps it


def test_fixed_window_grants_its_quota_per_window() -> None:
    window = FixedWindow(5.0, window=1.0)
    assert takes(window, [0.1] * 6) == [True] * 5 + [False]
    assert takes(window, [0.99, 1.0, 1.0]) == [False, True, True]
    assert FixedWindow(0.5, window=1.0).take(0.0)  # a quota below one still grants one


def test_sliding_window_counts_the_trailing_window_and_not_refusals() -> None:
    window = SlidingWindow(3.0, window=1.0)
    assert takes(window, [0.0, 0.4, 0.8, 0.9]) == [True, True, True, False]
    assert takes(window, [1.0, 1.1, 1.39, 1.41]) == [True, False, False, True]


def test_make_limiter_names_every_shape() -> None:
    assert isinstance(make_limiter("bucket", 5.0), TokenBucket)
    assert isinstance(make_limiter("fixed-window", 5.0), FixedWindow)
    assert isinstance(make_limiter("sliding-window", 5.0), SlidingWindow)
    with pytest.raises(ValueError, match="unknown throttle shape"):
        make_limiter("leaky", 5.0)  # type: ignore[arg-type]


def test_throttle_steps_change_the_rate_from_the_first_request() -> None:
    throttle = Throttle()
    steps = ((1.0, 2.0), (2.0, 8.0))
    tick = 1 / 64  # binary fractions: the times add up exactly

    def granted(second: int) -> int:
        return sum(throttle.admit(8.0, 100.0 + second + i * tick, burst=1.0, steps=steps)
                   for i in range(64))

    # One grant per token, give or take the one a boundary's leftover level makes.
    assert granted(0) == 8
    assert granted(1) in (2, 3)
    assert granted(2) in (8, 9)


def test_a_changed_setting_starts_a_fresh_limiter() -> None:
    throttle = Throttle()
    assert throttle.admit(1.0, 0.0) and not throttle.admit(1.0, 0.0)
    assert throttle.admit(1.0, 0.0, burst=2.0)  # a new burst: a full bucket
    assert throttle.admit(1.0, 0.0, shape="fixed-window")


# -- faults of a running emulator -----------------------------------------------------------


async def test_throttle_burst_is_honoured(http: aiohttp.ClientSession) -> None:
    faults = Faults(throttle_rps=4, throttle_burst=3)
    async with Emulator(tokens="optional", faults=faults) as emu:
        statuses = [(await get(http, emu, REGION, None)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_fixed_window_fault_answers_429_past_the_quota(http: aiohttp.ClientSession) -> None:
    faults = Faults(throttle_rps=3, throttle_shape="fixed-window", throttle_window=10.0)
    async with Emulator(tokens="optional", faults=faults) as emu:
        statuses = [(await get(http, emu, REGION, None)).status for _ in range(40)]
    assert statuses.count(200) in (30, 60)  # one window, or two if a boundary fell between
    assert statuses[:30] == [200] * 30


async def test_throttle_drop_closes_the_connection_without_an_answer(
        http: aiohttp.ClientSession) -> None:
    faults = Faults(throttle_rps=1, throttle_drop=True)
    async with Emulator(tokens="optional", faults=faults) as emu:
        assert (await get(http, emu, REGION, None)).status == 200
        assert await raw(emu, f"GET {REGION} HTTP/1.1\r\nHost: x\r\n\r\n".encode()) == b""
    assert emu.counters.requests[("GET", 0)] == 1


@pytest.mark.parametrize("bad", [
    {"throttle_shape": "leaky"}, {"throttle_burst": 0.5}, {"throttle_burst": float("inf")},
    {"throttle_window": 0}, {"throttle_steps": ((-1.0, 5.0),)},
    {"throttle_steps": ((1.0, 0.0),)},
])
def test_bad_throttle_faults_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="throttle_"):
        Faults(throttle_rps=10, **bad)  # type: ignore[arg-type]


# -- serve options ---------------------------------------------------------------------------


def serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aioimds serve")
    add_serve_arguments(parser)
    return parser.parse_args(argv)


def test_serve_throttle_options_build_the_faults() -> None:
    faults = faults_from_args(serve_args(
        "--throttle-rps", "200", "--throttle-shape", "sliding-window", "--throttle-window",
        "2", "--throttle-drop", "--throttle-step", "1.5:100", "--throttle-step", "3:200"))
    assert (faults.throttle_rps, faults.throttle_shape, faults.throttle_window) == (
        200, "sliding-window", 2.0)
    assert faults.throttle_drop and faults.throttle_steps == ((1.5, 100.0), (3.0, 200.0))
    assert faults_from_args(serve_args("--throttle-rps", "9", "--throttle-burst", "9")) \
        .throttle_burst == 9


@pytest.mark.parametrize("bad", [
    "--throttle-step=3", "--throttle-step=x:1", "--throttle-step=1:0", "--throttle-burst=0.5",
    "--throttle-window=0", "--throttle-shape=leaky",
])
def test_serve_refuses_bad_throttle_options(bad: str) -> None:
    with pytest.raises(SystemExit):
        serve_args("--throttle-rps", "10", bad)


def test_throttle_shape_options_need_a_rate() -> None:
    with pytest.raises(IMDSConfigError, match="need --throttle-rps"):
        faults_from_args(serve_args("--throttle-drop"))


# -- dumps against every shape (completeness and bounded refusals, not speed) ---------------


@pytest.mark.parametrize("faults", [
    pytest.param(Faults(throttle_rps=100, throttle_burst=1), id="bucket-burst-1"),
    pytest.param(Faults(throttle_rps=50, throttle_burst=50), id="bucket-burst-rate"),
    pytest.param(Faults(throttle_rps=60, throttle_shape="fixed-window"), id="fixed-window"),
    pytest.param(Faults(throttle_rps=60, throttle_shape="sliding-window"), id="sliding-window"),
    pytest.param(Faults(throttle_rps=100, throttle_drop=True), id="drop"),
    pytest.param(Faults(throttle_rps=200, throttle_steps=((0.2, 50.0), (0.8, 200.0))),
                 id="rate-steps"),
    pytest.param(Faults(throttle_rps=100, retry_after=0.1), id="retry-after"),
])
async def test_a_dump_completes_against_every_throttle_shape(faults: Faults) -> None:
    async with Emulator(faults=faults) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            assert await imds.dump() == emu.snapshot.subtree("/latest/")
    answered = emu.counters.total() - emu.counters.total(status=429) - emu.counters.total(
        status=0)
    refused = emu.counters.total(status=429) + emu.counters.total(status=0)
    assert refused > 0  # the throttle bit
    assert refused <= 2 * answered  # paced: not a flood of refusals


async def test_two_dumps_sharing_one_throttle_both_complete() -> None:
    async with Emulator(faults=Faults(throttle_rps=100, throttle_burst=5)) as emu:
        async with IMDSClient(endpoint=emu.url) as one, IMDSClient(endpoint=emu.url) as two:
            first, second = await asyncio.gather(one.dump(), two.dump())
    assert first == second == emu.snapshot.subtree("/latest/")
    assert emu.counters.total(status=429) > 0
