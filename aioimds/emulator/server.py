"""The emulator: an IMDS server on ``aiohttp.web`` that serves a :class:`Snapshot`.

:class:`Emulator` is its public face: its settings, its lifecycle (``start``/``stop``,
``async with``, ``in_thread``) and what it reports (``url``, ``port``, ``requests``). It
answers as DESIGN.md section 4 describes (and the EC2 user guide's "Instance metadata
service" pages): IMDSv2 session tokens from ``PUT /latest/api/token``, 401 for unknown or
expired tokens, 404 with an XHTML body for any path the snapshot lacks, ``Server: EC2ws``. It
resolves a path as IMDS does (:mod:`aioimds.emulator.resolve`: trailing slashes either way,
repeated slashes, dated versions) and derives nothing else: a path is answered only when the
snapshot records it. Faults are injected from a mutable :class:`Faults`; every request is
counted in :class:`Counters` and recorded in :attr:`Emulator.requests`. How a request is
answered lives in :mod:`aioimds.emulator.answer`, how the tree is edited in
:mod:`aioimds.emulator.editing`.

It runs the low-level ``aiohttp.web.Server`` (no router, no middlewares, no access log), because
it is also the benchmark target.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Literal

from aiohttp import web
from aiohttp.web import RequestHandler

from .. import clock
from ..snapshot import Record
from .answer import LOGGER, Answering, RequestHook
from .editing import SnapshotSource, TreeEditing, load_snapshot
from .faults import Counters, Faults, TraceEntry
from .identity import DOCUMENT, IdentitySigner
from .resolve import PathResolver
from .schedule import Scheduler
from .thread import START_TIMEOUT, BackgroundLoop
from .throttle import Throttle
from .tokens import TokenStore

__all__ = ["Emulator"]

SHUTDOWN_TIMEOUT = 1.0
"""Seconds stop() lets aiohttp wait for a handler; ours finish at once once released."""

Tokens = Literal["required", "optional"]
InstanceMetadataTags = Literal["enabled", "disabled"]


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


class Emulator(TreeEditing, Answering):
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
            self._release_waiters()
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
