"""The concurrent tree walk of ``/latest/``, producing a Snapshot.

A fixed pool of worker coroutines takes paths from two FIFO queues, fetches each with the
coroutine it is handed (the crawl imports neither the client nor the token session) and queues
the children of every listing. Listings go before leaves, since only listings open more work:
that keeps the critical path (tree depth x latency) the bound. Entries ending in ``/`` are
listings; ``N=name`` in ``public-keys/`` is the listing ``N/``; duplicate entries are fetched
once. A listed entry answering 404 is asked again on the schedule of
:func:`aioimds.retry.listed_404_delay` (a handful of retries over about 1-2 s: IMDS lists a
freshly attached interface before its keys answer, amazon-ec2-net-utils #38), then recorded with
status 404; a waiting retry holds no worker, so only the paths that answered 404 wait. Any other
failure is collected, never dropped, and the walk goes on.

A listing entry that names no child (a tag key ``a/b``, cloud-init #4012; ``..``; a control
character) is skipped with a warning (logger ``aioimds``) and collected in
:attr:`CrawlResult.skipped`: its listing is recorded as served, so the snapshot keeps the
entry, and its siblings are crawled. The dump stays complete, since the service answered
everything that was asked; a skipped entry is not requested at all. A root listing answering
404 is a failure (:func:`not_an_imds`): the endpoint is not an IMDS.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from . import clock, retry
from .errors import (
    IMDSConnectionError,
    IMDSCrawlError,
    IMDSError,
    IMDSResponseError,
    IMDSTimeoutError,
)
from .paths import ROOT, child_path, is_listing, parse_listing
from .snapshot import Record, Snapshot
from .stats import CrawlProgress

__all__ = ["DEFAULT_CONCURRENCY", "MAX_DEPTH", "MAX_PATHS", "STALL_FAILURES", "CrawlResult",
           "crawl", "not_an_imds"]

_log = logging.getLogger("aioimds")

DEFAULT_CONCURRENCY = 32
"""Requests in flight during a dump, chosen by measurement (``python -m bench --only f``,
bench/README.md): on the real-world trees 16, 32 and 64 are within noise of each other at 1
and 5 ms per answer, while 4 and 8 are 1.2-2x slower; on a generated 2,400-path tree
32 is the fastest at 0 and 1 ms; and on a slow service (a 312-path tree at 60 ms per answer, as
in amazon.aws #2216) 32 dumps in 0.84 s where 16 takes 1.37 s. 64 gains more only on slow
services and costs connections against a service that caps them (``--concurrency``)."""
STALL_FAILURES = 10
"""Requests in a row that end with no answer at all (after their retries) before a crawl stops
asking: the paths still queued are failed as not requested, so a dead service fails a dump in
about one request deadline instead of one per path."""
MAX_DEPTH = 24
"""Deepest listing followed below ``/latest/`` (real trees are 8 deep): stops a hostile loop."""
MAX_PATHS = 1_000_000
"""Most paths one crawl requests: a hostile, endless tree fails instead of eating memory."""

Fetch = Callable[[str], Awaitable[Record]]
"""``fetch(request_path) -> Record`` of status 200 or 404; raises IMDSError otherwise."""


@dataclass
class CrawlResult:
    """What a crawl got.

    Attributes:
        snapshot: every answer recorded (200 and 404), as a :class:`~aioimds.Snapshot`; its
            ``failures`` name every failed path with its message (DESIGN.md section 3).
        failures: request path -> error, for every path that failed (empty when complete).
        skipped: listing path -> the entries of it that name no child and were not followed.
    """

    snapshot: Snapshot
    failures: dict[str, IMDSError] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether nothing failed."""
        return not self.failures

    def raise_for_failures(self) -> None:
        """Raise :class:`~aioimds.IMDSCrawlError` naming every failed path, if any failed."""
        if self.failures:
            raise IMDSCrawlError(self.failures, self.snapshot)


def not_an_imds() -> IMDSResponseError:
    """The error for ``/latest/`` answered 404, which no IMDS does (``dump``, ``ls``)."""
    return IMDSResponseError(
        "answered 404: this endpoint is not an IMDS (every IMDS lists meta-data here); check "
        "the endpoint", path=ROOT, status=404)


async def crawl(fetch: Fetch, *, concurrency: int = DEFAULT_CONCURRENCY,
                root: str = ROOT, progress: CrawlProgress | None = None) -> CrawlResult:
    """Walk the tree below the listing ``root`` with ``concurrency`` workers; ``progress``,
    when given, is kept up to date (paths done and queued).

    Returns: a :class:`CrawlResult`; it raises nothing for failures of the service, which are
    collected in ``failures``. Cancelling the crawl cancels every worker.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, not {concurrency}")
    records: dict[str, Record] = {}
    failures: dict[str, IMDSError] = {}
    skipped: dict[str, list[str]] = {}
    # Two FIFO queues of (path, depth), listings before leaves; plain deques because the
    # workers are the only consumers and an idle worker parks on a future of its own.
    listings: deque[tuple[str, int]] = deque([(root, 0)])
    leaves: deque[tuple[str, int]] = deque()
    parked: list[asyncio.Future[None]] = []
    seen = {root}
    busy = 0  # paths taken or waiting to be asked again: the walk is over when none is and
    # none is queued
    silent = 0  # requests in a row that ended with no answer
    stalled: IMDSError | None = None  # why the crawl stopped asking, once it has
    not_found: dict[str, tuple[int, float]] = {}  # listed path -> (404 retries, first 404 at)
    timers: list[asyncio.TimerHandle] = []

    def unasked(path: str, reason: IMDSError) -> None:
        failures[path] = IMDSConnectionError(
            f"not requested: {STALL_FAILURES} requests in a row got no answer "
            f"(the last: {reason.message})", path=path)

    def abandon(reason: IMDSError) -> None:
        nonlocal stalled
        stalled = reason
        for queue in (listings, leaves):
            while queue:
                unasked(queue.popleft()[0], reason)

    def retry_later(path: str, depth: int) -> bool:
        """Schedule ``path`` (listed, answered 404) to be asked again; False when its retries
        are spent and the 404 stands."""
        nonlocal busy
        now = clock.now()
        made, first = not_found.get(path, (0, now))
        delay = retry.listed_404_delay(made + 1, now - first)
        if delay is None:
            return False
        not_found[path] = (made + 1, first)
        busy += 1  # the waiting retry keeps the walk open
        timers.append(asyncio.get_running_loop().call_later(delay, requeue, path, depth))
        return True

    def requeue(path: str, depth: int) -> None:
        nonlocal busy
        busy -= 1
        if stalled is None:
            (listings if is_listing(path) else leaves).append((path, depth))
            wake(1)
        else:
            unasked(path, stalled)
            if not busy and not listings and not leaves:
                wake(len(parked))

    def wake(count: int) -> None:
        while parked and count > 0:
            fut = parked.pop()
            if not fut.done():
                fut.set_result(None)
                count -= 1

    def visit_listing(path: str, record: Record, depth: int) -> None:
        entries = parse_listing(record.body, path)
        bad: list[str] = []
        added = 0
        try:
            for entry in entries:
                try:
                    child = child_path(path, entry)
                except IMDSResponseError:
                    bad.append(entry)
                    continue
                if child in seen:
                    continue
                if depth >= MAX_DEPTH or len(seen) >= MAX_PATHS:
                    raise IMDSResponseError(
                        f"tree deeper than {MAX_DEPTH} levels or larger than {MAX_PATHS} "
                        "paths; the endpoint does not look like IMDS", path=path)
                seen.add(child)
                (listings if is_listing(child) else leaves).append((child, depth + 1))
                added += 1
        finally:
            wake(added - 1)  # the worker that ran this listing takes one of them itself
        if bad:
            skipped[path] = bad
            _log.warning("%s: skipped listing entries that name no child: %r", path, bad)

    async def worker() -> None:
        nonlocal busy, silent
        loop = asyncio.get_running_loop()
        while True:
            if listings:
                path, depth = listings.popleft()
            elif leaves:
                path, depth = leaves.popleft()
            elif busy:
                fut = loop.create_future()
                parked.append(fut)
                await fut
                continue
            else:
                wake(len(parked))  # the walk is over: let every parked worker see it
                return
            busy += 1
            waits = False  # asked again later: not done yet
            try:
                record = await fetch(path)
                silent = 0
                if path == ROOT and record.status == 404:
                    raise not_an_imds()
                if record.status == 404 and path != root and retry_later(path, depth):
                    waits = True
                    continue
                records[path] = record
                if record.status == 200 and is_listing(path):
                    visit_listing(path, record, depth)
            except IMDSError as exc:
                records.pop(path, None)
                failures[path] = exc
                if isinstance(exc, (IMDSConnectionError, IMDSTimeoutError)):
                    silent += 1
                    if silent >= STALL_FAILURES:
                        abandon(exc)
            finally:
                busy -= 1
                if progress is not None and not waits:
                    progress.done += 1
                    progress.queued = len(listings) + len(leaves)
                if not busy and not listings and not leaves:
                    wake(len(parked))

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    try:
        await asyncio.gather(*workers)
    finally:
        for timer in timers:
            timer.cancel()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    snapshot = Snapshot(records, failures={p: e.message for p, e in failures.items()})
    return CrawlResult(snapshot, failures, skipped)
