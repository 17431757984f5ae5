"""Fault injection settings (:class:`Faults`, :class:`PathFault`) and :class:`Counters`.

Every fault is off by default. A :class:`Faults` instance is read on every request, so changing
a field while the emulator runs applies from the next request on. The faults reproduce what IMDS
clients meet in the field (DESIGN.md section 4, tests/cases): slow answers, 429 throttling, 5xx
answers, connections closed without an answer, throttles of several shapes (token buckets of
any burst, fixed and sliding windows, dropping instead of answering 429, a rate that changes;
:mod:`aioimds.emulator.throttle`), and a token PUT whose answer never arrives (the container
hop-limit case).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from ..wire import MAX_TOKEN_TTL, MIN_TOKEN_TTL
from .throttle import SHAPES, Shape

__all__ = ["Counters", "Faults", "PathFault", "TraceEntry"]


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _check_status(status: int | None, name: str) -> None:
    _check(status is None or 100 <= status <= 599, f"{name} must be an HTTP status (100..599)")


@dataclass
class PathFault:
    """Delay and/or fail the first ``count`` GET (and HEAD) requests to one path.

    Faults for the same path apply in list order: the first one with requests left handles the
    request, so ``[PathFault(p, status=503), PathFault(p, status=429)]`` answers 503, then 429,
    then serves ``p`` normally. A request refused for its token (401) does not use up a fault.

    Attributes:
        path: the request path, as a snapshot key (``/latest/meta-data/iam/info``). It matches
            the raw request path without its query string, or the snapshot key that path
            resolves to.
        status: answer with this HTTP status and the XHTML error body; ``None`` (default) serves
            the path normally once the delay is over.
        delay: seconds to wait before answering (default 0.0).
        count: how many requests the fault applies to (default 1).
        hits: how many requests it has applied to so far; the emulator increments it.
    """

    path: str
    status: int | None = None
    delay: float = 0.0
    count: int = 1
    hits: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        _check(self.path.startswith("/"), "PathFault.path must start with /")
        _check_status(self.status, "PathFault.status")
        _check(self.delay >= 0 and math.isfinite(self.delay), "PathFault.delay must be >= 0")
        _check(self.count >= 0, "PathFault.count must be >= 0")


@dataclass
class Faults:
    """Faults the emulator injects; all off by default; changes apply to the next request.

    Checks run in this order on each request: ``max_connections``, ``drop_rate``,
    ``throttle_rps`` (429, or a closed connection with ``throttle_drop``), then the token PUT
    faults (``hold_token_put``, ``token_put_status``), or for GET/HEAD the token check, then
    ``path_faults``, then ``error_rate``. The latency (``Emulator(latency=)`` + ``latency`` +
    jitter) is added before every answer. Values are checked when the instance is made
    (ValueError), not when a field is changed later.

    Attributes:
        latency: extra seconds before each answer, added to the emulator's own latency
            (default 0.0).
        jitter: a further uniform random 0..``jitter`` seconds before each answer (default 0.0).
        error_rate: fraction (0..1) of GET/HEAD requests answered 500 or 503 (chosen at random)
            with the XHTML error body (default 0.0).
        throttle_rps: requests per second allowed, all methods together; the excess is
            answered 429 with the XHTML body, as IMDS throttles. ``None`` (default): no
            throttling. The limiter's shape is ``throttle_shape`` (see
            :mod:`aioimds.emulator.throttle`).
        throttle_shape: ``"bucket"`` (default: a token bucket), ``"fixed-window"`` (at most
            ``throttle_rps x throttle_window`` requests per window, windows aligned on the
            emulator's clock) or ``"sliding-window"`` (as many in any trailing window).
        throttle_burst: the token bucket's size in requests (default ``None``:
            ``max(1, throttle_rps / 10)``).
        throttle_window: seconds of a window (default 1.0).
        throttle_drop: close the connection of a refused request without an answer instead of
            answering 429, as a network dropping link-local packets over its rate looks to a
            client (default False).
        throttle_steps: ``(seconds, rps)`` pairs: from ``seconds`` after the first request the
            throttle saw, it allows ``rps`` (the last step reached wins; a token bucket keeps
            its level), e.g. ``((2.0, 100.0), (4.0, 200.0))`` halves a rate of 200 for two
            seconds (default: none).
        retry_after: when set, 429 answers carry ``Retry-After`` with this many seconds
            (formatted with ``%g``, so 1.5 is sent as ``1.5``). ``None`` (default): no header,
            as IMDS sends none.
        drop_rate: fraction (0..1) of requests (all methods) whose connection is closed without
            any answer (default 0.0).
        hold_token_put: read each ``PUT /latest/api/token`` and never answer it, as a hop limit
            of 1 looks from inside a container; held requests are released (their connections
            closed) on stop (default False).
        token_put_status: answer every ``PUT /latest/api/token`` with this status and the XHTML
            body (404 or 405 on services without IMDSv2, 400 on broken ones). ``None`` (default):
            the PUT is handled normally.
        max_token_ttl: cap, in seconds, of the TTL the server grants; the granted TTL is echoed
            in ``X-aws-ec2-metadata-token-ttl-seconds``. ``None`` (default): the requested TTL.
        revoke_every: revoke every token each ``revoke_every`` seconds, counted from the
            emulator's start (so clients meet 401 and must re-PUT). ``None`` (default): never.
        path_faults: :class:`PathFault` entries, checked in order (default empty).
        max_connections: simultaneous connections accepted; a connection opened beyond the cap
            is closed, without an answer, when its first request arrives, as IMDS sheds load.
            ``None`` (default): no cap. A lower cap set while running affects new connections.
    """

    latency: float = 0.0
    jitter: float = 0.0
    error_rate: float = 0.0
    throttle_rps: float | None = None
    throttle_shape: Shape = "bucket"
    throttle_burst: float | None = None
    throttle_window: float = 1.0
    throttle_drop: bool = False
    throttle_steps: tuple[tuple[float, float], ...] = ()
    retry_after: float | None = None
    drop_rate: float = 0.0
    hold_token_put: bool = False
    token_put_status: int | None = None
    max_token_ttl: int | None = None
    revoke_every: float | None = None
    path_faults: list[PathFault] = field(default_factory=list)
    max_connections: int | None = None

    def __post_init__(self) -> None:
        _check(self.latency >= 0 and math.isfinite(self.latency), "latency must be >= 0")
        _check(self.jitter >= 0 and math.isfinite(self.jitter), "jitter must be >= 0")
        _check(0 <= self.error_rate <= 1, "error_rate must be a fraction 0..1")
        _check(0 <= self.drop_rate <= 1, "drop_rate must be a fraction 0..1")
        _check(self.throttle_rps is None or self.throttle_rps > 0, "throttle_rps must be > 0")
        _check(self.throttle_shape in SHAPES,
               f"throttle_shape must be one of {', '.join(SHAPES)}")
        _check(self.throttle_burst is None or
               (self.throttle_burst >= 1 and math.isfinite(self.throttle_burst)),
               "throttle_burst must be >= 1 request")
        _check(self.throttle_window > 0 and math.isfinite(self.throttle_window),
               "throttle_window must be > 0 seconds")
        self.throttle_steps = tuple((float(at), float(rps)) for at, rps in self.throttle_steps)
        _check(all(at >= 0 and math.isfinite(at) and rps > 0 and math.isfinite(rps)
                   for at, rps in self.throttle_steps),
               "throttle_steps must be (seconds >= 0, rps > 0) pairs")
        _check(self.retry_after is None or self.retry_after >= 0, "retry_after must be >= 0")
        _check_status(self.token_put_status, "token_put_status")
        _check(
            self.max_token_ttl is None or MIN_TOKEN_TTL <= self.max_token_ttl <= MAX_TOKEN_TTL,
            f"max_token_ttl must be {MIN_TOKEN_TTL}..{MAX_TOKEN_TTL} seconds",
        )
        _check(self.revoke_every is None or self.revoke_every > 0, "revoke_every must be > 0")
        _check(
            self.max_connections is None or self.max_connections >= 1,
            "max_connections must be >= 1",
        )


class TraceEntry(NamedTuple):
    """One request as the emulator saw it.

    Attributes:
        method: the HTTP method (``GET``, ``PUT``, ...).
        path: the raw request target as sent, query string included.
        status: the status answered; 0 when the connection was closed without an answer.
        token: whether an ``X-aws-ec2-metadata-token`` header was present.
        headers: the request headers; the token header's value is ``"<redacted>"``.
    """

    method: str
    path: str
    status: int
    token: bool
    headers: dict[str, str]


@dataclass
class Counters:
    """What the emulator has served since it was made (or since :meth:`reset`).

    Attributes:
        requests: count per ``(method, status)``; requests whose connection was closed without
            an answer (drops, holds released on stop, client gone) count under status 0.
        token_puts: every ``PUT /latest/api/token``, whatever the answer.
        in_flight: requests being handled now.
        max_in_flight: the most requests handled at once.
        trace: every request, in order of completion, as :class:`TraceEntry`.
        trace_enabled: set to False to stop recording ``trace`` (benchmarks: it grows by one
            entry a request); the counts above are always kept.
    """

    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    token_puts: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    trace: list[TraceEntry] = field(default_factory=list)
    trace_enabled: bool = True

    def reset(self) -> None:
        """Zero the counts and clear the trace; ``in_flight`` keeps its live value."""
        self.requests.clear()
        self.token_puts = 0
        self.max_in_flight = self.in_flight
        self.trace.clear()

    def total(self, method: str | None = None, status: int | None = None) -> int:
        """Requests counted, optionally only one method and/or one status."""
        return sum(
            n
            for (m, s), n in self.requests.items()
            if (method is None or m == method) and (status is None or s == status)
        )
