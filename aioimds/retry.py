"""The one retry table the request loop follows (:func:`classify`), and backoff, as pure
functions (no I/O, no clock).

:func:`classify` maps the outcome of one attempt to what the loop in ``client.py`` does next.
The table below is the code: ``tests/test_retry.py`` checks every row of it.

| request     | outcome                                     | action                          |
|-------------|---------------------------------------------|---------------------------------|
| GET         | 200                                         | ``DONE``                        |
| GET         | 404                                         | ``NOT_FOUND`` (never retried    |
|             |                                             | here; see listed entries below) |
| GET         | 401                                         | ``REFRESH_TOKEN``: new token (a |
|             |                                             | fresh PUT), one more attempt    |
| token PUT   | 200                                         | ``DONE``                        |
| token PUT   | 403, 404, 405                               | ``FALLBACK``: no IMDSv2 here;   |
|             |                                             | IMDSv1 where allowed            |
| any         | 408, 429, 500-599                           | ``RETRY`` after backoff (429:   |
|             |                                             | after ``Retry-After`` if given) |
| any         | no answer: timeout, refused, reset, dropped | ``RETRY`` after backoff         |
| any         | any other status (400, 403 on a GET, ...),  | ``FAIL`` (never retried)        |
|             | or an answer that is not IMDS (redirect,    |                                 |
|             | a body over the cap, malformed HTTP)        |                                 |

How many ``RETRY`` rounds a request gets is the :class:`~aioimds.budget.Budget`'s business
(attempts, overall deadline, and inside a dump a time basis for throttling); what happens when
a token PUT's retries run out is :mod:`aioimds.token`'s.

A 404 is final for the request loop: a plain ``get()`` of a path that does not exist answers at
once. Only a reader that knows its parent listing named the path (the crawl, the typed
network-interface view) retries a 404, on :func:`listed_404_delay`'s schedule: the service lists
a freshly attached interface before its keys answer (amazon-ec2-net-utils #38). A key read
without a listing naming it (``placement/availability-zone-id``, absent on older instances:
ec2-metadata #349) is optional: its 404 is ``None`` at once.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "LISTED_404_BASE",
    "LISTED_404_CAP",
    "LISTED_404_RETRIES",
    "LISTED_404_SECONDS",
    "RETRY_AFTER_CAP",
    "Action",
    "NoAnswer",
    "Outcome",
    "backoff",
    "classify",
    "listed_404_delay",
    "parse_retry_after",
]

BACKOFF_BASE = 0.05
"""Seconds: the backoff ceiling of the first retry; IMDS answers in well under 1 ms."""
BACKOFF_CAP = 1.0
"""Seconds: the backoff ceiling never grows past this, so a retry stays within one timeout."""
RETRY_AFTER_CAP = 5.0
"""Seconds: the longest ``Retry-After`` honoured; a larger one is clipped to this."""

LISTED_404_RETRIES = 5
"""Retries of a 404 on a path its parent listed, before it is taken as absent: a handful, not
the 60 quick tries that flood IMDS in amazon-ec2-net-utils #129; a key still missing after
them is recorded as 404 (a caller waiting for a hot-attached interface polls instead)."""
LISTED_404_BASE = 0.1
"""Seconds: the ceiling of the first listed-404 retry's wait, doubling each retry."""
LISTED_404_CAP = 0.5
"""Seconds: the longest ceiling of one listed-404 wait; with equal jitter the five waits
together are 0.85-1.7 s, so listed keys get about 1-2 s to appear."""
LISTED_404_SECONDS = 2.5
"""Seconds from a listed path's first 404 after which it is not retried again, whatever the
count: bounds the retries when answers are slow (the waits alone take at most 1.7 s)."""

RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
"""Statuses that say "not now": retried on every request."""
FALLBACK_STATUSES = frozenset({403, 404, 405})
"""Token PUT statuses that mean "this IMDS does not do tokens" (as botocore and the Go SDK)."""


class Action(enum.Enum):
    """What the request loop does with one outcome."""

    DONE = "done"
    NOT_FOUND = "not_found"
    REFRESH_TOKEN = "refresh_token"
    FALLBACK = "fallback"
    RETRY = "retry"
    FAIL = "fail"


class NoAnswer(enum.Enum):
    """Why an attempt got no HTTP answer."""

    CONNECT = "connect"
    """No connection was made: refused, unreachable, or the connect itself timed out."""
    TIMEOUT = "timeout"
    """Connected and sent, but no complete answer within the timeout (a held PUT: hop limit)."""
    DROPPED = "dropped"
    """Connected, then closed or reset before a complete answer."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's outcome.

    Attributes:
        status: the HTTP status answered; ``None`` when there was no answer.
        no_answer: why there was no answer (``None`` when there was one).
        put: whether the request was the token PUT.
        bad_answer: the answer was not IMDS (a redirect, a body over the cap, malformed HTTP).
    """

    status: int | None = None
    no_answer: NoAnswer | None = None
    put: bool = False
    bad_answer: bool = False


def classify(outcome: Outcome) -> Action:
    """The action for ``outcome``: the module's table, row by row."""
    status = outcome.status
    if outcome.bad_answer:
        return Action.FAIL
    if status is None:
        return Action.RETRY
    if status == 200:
        return Action.DONE
    if status in RETRY_STATUSES:
        return Action.RETRY
    if outcome.put:
        return Action.FALLBACK if status in FALLBACK_STATUSES else Action.FAIL
    if status == 404:
        return Action.NOT_FOUND
    if status == 401:
        return Action.REFRESH_TOKEN
    return Action.FAIL


def backoff(
    attempt: int,
    *,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**(attempt-1))]``
    (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
    """
    ceiling: float = min(cap, base * (2.0 ** max(0, attempt - 1)))
    return ceiling * rand()


def listed_404_delay(retry: int, elapsed: float, *,
                     rand: Callable[[], float] = random.random) -> float | None:
    """Seconds to wait before retry number ``retry`` (1 for the first) of a 404 on a path its
    parent listing named, ``elapsed`` seconds after its first 404; ``None`` when the path is
    to be taken as absent now (:data:`LISTED_404_RETRIES` made, or
    :data:`LISTED_404_SECONDS` would pass).

    Capped exponential backoff with equal jitter: uniform in ``[c/2, c]`` for the ceiling
    ``c = min(LISTED_404_CAP, LISTED_404_BASE * 2**(retry-1))``, so retries are spaced by at
    least half their ceiling (full jitter could send two at once) and never in lockstep.
    """
    if retry > LISTED_404_RETRIES:
        return None
    ceiling: float = min(LISTED_404_CAP, LISTED_404_BASE * (2.0 ** max(0, retry - 1)))
    delay = ceiling * (0.5 + 0.5 * rand())
    return delay if elapsed + delay <= LISTED_404_SECONDS else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header in delta-seconds form, capped at
    :data:`RETRY_AFTER_CAP`; ``None`` when absent or not a number (HTTP dates are ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_CAP)
