"""How much retrying one request may do: :class:`Budget` (shared by the requests of one
``get`` or one dump) and :class:`Tries` (one request's use of it).

A budget has three parts:

- **attempts** per request, for answers that say "not now" (5xx, 408) and for no answer;
- an **overall deadline**: each request gets ``request_seconds`` from its first attempt (its
  token PUT, re-PUT and every wait included), read on :func:`aioimds.clock.now`;
- the **limiter** every attempt takes a slot from (:class:`~aioimds.pacing.AdaptiveLimit`).

Inside a dump (``until`` set) throttling is retried on a **time basis**: a 429 or an attempt
that got no answer is retried until the dump's own deadline (``until``), not for a fixed number
of attempts, so a long throttle never turns into failed paths while the service still answers
some requests. That stops when the service answers nothing at all (:class:`Stall`): then the
request falls back to its attempt count, and the crawl's stall detection fails what is left.

A connection that gets no answer from an endpoint that has never answered this client (not on
EC2, a laptop, a wrong endpoint) gets :data:`DEAD_ENDPOINT_ATTEMPTS` attempts, whatever the
budget, so a dead endpoint fails in about twice the timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import clock
from .crawl import STALL_FAILURES
from .retry import NoAnswer, Outcome

if TYPE_CHECKING:
    from .pacing import AdaptiveLimit

__all__ = ["DEAD_ENDPOINT_ATTEMPTS", "DUMP_DEADLINE", "STALL_FAILURES", "Budget", "Stall",
           "Tries"]

DUMP_DEADLINE = 300.0
"""Seconds a whole dump may take by default (``dump(deadline=)``): real trees dump in well
under a second, a tree of 3,000 paths at a throttle of 10 requests/s in 300 s; beyond that a
dump that still has paths left reports them failed instead of running on."""
STALL_SECONDS = 2.0
"""Per-attempt timeouts without any answer that, with :data:`~aioimds.crawl.STALL_FAILURES`
attempts in a row unanswered, mean the service has gone silent: time-based retrying stops;
a burst of dropped connections while answers still arrive is throttling, not a stall."""
DEAD_ENDPOINT_ATTEMPTS = 2
"""Attempts a request gets when its connection gets no answer and the endpoint has never
answered this client."""


@dataclass
class Stall:
    """Whether a dump's service still answers: shared by every request of one dump.

    Attributes:
        timeout: the per-attempt timeout in seconds (the stall window is
            :data:`STALL_SECONDS` of them).
        silent: attempts in a row that got no answer.
        last_answer: clock time of the last attempt that got any HTTP answer.
    """

    timeout: float
    silent: int = 0
    last_answer: float = field(default_factory=clock.now)

    def observe(self, outcome: Outcome) -> None:
        """Count one attempt's outcome."""
        if outcome.status is None:
            self.silent += 1
        else:
            self.silent = 0
            self.last_answer = clock.now()

    @property
    def stalled(self) -> bool:
        """Whether the service answers nothing at all."""
        return (self.silent >= STALL_FAILURES
                and clock.now() - self.last_answer >= STALL_SECONDS * self.timeout)


@dataclass
class Budget:
    """The retry budget of a group of requests (one call, or every request of a dump).

    Attributes:
        attempts: attempts per request (>= 1) for 5xx, 408 and no answer (and 429 outside a
            dump).
        request_seconds: overall seconds one request may take, waits and token PUT included.
        limit: the limiter every attempt takes a slot from, or ``None``.
        until: clock time at which a dump's deadline ends; ``None`` outside a dump.
        stall: a dump's :class:`Stall`; ``None`` outside a dump.
    """

    attempts: int
    request_seconds: float
    limit: AdaptiveLimit | None = None
    until: float | None = None
    stall: Stall | None = None

    def start(self) -> Tries:
        """The budget of one request starting now."""
        return Tries(self, clock.now())


class Tries:
    """One request's use of a :class:`Budget`: attempts made and its deadline.

    The token PUT a request needs is sent with the same ``Tries`` (:meth:`sub`), so one
    deadline covers the request and its PUT.
    """

    __slots__ = ("attempt", "budget", "deadline")

    def __init__(self, budget: Budget, start: float) -> None:
        self.budget = budget
        self.attempt = 0
        self.deadline = start + budget.request_seconds
        if budget.until is not None:
            self.deadline = min(self.deadline, budget.until)

    def sub(self) -> Tries:
        """A fresh attempt count under the same deadline (the token PUT of this request)."""
        other = Tries.__new__(Tries)
        other.budget, other.attempt, other.deadline = self.budget, 0, self.deadline
        return other

    def remaining(self) -> float:
        """Seconds left before the deadline that applies to ordinary retries."""
        return self.deadline - clock.now()

    def allows(self, outcome: Outcome, delay: float, *, answered_before: bool) -> bool:
        """Whether one more attempt may follow ``outcome`` after ``delay`` seconds.

        ``answered_before``: whether the endpoint ever answered this client.
        """
        b = self.budget
        now = clock.now()
        if outcome.no_answer is NoAnswer.CONNECT and not answered_before:
            return self.attempt < DEAD_ENDPOINT_ATTEMPTS and now + delay < self.deadline
        throttled = outcome.status == 429 or outcome.status is None
        if throttled and b.until is not None and not (b.stall is not None and b.stall.stalled):
            return now + delay < b.until
        return self.attempt < b.attempts and now + delay < self.deadline

    def end(self) -> float:
        """Clock time after which nothing more is sent: the request's deadline, or inside a
        dump the dump's (:meth:`allows` has checked the rest)."""
        return self.budget.until if self.budget.until is not None else self.deadline

    def attempt_timeout(self, timeout: float) -> float:
        """The timeout of the next attempt: ``timeout``, or less when :meth:`end` is near."""
        return min(timeout, max(0.001, self.end() - clock.now()))
