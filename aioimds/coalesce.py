"""Fewer requests for the same answer: a single flight per key, and a cache of answers by age.

An async service asks IMDS for the same leaf from many coroutines at once, and AWS's guide
warns that frequent or concurrent queries are throttled (EC2 user guide, "Instance metadata
limits"). :class:`SingleFlight` makes concurrent identical reads share one request; the
:class:`AnswerCache` keeps answers so that a read which accepts an answer of a given age is
served without a request. :class:`~aioimds.IMDSClient` uses both for ``get``, ``get_bytes``,
``get_json`` and ``list`` (not for ``dump``, which asks every path once anyway).

Neither knows anything of IMDS: which values may be cached, and for how long, is the typed
views' policy.
"""

from __future__ import annotations

import asyncio
import functools
import math
import sys
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["CACHE_SIZE", "FOREVER", "AnswerCache", "SingleFlight", "check_max_age"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

FOREVER = math.inf
"""A ``max_age`` that takes a cached answer however old it is (values that cannot change)."""
CACHE_SIZE = 256
"""Most answers one cache keeps (the oldest kept is dropped first): far more than the typed
views cache (a dozen leaves), few enough that a caller caching many paths stays small."""


class SingleFlight(Generic[K, V]):
    """Concurrent calls for one key share one run of the work, its result or its error.

    ``await flights.run(key, work)`` starts ``work()`` as a task owned by the flight when none
    runs for ``key``, else joins the running one. Every caller gets the same result, or the same
    exception raised. A caller that is cancelled leaves the flight; the work goes on for the
    others (and finishes even when every caller has left, so its answer is not wasted).

    Each caller waits on a future of its own, which the task's end resolves in one pass: the
    caller's cancellation cancels only that future (as ``asyncio.shield`` would), at half the
    cost of a shield per caller when 10,000 callers wait for one answer.
    """

    __slots__ = ("_running",)

    def __init__(self) -> None:
        self._running: dict[K, _Flight[V]] = {}

    def __len__(self) -> int:
        """How many flights are running."""
        return len(self._running)

    async def run(self, key: K, work: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """The result of the flight for ``key``, starting ``work()`` when none is running.

        Raises: whatever ``work`` raises; :class:`RuntimeError` when the flight was cancelled
        by :meth:`cancel` (the owner closed) while this caller waited.
        """
        flight = self._running.get(key)
        if flight is None:
            flight = _Flight(_start(work()))
            self._running[key] = flight
            flight.task.add_done_callback(functools.partial(self._landed, key, flight))
        waiter: asyncio.Future[asyncio.Future[V]] = asyncio.get_running_loop().create_future()
        flight.waiters.append(waiter)
        done = await waiter
        if done.cancelled():
            raise RuntimeError("the request was cancelled because its client was closed while "
                               "it was in flight")
        return done.result()

    def _landed(self, key: K, flight: _Flight[V], task: asyncio.Future[V]) -> None:
        if self._running.get(key) is flight:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved here: an error nobody waits for is no loop error
        for waiter in flight.waiters:
            if not waiter.done():  # a caller that left has cancelled its own
                waiter.set_result(task)

    def cancel(self) -> None:
        """Cancel every running flight (the owner is closing); their callers get
        :class:`RuntimeError`."""
        running, self._running = self._running, {}
        for flight in running.values():
            flight.task.cancel()


def _start(work: Coroutine[Any, Any, V]) -> asyncio.Future[V]:
    """A task for ``work``, started at once where asyncio can (3.12+: it runs to its first
    wait now, saving the loop turn a new task waits for before it sends its request)."""
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return asyncio.Task(work, loop=loop, eager_start=True)
    return loop.create_task(work)


class _Flight(Generic[V]):
    """One running work and the futures of the callers waiting for it."""

    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Future[V]) -> None:
        self.task = task
        self.waiters: list[asyncio.Future[asyncio.Future[V]]] = []


class AnswerCache(Generic[K, V]):
    """Immutable answers by key, each with the loop time it was stored.

    ``get(key, max_age, now)`` returns the answer stored at most ``max_age`` seconds before
    ``now`` (:data:`FOREVER` takes any), else ``None``. ``put`` replaces the answer of a key;
    beyond ``size`` keys the oldest stored is dropped. Values must be immutable (``bytes``,
    frozen records): every reader gets the same object.
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int = CACHE_SIZE) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, not {size!r}")
        self._size = size
        self._entries: dict[K, tuple[float, V]] = {}

    def __len__(self) -> int:
        """How many answers are kept."""
        return len(self._entries)

    def get(self, key: K, max_age: float, now: float) -> V | None:
        """The answer for ``key`` stored at most ``max_age`` seconds before ``now``."""
        entry = self._entries.get(key)
        if entry is None or now - entry[0] > max_age:
            return None
        return entry[1]

    def put(self, key: K, value: V, now: float) -> None:
        """Keep ``value`` for ``key``, stored at ``now``."""
        entries = self._entries
        entries.pop(key, None)  # re-inserted last: the dict's order is the order stored
        if len(entries) >= self._size:
            del entries[next(iter(entries))]
        entries[key] = (now, value)

    def clear(self) -> None:
        """Forget every answer."""
        self._entries.clear()


def check_max_age(max_age: float | None) -> None:
    """Raise :class:`ValueError` unless ``max_age`` is ``None`` or seconds >= 0
    (:data:`FOREVER` included)."""
    if max_age is None:
        return
    if isinstance(max_age, bool) or not isinstance(max_age, (int, float)) or not max_age >= 0:
        raise ValueError(f"max_age must be seconds >= 0 (or FOREVER), not {max_age!r}")
