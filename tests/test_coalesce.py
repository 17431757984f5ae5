"""Single flight per path and the answer cache (aioimds.coalesce), alone and in the client."""

from __future__ import annotations

import asyncio
import gc
import math
from typing import Any

import pytest

from aioimds import IMDSClient, IMDSHTTPError, IMDSNotFoundError, Record
from aioimds.coalesce import FOREVER, AnswerCache, SingleFlight, check_max_age
from aioimds.emulator import Emulator, Faults, PathFault

REGION = "meta-data/placement/region"
REGION_PATH = "/latest/" + REGION
SPOT = "meta-data/spot/instance-action"


def gets(emu: Emulator, path: str | None = None) -> int:
    """GETs the emulator answered (to ``path`` only, when given), from its request trace."""
    return sum(1 for t in emu.counters.trace
               if t.method == "GET" and (path is None or t.path == path))


def loop_errors() -> list[dict[str, Any]]:
    """Collects what the running loop's exception handler is given ("Task exception was never
    retrieved" and the like)."""
    seen: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: seen.append(ctx))
    return seen


# -- SingleFlight alone ---------------------------------------------------------------------------


async def test_concurrent_calls_for_one_key_share_one_run_and_its_result() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    runs = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal runs
        runs += 1
        await gate.wait()
        return 42

    calls = [asyncio.ensure_future(flights.run("k", work)) for _ in range(100)]
    other = asyncio.ensure_future(flights.run("other", work))
    await asyncio.sleep(0)
    assert len(flights) == 2
    gate.set()
    assert await asyncio.gather(*calls) == [42] * 100
    assert await other == 42
    assert runs == 2 and len(flights) == 0
    assert await flights.run("k", work) == 42 and runs == 3  # a later call runs again


async def test_every_caller_gets_the_error_of_the_shared_run() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    runs = 0

    async def work() -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0)
        raise LookupError("gone")

    results = await asyncio.gather(*(flights.run("k", work) for _ in range(10)),
                                   return_exceptions=True)
    assert runs == 1
    assert all(isinstance(r, LookupError) and str(r) == "gone" for r in results)


async def test_a_cancelled_caller_leaves_the_run_going_for_the_others() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    gate = asyncio.Event()
    finished = []

    async def work() -> str:
        await gate.wait()
        finished.append(True)
        return "answer"

    first = asyncio.ensure_future(flights.run("k", work))
    second = asyncio.ensure_future(flights.run("k", work))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await second == "answer"
    assert first.cancelled() and finished == [True]


async def test_a_run_all_of_whose_callers_left_finishes_and_its_error_is_no_loop_error() -> None:
    seen = loop_errors()
    flights: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()

    async def work() -> int:
        await gate.wait()
        raise LookupError("nobody is waiting")

    calls = [asyncio.ensure_future(flights.run("k", work)) for _ in range(3)]
    await asyncio.sleep(0)
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    assert len(flights) == 1  # still running for nobody
    calls.clear()  # nothing of the callers is left to keep the flight's task alive
    gate.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(flights) == 0
    gc.collect()
    assert seen == []


async def test_cancelling_the_flights_gives_their_callers_a_runtime_error() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    never = asyncio.Event()

    async def work() -> int:
        await never.wait()
        return 1

    call = asyncio.ensure_future(flights.run("k", work))
    await asyncio.sleep(0)
    flights.cancel()
    with pytest.raises(RuntimeError, match="client was closed"):
        await call
    assert len(flights) == 0


# -- AnswerCache alone ----------------------------------------------------------------------------


def test_an_answer_is_served_while_its_age_is_within_max_age() -> None:
    cache: AnswerCache[str, bytes] = AnswerCache()
    cache.put("k", b"v", now=100.0)
    assert cache.get("k", max_age=5, now=105.0) == b"v"
    assert cache.get("k", max_age=5, now=105.5) is None
    assert cache.get("k", max_age=0, now=100.0) == b"v"
    assert cache.get("k", max_age=FOREVER, now=1e12) == b"v"
    assert cache.get("missing", max_age=FOREVER, now=100.0) is None
    cache.put("k", b"w", now=200.0)
    assert cache.get("k", max_age=1, now=200.5) == b"w"
    cache.clear()
    assert len(cache) == 0 and cache.get("k", FOREVER, 200.0) is None


def test_the_cache_drops_the_oldest_stored_answer_beyond_its_size() -> None:
    cache: AnswerCache[int, int] = AnswerCache(size=3)
    for key in (1, 2, 3):
        cache.put(key, key * 10, now=float(key))
    cache.put(1, 11, now=4.0)  # stored again: now the newest
    cache.put(4, 40, now=5.0)  # drops 2, the oldest stored
    assert [cache.get(k, FOREVER, 6.0) for k in (1, 2, 3, 4)] == [11, None, 30, 40]
    assert len(cache) == 3
    with pytest.raises(ValueError, match="size"):
        AnswerCache(size=0)


@pytest.mark.parametrize("bad", [-1, -0.001, math.nan, True, "5"])
def test_a_max_age_that_is_not_seconds_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_age must be seconds >= 0"):
        check_max_age(bad)


# -- in the client --------------------------------------------------------------------------------


async def test_concurrent_reads_of_a_path_make_one_request_other_paths_their_own(
    emulator: Emulator,
) -> None:
    async with IMDSClient(endpoint=emulator.url) as imds:
        regions, zones, entries = await asyncio.gather(
            asyncio.gather(*(imds.get(REGION) for _ in range(500))),
            asyncio.gather(*(imds.get_bytes("meta-data/placement/availability-zone")
                             for _ in range(500))),
            asyncio.gather(*(imds.list("meta-data/placement") for _ in range(500))))
    assert set(regions) == {"ap-northeast-1"} and set(zones) == {b"ap-northeast-1a"}
    assert entries[0] == ["availability-zone", "availability-zone-id", "region"]
    assert gets(emulator) == 3 and emulator.counters.token_puts == 1


async def test_a_404_and_a_failure_reach_every_concurrent_caller_from_one_flight(
    emulator: Emulator,
) -> None:
    emulator.faults.path_faults.append(PathFault(REGION_PATH, status=500, count=10))
    async with IMDSClient(endpoint=emulator.url, attempts=2) as imds:
        absent = await asyncio.gather(*(imds.get(SPOT) for _ in range(50)),
                                      return_exceptions=True)
        failed = await asyncio.gather(*(imds.get(REGION) for _ in range(50)),
                                      return_exceptions=True)
    assert all(isinstance(e, IMDSNotFoundError) and e.path == "/latest/" + SPOT for e in absent)
    assert all(isinstance(e, IMDSHTTPError) and e.status == 500 and e.path == REGION_PATH
               for e in failed)
    assert gets(emulator, "/latest/" + SPOT) == 1
    assert gets(emulator, REGION_PATH) == 2  # one flight, its two attempts


async def test_a_cancelled_caller_does_not_cancel_the_request_of_the_others() -> None:
    async with Emulator(faults=Faults(path_faults=[PathFault(REGION_PATH, delay=0.2)])) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            first = asyncio.ensure_future(imds.get(REGION))
            others = [asyncio.ensure_future(imds.get(REGION)) for _ in range(5)]
            await asyncio.sleep(0.05)
            first.cancel()
            assert await asyncio.gather(*others) == ["ap-northeast-1"] * 5
            assert first.cancelled()
        assert gets(emu, REGION_PATH) == 1 and emu.counters.requests[("GET", 0)] == 0


async def test_an_answer_nobody_waits_for_any_more_is_still_kept_for_max_age_reads() -> None:
    async with Emulator(faults=Faults(path_faults=[PathFault(REGION_PATH, delay=0.1)])) as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            await imds.get("meta-data/instance-id")  # the token, out of the way
            caller = asyncio.ensure_future(imds.get(REGION, max_age=FOREVER))
            await asyncio.sleep(0.02)
            caller.cancel()
            await asyncio.gather(caller, return_exceptions=True)
            # The flight goes on; a new read joins it and keeps its answer.
            assert await imds.get(REGION, max_age=FOREVER) == "ap-northeast-1"
            assert await imds.get(REGION, max_age=FOREVER) == "ap-northeast-1"
        assert gets(emu, REGION_PATH) == 1


async def test_closing_the_client_fails_reads_in_flight_and_leaves_no_task(
    emulator: Emulator,
) -> None:
    emulator.faults.hold_token_put = True
    imds = IMDSClient(endpoint=emulator.url, timeout=30)
    await imds.open()
    before = asyncio.all_tasks()
    reads = [asyncio.ensure_future(imds.get(REGION)) for _ in range(3)]
    for _ in range(1000):  # until the PUT is held (5 s at most)
        if emulator.counters.token_puts:
            break
        await asyncio.sleep(0.005)
    await imds.close()
    results = await asyncio.gather(*reads, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "client was closed" in str(r) for r in results)
    for _ in range(3):
        await asyncio.sleep(0)
    assert asyncio.all_tasks() - set(reads) == before


async def test_max_age_reads_are_served_from_the_cache_by_their_age(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aioimds import clock

    offset = 0.0
    real = clock.now
    monkeypatch.setattr(clock, "now", lambda: real() + offset)
    async with IMDSClient(endpoint=emulator.url) as imds:
        assert await imds.get(REGION, max_age=60) == "ap-northeast-1"
        emulator.set_leaf(REGION_PATH, "eu-west-3")
        offset = 59.0
        assert await imds.get(REGION, max_age=60) == "ap-northeast-1"
        assert gets(emulator, REGION_PATH) == 1
        assert await imds.get(REGION) == "eu-west-3"  # no max_age: always asked
        assert await imds.get(REGION, max_age=FOREVER) == "ap-northeast-1"  # what was kept
        offset = 61.0
        assert await imds.get(REGION, max_age=60) == "eu-west-3"  # too old: asked, kept
        assert await imds.get(REGION, max_age=1) == "eu-west-3"
        assert gets(emulator, REGION_PATH) == 3
        with pytest.raises(ValueError, match="max_age"):
            await imds.get(REGION, max_age=-1)


async def test_a_404_is_kept_for_max_age_reads_and_an_error_never_is(emulator: Emulator) -> None:
    async with IMDSClient(endpoint=emulator.url, attempts=1) as imds:
        for _ in range(3):
            with pytest.raises(IMDSNotFoundError):
                await imds.get(SPOT, max_age=FOREVER)
        assert gets(emulator, "/latest/" + SPOT) == 1
        emulator.faults.path_faults.append(PathFault(REGION_PATH, status=503))
        with pytest.raises(IMDSHTTPError):
            await imds.get(REGION, max_age=FOREVER)
        assert await imds.get(REGION, max_age=FOREVER) == "ap-northeast-1"
        assert await imds.get(REGION, max_age=FOREVER) == "ap-northeast-1"
    assert gets(emulator, REGION_PATH) == 2


async def test_cache_false_asks_the_service_for_every_read(emulator: Emulator) -> None:
    async with IMDSClient(endpoint=emulator.url, cache=False) as imds:
        assert imds.config.cache is False
        for _ in range(3):
            assert await imds.get_json("dynamic/instance-identity/document", max_age=FOREVER)
        with pytest.raises(ValueError, match="max_age"):
            await imds.get(REGION, max_age=math.nan)
    assert gets(emulator, "/latest/dynamic/instance-identity/document") == 3


async def test_closing_forgets_the_cached_answers(emulator: Emulator) -> None:
    imds = IMDSClient(endpoint=emulator.url)
    for _ in range(2):
        async with imds:
            assert await imds.list("meta-data/placement/", max_age=FOREVER)
            assert await imds.list("meta-data/placement/", max_age=FOREVER)
    assert gets(emulator, "/latest/meta-data/placement/") == 2


async def test_a_dump_neither_joins_flights_nor_fills_the_cache(emulator: Emulator) -> None:
    async with IMDSClient(endpoint=emulator.url) as imds:
        snap = await imds.dump()
        assert len(imds._answers) == 0
        puts = emulator.counters.token_puts
        assert await imds.get(REGION, max_age=FOREVER) == "ap-northeast-1"
    assert snap[REGION_PATH] == Record(b"ap-northeast-1")
    assert gets(emulator, REGION_PATH) == 2 and puts == 1
