"""Async iterators over the notices IMDS publishes: spot interruption, rebalance
recommendation, scheduled maintenance events and the Auto Scaling target lifecycle state.

Every watcher is one :class:`Watcher`: it polls one leaf with the client's typed coroutine
(``imds.spot_instance_action()``, ...; a thin layer, never a second HTTP path) every
``interval`` seconds, measured from the start of one poll to the start of the next, and yields
each new notice exactly once::

    async for notice in watch_spot_interruption(imds):
        drain(notice.action, notice.time)

- A 404 means "no notice yet" and is not logged.
- Failures ride through: the client has already retried the request (401 with a fresh token,
  429, 5xx, connection errors and timeouts); whatever still fails, and a notice that does not
  parse, is logged (a warning for the first failure in a row, debug for the next ones, info
  when the service answers again; the messages name the path and status, never the token) and
  the next poll comes at the interval. Only :class:`~aioimds.IMDSDisabledError` (and a client
  that is not open) ends the iteration, raised to the caller.
- A watcher holds no task: cancelling the coroutine that iterates it (or leaving the loop with
  ``break``) stops it at once and leaves nothing pending.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from .. import catalogue as c
from ..errors import IMDSDisabledError, IMDSError
from .documents import MaintenanceEvent, RebalanceRecommendation, SpotInstanceAction
from .metadata import MetadataViews

__all__ = [
    "LIFECYCLE_INTERVAL",
    "MAINTENANCE_INTERVAL",
    "REBALANCE_INTERVAL",
    "SPOT_INTERVAL",
    "Watcher",
    "watch_maintenance_events",
    "watch_rebalance_recommendation",
    "watch_spot_interruption",
    "watch_target_lifecycle_state",
]

SPOT_INTERVAL = 5.0
"""Seconds between spot polls: AWS recommends checking for interruption notices every 5 s
(EC2 user guide, "Spot Instance interruption notices"); the notice comes two minutes ahead."""
REBALANCE_INTERVAL = 5.0
"""Seconds between rebalance polls: as for spot notices, since a recommendation can arrive
together with the two-minute interruption notice (EC2 user guide, "EC2 instance rebalance
recommendations")."""
MAINTENANCE_INTERVAL = 60.0
"""Seconds between maintenance polls: scheduled events are announced days ahead of their
``NotBefore``, so once a minute is prompt and costs the service almost nothing."""
LIFECYCLE_INTERVAL = 5.0
"""Seconds between lifecycle-state polls: a termination lifecycle hook gives the instance
limited time to finish its work, so react within seconds, like a spot notice."""


_log = logging.getLogger("aioimds.watch")

T = TypeVar("T")


class Watcher(Generic[T]):
    """An async iterator that polls IMDS and yields each new item once.

    Args:
        read: a coroutine function returning the items present now (``[]`` for none); an
            :class:`~aioimds.IMDSError` it raises is logged and the poll skipped.
        key: what makes an item new. An item is yielded when its key was never seen before;
            with ``changes=True``, when it was not present at the previous successful poll
            (so a value is yielded at the start and at every change, even back to an old one).
        interval: seconds from the start of one poll to the start of the next (> 0).
        what: what is watched, for log messages (``"meta-data/spot/instance-action"``).

    The first poll happens at the first ``__anext__``. Raises (from iteration)
    :class:`~aioimds.IMDSDisabledError`, and :class:`RuntimeError` when the client is not open.
    """

    def __init__(self, read: Callable[[], Awaitable[list[T]]], key: Callable[[T], Hashable], *,
                 interval: float, what: str, changes: bool = False) -> None:
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError(f"interval must be a finite number of seconds > 0, not {interval!r}")
        self.interval = interval
        self.what = what
        self._read = read
        self._key = key
        self._changes = changes
        self._seen: set[Hashable] = set()
        self._pending: deque[T] = deque()
        self._next_poll: float | None = None
        self._failures = 0

    def __repr__(self) -> str:
        return f"<Watcher {self.what} every {self.interval:g} s>"

    def __aiter__(self) -> Watcher[T]:
        return self

    async def __anext__(self) -> T:
        while not self._pending:
            await self._poll()
        return self._pending.popleft()

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        if self._next_poll is not None:
            delay = self._next_poll - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        self._next_poll = loop.time() + self.interval
        try:
            items = await self._read()
        except IMDSDisabledError:
            raise
        except IMDSError as exc:
            self._failed(exc)
            return
        if self._failures:
            _log.info("watching %s: answered again after %d failed poll(s)", self.what,
                      self._failures)
            self._failures = 0
        self._select(items)

    def _select(self, items: list[T]) -> None:
        present: set[Hashable] = set()
        for item in items:
            key = self._key(item)
            if key not in self._seen and key not in present:
                self._pending.append(item)
            present.add(key)
        self._seen = present if self._changes else self._seen | present

    def _failed(self, exc: IMDSError) -> None:
        self._failures += 1
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        _log.log(level, "watching %s: %s; polling again in %g s (failed %d time(s) in a row)",
                 self.what, exc, self.interval, self._failures)


def _present(
    read: Callable[[], Awaitable[T | None]],
) -> Callable[[], Awaitable[list[T]]]:
    """A ``read`` for :class:`Watcher` from a coroutine returning one item or ``None``."""

    async def items() -> list[T]:
        item = await read()
        return [] if item is None else [item]

    return items


def _identity(item: T) -> T:
    return item


def watch_spot_interruption(imds: MetadataViews, *,
                            interval: float = SPOT_INTERVAL) -> Watcher[SpotInstanceAction]:
    """Yield each spot interruption notice of ``meta-data/spot/instance-action`` once.

    ``imds`` is an open :class:`~aioimds.IMDSClient` (any :class:`MetadataViews`);
    ``interval`` is in seconds (:data:`SPOT_INTERVAL`). A notice with another ``action`` or
    ``time`` is a new notice.
    See "Spot Instance interruption notices" in the EC2 user guide.
    """
    return Watcher(_present(imds.spot_instance_action), _identity, interval=interval,
                   what=c.SPOT_ACTION)


def watch_rebalance_recommendation(
    imds: MetadataViews, *, interval: float = REBALANCE_INTERVAL
) -> Watcher[RebalanceRecommendation]:
    """Yield each rebalance recommendation of ``meta-data/events/recommendations/rebalance``
    once (a new ``noticeTime`` is a new recommendation); ``interval`` in seconds
    (:data:`REBALANCE_INTERVAL`). See "EC2 instance rebalance recommendations"."""
    return Watcher(_present(imds.rebalance_recommendation), _identity, interval=interval,
                   what=c.REBALANCE)


def watch_maintenance_events(
    imds: MetadataViews, *, interval: float = MAINTENANCE_INTERVAL
) -> Watcher[MaintenanceEvent]:
    """Yield each event of ``meta-data/events/maintenance/scheduled`` once, the first time its
    ``EventId`` appears, whatever its state; ``interval`` in seconds
    (:data:`MAINTENANCE_INTERVAL`). See "Scheduled events for your instances"."""
    return Watcher(imds.scheduled_maintenance_events, lambda event: event.event_id,
                   interval=interval, what=c.MAINTENANCE_SCHEDULED)


def watch_target_lifecycle_state(imds: MetadataViews, *,
                                 interval: float = LIFECYCLE_INTERVAL) -> Watcher[str]:
    """Yield the Auto Scaling target lifecycle state (``InService``, ``Terminated``, ...) of
    ``meta-data/autoscaling/target-lifecycle-state`` at the first successful poll and at every
    change; nothing while it is absent (404: not in an Auto Scaling group) or empty.
    ``interval`` in seconds (:data:`LIFECYCLE_INTERVAL`). See "Retrieve the target lifecycle
    state through instance metadata" in the Amazon EC2 Auto Scaling user guide."""
    return Watcher(_present(imds.target_lifecycle_state), _identity, interval=interval,
                   what=c.LIFECYCLE_STATE, changes=True)
