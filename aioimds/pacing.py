"""AdaptiveLimit: request pacing that follows the service's throttling.

Two controls, both additive-increase / multiplicative-decrease:

- **Concurrency.** A semaphore of ``limit`` slots, one per request attempt in flight. Every
  answer that is not throttling raises the limit by ``1/limit`` (about +1 per round of
  answers); a 429 or an unanswered connection halves it, at most once per round (only a request
  started after the last cut can cut again, as in TCP congestion control). It stays within
  ``[1, maximum]``.
- **Rate.** Unpaced until the first 429. Then requests are spaced to a rate: first the rate of
  answers seen in the last second, cut by :data:`RATE_DECREASE` on each later 429 (at most once
  per :data:`RATE_CUT_INTERVAL`), raised by :data:`RATE_INCREASE` per second of answers without
  one. So a throttled crawl runs close to the rate the service allows instead of bursting into
  429s and sleeping. After :data:`RATE_FORGET` seconds without a 429, pacing stops.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from . import clock

__all__ = ["AdaptiveLimit"]

DECREASE_FACTOR = 0.5
"""Multiplicative decrease of the concurrency limit on throttling."""
RATE_DECREASE = 0.9
"""Multiplicative decrease of the paced rate on a 429."""
RATE_INCREASE = 0.05
"""Fraction of the paced rate added per second without a 429 (probing for more)."""
RATE_CUT_INTERVAL = 0.5
"""Seconds between two cuts of the rate: one burst of 429s is one signal."""
RATE_FORGET = 10.0
"""Seconds without a 429 after which pacing stops (a long-lived client outlives a throttle)."""
RATE_WINDOW = 1.0
"""Seconds of answers used to estimate the service's rate at the first 429."""


class AdaptiveLimit:
    """A counting semaphore with an adaptive size and an adaptive request rate.

    Args:
        maximum: the largest number of slots (the crawl's concurrency), >= 1.
        clock: monotonic clock in seconds.
    """

    def __init__(self, maximum: int, *, clock: Callable[[], float] = clock.now) -> None:
        if maximum < 1:
            raise ValueError(f"concurrency must be >= 1, not {maximum}")
        self.maximum = maximum
        self.limit = float(maximum)
        self.in_flight = 0
        self.cuts = 0
        """How many times throttling lowered the concurrency or the rate."""
        self.rate: float | None = None
        """Requests per second while pacing, ``None`` before the first 429."""
        self._clock = clock
        self._epoch = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._answers: deque[float] = deque()
        self._next_send = 0.0
        self._last_rate_change = 0.0

    def __repr__(self) -> str:
        rate = "unpaced" if self.rate is None else f"{self.rate:.1f}/s"
        return (f"AdaptiveLimit(limit={self.limit:.1f}, maximum={self.maximum}, "
                f"in_flight={self.in_flight}, rate={rate})")

    @property
    def throttling(self) -> bool:
        """Whether requests are being paced because the service throttled (a 429 was met and
        not yet forgotten): speculation waits while it is true."""
        return self.rate is not None

    def try_acquire(self) -> int | None:
        """A ticket at once when a slot is free and requests are not paced, else ``None``
        (then await :meth:`acquire`): the common case of a crawl costs no coroutine."""
        if self.rate is None and self.in_flight < int(self.limit) and not self._waiters:
            self.in_flight += 1
            return self._epoch
        return None

    async def acquire(self) -> int:
        """Wait for a slot and for the pace; returns a ticket for :meth:`release`."""
        if self.in_flight < int(self.limit) and not self._waiters:
            self.in_flight += 1
        else:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self.in_flight -= 1  # the slot was granted just before the cancellation
                    self._wake()
                elif fut in self._waiters:  # _wake may have dropped it, being cancelled
                    self._waiters.remove(fut)
                raise
        ticket = self._epoch
        if self.rate is not None:
            now = self._clock()
            if now - self._last_rate_change > RATE_FORGET:
                self.rate = None  # no 429 for a long while: the throttle is gone
                return ticket
            send = max(now, self._next_send)
            self._next_send = send + 1.0 / self.rate
            if send > now:
                try:
                    await asyncio.sleep(send - now)
                except asyncio.CancelledError:
                    self.release(ticket, throttled=False, counted=False)
                    raise
        return ticket

    def release(self, ticket: int, *, throttled: bool, status: int | None = None,
                counted: bool = True) -> None:
        """Give a slot back. ``throttled``: the attempt got 429 or no answer; ``status``: the
        HTTP status when there was one. ``counted=False`` for an attempt never sent."""
        self.in_flight -= 1
        now = self._clock()
        if throttled:
            if ticket == self._epoch:
                self.limit = max(1.0, self.limit * DECREASE_FACTOR)
                self._epoch += 1
                self.cuts += 1
            if status == 429:
                self._cut_rate(now)
        elif counted:
            if self.limit < self.maximum:
                self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
            self._answers.append(now)
            while self._answers and self._answers[0] < now - RATE_WINDOW:
                self._answers.popleft()
            if self.rate is not None:
                self.rate += self.rate * RATE_INCREASE / max(self.rate, 1.0)
        self._wake()

    def _cut_rate(self, now: float) -> None:
        if now - self._last_rate_change < RATE_CUT_INTERVAL:
            return
        self._last_rate_change = now
        self.cuts += 1
        if self.rate is None:
            span = max(now - self._answers[0], 0.1) if self._answers else RATE_WINDOW
            self.rate = max(1.0, len(self._answers) / span)
        else:
            self.rate = max(1.0, self.rate * RATE_DECREASE)
        self._next_send = max(self._next_send, now + 1.0 / self.rate)

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)
