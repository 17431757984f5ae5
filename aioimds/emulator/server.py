"""The emulator: an IMDS server on ``aiohttp.web`` that serves a :class:`Snapshot`.

It answers as DESIGN.md section 4 describes (and the EC2 user guide's "Instance metadata
service" pages): IMDSv2 session tokens from ``PUT /latest/api/token``, 401 for unknown or
expired tokens, 404 with an XHTML body for any path the snapshot lacks, ``Server: EC2ws``. It
resolves a path as IMDS does (:mod:`aioimds.emulator.resolve`: trailing slashes either way,
repeated slashes, dated versions) and derives nothing else: a path is answered only when the
snapshot records it. Faults are injected from a mutable :class:`Faults`; every request is
counted in :class:`Counters` and recorded in :attr:`Emulator.requests`.

It runs the low-level ``aiohttp.web.Server`` (no router, no middlewares, no access log), because
it is also the benchmark target: the hot path is a dict lookup and one ``web.Response``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Literal

from aiohttp import hdrs, web
from aiohttp.web import RequestHandler

from .. import clock
from ..snapshot import TEXT_PLAIN, Record
from ..wire import REDACTED
from .editing import SnapshotSource, TreeEditing, load_snapshot
from .faults import Counters, Faults, PathFault, TraceEntry
from .identity import DOCUMENT, IdentitySigner
from .resolve import PathResolver, without_instance_tags
from .schedule import Scheduler
from .thread import START_TIMEOUT, BackgroundLoop
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

__all__ = ["Emulator"]

SHUTDOWN_TIMEOUT = 1.0
"""Seconds stop() lets aiohttp wait for a handler; ours finish at once once released."""

LOGGER = logging.getLogger("aioimds.emulator")
"""aiohttp's server errors (malformed requests, answered 400 by aiohttp) are logged here."""

Tokens = Literal["required", "optional"]
InstanceMetadataTags = Literal["enabled", "disabled"]
RequestHook = Callable[[TraceEntry], None]

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


class _Server(web.Server):
    """``web.Server`` that tells the emulator when connections open and close."""

    def __init__(self, emulator: Emulator, **kwargs: Any) -> None:
        super().__init__(emulator._handle, **kwargs)
        self._emulator = emulator

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._emulator._connection_made(handler)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self._emulator._connection_lost(handler)


class Emulator(TreeEditing):
    """A faithful IMDS on loopback serving a snapshot, with fault injection.

    ``async with Emulator() as emu:`` serves :func:`default_snapshot` on
    ``http://127.0.0.1:<free port>`` with IMDSv2 tokens required; ``emu.url`` is the endpoint.

    A path is looked up as requested (raw, query string ignored), then in its canonical
    percent-encoding (:func:`~aioimds.emulator.wire.canonical_path`), then as real IMDS
    resolves it (:class:`~aioimds.emulator.resolve.PathResolver`): a leaf asked with a
    trailing slash, a listing asked without one, repeated slashes, and every dated version
    that ``/`` lists (served from the ``latest`` records unless the snapshot holds that
    version's own paths). Anything else is 404. A recorded error status with an empty body
    (``{"status": 404}``) is answered with the XHTML error body, as IMDS would; a recorded body
    is always served byte for byte.

    Editing the tree (:meth:`set_leaf`, :meth:`set_response`, :meth:`remove`) keeps parent
    listings in step, as :mod:`aioimds.emulator.listings` describes.

    Synchronous code (boto3, requests, a ``TestClient``) must not call an emulator serving on
    its own thread's loop: use ``with Emulator().in_thread() as emu:`` (:meth:`in_thread`).

    Args:
        snapshot: the tree to serve: a :class:`Snapshot`, or the path of an
            ``imds-snapshot/1`` file (default: :func:`default_snapshot`). Raises
            :class:`~aioimds.snapshot.SnapshotFormatError` or :class:`OSError` for a bad file.
        host: address to listen on (default ``127.0.0.1``; ``::1`` gives ``http://[::1]:PORT``).
        port: TCP port; 0 (default) picks a free one.
        tokens: ``"required"`` (default: IMDSv2 only, GET without a token is 401) or
            ``"optional"`` (IMDSv1 also served). ``"required"`` is the instance setting
            "IMDSv2 required" (``HttpTokens=required`` in ``modify-instance-metadata-options``):
            every token-less GET and HEAD, whatever the path, answers 401.
        instance_metadata_tags: ``"enabled"`` (default: ``meta-data/tags/`` served as the
            snapshot records it) or ``"disabled"`` (the instance setting
            ``InstanceMetadataTags=disabled``: everything under ``meta-data/tags/`` answers 404
            and ``meta-data/`` does not list ``tags/``, in every version).
        latency: seconds added before every answer (default 0.0).
        faults: the :class:`Faults` to inject (default: none); ``emu.faults`` stays mutable.
        seed: seed of the emulator's own ``random.Random`` (error, drop and jitter draws), for
            repeatable runs. Tokens always come from :mod:`secrets`.
        sign_identity: sign the identity document at start and whenever it is set, serving
            ``dynamic/instance-identity/signature`` to verify with
            :attr:`identity_certificate` (default False: the snapshot is served as it is;
            needs ``cryptography``, see :mod:`aioimds.emulator.identity`).
        on_request: called with each request's :class:`TraceEntry` when it has been answered
            (on the emulator's loop; keep it quick; an exception it raises is logged, not
            raised); ``aioimds serve -v`` prints one line per request with it. Settable.
    """

    def __init__(
        self,
        snapshot: SnapshotSource | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Tokens = "required",
        instance_metadata_tags: InstanceMetadataTags = "enabled",
        latency: float = 0.0,
        faults: Faults | None = None,
        seed: int | None = None,
        sign_identity: bool = False,
        on_request: RequestHook | None = None,
    ) -> None:
        self._responses: dict[str, Record] = load_snapshot(snapshot)
        self._resolver = PathResolver()
        self.host = host
        self._bind_port = port
        self.tokens = tokens
        self.instance_metadata_tags = instance_metadata_tags
        self.on_request = on_request
        self._background: BackgroundLoop | None = None
        if not latency >= 0:
            raise ValueError("latency must be >= 0 seconds")
        self.latency = latency
        self.faults = faults if faults is not None else Faults()
        self.counters = Counters()
        self._rng = random.Random(seed)
        self._store = TokenStore()
        self._throttle = Throttle()
        self._runner: web.ServerRunner | None = None
        self._url: str | None = None
        self._port: int | None = None
        self._stopping = False
        self._waiters: set[asyncio.Future[bool]] = set()
        self._admitted = 0
        self._excess: set[RequestHandler] = set()
        self._started_at = 0.0
        self._last_revocation = 0.0
        self.sign_identity = sign_identity
        self._signer: IdentitySigner | None = None
        self._schedule = Scheduler(self)

    # -- public surface -------------------------------------------------------------------

    @property
    def tokens(self) -> Tokens:
        """``"required"`` (IMDSv2 only) or ``"optional"`` (IMDSv1 served too); settable."""
        return "required" if self._tokens_required else "optional"

    @tokens.setter
    def tokens(self, value: Tokens) -> None:
        if value not in ("required", "optional"):
            raise ValueError(f'tokens must be "required" or "optional", not {value!r}')
        self._tokens_required = value == "required"

    @property
    def instance_metadata_tags(self) -> InstanceMetadataTags:
        """``"enabled"`` (tags served) or ``"disabled"`` (``meta-data/tags/`` 404); settable."""
        return "enabled" if self._tags_enabled else "disabled"

    @instance_metadata_tags.setter
    def instance_metadata_tags(self, value: InstanceMetadataTags) -> None:
        if value not in ("enabled", "disabled"):
            raise ValueError(
                f'instance_metadata_tags must be "enabled" or "disabled", not {value!r}')
        self._tags_enabled = value == "enabled"

    @property
    def requests(self) -> list[TraceEntry]:
        """The request log: every request as a :class:`TraceEntry` (method, raw path, status,
        whether a token was sent, headers with the token redacted), in order of completion.

        The same list as ``counters.trace``: cleared by ``counters.reset()``, not recorded
        while ``counters.trace_enabled`` is False."""
        return self.counters.trace

    @property
    def url(self) -> str:
        """The endpoint, ``http://127.0.0.1:PORT`` (``http://[::1]:PORT``); after start."""
        if self._url is None:
            raise RuntimeError("the emulator is not running: use start() or async with")
        return self._url

    @property
    def port(self) -> int:
        """The TCP port listened on; after start."""
        if self._port is None:
            raise RuntimeError("the emulator is not running: use start() or async with")
        return self._port

    @property
    def identity_certificate(self) -> str | None:
        """The PEM certificate verifying the served identity document's signature, when
        ``sign_identity`` is on and the emulator has started; else ``None``."""
        return self._signer.certificate if self._signer is not None else None

    async def start(self) -> str:
        """Listen on ``host``:``port`` and return :attr:`url`."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        if self.sign_identity and self._signer is None:
            self._signer = await asyncio.to_thread(IdentitySigner)  # RSA keygen: off the loop
        self._sign_identity_document(DOCUMENT)
        server = _Server(self, access_log=None, handler_cancellation=True, logger=LOGGER)
        runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._bind_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = int(runner.addresses[0][1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._port, self._url = port, f"http://{host}:{port}"
        self._started_at = self._last_revocation = clock.now()
        return self._url

    async def stop(self) -> None:
        """Cancel scheduled changes, release held and delayed requests (closing their
        connections) and stop listening."""
        runner, self._runner = self._runner, None
        self._schedule.cancel()
        if runner is None:
            return
        self._stopping = True
        try:
            for waiter in list(self._waiters):
                _release(waiter, False)
            await runner.cleanup()
            await asyncio.sleep(0)  # let aiohttp's cancelled connection tasks finish
        finally:
            self._stopping = False
            self._url = self._port = None
            self._admitted = 0
            self._excess.clear()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[Emulator]:
        """Serve on an event loop of its own in a background thread, for synchronous code.

        ``with Emulator().in_thread() as emu:`` starts the emulator (``emu.url`` is set once
        the block is entered) and stops it, and the thread, when the block ends. A blocking
        call (botocore, boto3, requests, urllib3, Starlette's ``TestClient``) can then reach
        it from the calling thread, or from any other. Editing methods (``set_leaf``,
        ``set_response``, ``remove``, ``set_snapshot``, ``revoke_tokens``, ``schedule_*``,
        ``rotate_credentials``) called from another thread run on the emulator's loop and
        return once applied; ``faults``, ``tokens`` and ``instance_metadata_tags`` may be set
        from any thread; ``requests`` and ``counters`` may be read from any thread.

        Raises RuntimeError when the emulator is already running, :class:`OSError` when it
        cannot listen, and :class:`TimeoutError` when it has not started within
        :data:`~aioimds.emulator.thread.START_TIMEOUT` seconds.
        """
        if self._runner is not None or self._background is not None:
            raise RuntimeError("the emulator is already running")
        background = BackgroundLoop()
        try:
            background.run(self.start(), START_TIMEOUT)
        except BaseException:
            background.close()
            raise
        self._background = background
        try:
            yield self
        finally:
            try:
                background.run(self.stop())
            finally:
                self._background = None
                background.close()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        where = self._url or "not running"
        return f"<Emulator {where} tokens={self.tokens} {len(self._responses)} responses>"

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
