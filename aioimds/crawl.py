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

With speculation, idle workers also send guesses (:mod:`aioimds.speculate`; guessed listings
after listed ones, guessed leaves last), and a listed path whose guess has answered is taken
from the guess instead of being asked again; guesses never count as failures.
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
from .speculate import Speculation, SpeculationStats
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
        speculation: guesses sent and kept (all zero without speculation).
    """

    snapshot: Snapshot
    failures: dict[str, IMDSError] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    speculation: SpeculationStats = field(default_factory=SpeculationStats)

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


async def crawl(fetch: Fetch, *, concurrency: int = DEFAULT_CONCURRENCY, root: str = ROOT,
                progress: CrawlProgress | None = None, guess: Fetch | None = None,
                allowed: Callable[[], bool] = lambda: True) -> CrawlResult:
    """Walk the tree below the listing ``root`` with ``concurrency`` workers; ``progress``,
    when given, is kept up to date (listed paths done and queued).

    ``guess``: the fetch for one attempt at a speculative request, which turns on speculation
    (:mod:`aioimds.speculate`, for ``root`` ``/latest/``); ``allowed()`` says whether to guess
    now (false while the service throttles). Speculation changes what is asked and when, never
    what is recorded.

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
    spec = None if guess is None else Speculation(guess, seen, allowed=allowed, root=root)
    busy = 0  # paths taken or waiting to be asked again: the walk is over when none is and
    # none is queued
    guessing = 0  # of which guesses (the walk does not wait for those no listing names)
    over = asyncio.get_running_loop().create_future()
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
        if spec is not None:
            spec.stop()
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
            if not listed_work():
                wake(len(parked))

    def wake(count: int) -> None:
        while parked and count > 0:
            fut = parked.pop()
            if not fut.done():
                fut.set_result(None)
                count -= 1

    def keep(path: str, record: Record, depth: int) -> int:
        """Record an answer to a listed path (a listed 404 is first asked again later); follow
        a listing. Returns paths queued."""
        if record.status == 404 and path != root and retry_later(path, depth):
            return 0
        records[path] = record
        if progress is not None:
            progress.done += 1
        if record.status != 200:
            return 0
        if not is_listing(path):
            return spec.learn(path, record) if spec is not None else 0
        added, error = visit_listing(path, record, depth)
        if error is not None:
            records.pop(path, None)
            failures[path] = error
        return added

    def visit_listing(path: str, record: Record, depth: int) -> tuple[int, IMDSError | None]:
        try:
            entries = parse_listing(record.body, path)
        except IMDSError as exc:
            return 0, exc
        bad: list[str] = []
        named: list[str] = []
        added = 0
        for entry in entries:
            try:
                child = child_path(path, entry)
            except IMDSResponseError:
                bad.append(entry)
                continue
            named.append(child)
            if child in seen:
                continue
            if depth >= MAX_DEPTH or len(seen) >= MAX_PATHS:
                return added, IMDSResponseError(
                    f"tree deeper than {MAX_DEPTH} levels or larger than {MAX_PATHS} "
                    "paths; the endpoint does not look like IMDS", path=path)
            seen.add(child)
            got = None if spec is None else spec.claim(child, depth + 1)
            if isinstance(got, Record):  # a guess answered it already
                added += keep(child, got, depth + 1)
            elif got is None:  # else a guess in flight will answer it
                (listings if is_listing(child) else leaves).append((child, depth + 1))
                added += 1
        if spec is not None:
            added += spec.listed(path, named)
        if bad:
            skipped[path] = bad
            _log.warning("%s: skipped listing entries that name no child: %r", path, bad)
        return added, None

    def listed_work() -> bool:
        """Whether a listed path is queued or in flight (a listed guess in flight included)."""
        return bool(listings or leaves or busy > guessing or (spec and spec.awaited))

    def next_guess(leaf: bool) -> str | None:
        # A guess is worth sending only while listed work is queued or in flight.
        return spec.take(leaf=leaf) if spec is not None and listed_work() else None

    async def run_guess(path: str) -> None:
        assert spec is not None
        record = await spec.send(path)
        depth, added = spec.landed(path, record)
        if depth is not None:  # listed while in flight
            if record is None:
                (listings if is_listing(path) else leaves).append((path, depth))
                added += 1
            else:
                added += keep(path, record, depth)
        wake(added)

    async def worker() -> None:
        nonlocal busy, guessing, silent
        loop = asyncio.get_running_loop()
        while True:
            guessed = None
            if listings:  # listed listings, guessed ones, listed leaves, guessed ones
                path, depth = listings.popleft()
            elif (guessed := next_guess(False)) is not None:
                pass
            elif leaves:
                path, depth = leaves.popleft()
            elif (guessed := next_guess(True)) is not None:
                pass
            elif listed_work():
                fut = loop.create_future()
                parked.append(fut)
                await fut
                continue
            else:  # the walk is over; guesses still in flight are cancelled
                if not over.done():
                    over.set_result(None)
                wake(len(parked))  # let every parked worker see it
                return
            busy += 1
            try:
                if guessed is not None:
                    guessing += 1
                    try:
                        await run_guess(guessed)
                    finally:
                        guessing -= 1
                    continue
                record = await fetch(path)
                silent = 0
                if path == ROOT and record.status == 404:
                    raise not_an_imds()
                wake(keep(path, record, depth) - 1)  # this worker takes one of them itself
            except IMDSError as exc:
                records.pop(path, None)
                failures[path] = exc
                if progress is not None:
                    progress.done += 1
                if isinstance(exc, (IMDSConnectionError, IMDSTimeoutError)):
                    silent += 1
                    if silent >= STALL_FAILURES:
                        abandon(exc)
            finally:
                busy -= 1
                if progress is not None:
                    progress.queued = len(listings) + len(leaves)
                if not listed_work():
                    wake(len(parked))

    if spec is not None:
        spec.start()
    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    everyone = asyncio.gather(*workers)
    everyone.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved below
    try:
        await asyncio.wait((over, everyone), return_when=asyncio.FIRST_COMPLETED)
        if everyone.done():
            everyone.result()  # a worker's unexpected error
    finally:
        for timer in timers:
            timer.cancel()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    snapshot = Snapshot(records, failures={p: e.message for p, e in failures.items()})
    stats = spec.stats if spec is not None else SpeculationStats()
    return CrawlResult(snapshot, failures, skipped, stats)
