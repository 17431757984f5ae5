"""IMDSClient: the request pipeline (token -> send -> classify -> retry) and the public API.

https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import random
from types import TracebackType
from typing import Any, Literal, overload

from . import clock, retry
from .config import IMDSConfig
from .crawl import DEFAULT_CONCURRENCY, CrawlResult, crawl
from .errors import (
    IMDSConnectionError,
    IMDSDisabledError,
    IMDSError,
    IMDSHTTPError,
    IMDSNotFoundError,
    IMDSResponseError,
    IMDSThrottledError,
    IMDSTimeoutError,
    IMDSTokenError,
    IMDSTokenTimeoutError,
)
from .pacing import AdaptiveLimit
from .paths import parse_listing, request_path
from .snapshot import Record, Snapshot
from .stats import CrawlProgress, RequestStats
from .token import HOP_LIMIT_ADVICE, TokenSession
from .transport import Answer, Transport
from .typed import MetadataViews, parse_json
from .wire import TOKEN_HEADER, TOKEN_PATH, TTL_HEADER

__all__ = ["CRAWL_ATTEMPTS", "MAX_CONNECTIONS", "IMDSClient"]

_log = logging.getLogger("aioimds")
_log.addHandler(logging.NullHandler())  # a library logs only where the application says

MAX_CONNECTIONS = 64
"""Most simultaneous connections one client opens; more requests wait for a free one."""
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
        self._pace: AdaptiveLimit | None = None
        self._rand = random.Random()
        self.stats = RequestStats()
        """Counts of the requests sent (:class:`~aioimds.stats.RequestStats`)."""

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
            self._pace = AdaptiveLimit(MAX_CONNECTIONS)

    async def close(self) -> None:
        """Close the session and forget the token; closing twice is harmless."""
        transport, self._transport, self._tokens = self._transport, None, None
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

    async def _exchange(
        self, method: str, path: str, headers: dict[str, str], *, attempts: int,
        limit: AdaptiveLimit | None = None, retry_timeouts: bool = True,
        tokens: TokenSession | None = None, start: float | None = None,
    ) -> tuple[Answer, str | None]:
        """Send with retries (see :mod:`aioimds.retry`); return the first final answer and the
        token it was sent with.

        Retried: no answer, 429 (after ``Retry-After`` when given) and 5xx, up to ``attempts``
        within the deadline counted from ``start`` (default: now). With ``tokens``, each attempt
        takes the current token, so a long wait for a retry never sends an expired one. Raises
        the last error when the retries run out.
        """
        transport, _ = self._open()
        cfg = self.config
        deadline = cfg.deadline_for(attempts)
        if start is None:
            start = clock.now()
        token: str | None = None
        attempt = 0
        while True:
            attempt += 1
            if tokens is not None:
                token = await tokens.get()
                headers = {TOKEN_HEADER: token} if token is not None else {}
            timeout = min(cfg.timeout, max(0.001, deadline - (clock.now() - start)))
            ticket = 0
            if limit is not None:
                got = limit.try_acquire()
                ticket = got if got is not None else await limit.acquire()
            throttled = False
            status: int | None = None
            _count(self.stats, attempt, tokens is not None and token is None)
            try:
                ans = await transport.send(method, path, headers, timeout)
                status = ans.status
                throttled = status == 429
                self.stats.throttled += throttled
            except IMDSError as exc:
                no_answer = isinstance(exc, (IMDSConnectionError, IMDSTimeoutError))
                throttled = no_answer
                self.stats.dropped += no_answer
                if not no_answer or (not retry_timeouts and isinstance(exc, IMDSTimeoutError)):
                    raise
                failure: IMDSError | Answer = exc
            else:
                if retry.decide(ans.status) is not retry.Action.RETRY:
                    return ans, token
                failure = ans
            finally:
                if limit is not None:
                    limit.release(ticket, throttled=throttled, status=status)
            delay = _delay(failure, attempt, self._rand)
            elapsed = clock.now() - start
            if attempt >= attempts or elapsed + delay >= deadline:
                if isinstance(failure, Answer):
                    return failure, token
                raise failure
            _log.debug("%s %s: %s; retry %d in %.3f s", method, path, _describe(failure),
                       attempt, delay)
            await asyncio.sleep(delay)

    async def _put_token(self, ttl: int) -> tuple[str, int]:
        """``PUT /latest/api/token``; returns (token, granted TTL in seconds)."""
        # Inside a dump the PUT is paced with the crawl's requests and gets its retry budget.
        limit, attempts = _DUMP.get() or (self._pace, self.config.attempts)
        try:
            ans, _ = await self._exchange("PUT", TOKEN_PATH, {TTL_HEADER: str(ttl)},
                                          attempts=attempts, limit=limit, retry_timeouts=False)
        except IMDSTimeoutError as exc:
            raise IMDSTokenTimeoutError(HOP_LIMIT_ADVICE, path=TOKEN_PATH) from exc
        if ans.status == 200:
            parsed = _parse_token(ans, ttl)
            self.stats.token_puts += 1
            return parsed
        if ans.status == 400:
            raise IMDSTokenError(
                "this endpoint is not an IMDS or rejected the token request (400)",
                path=TOKEN_PATH, status=400)
        raise IMDSTokenError(f"the token PUT answered {ans.status}", path=TOKEN_PATH,
                             status=ans.status)

    async def _fetch(
        self, path: str, *, attempts: int | None = None, limit: AdaptiveLimit | None = None
    ) -> Record:
        """GET ``path`` (percent-encoded) with the token; a Record of status 200 or 404.

        A 401 invalidates the token, fetches a new one and retries once.
        """
        _, tokens = self._open()
        tries = attempts if attempts is not None else self.config.attempts
        start = clock.now()  # one deadline for the whole request, re-PUT included
        for refreshed in (False, True):
            ans, token = await self._exchange(
                "GET", path, {}, attempts=tries, tokens=tokens, start=start,
                limit=limit if limit is not None else self._pace)
            if ans.status == 200:
                if ans.content_type == "text/html":
                    raise IMDSResponseError(
                        "answered 200 with an HTML page, which IMDS never sends; check the "
                        "endpoint (a proxy or captive portal may be answering)",
                        path=path, status=200)
                return Record(ans.body, 200, ans.content_type)
            if ans.status == 404:
                return Record(b"", 404)
            if ans.status != 401:
                break
            if token is None:
                raise _token_required(tokens, path)
            if refreshed:
                break
            _log.debug("GET %s: 401, refreshing the token", path)
            tokens.invalidate(token)
        raise _status_error(ans, path)

    # -- the public API ----------------------------------------------------------------------

    async def get_bytes(self, path: str) -> bytes:
        """The body of the leaf at ``path`` (relative to ``latest/``), bytes as served.

        Raises: :class:`~aioimds.IMDSNotFoundError` for 404, other IMDSError subclasses.
        """
        req = request_path(path)
        rec = await self._fetch(req)
        if rec.status == 404:
            raise IMDSNotFoundError("not found (404) on this instance", path=req, status=404)
        return rec.body

    async def get(self, path: str) -> str:
        """The body of the leaf at ``path`` as text (UTF-8), e.g.
        ``await imds.get("meta-data/placement/region") -> "ap-northeast-1"``.

        Raises: as :meth:`get_bytes`, and :class:`~aioimds.IMDSResponseError` when the body is
        not UTF-8 (use :meth:`get_bytes` for binary leaves such as gzip user-data).
        """
        body = await self.get_bytes(path)
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        # Raised outside the except clause: the UnicodeDecodeError holds the whole body.
        raise IMDSResponseError("body is not UTF-8 text; use get_bytes()",
                                path=request_path(path), status=200)

    async def get_json(self, path: str) -> Any:
        """The leaf at ``path`` parsed as JSON (identity document, ``iam/info``, ...).

        Raises: as :meth:`get`, and :class:`~aioimds.IMDSResponseError` when it is not JSON.
        """
        return parse_json(await self.get(path), request_path(path))

    async def list(self, path: str = "") -> list[str]:
        """The entries of the listing at ``path``, as served (``"meta-data/"`` ->
        ``["ami-id", "placement/", ...]``); a ``/`` is appended when missing.

        Raises: as :meth:`get_bytes`, and :class:`~aioimds.IMDSResponseError` when the body is
        not a listing (not UTF-8, an HTML page).
        """
        req = request_path(path if path.endswith("/") or path == "" else path + "/")
        rec = await self._fetch(req)
        if rec.status == 404:
            raise IMDSNotFoundError("not found (404) on this instance", path=req, status=404)
        return parse_listing(rec.body, req)

    @overload
    async def dump(self, path: str = ..., *, concurrency: int = ...,
                   partial: Literal[False] = ..., attempts: int | None = ...,
                   progress: CrawlProgress | None = ...) -> Snapshot: ...

    @overload
    async def dump(self, path: str = ..., *, concurrency: int = ..., partial: Literal[True],
                   attempts: int | None = ...,
                   progress: CrawlProgress | None = ...) -> CrawlResult: ...

    async def dump(self, path: str = "", *, concurrency: int = DEFAULT_CONCURRENCY,
                   partial: bool = False, attempts: int | None = None,
                   progress: CrawlProgress | None = None) -> Snapshot | CrawlResult:
        """Crawl all of ``/latest/`` (meta-data, dynamic data, user-data) into a Snapshot.

        Args:
            path: the listing to start from, relative to ``latest/`` (default ``""``: all of
                ``/latest/``; ``"meta-data/iam"`` dumps that sub-tree; a ``/`` is appended).
            concurrency: most requests in flight (:data:`~aioimds.crawl.DEFAULT_CONCURRENCY`);
                lowered while the service throttles, raised again when it answers.
            partial: return a :class:`~aioimds.crawl.CrawlResult` (the snapshot of what
                succeeded and the failed paths) instead of raising.
            attempts: attempts per request; by default the larger of ``config.attempts`` and
                :data:`CRAWL_ATTEMPTS`.
            progress: updated in place as the crawl goes (for progress lines).

        Raises: :class:`~aioimds.IMDSCrawlError` naming every failed path (not with
        ``partial=True``); a listed entry answering 404 is recorded, not a failure.
        """
        self._open()
        root = request_path(path if path.endswith("/") or path == "" else path + "/")
        tries = attempts if attempts is not None else max(self.config.attempts, CRAWL_ATTEMPTS)
        limit = AdaptiveLimit(concurrency)

        # A partial, not a closure: one coroutine frame less on every request of the crawl.
        fetch = functools.partial(self._fetch, attempts=tries, limit=limit)
        reset = _DUMP.set((limit, tries))
        try:
            result = await crawl(fetch, concurrency=concurrency, root=root, progress=progress)
        finally:
            _DUMP.reset(reset)
        if partial:
            return result
        result.raise_for_failures()
        return result.snapshot


_DUMP: contextvars.ContextVar[tuple[AdaptiveLimit, int] | None] = contextvars.ContextVar(
    "aioimds_dump", default=None)
"""The pacing and attempts of the dump running in this context (its crawl workers inherit it)."""


def _count(stats: RequestStats, attempt: int, without_token: bool) -> None:
    stats.requests += 1
    stats.retries += attempt > 1
    stats.without_token += without_token


def _token_required(tokens: TokenSession, path: str) -> IMDSTokenError:
    """The error for a token-less GET answered 401: the service wants tokens after all."""
    why = tokens.fallback_reason
    tokens.invalidate(None)  # the next request tries the token PUT again
    message = "the service requires a token (401 without one) but "
    if why is None or isinstance(why, TimeoutError):
        return IMDSTokenTimeoutError(message + HOP_LIMIT_ADVICE, path=path, status=401)
    return IMDSTokenError(
        message + f"the token PUT answered {why.status}; check that the endpoint is an IMDS "
        "(a proxy or a path in the endpoint URL can refuse the PUT)", path=path, status=401)


def _parse_token(ans: Answer, asked: int) -> tuple[str, int]:
    try:
        token = ans.body.decode("ascii").strip()
    except UnicodeDecodeError:
        token = ""
    if not token or len(token) > 4096 or not all("!" <= c <= "~" for c in token):
        raise IMDSTokenError("the token PUT answered 200 with something that is not a token",
                             path=TOKEN_PATH, status=200)
    granted = asked
    ttl = (ans.ttl or "").strip()
    if ttl.isascii() and ttl.isdigit() and len(ttl) <= 6 and int(ttl) > 0:
        granted = int(ttl)
    return token, granted


def _delay(failure: IMDSError | Answer, attempt: int, rand: random.Random) -> float:
    if isinstance(failure, Answer) and failure.status == 429:
        after = retry.parse_retry_after(failure.retry_after)
        if after is not None:
            return after
    return retry.backoff(attempt, rand=rand.random)


def _describe(failure: IMDSError | Answer) -> str:
    return f"status {failure.status}" if isinstance(failure, Answer) else failure.message


def _status_error(ans: Answer, path: str) -> IMDSError:
    if ans.status == 429:
        return IMDSThrottledError(
            "throttled (429) on every attempt; lower the request rate or concurrency",
            path=path, status=429)
    if ans.status == 401:
        return IMDSHTTPError("the token was refused (401) again after a fresh token PUT",
                             path=path, status=401)
    what = "server error" if ans.status >= 500 else "unexpected status"
    return IMDSHTTPError(f"{what} ({ans.status}) after retries" if ans.status >= 500
                         else f"{what} {ans.status}", path=path, status=ans.status)
