"""IMDSClient: the request pipeline (token -> send -> classify -> retry) and the public API.

https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from types import TracebackType
from typing import Any, Literal, overload

from . import clock, retry
from .budget import DUMP_DEADLINE, Budget, Stall, Tries
from .coalesce import AnswerCache, SingleFlight, check_max_age
from .config import IMDSConfig
from .crawl import DEFAULT_CONCURRENCY, CrawlResult, crawl, not_an_imds
from .errors import (
    IMDSDisabledError,
    IMDSError,
    IMDSHTTPError,
    IMDSNotFoundError,
    IMDSResponseError,
    IMDSThrottledError,
    IMDSTimeoutError,
    IMDSTokenError,
    IMDSTokenTimeoutError,
    IMDSUnreachableError,
)
from .pacing import SPARSE_SPAN, AdaptiveLimit
from .paths import ROOT, parse_listing, request_path
from .retry import NoAnswer, Outcome
from .snapshot import Record, Snapshot
from .speculate import GuessSlots
from .stats import CrawlProgress, RequestStats
from .token import HOP_LIMIT_ADVICE, TokenSession, token_from_answer
from .transport import Answer, Transport, no_answer
from .typed import MetadataViews, parse_json
from .wire import TOKEN_HEADER, TOKEN_PATH, TTL_HEADER

__all__ = ["CRAWL_ATTEMPTS", "MAX_CONNECTIONS", "NOT_FOUND_MAX_AGE", "IMDSClient"]

_log = logging.getLogger("aioimds")
_log.addHandler(logging.NullHandler())  # a library logs only where the application says

MAX_CONNECTIONS = 64
"""Most simultaneous connections one client opens; more requests wait for a free one."""
NOT_FOUND_MAX_AGE = 1.0
"""Seconds a kept 404 answers reads with a ``max_age`` (``FOREVER`` included): enough to share
one answer among a burst of reads, short enough that a key added after boot is seen."""
CRAWL_ATTEMPTS = 8
"""Attempts per request during a dump (at least): a dump makes hundreds of requests, so it
spends a larger retry budget than one ``get`` to come back complete from a flaky service."""


class IMDSClient(MetadataViews):
    """An asyncio IMDS client: one ``aiohttp.ClientSession`` and one token for its life.

    ``IMDSClient()`` reads its settings from the environment and the shared AWS config file
    (:meth:`IMDSConfig.from_environment`); ``IMDSClient(config)`` uses ``config``; keyword
    arguments (``endpoint=``, ``timeout=``, ``attempts=``, any :class:`IMDSConfig` field)
    override single settings. Use it as ``async with IMDSClient(...) as imds:``; it can be
    opened again after it is closed, in the same or another event loop.

    Raises (from every request method): :class:`~aioimds.IMDSNotFoundError` (404),
    :class:`~aioimds.IMDSDisabledError`, and other :class:`~aioimds.IMDSError` subclasses
    naming the path and status.

    The typed coroutines (``region()``, ``instance_id()``, ``placement()``, ...) come from
    :class:`~aioimds.typed.MetadataViews`, a concrete base typed on the
    :class:`~aioimds.typed.Source` protocol: the client is its own source, so they read through
    its ``get``/``get_bytes``/``list`` and the typed layer never imports this module.
    """

    def __init__(self, config: IMDSConfig | None = None, **overrides: Any) -> None:
        super().__init__(self)
        base = config if config is not None else IMDSConfig.from_environment()
        self.config = base.with_overrides(**overrides)
        self._transport: Transport | None = None
        self._tokens: TokenSession | None = None
        self._budget = self._call_budget(None)
        self._answered = False
        """Whether the endpoint ever answered this session (a dead endpoint fails fast)."""
        self._rand = random.Random()
        self.stats = RequestStats()
        """Counts of the requests sent (:class:`~aioimds.stats.RequestStats`)."""
        self._flights: SingleFlight[str, Record] = SingleFlight()
        self._answers: AnswerCache[str, Record] = AnswerCache()

    def _call_budget(self, limit: AdaptiveLimit | None) -> Budget:
        attempts = self.config.attempts
        return Budget(attempts, self.config.deadline_for(attempts), limit)

    def __repr__(self) -> str:
        state = "open" if self._transport is not None else "closed"
        return f"IMDSClient(endpoint={self.config.base_url!r}, {state})"

    async def __aenter__(self) -> IMDSClient:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the HTTP session (a no-op when open). Called by ``async with``."""
        if self._transport is None:
            cfg = self.config
            self._transport = Transport(cfg.base_url, timeout=cfg.timeout,
                                        max_body=cfg.max_body, connections=MAX_CONNECTIONS)
            self._tokens = TokenSession(self._put_token, ttl=cfg.token_ttl,
                                        v1_allowed=not cfg.v1_disabled)
            # Every request outside a dump shares this pacing, so concurrent calls (typed
            # views gather many leaves) slow down together when the service throttles.
            self._budget = self._call_budget(AdaptiveLimit(MAX_CONNECTIONS,
                                                           min_span=SPARSE_SPAN))
            self._answered = False

    async def close(self) -> None:
        """Close the session and forget the token and the cached answers; closing twice is
        harmless. Reads still in flight raise :class:`RuntimeError`."""
        transport, self._transport, self._tokens = self._transport, None, None
        self._flights.cancel()
        self._answers.clear()
        if transport is not None:
            await transport.close()

    @property
    def token_puts(self) -> int:
        """How many token PUTs the current session made."""
        return self._tokens.puts if self._tokens is not None else 0

    def _open(self) -> tuple[Transport, TokenSession]:
        if self.config.disabled:
            raise IMDSDisabledError(
                "IMDS is disabled by AWS_EC2_METADATA_DISABLED; no request was sent")
        if self._transport is None or self._tokens is None:
            raise RuntimeError("IMDSClient is not open: use 'async with IMDSClient() as imds'")
        return self._transport, self._tokens

    # -- the pipeline ------------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, tries: Tries, *, tokens: TokenSession | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[Answer, str | None]:
        """The request loop: send, classify the outcome (:func:`aioimds.retry.classify`),
        retry while ``tries`` allows; return the final answer and the token it was sent with.

        With ``tokens``, each attempt takes the current token (its PUT gets the same deadline),
        so a long wait for a retry never sends an expired one. Raises the last attempt's error
        when the budget is spent with no answer (:class:`~aioimds.IMDSUnreachableError` when
        the endpoint never answered), or an answer that is not IMDS at once.
        """
        transport = self._transport
        if transport is None:
            raise RuntimeError("IMDSClient is not open: use 'async with IMDSClient() as imds'")
        budget = tries.budget
        limit, stall = budget.limit, budget.stall
        put = method == "PUT"
        token: str | None = None
        send_headers = headers if headers is not None else {}
        while True:
            if tokens is not None:
                token = await tokens.get(tries)
                send_headers = {TOKEN_HEADER: token} if token is not None else {}
            tries.attempt += 1
            timeout = tries.attempt_timeout(self.config.timeout)
            ticket = 0
            if limit is not None:
                got = limit.try_acquire()
                ticket = got if got is not None else await _acquire(limit, tries, path)
            result: Answer | IMDSError
            kind: NoAnswer | None = None
            status: int | None = None
            ended = False  # False while cancelled: an attempt that never ended says nothing
            _count(self.stats, tries.attempt, tokens is not None and token is None)
            try:
                result = await transport.send(method, path, send_headers, timeout)
                status, ended = result.status, True
                self.stats.throttled += status == 429
            except IMDSError as exc:
                result, kind, ended = exc, no_answer(exc), True
                self.stats.dropped += kind is not None
            finally:
                if limit is not None:
                    limit.release(ticket, throttled=status == 429 or kind is not None,
                                  status=status, counted=ended,
                                  retry_after=_retry_after(result) if ended else None)
            if isinstance(result, Answer):
                self._answered = True
                outcome = Outcome(result.status, put=put)
            else:
                outcome = Outcome(no_answer=kind, put=put, bad_answer=kind is None)
            if stall is not None:
                stall.observe(outcome)
            if retry.classify(outcome) is retry.Action.RETRY:
                delay = _delay(result, tries.attempt, self._rand)
                if budget.until is not None and limit is not None and limit.throttling and \
                        (status == 429 or kind is not None):
                    delay = 0.0  # a dump's limit spaces the retry (Retry-After included)
                if tries.allows(outcome, delay, answered_before=self._answered):
                    _log.debug("%s %s: %s; retry %d in %.3f s", method, path,
                               _describe(result), tries.attempt, delay)
                    await asyncio.sleep(delay)
                    continue
                if not isinstance(result, Answer):
                    raise self._no_answer_error(result, kind)
            if not isinstance(result, Answer):
                raise result
            return result, token

    def _no_answer_error(self, err: IMDSError, kind: NoAnswer | None) -> IMDSError:
        """The error a request ends with after its last unanswered attempt: for a connection
        that got no answer from an endpoint that never answered, the dead-endpoint error."""
        if kind is NoAnswer.CONNECT and not self._answered:
            unreachable = IMDSUnreachableError(
                f"no answer from {self.config.base_url}; not on EC2? use --emulator or "
                f"--endpoint (the last attempt: {err.message})", path=err.path)
            unreachable.__cause__ = err
            return unreachable
        return err

    async def _put_token(self, ttl: int, tries: Tries | None) -> tuple[str, int]:
        """``PUT /latest/api/token`` under the deadline of the request that needs the token;
        returns (token, granted TTL in seconds) (:func:`aioimds.token.token_from_answer`)."""
        put_tries = tries.sub() if tries is not None else self._budget.start()
        ans, _ = await self._send("PUT", TOKEN_PATH, put_tries, headers={TTL_HEADER: str(ttl)})
        parsed = token_from_answer(ans.status, ans.body, ans.ttl, ttl)
        self.stats.token_puts += 1
        return parsed

    async def _fetch(self, path: str, *, budget: Budget | None = None) -> Record:
        """GET ``path`` (percent-encoded) with the token; a Record of status 200 or 404.

        A 401 drops the token (or ends the IMDSv1 fallback), PUTs again and retries once.
        """
        _, tokens = self._open()
        tries = (budget if budget is not None else self._budget).start()
        refreshed = False
        while True:
            ans, token = await self._send("GET", path, tries, tokens=tokens)
            if token is None and ans.status in (200, 404):
                tokens.confirm_v1()
            action = retry.classify(Outcome(ans.status))
            if action is retry.Action.DONE:
                if ans.content_type == "text/html":
                    raise IMDSResponseError(
                        "answered 200 with an HTML page, which IMDS never sends; check the "
                        "endpoint (a proxy or captive portal may be answering)",
                        path=path, status=200)
                return Record(ans.body, 200, ans.content_type)
            if action is retry.Action.NOT_FOUND:
                return Record(b"", 404)
            if action is not retry.Action.REFRESH_TOKEN:
                break
            if token is None and (refreshed or _put_unanswered(tokens)):
                raise _token_required(tokens, path)
            if refreshed:
                break
            refreshed = True
            _log.debug("GET %s: 401, %s", path,
                       "refreshing the token" if token else "the service wants a token")
            tokens.invalidate(token)
        raise _status_error(ans, path)

    # -- the public API ----------------------------------------------------------------------

    async def _read(self, req: str, max_age: float | None) -> Record:
        """``_fetch(req)``, shared with every concurrent read of ``req`` (one request on the
        wire), or the answer kept from an earlier read when ``max_age`` accepts its age."""
        self._open()
        if max_age is None:
            return await self._flights.run(req, functools.partial(self._fetch, req))
        check_max_age(max_age)
        if not self.config.cache:
            return await self._flights.run(req, functools.partial(self._fetch, req))
        answers = self._answers
        now = clock.now()
        kept = answers.get(req, max_age, now)
        if kept is not None and kept.status == 404:
            # A 404 is kept briefly whatever max_age says: a key missing at boot (a role not
            # yet attached, a tag not yet on) appears later, and FOREVER would hide it.
            kept = answers.get(req, min(max_age, NOT_FOUND_MAX_AGE), now)
        if kept is not None:
            return kept
        rec = await self._flights.run(req, functools.partial(self._fetch, req))
        answers.put(req, rec, clock.now())
        return rec

    async def get_bytes(self, path: str, *, max_age: float | None = None) -> bytes:
        """The body of the leaf at ``path`` (relative to ``latest/``), bytes as served.

        Concurrent reads of one path share one request and its answer or error. ``max_age``
        (seconds, or :data:`~aioimds.coalesce.FOREVER`) accepts an answer this client got at
        most that long ago (a 404 only up to :data:`NOT_FOUND_MAX_AGE`) instead of a new
        request; ``None`` (default)
        always asks the service. With ``cache=False`` every read asks.

        Raises: :class:`~aioimds.IMDSNotFoundError` for 404, other IMDSError subclasses;
        :class:`ValueError` for a negative ``max_age``.
        """
        req = request_path(path)
        rec = await self._read(req, max_age)
        if rec.status == 404:
            raise IMDSNotFoundError("not found (404) on this instance", path=req, status=404)
        return rec.body

    async def get(self, path: str, *, max_age: float | None = None) -> str:
        """The body of the leaf at ``path`` as text (UTF-8), e.g.
        ``await imds.get("meta-data/placement/region") -> "ap-northeast-1"``; ``max_age`` as
        in :meth:`get_bytes`.

        Raises: as :meth:`get_bytes`, and :class:`~aioimds.IMDSResponseError` when the body is
        not UTF-8 (use :meth:`get_bytes` for binary leaves such as gzip user-data).
        """
        body = await self.get_bytes(path, max_age=max_age)
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        # Raised outside the except clause: the UnicodeDecodeError holds the whole body.
        raise IMDSResponseError("body is not UTF-8 text; use get_bytes()",
                                path=request_path(path), status=200)

    async def get_json(self, path: str, *, max_age: float | None = None) -> Any:
        """The leaf at ``path`` parsed as JSON (identity document, ``iam/info``, ...);
        ``max_age`` as in :meth:`get_bytes`.

        Raises: as :meth:`get`, and :class:`~aioimds.IMDSResponseError` when it is not JSON.
        """
        return parse_json(await self.get(path, max_age=max_age), request_path(path))

    async def list(self, path: str = "", *, max_age: float | None = None) -> list[str]:
        """The entries of the listing at ``path``, as served (``"meta-data/"`` ->
        ``["ami-id", "placement/", ...]``); a ``/`` is appended when missing; ``max_age`` as
        in :meth:`get_bytes`.

        Raises: as :meth:`get_bytes`, and :class:`~aioimds.IMDSResponseError` when the body is
        not a listing (not UTF-8, an HTML page).
        """
        req = request_path(path if path.endswith("/") or path == "" else path + "/")
        rec = await self._read(req, max_age)
        if rec.status == 404 and req == ROOT:
            raise not_an_imds()
        if rec.status == 404:
            raise IMDSNotFoundError("not found (404) on this instance", path=req, status=404)
        return parse_listing(rec.body, req)

    @overload
    async def dump(self, path: str = ..., *, concurrency: int = ...,
                   partial: Literal[False] = ..., attempts: int | None = ...,
                   progress: CrawlProgress | None = ...,
                   deadline: float | None = ...,
                   speculate: bool = ...) -> Snapshot: ...

    @overload
    async def dump(self, path: str = ..., *, concurrency: int = ..., partial: Literal[True],
                   attempts: int | None = ..., progress: CrawlProgress | None = ...,
                   deadline: float | None = ...,
                   speculate: bool = ...) -> CrawlResult: ...

    async def dump(self, path: str = "", *, concurrency: int = DEFAULT_CONCURRENCY,
                   partial: bool = False, attempts: int | None = None,
                   progress: CrawlProgress | None = None,
                   deadline: float | None = None,
                   speculate: bool = True) -> Snapshot | CrawlResult:
        """Crawl all of ``/latest/`` (meta-data, dynamic data, user-data) into a Snapshot.

        Args:
            path: the listing to start from, relative to ``latest/`` (default ``""``: all of
                ``/latest/``; ``"meta-data/iam"`` dumps that sub-tree; a ``/`` is appended).
            concurrency: most requests in flight (:data:`~aioimds.crawl.DEFAULT_CONCURRENCY`);
                lowered while the service throttles, raised again when it answers.
            partial: return a :class:`~aioimds.crawl.CrawlResult` (the snapshot of what
                succeeded, with its ``failures``, and the failed paths) instead of raising.
            attempts: attempts per request for 5xx and similar answers; by default the larger
                of ``config.attempts`` and :data:`CRAWL_ATTEMPTS`. A 429 or an unanswered
                connection is retried on a time basis instead, until ``deadline`` or until the
                service answers nothing at all (:mod:`aioimds.budget`).
            progress: updated in place as the crawl goes (for progress lines).
            deadline: seconds the whole dump may take; default
                :data:`~aioimds.budget.DUMP_DEADLINE` (300).
            speculate: also ask for documented paths before the listings that name them
                (:mod:`aioimds.speculate`; a dump of all of ``/latest/`` only), within
                ``concurrency``, with one attempt each (retried once by the crawl), and not
                while the service throttles. The snapshot is the same either way;
                ``speculate=False`` sends only listed paths.

        Raises: :class:`~aioimds.IMDSCrawlError` naming every failed path (not with
        ``partial=True``); a listed entry answering 404 is recorded, not a failure, while a
        ``/latest/`` answering 404 fails the dump (the endpoint is not an IMDS).
        """
        self._open()
        root = request_path(path if path.endswith("/") or path == "" else path + "/")
        cfg = self.config
        tries = attempts if attempts is not None else max(cfg.attempts, CRAWL_ATTEMPTS)
        seconds = deadline if deadline is not None else DUMP_DEADLINE
        if not seconds > 0:
            raise ValueError(f"deadline must be positive seconds, not {deadline!r}")
        limit = AdaptiveLimit(concurrency)
        budget = Budget(tries, cfg.deadline_for(tries), limit, until=clock.now() + seconds,
                        stall=Stall(cfg.timeout))
        # A partial, not a closure: one coroutine frame less on every request of the crawl.
        fetch = functools.partial(self._fetch, budget=budget)
        # A guess: one attempt, never a paced or awaited slot, outside stall detection.
        slots = GuessSlots(limit)
        guess = functools.partial(self._fetch, budget=Budget(1, cfg.deadline_for(1), slots))
        result = await crawl(fetch, concurrency=concurrency, root=root, progress=progress,
                             guess=guess if speculate else None,
                             allowed=lambda: not limit.throttling)
        guessed = result.speculation
        if guessed.sent:
            _log.debug("dump: %d guesses sent, %d kept, %d wasted", guessed.sent, guessed.kept,
                       guessed.wasted)
        if partial:
            return result
        result.raise_for_failures()
        return result.snapshot


def _count(stats: RequestStats, attempt: int, without_token: bool) -> None:
    stats.requests += 1
    stats.retries += attempt > 1
    stats.without_token += without_token


async def _acquire(limit: AdaptiveLimit, tries: Tries, path: str) -> int:
    """A slot of ``limit``, waited for no longer than the request's deadline: a throttled
    service paces requests, and a request whose turn comes after its deadline is not sent."""
    try:
        return await asyncio.wait_for(limit.acquire(), max(0.0, tries.end() - clock.now()))
    except asyncio.TimeoutError:
        raise IMDSTimeoutError(
            "not sent: the deadline passed while requests were paced (the service throttles)",
            path=path) from None


def _put_unanswered(tokens: TokenSession) -> bool:
    """Whether the IMDSv1 fallback came from a token PUT that got no answer."""
    return isinstance(tokens.fallback_reason, TimeoutError) and tokens.using_v1


def _token_required(tokens: TokenSession, path: str) -> IMDSTokenError:
    """The error for a token-less GET answered 401: the service wants tokens after all."""
    why = tokens.fallback_reason
    tokens.invalidate(None)  # the next request tries the token PUT again
    message = "the service requires a token (401 without one) but "
    if why is None or isinstance(why, TimeoutError):
        return IMDSTokenTimeoutError(message + HOP_LIMIT_ADVICE, path=path, status=401)
    put = (f"the token PUT answered {why.status}" if why.status is not None
           else f"the token PUT failed ({why.message})")
    return IMDSTokenError(
        message + put + "; check that the endpoint is an IMDS (a proxy or a path in the "
        "endpoint URL can refuse the PUT)", path=path, status=401)


def _retry_after(result: Answer | IMDSError) -> float | None:
    """Seconds of a 429's ``Retry-After``, else ``None``."""
    if isinstance(result, Answer) and result.status == 429:
        return retry.parse_retry_after(result.retry_after)
    return None


def _delay(failure: Answer | IMDSError, attempt: int, rand: random.Random) -> float:
    if isinstance(failure, Answer) and failure.status == 429:
        after = retry.parse_retry_after(failure.retry_after)
        if after is not None:
            return after
    return retry.backoff(attempt, rand=rand.random)


def _describe(failure: Answer | IMDSError) -> str:
    return f"status {failure.status}" if isinstance(failure, Answer) else failure.message


def _status_error(ans: Answer, path: str) -> IMDSError:
    if ans.status == 429:
        return IMDSThrottledError(
            "throttled (429) on every attempt; lower the request rate or concurrency",
            path=path, status=429)
    if ans.status == 401:
        return IMDSHTTPError("the token was refused (401) again after a fresh token PUT",
                             path=path, status=401)
    if ans.status in retry.RETRY_STATUSES:
        what = "server error" if ans.status >= 500 else "request timeout"
        return IMDSHTTPError(f"{what} ({ans.status}) after retries", path=path,
                             status=ans.status)
    return IMDSHTTPError(f"unexpected status {ans.status}", path=path, status=ans.status)
