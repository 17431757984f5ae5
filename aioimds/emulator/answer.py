"""How the emulator answers a request: the handler behind its ``aiohttp.web.Server``.

:class:`Answering` is the part of :class:`~aioimds.emulator.Emulator` that turns a request into
an answer, as DESIGN.md section 4 describes: ``PUT /latest/api/token`` issues a session token,
GET and HEAD look the path up in the served tree (401 for a missing token when tokens are
required or for an unknown or expired one, 404 with the XHTML body for a path the snapshot
lacks), any other method is 405. On the way it injects the :class:`~aioimds.emulator.Faults`
(connection cap, drops, throttling, per-path faults, errors, latency and jitter), counts every
request in :class:`~aioimds.emulator.Counters` and records it in the request log.

The hot path is a dict lookup and one ``web.Response``: the emulator is also the benchmark
target.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping

from aiohttp import hdrs, web
from aiohttp.web import RequestHandler

from .. import clock
from ..snapshot import TEXT_PLAIN, Record
from ..wire import REDACTED
from .faults import Counters, Faults, PathFault, TraceEntry
from .resolve import PathResolver, without_instance_tags
from .throttle import Throttle
from .tokens import TokenStore, parse_ttl
from .wire import (
    SERVER,
    TOKEN_HEADER,
    TOKEN_PATH,
    TOKEN_PATH_VARIANT,
    TTL_HEADER,
    XFF_HEADER,
    canonical_path,
    error_body,
)

__all__ = ["LOGGER", "Answering", "RequestHook"]

LOGGER = logging.getLogger("aioimds.emulator")
"""aiohttp's server errors (malformed requests, answered 400 by aiohttp) and failed
``on_request`` hooks are logged here."""

RequestHook = Callable[[TraceEntry], None]
"""What ``on_request`` takes: called with each answered request's :class:`TraceEntry`."""

_TOKEN_HEADER_LOWER = TOKEN_HEADER.lower()
_DATA_ALLOW = {"Allow": "GET, HEAD"}
_TOKEN_ALLOW = {"Allow": "PUT"}


class _NoContentType(web.Response):
    """A response with no ``Content-Type`` header, which aiohttp would otherwise add
    (``application/octet-stream``) to any non-empty body."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self._headers.popall(hdrs.CONTENT_TYPE, None)


def _release(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


def _trace_entry(request: web.BaseRequest, status: int) -> TraceEntry:
    sent = request.headers
    headers = {k: REDACTED if k.lower() == _TOKEN_HEADER_LOWER else v for k, v in sent.items()}
    return TraceEntry(request.method, request.raw_path, status, TOKEN_HEADER in sent, headers)


def _call_hook(hook: RequestHook, entry: TraceEntry) -> None:
    try:
        hook(entry)
    except Exception:  # a broken hook must not break the answer
        LOGGER.exception("on_request hook failed for %s %s", entry.method, entry.path)


class Answering:
    """The request handling of :class:`~aioimds.emulator.Emulator` (its base class), which
    sets every attribute declared here."""

    faults: Faults
    counters: Counters
    latency: float
    on_request: RequestHook | None
    _responses: dict[str, Record]
    _resolver: PathResolver
    _store: TokenStore
    _throttle: Throttle
    _rng: random.Random
    _tokens_required: bool
    _tags_enabled: bool
    _stopping: bool
    _waiters: set[asyncio.Future[bool]]
    _admitted: int
    _excess: set[RequestHandler]
    _started_at: float
    _last_revocation: float

    # -- connections (max_connections) ----------------------------------------------------

    def _connection_made(self, handler: RequestHandler) -> None:
        cap = self.faults.max_connections
        if cap is not None and self._admitted >= cap:
            self._excess.add(handler)
        else:
            self._admitted += 1

    def _connection_lost(self, handler: RequestHandler) -> None:
        if handler in self._excess:
            self._excess.discard(handler)
        elif self._admitted > 0:
            self._admitted -= 1

    # -- request handling -----------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        counters = self.counters
        counters.in_flight += 1
        if counters.in_flight > counters.max_in_flight:
            counters.max_in_flight = counters.in_flight
        status = 0
        try:
            response = await self._answer(request)
            if response is None:
                # Closed without an answer; aiohttp's write then fails quietly.
                if request.transport is not None:
                    request.transport.close()
                return web.Response()
            status = response.status
            return response
        finally:
            counters.in_flight -= 1
            counters.requests[(request.method, status)] += 1
            hook = self.on_request
            if counters.trace_enabled or hook is not None:
                entry = _trace_entry(request, status)
                if counters.trace_enabled:
                    counters.trace.append(entry)
                if hook is not None:
                    _call_hook(hook, entry)

    async def _answer(self, request: web.BaseRequest) -> web.Response | None:
        """The answer to ``request``, or ``None`` to close the connection without one."""
        faults = self.faults
        method = request.method
        path = request.raw_path
        if "?" in path:
            path = path.partition("?")[0]
        if path == TOKEN_PATH and method == "PUT":
            self.counters.token_puts += 1
        if self._excess and request.protocol in self._excess:
            return None
        if faults.drop_rate and self._rng.random() < faults.drop_rate:
            return None
        if faults.throttle_rps is not None and not self._throttle.admit(
            faults.throttle_rps, clock.now(), shape=faults.throttle_shape,
            burst=faults.throttle_burst, window=faults.throttle_window,
            steps=faults.throttle_steps,
        ):
            if faults.throttle_drop:
                return None
            if faults.retry_after is None:
                return await self._error(429)
            return await self._error(429, {"Retry-After": f"{faults.retry_after:g}"})
        if path == TOKEN_PATH:
            if method == "PUT":
                return await self._put_token(request)
            return await self._error(405, _TOKEN_ALLOW)
        if method == "GET" or method == "HEAD":
            return await self._get(request, path)
        if method == "PUT" and TOKEN_PATH_VARIANT.fullmatch(path):
            return await self._error(403)
        return await self._error(405, _DATA_ALLOW)

    async def _put_token(self, request: web.BaseRequest) -> web.Response | None:
        faults = self.faults
        if faults.hold_token_put:
            await self._wait(None)
            return None
        if faults.token_put_status is not None:
            return await self._error(faults.token_put_status)
        if XFF_HEADER in request.headers:
            return await self._error(403)
        ttl = parse_ttl(request.headers.getall(TTL_HEADER, ()))
        if ttl is None:
            return await self._error(400)
        if faults.max_token_ttl is not None and ttl > faults.max_token_ttl:
            ttl = faults.max_token_ttl
        token = self._store.issue(ttl)
        return await self._send(200, token.encode("ascii"), TEXT_PLAIN, {TTL_HEADER: str(ttl)})

    async def _get(self, request: web.BaseRequest, path: str) -> web.Response | None:
        faults = self.faults
        token = request.headers.get(TOKEN_HEADER)
        if token is None:
            if self._tokens_required:
                return await self._error(401)
        else:
            if faults.revoke_every is not None:
                self._apply_revocations(faults.revoke_every)
            if not self._store.valid(token):
                return await self._error(401)
        responses = self._responses
        if path in responses:
            key = path
        else:
            key = self._resolver.resolve(responses, path) or canonical_path(path)
        if faults.path_faults:
            fault = self._path_fault(faults.path_faults, path, key)
            if fault is not None:
                fault.hits += 1
                if fault.delay > 0 and not await self._wait(fault.delay):
                    return None
                if fault.status is not None:
                    return await self._error(fault.status)
        if faults.error_rate and self._rng.random() < faults.error_rate:
            return await self._error(self._rng.choice((500, 503)))
        record = responses.get(key)
        if record is not None and not self._tags_enabled:
            record = without_instance_tags(key, record)
        if record is None:
            return await self._error(404)
        if record.status != 200 and not record.body:
            return await self._error(record.status)
        return await self._send(record.status, record.body, record.content_type)

    @staticmethod
    def _path_fault(faults: list[PathFault], path: str, key: str) -> PathFault | None:
        for fault in faults:
            if (fault.path == path or fault.path == key) and fault.hits < fault.count:
                return fault
        return None

    def _apply_revocations(self, every: float) -> None:
        # Revocations fall on start + k * every; apply the latest one not applied yet.
        since = clock.now() - self._started_at
        boundary = self._started_at + (since // every) * every
        if boundary > self._last_revocation:
            self._store.revoke_all()
            self._last_revocation = boundary

    async def _error(
        self, status: int, headers: Mapping[str, str] | None = None
    ) -> web.Response | None:
        return await self._send(status, error_body(status), "text/html", headers)

    async def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response | None:
        """The response, after the configured latency; ``None`` when stopped meanwhile."""
        faults = self.faults
        delay = self.latency + faults.latency
        if faults.jitter:
            delay += self._rng.uniform(0.0, faults.jitter)
        if delay > 0 and not await self._wait(delay):
            return None
        if content_type:
            response = web.Response(
                body=body, status=status, headers={"Content-Type": content_type, "Server": SERVER}
            )
        else:  # recorded as served without one (snapshot format: "content_type": "")
            response = _NoContentType(body=body, status=status, headers={"Server": SERVER})
        if headers:
            response.headers.update(headers)
        return response

    async def _wait(self, delay: float | None) -> bool:
        """Sleep ``delay`` seconds (forever if ``None``); False if the emulator stopped first."""
        if self._stopping:
            return False
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        timer = None if delay is None else loop.call_later(delay, _release, waiter, True)
        self._waiters.add(waiter)
        try:
            return await waiter
        finally:
            self._waiters.discard(waiter)
            if timer is not None:
                timer.cancel()

    def _release_waiters(self) -> None:
        """Wake every request held or delayed in :meth:`_wait`, which then closes without an
        answer (``stop`` calls it)."""
        for waiter in list(self._waiters):
            _release(waiter, False)
