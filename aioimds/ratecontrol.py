"""The rate controller: find the rate a throttling service grants, and hold it.

IMDS throttles per instance with a limiter whose shape and numbers AWS does not publish (a
token bucket of some burst, a window, the network dropping link-local packets over a
per-interface rate), and other clients on the instance may share it. So the rate is measured,
never configured. :class:`RateController` is the decision alone, with no I/O and no clock of
its own (times are passed in); :class:`aioimds.pacing.AdaptiveLimit` applies it to requests.

**What is measured.** On the client's clock: the time of every *accepted* answer (any answer
but 429), and every *throttle signal*: a 429, or an attempt that got no answer at all (a closed
connection, a timeout), since a service or a network shedding load by dropping looks just like
that. Each paced attempt also carries the rate it was sent at.

**What is estimated.** The granted rate ``R``. Whatever the limiter's shape, while a client
sends faster than ``R`` the service accepts ``R`` a second on average and refuses the rest: an
empty token bucket accepts one request per token, a window its quota per window, a shared
limiter this client's share. So while refusals arrive, accepted answers per second over the
last :data:`HORIZON` *are* a measurement of ``R`` (:meth:`RateController.estimate`). One
second spans a whole one-second window and drains a bucket whose burst is up to its rate; a
shorter horizon would read a window's quiet head as "no limit" and its refused tail as "no
rate". Answers to requests sent before pacing began count as spread over the whole horizon:
they are the burst a dump takes before its first refusal, not a rate the service keeps up.

**The control.**

- *Unpaced* until the first throttle signal: a service that never throttles costs nothing.
- *A run* begins at the first signal: the rate is first the accepted rate seen so far, and is
  measured again once the run has :data:`RUN_SENDS` outcomes (or :data:`RUN_REFUSED`
  refusals), from the run's own answers when those read more than the horizon.
- *Held*: on each signal the rate becomes ``(1 + OVERSEND) x estimate``, slightly above ``R``,
  so the service stays saturated and every refusal is a fresh measurement; about
  :data:`OVERSEND` of the requests are refused.
- *Probed*: after :meth:`RateController.hold` seconds with requests waiting and no signal, the
  rate grows multiplicatively (:func:`probe_rate`); the first refusal starts a new run at the
  probe's *clean rate*, the last one accepted, a little lowered. Grown :data:`RELEASE` times
  without a signal, the throttle is gone and pacing stops.
- ``Retry-After`` pauses every send until it has passed.

**Why it converges.** While saturated the estimate reads ``R`` directly, so within one horizon
of a change (a new limit, a client starting or finishing) the rate follows it: down at the next
refusals, up by probing. The hold grows with the evidence, from :data:`HOLD_MIN` after one
signal (one early 429 costs a fraction of a second, not a slow dump) to :data:`HOLD_MAX` after
:data:`CONFIDENT` (longer than a one-second window's quiet head, so probing does not spend a
window's quota early and pay for it in refusals at its tail). Only time with requests waiting
counts toward it: a lull in the crawl is no evidence that the limit rose.

**The exception: refusals that waste grants.** A bucket of one token refuses a request that
comes a little early *and* then wastes the token that arrives before the next one, so sending
just above ``R`` halves what it accepts, and "accepted while over-sending" no longer reads
``R``. Its signature is refusals interleaved with acceptances far more often than the margin
explains (:data:`PUNISHED`, :data:`INTERLEAVED`); there, after a probe, the rate stays at the
probe's clean rate, below ``R``, without the margin, lowered only by refusals beyond timing
jitter (:data:`CLEAN_TOLERANCE`). A window's refused tail (a stretch of refusals, not
interleaved) or refusals now and then drop the clean rate for the estimate instead.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

__all__ = [
    "ANSWERING",
    "CONFIDENT",
    "DOUBLING",
    "HOLD_MAX",
    "HOLD_MIN",
    "HORIZON",
    "MIN_RATE",
    "OVERSEND",
    "RELEASE",
    "RateController",
    "probe_rate",
    "probe_time",
]

HORIZON = 1.0
"""Seconds of accepted answers the granted rate is estimated from: a whole one-second window,
and the drain time of a token bucket whose burst is up to its rate."""
MIN_SPAN = 0.005
"""Seconds: the shortest span an estimate divides by (at the very start of a dump, which
brings a burst of evidence; see :class:`RateController`'s ``min_span``)."""
OVERSEND = 0.02
"""Fraction sent above the estimate while paced: keeps the service saturated, so refusals keep
measuring its rate; about this fraction of the requests is refused."""
MIN_RATE = 1.0
"""Requests per second: the pacing rate never goes below this."""
HOLD_MIN = 0.02
"""Seconds without a throttle signal before probing upward, after one stray signal."""
HOLD_MAX = 1.25
"""Seconds without a throttle signal before probing upward, once the throttle is well known:
longer than the quiet head of a one-second window."""
HOLD_SENDS = 2
"""Sends at the held rate the hold lasts at least."""
CONFIDENT = 16
"""Fresh throttle signals in an episode after which the hold is :data:`HOLD_MAX`."""
DOUBLING = 0.04
"""Seconds per doubling of the rate while probing, at high rates."""
PROBE_SENDS = 20.0
"""Sends per doubling while probing, at low rates (below ``PROBE_SENDS / DOUBLING`` a second):
each send is then at most 3.5% faster than the one before, so a probe overshoots the limit by
no more than that."""
RELEASE = 32.0
"""Factor the probe must grow the rate by, without a signal, before pacing stops."""
RUN_SENDS = 10
"""Outcomes of requests sent in a saturated run before its own accepted rate counts."""
RUN_REFUSED = 3
"""Fresh refusals after which a new run's first rate is re-estimated however few outcomes it
has (a few requests, not a dump, are being throttled)."""
CATCH_UP = 0.02
"""Seconds of sends a schedule running late (a busy event loop) may make up at once."""
SHARE_WEIGHT = 1 / 16
"""Weight of each outcome in the moving share of refusals."""
PUNISHED = 0.25
"""Share of refusals (with :data:`OVERSEND` about 3% are expected) above which sending over
the estimate is not free: pace at the estimate, without the margin."""
CLEAN_TOLERANCE = 0.1
"""Share of refusals at a probe's clean rate tolerated as timing jitter (two sends that left
on time but arrived close together) before the clean rate is lowered."""
INTERLEAVE_WEIGHT = 1 / 4
"""Weight of each refusal in the moving share of refusals that follow an acceptance."""
INTERLEAVED = 0.5
"""Share of refusals following an acceptance above which refusals are interleaved with
acceptances (a bucket of one token refuses every other request), not a refused stretch (the
tail of a window)."""
DOUBLING_MAX = 0.5
"""Seconds per doubling while probing, at most (a well-known limit at a low rate)."""
UNRELATED_SHARE = 0.4
"""Share of refusals that, still reached after the rate fell :data:`UNRELATED_FALL`-fold in a
run, says dropped connections do not follow the rate: they are not throttling."""
UNRELATED_FALL = 4.0
DROPS_IGNORED = 5.0
"""Seconds dropped connections are then not taken for throttle signals."""
ANSWERING = 2.0
"""Seconds: the service counts as answering while it accepted a request this recently."""

def probe_time(low: float, high: float, sends: float = PROBE_SENDS) -> float:
    """Seconds the probe takes to grow the rate from ``low`` to ``high`` requests/s: one
    doubling per ``sends`` sends below ``sends / DOUBLING`` requests/s, then one doubling per
    :data:`DOUBLING` seconds."""
    if high <= low:
        return 0.0
    seconds = 0.0
    cross = sends / DOUBLING
    if low < cross:
        # dS/dt = S^2 ln2 / sends (one doubling per ``sends`` sends).
        top = min(high, cross)
        seconds += (1.0 / low - 1.0 / top) * sends / math.log(2.0)
        low = top
    if high > low:
        seconds += math.log2(high / low) * DOUBLING
    return seconds


def probe_rate(base: float, seconds: float, sends: float = PROBE_SENDS) -> float:
    """The probed rate ``seconds`` into a probe from ``base`` requests/s (the inverse of
    :func:`probe_time`)."""
    if seconds <= 0:
        return base
    cross = sends / DOUBLING
    if base < cross:
        to_cross = probe_time(base, cross, sends)
        if seconds < to_cross:
            return 1.0 / (1.0 / base - seconds * math.log(2.0) / sends)
        base, seconds = cross, seconds - to_cross
    return base * math.pow(2.0, seconds / DOUBLING)


class RateController:
    """The pacing decision, with no I/O: fed the outcome of every attempt, it tells the
    spacing of sends. Times are seconds on one monotonic clock, passed in.

    Args:
        min_span: seconds, the shortest span an estimate divides by (default
            :data:`MIN_SPAN`); longer for sparse traffic (a few ``get()`` calls), where one
            answer before the first refusal says little about the rate.

    Attributes:
        rate: the pacing rate in requests/s, or ``None`` while unpaced.
        signals: throttle signals seen since it was made (429s and attempts without answer).
        accepted: answers other than 429 seen since it was made.
        pause_until: no send before this time (``Retry-After``).
        last_accept: when the latest accepted answer came.
    """

    def __init__(self, *, min_span: float = MIN_SPAN) -> None:
        self.rate: float | None = None
        self.min_span = min_span
        self.signals = 0
        self.accepted = 0
        self.pause_until = -math.inf
        self._times: deque[float] = deque()  # accepted answers within HORIZON
        self._free: deque[float] = deque()  # those of them sent unpaced
        self._origin: float | None = None  # the first outcome: the start of the measurement
        self._last_signal = -math.inf
        self.last_accept = -math.inf
        self._accepted_rate = 0.0  # the pacing rate the latest accepted attempt was sent at
        self._episode = 0  # fresh signals since pacing started, or since a probe found room
        self._base = 0.0  # the rate set at the last signal, which probing grows from
        self._run = -math.inf  # when the current saturated run began (pacing or a probe ended)
        self._run_outcomes = 0  # outcomes of requests sent in the run
        self._run_refused = 0  # fresh refusals in the run after its first
        self._clean = 0.0  # the probe's last rate accepted before its refusal; 0: none
        self._share = 0.0  # moving share of refusals among the outcomes of paced sends
        self._idle_at: float | None = None  # since when nothing waits for the schedule
        self._run_rate = 0.0  # the rate set when the current run began
        self._drops_ignored_until = -math.inf
        self._interleaved = 0.0  # moving share of refusals that came right after an acceptance
        self._last_refused = False  # whether the latest outcome of a paced send was refused

    def __repr__(self) -> str:
        rate = "unpaced" if self.rate is None else f"{self.rate:.1f}/s"
        return f"RateController(rate={rate}, signals={self.signals}, accepted={self.accepted})"

    def estimate(self, now: float) -> float:
        """Accepted answers per second over the last :data:`HORIZON` seconds (over the time
        since the first outcome when that is shorter, but at least :data:`MIN_SPAN`), or over
        the current saturated run when that reads more (after a probe the horizon still holds
        the slower sends before it).

        Once paced, answers to requests sent unpaced count as spread over the whole horizon:
        they are the burst a dump takes before its first refusal (a bucket's stock, a
        window's quota), not a rate the service keeps granting.
        """
        self._trim(now)
        times, free = self._times, self._free
        origin = now if self._origin is None else self._origin
        span = min(HORIZON, max(self.min_span, now - origin))
        if self.rate is None:
            return max(1, len(times)) / span  # none accepted yet: at most one per span
        horizon = (len(times) - len(free)) / span + len(free) / HORIZON
        run = now - self._run
        if run >= HORIZON or (self._run_outcomes < RUN_SENDS and
                              self._run_refused < RUN_REFUSED):
            return horizon
        # Answers after the run began; one more counted, so that a run that has seen few
        # grants yet (a slow limit, a window's refused tail) reads a rate that is not nil.
        count = len(times) - bisect.bisect_right(times, self._run)
        return max(horizon, (count + 1) / max(self.min_span, run))

    def confidence(self) -> float:
        """0.0 after one fresh throttle signal, 1.0 after :data:`CONFIDENT` of them."""
        return min(1.0, max(0, self._episode - 1) / (CONFIDENT - 1))

    def hold(self) -> float:
        """Seconds without a throttle signal before the rate is probed upward: from
        :data:`HOLD_MIN` at confidence 0 to :data:`HOLD_MAX` at confidence 1, slowly at first
        (the square of the confidence): a few refusals at the start of a dump are thin
        evidence."""
        hold = HOLD_MIN + self.confidence() ** 2 * (HOLD_MAX - HOLD_MIN)
        # Quiet means something only once a few sends could have been refused.
        return max(hold, min(HOLD_MAX, HOLD_SENDS / self._base)) if self._base > 0 else hold

    def answering(self, now: float) -> bool:
        """Whether the service accepted a request lately (:data:`ANSWERING` seconds, or
        since a ``Retry-After`` pause ended): a throttled request is then worth retrying."""
        return now - self.last_accept <= ANSWERING + max(0.0, self.pause_until - now)

    def on_accepted(self, now: float, sent: tuple[float, float] | None = None) -> None:
        """Record an answer that was not throttling (any status but 429); ``sent``: when it
        was sent and at which pacing rate (``None``: sent unpaced)."""
        if self._origin is None:
            self._origin = now
        self.accepted += 1
        self.last_accept = now
        sent_rate = None
        if sent is not None:
            sent_rate = sent[1]
            self._share -= self._share * SHARE_WEIGHT
            self._last_refused = False
            if sent[0] >= self._run:
                self._run_outcomes += 1
        self._accepted_rate = 0.0 if sent_rate is None else sent_rate
        self._times.append(now)
        if sent_rate is None:
            self._free.append(now)
        if len(self._times) > 64 and self._times[0] < now - HORIZON:
            self._trim(now)

    def on_throttled(self, now: float, retry_after: float | None = None, *,
                     sent: tuple[float, float] | None = None, fresh: bool = True,
                     dropped: bool = False) -> None:
        """Record a throttle signal: a 429 (with its ``Retry-After`` seconds, if any) or an
        attempt that got no answer; ``sent`` as for :meth:`on_accepted`.

        ``fresh``: the attempt was sent after the last fresh signal arrived. The refusals of
        requests sent together before one signal was seen are one piece of evidence, not many.
        """
        if self._origin is None:
            self._origin = now
        self.signals += 1
        if dropped and now < self._drops_ignored_until:
            return  # drops were found not to follow the rate (see below)
        if retry_after is not None and retry_after > 0:
            self.pause_until = max(self.pause_until, now + retry_after)
        sent_rate = None if sent is None else sent[1]
        if sent is not None:
            self._share += (1.0 - self._share) * SHARE_WEIGHT
            after_accept = 0.0 if self._last_refused else 1.0
            self._interleaved += (after_accept - self._interleaved) * INTERLEAVE_WEIGHT
            self._last_refused = True
            if sent[0] >= self._run:
                self._run_outcomes += 1
        started = False
        if fresh:
            probed = self.rate is not None and now - self._last_signal > self.hold()
            if self.rate is None or probed:
                started = True
                # A new saturated run: pacing starts, or a probe ran into the limit.
                self._run, self._run_outcomes, self._run_refused = now, 0, 0
                self._clean = 0.0
                if probed:
                    # The limit lies between the last rate accepted and the rate refused.
                    below = self._accepted_rate
                    if sent_rate is not None:
                        below = min(below, sent_rate)
                    self._clean = max(self._base, below / (1.0 + OVERSEND))
            elif self._clean:
                if self._punished():
                    if self._share > CLEAN_TOLERANCE:
                        # Refused at the clean rate more often than timing jitter explains:
                        # lower, the more the more often.
                        self._clean /= 1.0 + OVERSEND + self._share / 4
                elif self._run_outcomes >= RUN_SENDS:
                    # Refusals now and then, between acceptances: the service is saturated
                    # and not punishing, so the estimate reads its rate; the clean rate was
                    # a burst's.
                    self._clean = 0.0
            self._episode += 1
        self._last_signal = now
        if fresh and not started:
            self._run_refused += 1
        if not started and not self._clean and self._run_outcomes < RUN_SENDS and \
                self._run_refused < RUN_REFUSED:
            return  # too few outcomes in this run yet: keep sending at the rate that measures it
        estimate = self.estimate(now)
        # The margin keeps the service saturated, so refusals keep measuring it. But where
        # refusals come interleaved with acceptances far more often than the margin explains,
        # over-sending is punished (a bucket of one token wastes a grant per refusal) and the
        # margin goes. (Refusals alone, as in the tail of a window, say nothing of that.)
        margin = 1.0 if self._clean and self._punished() else 1.0 + OVERSEND
        # After a probe the limit lies above its clean rate, which refusals bring down.
        self._base = max(MIN_RATE, self._clean, margin * estimate)
        if started:
            self._run_rate = self._base
        elif (dropped and self._share > UNRELATED_SHARE and self._interleaved > INTERLEAVED
              and self._base < self._run_rate / UNRELATED_FALL):
            # Connections closed between answers as often at a quarter of the rate as at the
            # start: not a throttle (a server closing reused connections); stop pacing on
            # them for a while.
            self._drops_ignored_until = now + DROPS_IGNORED
            self.rate = None
            self._episode = 0
            self._clean = 0.0
            return
        self.rate = self._base

    def interval(self, now: float) -> float | None:
        """Seconds between two sends at ``now`` (``None``: unpaced); advances the probe and
        stops pacing once the probe has grown the rate :data:`RELEASE` times."""
        if self.rate is None:
            return None
        factor = self._probe_factor(now)
        if factor >= RELEASE:
            self.rate = None
            self._episode = 0
            self._clean = 0.0
            return None
        self.rate = self._base * factor
        return 1.0 / self.rate

    def catch_up(self, step: float) -> float:
        """Seconds of sends a late schedule may make up at once (:data:`CATCH_UP`, at least
        one ``step``), or one ``step`` where over-sending is punished."""
        return step if self._punished() else max(step, CATCH_UP)

    def _punished(self) -> bool:
        return self._share > PUNISHED and self._interleaved > INTERLEAVED

    def idle(self, now: float) -> None:
        """Nothing waits for the schedule from ``now`` on: time without a signal is no
        evidence that the limit rose until requests wait again (:meth:`busy`)."""
        if self._idle_at is None:
            self._idle_at = now

    def busy(self, now: float) -> None:
        """Requests wait for the schedule again: the probe's clock resumes."""
        if self._idle_at is not None:
            if self.rate is not None:
                self._last_signal += max(0.0, now - max(self._idle_at, self._last_signal))
            self._idle_at = None

    def probing(self, now: float) -> bool:
        """Whether the rate is being probed upward at ``now``."""
        return self.rate is not None and now - self._last_signal > self.hold()

    def _probe_factor(self, now: float) -> float:
        quiet = now - self._last_signal - self.hold()
        if quiet <= 0 or self._base <= 0:
            return 1.0
        # Thin evidence probes per second; a well-known limit per send, finely.
        sends = max(1.0, min(PROBE_SENDS * self.confidence(), DOUBLING_MAX * self._base))
        if quiet >= probe_time(self._base, self._base * RELEASE, sends):
            return RELEASE
        return probe_rate(self._base, quiet, sends) / self._base

    def _trim(self, now: float) -> None:
        edge = now - HORIZON
        for times in (self._times, self._free):
            while times and times[0] < edge:
                times.popleft()
