"""The rate controller (aioimds.pacing), in virtual time, against every limiter shape.

The simulations (tests/throttle_sim.py) crawl ``requests`` answers with 32 workers, 1 ms per
answer, against the emulator's own limiters (aioimds.emulator.throttle), retrying refusals as a
dump does. Virtual time makes them exact and repeatable: the figures below are properties of the
algorithm, not of the machine.
"""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest
from throttle_sim import Client, VirtualLoop, run_virtual, simulate

from aioimds import ratecontrol as pacing
from aioimds.emulator.throttle import Throttle
from aioimds.pacing import AdaptiveLimit
from aioimds.ratecontrol import RateController, probe_rate, probe_time

START = 0.3
"""Simulations start off a window boundary, as a dump would."""


def crawl(rate: float, requests: int, *, shape: str = "bucket", burst: float | None = None,
          drop: bool = False, clients: int = 1,
          steps: tuple[tuple[float, float], ...] = ()) -> list[Client]:
    throttle = Throttle()

    def admit(now: float) -> bool:
        return throttle.admit(rate, now, shape=shape, burst=burst,  # type: ignore[arg-type]
                              steps=steps)

    return simulate(admit, [requests] * clients, drop=drop, start=START)


def throughput(client: Client, start: float, end: float) -> float:
    """Accepted answers per second in ``[START + start, START + end)``."""
    return client.accepted_between(START + start, START + end) / (end - start)


SHAPES = [
    *[pytest.param("bucket", burst, False, id=f"bucket-burst-{burst}")
      for burst in ("1", "5", "rate/10", "rate")],
    pytest.param("fixed-window", None, False, id="fixed-window"),
    pytest.param("sliding-window", None, False, id="sliding-window"),
    pytest.param("bucket", None, True, id="drop"),
]


def burst_of(burst: str | None, rate: float) -> float | None:
    if burst is None:
        return None
    return {"rate/10": max(1.0, rate / 10), "rate": rate}.get(burst) or float(burst)


@pytest.mark.parametrize("rate", [50, 200, 1000])
@pytest.mark.parametrize(("shape", "burst", "drop"), SHAPES)
def test_finds_the_granted_rate_within_a_second_and_holds_it(
        rate: int, shape: str, burst: str | None, drop: bool) -> None:
    requests = 3 * rate  # three seconds of the granted rate
    [client] = crawl(rate, requests, shape=shape, burst=burst_of(burst, rate), drop=drop)
    elapsed = client.finished - START
    assert len(client.accepted) == requests
    # Within a second of the first refusal it sends at the granted rate, and holds it.
    last = math.floor(elapsed * 2) / 2
    assert throughput(client, 1.0, last) >= 0.9 * rate
    assert elapsed <= 1.1 * requests / rate
    assert client.refused_after(START + 1.0) <= 0.05 * requests


def test_a_rate_that_halves_and_recovers_is_followed_within_a_second() -> None:
    [client] = crawl(200, 1000, steps=((1.5, 100.0), (3.0, 200.0)))
    assert 0.9 * 100 <= throughput(client, 2.5, 3.0) <= 100 * 1.05
    assert throughput(client, 4.0, 4.5) >= 0.9 * 200
    # 20 granted at once, 200/s for 1.5 s, 100/s for 1.5 s, then 200/s.
    ideal = 3.0 + (1000 - 20 - 300 - 150) / 200
    assert client.finished - START <= 1.1 * ideal


def test_clients_sharing_one_limiter_get_its_rate_between_them() -> None:
    clients = crawl(50, 300, burst=5, clients=4)
    assert all(len(c.accepted) == 300 for c in clients)
    assert max(c.finished for c in clients) - START <= 1.2 * 4 * 300 / 50


def test_a_single_early_refusal_costs_under_a_third_of_a_second() -> None:
    def always(now: float) -> bool:
        return True

    refused = [False]

    def once(now: float) -> bool:
        if not refused[0] and now > START + 0.002:
            refused[0] = True
            return False
        return True

    [clean] = simulate(always, 900, start=START)
    [client] = simulate(once, 900, start=START)
    assert len(client.refused) == 1
    assert client.finished - clean.finished <= 0.3
    assert not client.limit.throttling and client.limit.rate is None


def test_unpaced_until_the_first_signal_then_paced_and_throttling() -> None:
    async def main() -> None:
        limit = AdaptiveLimit(4)
        tickets = [limit.try_acquire() for _ in range(4)]
        assert None not in tickets and limit.try_acquire() is None  # every slot taken
        assert not limit.throttling and limit.rate is None
        for ticket in tickets[:3]:
            assert ticket is not None
            limit.release(ticket, throttled=False, status=200)
        assert tickets[3] is not None
        limit.release(tickets[3], throttled=True, status=429)
        assert limit.throttling and limit.rate is not None
        assert limit.try_acquire() is None  # paced: every send waits for its time
        assert limit.answering()

    run_virtual(main)


def test_sends_are_spaced_on_one_schedule() -> None:
    sent: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        limit = AdaptiveLimit(32)
        limit.control.on_throttled(loop.time())
        limit.control.rate = limit.control._base = 100.0
        limit.control._episode = pacing.CONFIDENT  # a well-known limit: no probing soon

        async def one() -> None:
            ticket = await limit.acquire()
            sent.append(loop.time())
            limit.release(ticket, throttled=False, status=200)

        await asyncio.gather(*(one() for _ in range(20)))

    run_virtual(main)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(g == pytest.approx(0.01, abs=1e-9) for g in gaps[1:])


def test_retry_after_pauses_every_send() -> None:
    sent: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        limit = AdaptiveLimit(8)
        ticket = await limit.acquire()
        limit.release(ticket, throttled=True, status=429, retry_after=0.5)
        for _ in range(3):
            ticket = await limit.acquire()
            sent.append(loop.time())
            limit.release(ticket, throttled=False, status=200)

    run_virtual(main)
    assert min(sent) >= 0.5


def test_a_dropped_connection_is_a_throttle_signal() -> None:
    control = RateController()
    control.on_accepted(0.0)
    control.on_throttled(0.001)  # no status: the connection was closed unanswered
    assert control.rate is not None and control.signals == 1


def test_the_answering_window_ends_when_nothing_is_accepted() -> None:
    control = RateController()
    control.on_accepted(1.0)
    assert control.answering(1.0 + pacing.ANSWERING)
    assert not control.answering(1.1 + pacing.ANSWERING)
    control.on_throttled(4.0, retry_after=3.0)  # a long Retry-After extends it
    assert control.answering(5.0)


def test_a_cancelled_waiter_gives_its_place_back() -> None:
    async def main() -> None:
        limit = AdaptiveLimit(1)
        ticket = await limit.acquire()
        waiter = asyncio.ensure_future(limit.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        limit.release(ticket, throttled=False, status=200)
        assert limit.in_flight == 0
        assert await asyncio.wait_for(limit.acquire(), 1.0) >= 1

    run_virtual(main)


@pytest.mark.parametrize("base", [1.0, 40.0, 500.0, 5000.0])
def test_probe_rate_and_probe_time_are_inverse(base: float) -> None:
    for seconds in (0.01, 0.1, 0.5, 2.0):
        rate = probe_rate(base, seconds)
        assert rate > base
        assert probe_time(base, rate) == pytest.approx(seconds, rel=1e-9)


def test_the_probe_doubles_per_send_slowly_and_per_second_fast() -> None:
    # 20 sends per doubling at 50 req/s: from 50 to 100 takes about 20 sends' worth.
    assert probe_time(50.0, 100.0) == pytest.approx(20 / 100 / math.log(2), rel=1e-9)
    assert probe_time(2000.0, 4000.0) == pytest.approx(pacing.DOUBLING)


def test_the_virtual_loop_moves_its_clock_only_by_timers() -> None:
    loop = VirtualLoop()
    try:
        start = loop.time()
        loop.run_until_complete(asyncio.sleep(3600))
        assert loop.time() - start == pytest.approx(3600)
    finally:
        loop.close()
