"""Request pacing: :class:`AdaptiveLimit`, the slots and the send schedule of a client's
requests, driven by :class:`~aioimds.ratecontrol.RateController`.

At most ``maximum`` attempts are in flight. While the service does not throttle, a free slot is
taken at once (:meth:`AdaptiveLimit.try_acquire`, no coroutine). Once it throttles, sends are
spaced on one schedule, a next-send time for the whole limiter rather than a sleep per request,
at the controller's rate, which the module :mod:`aioimds.ratecontrol` explains: what it
measures, what it estimates, and why it converges. Time is read from
:func:`aioimds.clock.now` (the event loop's clock) or an injected clock, so tests run the
limiter in virtual time.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable

from . import clock
from .ratecontrol import MIN_SPAN, RateController

__all__ = ["PROBE_TICK", "SPARSE_SPAN", "AdaptiveLimit", "RateController"]

SPARSE_SPAN = 0.1
"""Seconds: the ``min_span`` of the limit a client's requests outside a dump share: a few
calls at a time, so the first estimate assumes no more than one answer per 0.1 s seen."""

PROBE_TICK = 0.01
"""Seconds: while probing, a waiter is looked at again this often, as the rate grows."""


class AdaptiveLimit:
    """At most ``maximum`` attempts in flight, sent at the pace of a :class:`RateController`.

    The interface of the request pipeline: take a ticket with :meth:`try_acquire` (no
    coroutine, the common unpaced case) or ``await`` :meth:`acquire`, send the attempt, and
    give the ticket back with :meth:`release`, saying how it went. Waiters are served in
    order, one per scheduled send time.

    Args:
        maximum: the most attempts in flight (the crawl's concurrency), >= 1.
        clock: monotonic clock in seconds (default :func:`aioimds.clock.now`, the event
            loop's); the schedule's timers run on the loop, offset to agree with it.
        min_span: see :class:`~aioimds.ratecontrol.RateController` (:data:`SPARSE_SPAN` for
            the requests of a client outside a dump).
    """

    def __init__(self, maximum: int, *, clock: Callable[[], float] = clock.now,
                 min_span: float = MIN_SPAN) -> None:
        if maximum < 1:
            raise ValueError(f"concurrency must be >= 1, not {maximum}")
        self.maximum = maximum
        self.in_flight = 0
        self.control = RateController(min_span=min_span)
        self._clock = clock
        self._waiters: deque[asyncio.Future[float | None]] = deque()
        self._last_send = -math.inf  # the scheduled time of the latest paced send
        self._timer: asyncio.TimerHandle | None = None
        self._sent = 0  # tickets are numbered in the order of sending
        self._sends: dict[int, tuple[float, float]] = {}  # paced tickets -> (sent at, rate)
        self._fresh_after = 0  # tickets up to this one were sent before the last fresh signal

    def __repr__(self) -> str:
        rate = self.control.rate
        pace = "unpaced" if rate is None else f"{rate:.1f}/s"
        return (f"AdaptiveLimit(maximum={self.maximum}, in_flight={self.in_flight}, "
                f"rate={pace}, waiting={len(self._waiters)})")

    @property
    def throttling(self) -> bool:
        """Whether requests are being paced because the service throttles (read-only):
        speculation sends no guess while it is true."""
        control = self.control
        return control.rate is not None and control.interval(self._clock()) is not None

    @property
    def rate(self) -> float | None:
        """The pacing rate in requests/s, ``None`` while unpaced."""
        return self.control.rate

    def answering(self) -> bool:
        """Whether the service accepted a request lately (see
        :meth:`RateController.answering`): a throttled attempt is then not a failed one."""
        return self.control.answering(self._clock())

    def try_acquire(self) -> int | None:
        """A ticket at once when a slot is free, nobody waits and sends are not paced, else
        ``None`` (then await :meth:`acquire`)."""
        if self.control.rate is None and self.in_flight < self.maximum and not self._waiters:
            self.in_flight += 1
            self._sent += 1
            return self._sent
        return None

    async def acquire(self) -> int:
        """Wait for a slot and for the schedule; returns a ticket for :meth:`release`."""
        ticket = self.try_acquire()
        if ticket is not None:
            return ticket
        fut: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        if not self._waiters:
            # Waiting starts: the probe's clock resumes, and the schedule banks no credit
            # for the idle time (the catch-up is for a loop running late, not for a lull).
            now = self._clock()
            self.control.busy(now)
            step = self.control.interval(now)
            if step is not None:
                self._last_send = max(self._last_send, now - step)
        self._waiters.append(fut)
        self._dispatch()
        try:
            rate = await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.in_flight -= 1  # the slot was granted just before the cancellation
            elif fut in self._waiters:  # a cancelled waiter may have been dropped already
                self._waiters.remove(fut)
            self._dispatch()
            raise
        self._sent += 1
        if rate is not None:
            self._sends[self._sent] = (self._clock(), rate)
        return self._sent

    def release(self, ticket: int, *, throttled: bool, status: int | None = None,
                counted: bool = True, retry_after: float | None = None) -> None:
        """Give a slot back and record how the attempt went.

        Args:
            ticket: what :meth:`acquire` returned.
            throttled: the attempt got 429 or no answer at all (a throttle signal).
            status: the HTTP status when there was an answer.
            counted: ``False`` for an attempt never sent (nothing is recorded).
            retry_after: seconds of the 429's ``Retry-After``; the schedule pauses for them.
        """
        self.in_flight -= 1
        sent = self._sends.pop(ticket, None)
        if counted:
            now = self._clock()
            if throttled:
                fresh = ticket > self._fresh_after
                if fresh:
                    self._fresh_after = self._sent
                if self.control.rate is None:
                    self._last_send = now  # pacing starts: the next send one step from now
                self.control.on_throttled(now, retry_after, sent=sent, fresh=fresh,
                                          dropped=status is None)
            else:
                self.control.on_accepted(now, sent)
        self._dispatch()

    def _dispatch(self) -> None:
        """Grant waiting slots whose send time has come; time the next one."""
        waiters = self._waiters
        while waiters and waiters[0].done():
            waiters.popleft()  # cancelled
        if not waiters or self.in_flight >= self.maximum:
            return
        now = self._clock()
        control = self.control
        try:
            self._grant(now)
        finally:
            if not waiters:
                control.idle(now)

    def _grant(self, now: float) -> None:
        waiters = self._waiters
        control = self.control
        while waiters and self.in_flight < self.maximum:
            step = control.interval(now)
            due = control.pause_until
            if step is not None:
                # Spaced from the last send at the rate of now, so a rate raised by a probe
                # applies to the next send already.
                due = max(due, self._last_send + step)
            if due > now:
                if step is not None and control.probing(now):
                    due = min(due, now + PROBE_TICK)  # the rate grows meanwhile: look again
                self._arm(due)
                return
            fut = waiters.popleft()
            if fut.done():
                continue
            self.in_flight += 1
            if step is None:
                fut.set_result(None)
                continue
            fut.set_result(1.0 / step)
            # From the due time, not from now, so a late timer (a busy loop) loses no slot;
            # but an idle schedule banks at most CATCH_UP seconds of credit, never a burst,
            # and none where a refusal wastes a grant (a bucket of one token).
            self._last_send = max(due, now - control.catch_up(step))

    def _arm(self, due: float) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + (due - self._clock())
        timer = self._timer
        if timer is not None:
            if timer.when() <= when:
                return
            timer.cancel()
        self._timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._dispatch()
