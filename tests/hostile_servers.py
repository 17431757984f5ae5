"""Small purpose-built servers on 127.0.0.1 that misbehave the way a hostile or broken endpoint
does, for tests that try to break the client. Nothing here ever listens beyond loopback.

- :func:`http_server` runs an ``aiohttp.web`` handler and records every request it got.
- :func:`raw_server` runs a raw ``asyncio`` connection handler, for answers that are not
  valid HTTP or are cut off on purpose; its connection tasks are ended on exit.
- :class:`Scripted` is a small raw IMDS whose answers per path are scripted in turn (a status,
  a dropped connection, a held request), then normal.
- :func:`unanswered_port` is a loopback port whose connections get no answer at all, as an
  endpoint with no host behind it (a laptop, any host off EC2).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from aiohttp import web

TTL_H = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_H = "X-aws-ec2-metadata-token"
TOKEN_PATH = "/latest/api/token"
TOKEN = "hostile-token-7d3f0c2e9b1a"
"""The token the hostile servers hand out, so tests can look for it."""

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Seen(NamedTuple):
    """One request a hostile server received."""

    method: str
    path: str
    token: str | None


@dataclass
class Served:
    """A running hostile server: its URL and the requests it received."""

    url: str
    seen: list[Seen] = field(default_factory=list)

    def gets(self) -> list[str]:
        """The paths of every GET, in order."""
        return [s.path for s in self.seen if s.method == "GET"]


def token_answer() -> web.Response:
    """A well-formed token PUT answer handing out :data:`TOKEN` for 21600 s."""
    return web.Response(text=TOKEN, headers={TTL_H: "21600"})


@contextlib.asynccontextmanager
async def http_server(handler: Handler) -> AsyncIterator[Served]:
    """Serve ``handler`` on ``http://127.0.0.1:<free port>``; record every request."""
    served = Served("")

    async def recording(request: web.BaseRequest) -> web.StreamResponse:
        served.seen.append(Seen(request.method, request.raw_path, request.headers.get(TOKEN_H)))
        return await handler(request)

    runner = web.ServerRunner(web.Server(recording, access_log=None, handler_cancellation=True),
                              shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    served.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield served
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[str]:
    """Run ``handler(reader, writer)`` for each connection on 127.0.0.1; yield the URL.

    On exit the listener is closed and every connection still being handled is cancelled and
    awaited, so no task outlives the test.
    """
    tasks: set[asyncio.Task[None]] = set()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: that is what these servers provoke
        except asyncio.CancelledError:
            pass  # ended by raw_server's exit; ending quietly keeps asyncio from logging it
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@contextlib.contextmanager
def unanswered_port() -> Iterator[str]:
    """The URL of a loopback port whose TCP connects get no answer: a socket listening with a
    backlog of 0 whose one queue slot a connection that is never accepted takes, so the kernel
    drops every further SYN (Linux), the way a connect to a host that is not there hangs."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    host, port = listener.getsockname()
    filler = socket.create_connection((host, port), timeout=2)
    try:
        yield f"http://{host}:{port}"
    finally:
        filler.close()
        listener.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    """Read one request head (a raw server's requests carry no body): method, path, headers."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    first, *lines = head.split("\r\n")
    method, path, _ = first.split(" ", 2)
    headers = {}
    for line in lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, path, headers


def raw_token_answer() -> bytes:
    """:func:`token_answer` as raw bytes, for raw servers."""
    body = TOKEN.encode()
    return (f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"{TTL_H}: 21600\r\n\r\n").encode() + body


async def run_cli(*args: str, timeout: float = 30) -> tuple[int, bytes, bytes]:
    """``python -m aioimds ARGS`` as a child process, awaited without blocking the loop (so a
    server in this loop keeps answering it): exit status, stdout, stderr."""
    env = {**os.environ, "AWS_CONFIG_FILE": os.devnull}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioimds", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


Action = tuple[int, bytes] | str
"""A scripted answer: ``(status, body)``, ``"drop"`` (close without an answer) or ``"hold"``
(never answer)."""


@dataclass
class Scripted:
    """A raw IMDS for :func:`raw_server`: ``tree`` maps a GET path to its body (200; anything
    else 404); a PUT to the token path hands out ``token``. Each request to a path first takes
    the next action scripted for it (:meth:`add`), then gets the normal answer. With
    ``tokens_required`` a GET without the token is answered 401. Records (method, path, token
    header) of every request in ``seen``."""

    tree: dict[str, bytes]
    token: str = TOKEN
    tokens_required: bool = False
    script: dict[str, deque[Action]] = field(default_factory=dict)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)

    def add(self, path: str, *actions: Action) -> Scripted:
        """Script the next answers of ``path``, in order."""
        self.script.setdefault(path, deque()).extend(actions)
        return self

    def normal(self, method: str, path: str, token: str | None) -> tuple[int, bytes]:
        if method == "PUT" and path == TOKEN_PATH:
            return 200, self.token.encode()
        if self.tokens_required and token != self.token:
            return 401, b""
        if path in self.tree:
            return 200, self.tree[path]
        return 404, b"<title>404 - Not Found</title>"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one connection until the client closes it; the connection is closed on every
        way out (also when served by a bare ``asyncio.start_server``, not :func:`raw_server`),
        so no transport is left for the garbage collector to report."""
        try:
            while True:
                try:
                    method, path, headers = await read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the client closed the connection
                token = headers.get(TOKEN_H.lower())
                self.seen.append((method, path, token))
                queue = self.script.get(path)
                action = queue.popleft() if queue else self.normal(method, path, token)
                if action == "drop":
                    return
                if action == "hold":
                    await asyncio.sleep(3600)
                status, body = action if isinstance(action, tuple) else (500, b"")
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
                             f"Content-Type: text/plain\r\n{TTL_H}: 21600\r\n\r\n".encode()
                             + body)
                await writer.drain()
        finally:
            writer.close()

    def methods(self, path: str) -> list[str]:
        """The methods of every request to ``path``, in order."""
        return [m for m, p, _ in self.seen if p == path]
