"""The emulator's throttle: the limiter shapes a throttling IMDS may have (DESIGN.md section 4).

AWS publishes neither the shape nor the numbers of IMDS's per-instance throttle or of the
network's link-local packet cap, so the emulator offers the usual shapes, all admitting ``rate``
requests a second on average:

- ``bucket``: a token bucket of ``burst`` tokens refilled at ``rate`` a second (default burst
  ``max(1, rate / 10)``); a request takes a token or is refused.
- ``fixed-window``: at most ``rate x window`` requests per window of ``window`` seconds, the
  windows aligned on the emulator's clock (a new quota each wall-clock second by default).
- ``sliding-window``: at most ``rate x window`` requests accepted in any trailing ``window``
  seconds (refused requests do not count).

A refused request is answered 429, or, with ``drop``, its connection is closed without an
answer, as a network dropping the excess looks to a client. ``steps`` change the rate while the
emulator runs. Each limiter is a small class with one method, ``take(now) -> bool``, on a
monotonic clock passed in, so the client's pacing tests drive the same limiters in virtual time.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal, Protocol

__all__ = [
    "SHAPES",
    "FixedWindow",
    "Limiter",
    "Shape",
    "SlidingWindow",
    "Throttle",
    "TokenBucket",
    "default_burst",
    "make_limiter",
]

Shape = Literal["bucket", "fixed-window", "sliding-window"]
SHAPES: tuple[Shape, ...] = ("bucket", "fixed-window", "sliding-window")
"""The limiter shapes, as ``Faults.throttle_shape`` and ``serve --throttle-shape`` name them."""


def default_burst(rate: float) -> float:
    """The token bucket's default burst: ``max(1, rate / 10)`` requests."""
    return max(1.0, rate / 10)


class Limiter(Protocol):
    """A limiter shape: admits or refuses one request at monotonic time ``now``."""

    rate: float

    def take(self, now: float) -> bool: ...


class TokenBucket:
    """``rate`` tokens a second into a bucket of ``burst`` tokens, full at the start."""

    __slots__ = ("burst", "level", "rate", "stamp")

    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0) -> None:
        self.rate = rate
        self.burst = default_burst(rate) if burst is None else burst
        self.level = self.burst
        self.stamp = now

    def retune(self, rate: float, now: float, burst: float | None = None) -> None:
        """Refill at ``rate`` from ``now`` on (the level so far accrues at the old rate; the
        burst becomes ``burst``, by default that of the new rate)."""
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        self.rate = rate
        self.burst = default_burst(rate) if burst is None else burst
        self.level = min(self.level, self.burst)

    def take(self, now: float) -> bool:
        """Take a token at ``now``; False when the bucket is empty."""
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level >= 1.0:
            self.level -= 1.0
            return True
        return False


class FixedWindow:
    """At most ``rate x window`` requests in each window ``[k * window, (k+1) * window)``."""

    __slots__ = ("count", "index", "rate", "window")

    def __init__(self, rate: float, window: float = 1.0) -> None:
        self.rate = rate
        self.window = window
        self.index = -1
        self.count = 0

    def take(self, now: float) -> bool:
        """Count a request at ``now``; False when this window's quota is used up."""
        index = math.floor(now / self.window)
        if index != self.index:
            self.index, self.count = index, 0
        if self.count < max(1, round(self.rate * self.window)):
            self.count += 1
            return True
        return False


class SlidingWindow:
    """At most ``rate x window`` requests accepted in any trailing ``window`` seconds."""

    __slots__ = ("accepted", "rate", "window")

    def __init__(self, rate: float, window: float = 1.0) -> None:
        self.rate = rate
        self.window = window
        self.accepted: deque[float] = deque()

    def take(self, now: float) -> bool:
        """Accept a request at ``now`` unless the trailing window holds its quota already."""
        accepted, edge = self.accepted, now - self.window
        while accepted and accepted[0] <= edge:
            accepted.popleft()
        if len(accepted) < max(1, round(self.rate * self.window)):
            accepted.append(now)
            return True
        return False


def make_limiter(shape: Shape, rate: float, *, burst: float | None = None,
                 window: float = 1.0, now: float = 0.0) -> TokenBucket | FixedWindow | \
        SlidingWindow:
    """A fresh limiter of ``shape`` admitting ``rate`` requests a second."""
    if shape == "bucket":
        return TokenBucket(rate, burst, now)
    if shape == "fixed-window":
        return FixedWindow(rate, window)
    if shape == "sliding-window":
        return SlidingWindow(rate, window)
    raise ValueError(f"unknown throttle shape {shape!r}; one of {', '.join(SHAPES)}")


class Throttle:
    """The emulator's limiter, rebuilt whenever its settings change.

    :meth:`admit` takes the current settings on every request (they live in the mutable
    ``Faults``): a change of shape, burst, window or base rate starts a fresh limiter (a full
    bucket, an empty window), so changing the fault while the emulator runs is predictable. A
    scheduled step changes the rate of the running limiter in place (the bucket keeps its
    level), as a service whose limit changes would.
    """

    def __init__(self) -> None:
        self._key: tuple[object, ...] | None = None
        self._limiter: TokenBucket | FixedWindow | SlidingWindow | None = None
        self._first: float | None = None

    def admit(self, rate: float, now: float, *, shape: Shape = "bucket",
              burst: float | None = None, window: float = 1.0,
              steps: tuple[tuple[float, float], ...] = ()) -> bool:
        """Whether a request at ``now`` is within the limit.

        ``steps``: ``(seconds, rate)`` pairs; from ``seconds`` after the first request this
        throttle saw, the rate is ``rate`` (the last step reached wins).
        """
        key = (rate, shape, burst, window, steps)
        if key != self._key or self._limiter is None:
            self._key = key
            self._limiter = make_limiter(shape, rate, burst=burst, window=window, now=now)
            self._first = now
        limiter = self._limiter
        if steps:
            current = rate
            since = now - (self._first if self._first is not None else now)
            for at, step_rate in steps:
                if since >= at:
                    current = step_rate
            if current != limiter.rate:
                if isinstance(limiter, TokenBucket):
                    limiter.retune(current, now, burst)
                else:
                    limiter.rate = current
        return limiter.take(now)
