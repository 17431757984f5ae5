"""Waiting until IMDS answers: :func:`wait_until_ready`, for services and boot scripts that
start before the instance's metadata service does (cloud-init PR #5565, NixOS/amis #137).

It polls one leaf with capped, jittered backoff until the leaf is served or the deadline
passes, then returns the leaf or raises one error that lists what each poll saw.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import TYPE_CHECKING

from . import clock
from .errors import IMDSDisabledError, IMDSError, IMDSNotFoundError, IMDSTimeoutError

if TYPE_CHECKING:
    from .client import IMDSClient

__all__ = ["READY_PATH", "READY_POLL_CAP", "wait_until_ready"]

READY_PATH = "meta-data/instance-id"
"""The leaf polled by default: every instance has it, and it is tiny."""
READY_POLL_CAP = 2.0
"""Seconds: the longest wait between two polls (full jitter below it)."""
_POLL_BASE = 0.1


async def wait_until_ready(imds: IMDSClient, timeout: float, *, path: str = READY_PATH,
                           rand: random.Random | None = None) -> str:
    """Poll ``path`` (relative to ``latest/``) until it is served, for up to ``timeout``
    seconds; returns its body.

    Each poll is one ``imds.get`` with the client's own retries (a dead endpoint fails one in
    about twice the timeout); between polls it waits ``uniform(0, min(READY_POLL_CAP,
    0.1 * 2**n))`` seconds, and never past the deadline.

    Raises: :class:`~aioimds.IMDSTimeoutError` when the deadline passes, naming how many polls
    were made and what they saw (``"no answer from ... x12, status 401 x5"``);
    :class:`~aioimds.IMDSDisabledError` and :class:`~aioimds.IMDSNotFoundError` (the leaf
    does not exist: waiting will not help) at once.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be positive seconds, not {timeout!r}")
    rng = rand if rand is not None else random.Random()
    end = clock.now() + timeout
    seen: Counter[str] = Counter()
    polls = 0
    while True:
        polls += 1
        try:
            return await asyncio.wait_for(imds.get(path), max(0.001, end - clock.now()))
        except (IMDSDisabledError, IMDSNotFoundError):
            raise
        except IMDSError as exc:
            seen[_what(exc)] += 1
        except asyncio.TimeoutError:
            seen["no answer before the deadline"] += 1
        delay = rng.uniform(0, min(READY_POLL_CAP, _POLL_BASE * 2.0 ** min(polls, 16)))
        if clock.now() + delay >= end:
            break
        await asyncio.sleep(delay)
    summary = ", ".join(f"{what} x{n}" for what, n in seen.most_common())
    raise IMDSTimeoutError(f"IMDS not ready within {timeout:g} s after {polls} polls: "
                           f"{summary}", path=f"/latest/{path}")


_MESSAGE_WIDTH = 80
"""Characters of a poll's error message kept in the summary."""


def _what(exc: IMDSError) -> str:
    """A short, safe description of one poll's failure (never raises)."""
    try:
        if exc.status is not None:
            return f"status {exc.status}"
        message = exc.message
        if len(message) > _MESSAGE_WIDTH:  # cut marked, so a cut-off "(..." reads as one
            message = message[:_MESSAGE_WIDTH - 1].rstrip() + "\u2026"
        return type(exc).__name__ + (f" ({message})" if message else "")
    except Exception:  # a message that cannot be formatted must not hide the wait's result
        return type(exc).__name__
