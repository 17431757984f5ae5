"""Scenario g: what an async service asks of IMDS at scale (single flight and the typed cache).

A stampede: 10,000 concurrent cold ``instance_id()`` and ``region()`` calls on a fresh client;
the requests the emulator answered (its request trace, :mod:`bench.traced`) and the time. A
web-style load: 100,000 ``region()`` calls, 64 at a time, on an open client, with the cache
(the answer kept after the first call) and with ``cache=False`` (the single flight alone):
requests on the wire and calls per second (wall, and per second of this process's CPU: "one
core, no I/O" is what a cached call costs).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable

from aioimds import IMDSClient, IMDSConfig

from .common import BENCH_TIMEOUT, Settings
from .report import Row, Stats, Target
from .traced import TracedServer, traced

__all__ = ["service"]

STAMPEDE = 10_000
"""Concurrent cold calls on a fresh client."""
WEB_CALLS = 100_000
"""``region()`` calls of the web-style load."""
WEB_IN_FLIGHT = 64
"""Coroutines calling at once in the web-style load (one a request handler)."""
UNCACHED_RUNS = 3
"""Runs of the web-style load with ``cache=False`` at most: each one is 100,000 requests' worth
of single flights."""
CACHED_RATE = 200_000
"""Target: cached ``region()`` calls per second."""


def _client(url: str, *, cache: bool = True) -> IMDSClient:
    return IMDSClient(IMDSConfig(endpoint=url, timeout=BENCH_TIMEOUT, cache=cache))


async def _stampede(server: TracedServer, view: str, runs: int) -> list[Row]:
    puts: list[float] = []
    gets: list[float] = []
    times: list[float] = []
    for _ in range(runs):
        server.requests()  # from zero
        gc.collect()
        async with _client(server.url) as imds:
            call: Callable[[], Awaitable[object]] = getattr(imds, view)
            start = time.perf_counter()
            await asyncio.gather(*(call() for _ in range(STAMPEDE)))
            times.append(time.perf_counter() - start)
        wire = server.requests()
        puts.append(wire.get("PUT", 0))
        gets.append(wire.get("GET", 0))
    name = f"{STAMPEDE:,} concurrent cold {view}() on a fresh client"
    return [Row("g", f"{name}: token PUTs on the wire", Stats.of(puts), "PUTs",
                Target("==", 1)),
            Row("g", f"{name}: GETs on the wire", Stats.of(gets), "GETs", Target("==", 1)),
            Row("g", f"{name}: time", Stats.of(times).scaled(1000), "ms")]


async def _web_load(url: str, *, cache: bool) -> tuple[float, float]:
    """Calls per second (wall, CPU) of :data:`WEB_CALLS` ``region()`` calls, 64 at a time,
    after one untimed call (the token, the first answer)."""
    async with _client(url, cache=cache) as imds:
        await imds.region()

        async def handler(n: int) -> None:
            for _ in range(n):
                await imds.region()

        share = WEB_CALLS // WEB_IN_FLIGHT
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(handler(share) for _ in range(WEB_IN_FLIGHT)))
        wall, used = time.perf_counter() - start, time.process_time() - cpu
    calls = share * WEB_IN_FLIGHT
    return calls / wall, calls / used


async def _web(server: TracedServer, runs: int, *, cache: bool) -> list[Row]:
    rates: list[float] = []
    cpu_rates: list[float] = []
    wire: list[float] = []
    for _ in range(runs):
        server.requests()
        rate, cpu_rate = await _web_load(server.url, cache=cache)
        rates.append(rate)
        cpu_rates.append(cpu_rate)
        wire.append(sum(server.requests().values()))
    name = (f"web-style: {WEB_CALLS:,} region() calls, {WEB_IN_FLIGHT} at a time, "
            + ("cached" if cache else "cache=False (single flight alone)"))
    target = Target(">=", CACHED_RATE) if cache else None
    return [Row("g", f"{name}: calls per second", Stats.of(rates), "calls/s", target),
            Row("g", f"{name}: calls per CPU second", Stats.of(cpu_rates), "calls/s"),
            Row("g", f"{name}: requests on the wire", Stats.of(wire), "requests",
                Target("==", 2) if cache else None, note="PUT included")]


async def service(settings: Settings) -> list[Row]:
    """Scenario g: the stampedes and the web-style load."""
    rows: list[Row] = []
    with traced() as server:
        for view in ("instance_id", "region"):
            rows += await _stampede(server, view, settings.repeat)
        rows += await _web(server, settings.repeat, cache=True)
        rows += await _web(server, min(settings.repeat, UNCACHED_RUNS), cache=False)
    return rows
