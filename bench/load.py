"""Scenarios b (per-request overhead of ``get()``), c (token single-flight) and d (a dump
under the emulator's 200 requests/s throttle)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections import Counter
from typing import Any

import aiohttp

from aioimds import IMDSClient, Record, Snapshot
from aioimds.emulator import default_snapshot

from .baselines import raw_gets
from .common import Settings, large, loopback_client, timed_workers
from .report import Row, Stats, Target, ratio
from .server import served

__all__ = ["overhead", "single_flight", "throttled"]

LEAF = "meta-data/placement/region"
"""The leaf every ``get()`` of scenario c asks for."""
SEQUENTIAL_GETS = 2_000
"""GETs per sequential run: long enough (~0.5 s) to swamp timer noise."""
CONCURRENT_GETS = 10_000
"""GETs per concurrent run."""
IN_FLIGHT = 64
"""Concurrent workers; also the connector limit of the raw loop, as of the client."""
STAMPEDE = 10_000
"""Concurrent ``get()`` calls on a fresh client in scenario c."""
THROTTLE_RPS = 200
"""The emulator's throttle in scenario d (a token bucket, burst ``rps / 10``)."""
THROTTLED_RUNS = 3
"""Runs of scenario d at most: each one takes about 12 s."""
BUCKET_REFILL = 0.5
"""Seconds between throttled runs, so each one starts with a full bucket."""


def _worker_leaves() -> Snapshot:
    """The default tree and :data:`IN_FLIGHT` leaves ``meta-data/bench-N`` holding the region's
    body: scenario b's workers each ask their own, as the raw loop asks one, so no two of our
    ``get()`` calls share a flight (``aioimds.coalesce``) and each is one request, like the
    raw loop's."""
    body = default_snapshot()["/latest/" + LEAF].body
    leaves = {f"/latest/meta-data/bench-{n}": Record(body) for n in range(IN_FLIGHT)}
    return Snapshot({**default_snapshot().responses, **leaves})


async def _our_gets(imds: IMDSClient, count: int, concurrency: int) -> float:
    numbers = itertools.count()

    async def worker(n: int) -> None:
        leaf = f"meta-data/bench-{next(numbers) % IN_FLIGHT}"
        for _ in range(n):
            await imds.get(leaf)

    return await timed_workers(worker, count, concurrency)


async def _client_loop(url: str, count: int, concurrency: int) -> float:
    async with loopback_client(url) as imds:
        return await _our_gets(imds, count, concurrency)


async def _raw_loop(url: str, count: int, concurrency: int) -> float:
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await raw_gets(session, url, "/latest/meta-data/bench-0", count, concurrency)


async def overhead(settings: Settings) -> list[Row]:
    """Scenario b: requests/s of ``get()`` and of a raw aiohttp loop, sequential and 64 at once."""
    rows = []
    with served(snapshot=_worker_leaves()) as url:
        for label, count, conc in (("sequential", SEQUENTIAL_GETS, 1),
                                   (f"{IN_FLIGHT} concurrent", CONCURRENT_GETS, IN_FLIGHT)):
            ours: list[float] = []
            raw: list[float] = []
            for rep in range(settings.repeat + 1):  # run 0 warms up
                for side, run in ((raw, _raw_loop), (ours, _client_loop))[::1 if rep % 2 else -1]:
                    gc.collect()  # neither side pays for the other's garbage
                    seconds = await run(url, count, conc)
                    if rep:
                        side.append(count / seconds)
            our_rate, raw_rate = Stats.of(ours), Stats.of(raw)
            rows += [
                Row("b", f"get() {label}: aioimds / raw aiohttp requests/s",
                    ratio(our_rate, raw_rate), "x", Target(">=", 0.8)),
                Row("b", f"get() {label}: aioimds", our_rate, "req/s"),
                Row("b", f"get() {label}: raw aiohttp", raw_rate, "req/s"),
            ]
    return rows


async def single_flight(settings: Settings) -> list[Row]:
    """Scenario c: 10,000 concurrent ``get()`` on a fresh client: PUTs and time."""
    puts: list[float] = []
    times: list[float] = []
    with served() as url:
        for _ in range(settings.repeat):
            async with loopback_client(url) as imds:
                start = time.perf_counter()
                await asyncio.gather(*(imds.get(LEAF) for _ in range(STAMPEDE)))
                times.append(time.perf_counter() - start)
                puts.append(imds.token_puts)
    return [Row("c", f"{STAMPEDE:,} concurrent get() on a fresh client: token PUTs",
                Stats.of(puts), "PUTs", Target("==", 1)),
            Row("c", f"{STAMPEDE:,} concurrent get() on a fresh client: time",
                Stats.of(times).scaled(1000), "ms")]


class _StatusCount:
    """Counts the statuses the client's transport receives (wraps its private ``send``)."""

    def __init__(self, imds: IMDSClient) -> None:
        self.seen: Counter[int] = Counter()
        transport: Any = imds._transport
        send = transport.send

        async def counting(*args: Any, **kwargs: Any) -> Any:
            answer = await send(*args, **kwargs)
            self.seen[answer.status] += 1
            return answer

        transport.send = counting


async def throttled(settings: Settings) -> list[Row]:
    """Scenario d: the generated tree under ``--throttle-rps 200``: time against N/200,
    429s met, and failures that reached the caller."""
    big = large()
    runs = min(settings.repeat, 1 if settings.quick else THROTTLED_RUNS)
    times: list[float] = []
    bound: list[float] = []
    seen_429: list[float] = []
    failed: list[float] = []
    with served("--throttle-rps", str(THROTTLE_RPS), snapshot=big.snapshot) as url:
        for _ in range(runs):
            await asyncio.sleep(BUCKET_REFILL)
            async with loopback_client(url) as imds:
                counts = _StatusCount(imds)
                start = time.perf_counter()
                result = await imds.dump(concurrency=settings.concurrency, partial=True)
                times.append(time.perf_counter() - start)
            requests = sum(counts.seen.values()) - counts.seen[429]
            bound.append(requests / THROTTLE_RPS)
            seen_429.append(counts.seen[429])
            failed.append(len(result.failures))
    elapsed = Stats.of(times)
    return [
        Row("d", f"{big.name} at {THROTTLE_RPS} req/s: time / (N / {THROTTLE_RPS})",
            ratio(elapsed, Stats.of(bound)), "x", Target("<=", 1.1),
            note="N = requests answered, PUT included"),
        Row("d", f"{big.name} at {THROTTLE_RPS} req/s: failed paths reaching the caller",
            Stats.of(failed), "paths", Target("==", 0)),
        Row("d", f"{big.name} at {THROTTLE_RPS} req/s: 429 answers met", Stats.of(seen_429),
            "429s"),
        Row("d", f"{big.name} at {THROTTLE_RPS} req/s: dump time", elapsed, "s"),
    ]
