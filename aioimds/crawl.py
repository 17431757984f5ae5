"""The concurrent tree walk of ``/latest/``, producing a Snapshot.

A fixed pool of worker coroutines takes paths from a priority queue, fetches each with the
coroutine it is handed (the crawl imports neither the client nor the token session) and queues
the children of every listing. Listings go before leaves, since only listings open more work:
that keeps the critical path (tree depth x latency) the bound. Entries ending in ``/`` are
listings; ``N=name`` in ``public-keys/`` is the listing ``N/``; duplicate entries are fetched
once. A listed entry answering 404 is recorded with status 404; any other failure is collected,
never dropped, and the walk goes on.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .errors import IMDSCrawlError, IMDSError, IMDSResponseError
from .paths import ROOT, child_path, is_listing, parse_listing
from .snapshot import Record, Snapshot

__all__ = ["DEFAULT_CONCURRENCY", "MAX_DEPTH", "MAX_PATHS", "CrawlResult", "crawl"]

DEFAULT_CONCURRENCY = 16
"""Requests in flight during a dump; see the README's Performance section for the measurement."""
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
        snapshot: every answer recorded (200 and 404), as a :class:`~aioimds.Snapshot`.
        failures: request path -> error, for every path that failed (empty when complete).
    """

    snapshot: Snapshot
    failures: dict[str, IMDSError] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether nothing failed."""
        return not self.failures

    def raise_for_failures(self) -> None:
        """Raise :class:`~aioimds.IMDSCrawlError` naming every failed path, if any failed."""
        if self.failures:
            raise IMDSCrawlError(self.failures, self.snapshot)


async def crawl(fetch: Fetch, *, concurrency: int = DEFAULT_CONCURRENCY,
                root: str = ROOT) -> CrawlResult:
    """Walk the tree below the listing ``root`` with ``concurrency`` workers.

    Returns: a :class:`CrawlResult`; it raises nothing for failures of the service, which are
    collected in ``failures``. Cancelling the crawl cancels every worker.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, not {concurrency}")
    records: dict[str, Record] = {}
    failures: dict[str, IMDSError] = {}
    queue: asyncio.PriorityQueue[tuple[int, int, str, int]] = asyncio.PriorityQueue()
    seen = {root}
    order = itertools.count()
    queue.put_nowait((0, next(order), root, 0))

    def visit_listing(path: str, record: Record, depth: int) -> None:
        entries = parse_listing(record.body, path)
        bad: list[str] = []
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
                    f"tree deeper than {MAX_DEPTH} levels or larger than {MAX_PATHS} paths; "
                    "the endpoint does not look like IMDS", path=path)
            seen.add(child)
            queue.put_nowait((0 if is_listing(child) else 1, next(order), child, depth + 1))
        if bad:
            raise IMDSResponseError(
                f"listing has entries that do not name a child: {bad!r}; not followed",
                path=path, status=200)

    async def worker() -> None:
        while True:
            _, _, path, depth = await queue.get()
            try:
                record = await fetch(path)
                records[path] = record
                if record.status == 200 and is_listing(path):
                    visit_listing(path, record, depth)
            except IMDSError as exc:
                records.pop(path, None)
                failures[path] = exc
            finally:
                queue.task_done()

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    joined = asyncio.ensure_future(queue.join())
    try:
        done, _ = await asyncio.wait([joined, *workers], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not joined:
                task.result()  # a worker only ends by raising: re-raise that bug here
    finally:
        for task in (joined, *workers):
            task.cancel()
        await asyncio.gather(joined, *workers, return_exceptions=True)
    return CrawlResult(Snapshot(records), failures)
