"""Retry decisions and backoff, as pure functions (no I/O, no clock).

| answer                                   | action                                   |
|------------------------------------------|------------------------------------------|
| 200                                      | ``DONE``                                 |
| 404                                      | ``NOT_FOUND`` (never retried)            |
| 401                                      | ``REFRESH_TOKEN``: new token, one retry  |
| 429                                      | ``RETRY`` after ``Retry-After`` or backoff |
| 500-599                                  | ``RETRY`` after backoff                  |
| no answer (connection error, timeout)    | ``RETRY`` after backoff                  |
| 400, 403, 405, any other status          | ``FAIL`` (never retried)                 |
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "RETRY_AFTER_CAP",
    "Action",
    "backoff",
    "decide",
    "parse_retry_after",
]

BACKOFF_BASE = 0.05
"""Seconds: the backoff ceiling of the first retry; IMDS answers in well under 1 ms."""
BACKOFF_CAP = 1.0
"""Seconds: the backoff ceiling never grows past this, so a retry stays within one timeout."""
RETRY_AFTER_CAP = 5.0
"""Seconds: the longest ``Retry-After`` honoured; a larger one is clipped to this."""


class Action(enum.Enum):
    """What the request pipeline does with one answer."""

    DONE = "done"
    NOT_FOUND = "not_found"
    REFRESH_TOKEN = "refresh_token"
    RETRY = "retry"
    FAIL = "fail"


def decide(status: int | None) -> Action:
    """The action for an HTTP ``status``; ``None`` means no answer (connection error, timeout)."""
    if status is None or status == 429 or 500 <= status <= 599:
        return Action.RETRY
    if status == 200:
        return Action.DONE
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
