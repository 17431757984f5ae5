"""A virtual-time event loop and a simulated crawl against the emulator's limiter shapes.

:class:`VirtualLoop` is an asyncio loop whose clock jumps to the next timer instead of waiting,
so seconds of paced traffic take milliseconds and every run is the same. :func:`simulate` runs
crawlers (each with its own :class:`~aioimds.pacing.AdaptiveLimit`, as separate clients)
against one limiter from :mod:`aioimds.emulator.throttle`; answers take ``latency`` seconds and
a refused attempt is retried, as a dump retries 429s and dropped connections.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aioimds.pacing import AdaptiveLimit

T = TypeVar("T")


class _VirtualSelector(selectors.DefaultSelector):
    """Polls real file descriptors (the loop's self-pipe) without blocking, then moves the
    loop's clock on by the time the loop would have slept."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or self.loop is None:
            return ready
        if timeout is None:
            raise RuntimeError("virtual loop: nothing scheduled, the simulation would hang")
        self.loop.now += max(0.0, timeout)
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock starting at 0.0 (see the module docstring)."""

    def __init__(self) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        self.now = 0.0
        selector.loop = self

    def time(self) -> float:
        return self.now


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` to completion on a fresh :class:`VirtualLoop`."""
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


@dataclass
class Client:
    """What one simulated client did: outcome times, per kind."""

    limit: AdaptiveLimit
    accepted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    finished: float = 0.0

    def refused_after(self, t: float) -> int:
        """Refusals (429s or drops) after time ``t``."""
        return sum(1 for x in self.refused if x > t)

    def accepted_between(self, start: float, end: float) -> int:
        """Accepted answers in ``[start, end)``."""
        return sum(1 for x in self.accepted if start <= x < end)


async def _crawl(client: Client, admit: Callable[[float], bool], requests: int, *,
                 latency: float, concurrency: int, drop: bool,
                 retry_after: float | None) -> None:
    loop = asyncio.get_running_loop()
    limit = client.limit
    left = [requests]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            while True:
                got = limit.try_acquire()
                ticket = got if got is not None else await limit.acquire()
                await asyncio.sleep(latency / 2)
                ok = admit(loop.time())
                await asyncio.sleep(latency / 2)
                now = loop.time()
                if ok:
                    limit.release(ticket, throttled=False, status=200)
                    client.accepted.append(now)
                    break
                limit.release(ticket, throttled=True, status=None if drop else 429,
                              retry_after=retry_after)
                client.refused.append(now)
                if retry_after is not None:
                    await asyncio.sleep(retry_after)
                elif not limit.throttling:
                    await asyncio.sleep(0.01)  # the client's backoff while unpaced

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    client.finished = loop.time()


def simulate(admit: Callable[[float], bool], requests: int | list[int], *,
             latency: float = 0.001, concurrency: int = 32, drop: bool = False,
             retry_after: float | None = None, start: float = 0.0) -> list[Client]:
    """Crawl ``requests`` answers (one count per client, started together at ``start``)
    against ``admit(now) -> accepted?``; returns each client's record."""
    counts = [requests] if isinstance(requests, int) else requests

    async def main() -> list[Client]:
        loop = asyncio.get_running_loop()
        if start:
            await asyncio.sleep(start - loop.time())
        clients = [Client(AdaptiveLimit(concurrency)) for _ in counts]
        await asyncio.gather(*(
            _crawl(c, admit, n, latency=latency, concurrency=concurrency, drop=drop,
                   retry_after=retry_after) for c, n in zip(clients, counts, strict=True)))
        return clients

    return run_virtual(main)
