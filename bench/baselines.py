"""What aioimds is measured against: the crawls and loops other tools (or a bare script) run.

- :func:`sequential_crawl`: one request at a time, a fresh connection per request, as Ansible's
  ``ec2_metadata_facts`` (``open_url``), cloud-init, Salt and Facter walk IMDS (urllib here).
- :func:`bare_crawl`: the fastest honest script on aiohttp: one session, one token, every
  listing's children fetched with ``asyncio.gather`` under a semaphore of the same concurrency,
  and no checks, retries or records beyond a ``path -> body`` dict.
- :func:`raw_gets`: the same leaf fetched ``count`` times with plain ``session.get``.

All three walk the tree by the rules aioimds follows (``/`` ends a listing, ``public-keys/``
lists ``N=name`` for ``N/``, ``/latest/`` lists ``meta-data`` and ``dynamic`` without a slash),
so every crawl requests the same paths; the runner checks the counts.
"""

from __future__ import annotations

import asyncio
import http.client
import random
import time
import urllib.error
import urllib.request
from collections import Counter
from urllib.parse import quote

import aiohttp

from .common import timed_workers

__all__ = ["bare_crawl", "child_path", "raw_gets", "sequential_crawl"]

ROOT = "/latest/"
TOKEN_PATH = "/latest/api/token"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TTL = "21600"
"""Seconds asked for, as every SDK asks."""
SAFE = "!$&'()*+,;=:@-._~"
"""RFC 3986 pchars kept unencoded, as aioimds encodes entry names."""
PUBLIC_KEYS = "/latest/meta-data/public-keys/"
URLLIB_TIMEOUT = 5.0
"""Seconds per urllib request: generous, the emulator is on loopback."""
RETRY_BASE = 0.05
"""Seconds: the retrying sequential crawl's first backoff ceiling (as aioimds' own)."""
RETRY_CAP = 1.0
"""Seconds: its largest backoff ceiling."""
RETRY_PATIENCE = 120.0
"""Seconds the retrying sequential crawl keeps retrying one request."""


def child_path(listing: str, entry: str) -> str:
    """The request path of ``entry`` in ``listing`` (the rules in the module docstring)."""
    name, is_dir = (entry[:-1], True) if entry.endswith("/") else (entry, False)
    if listing == PUBLIC_KEYS and "=" in name:
        name, is_dir = name.split("=", 1)[0], True
    if listing == ROOT and name in ("meta-data", "dynamic"):
        is_dir = True
    return listing + quote(name, safe=SAFE) + ("/" if is_dir else "")


def _entries(body: bytes) -> list[str]:
    return [line for line in body.decode("utf-8").split("\n") if line]


def sequential_crawl(base_url: str, *, retry: bool = False,
                     seen: Counter[str] | None = None) -> dict[str, bytes]:
    """Walk the tree depth-first, one urllib request (and one new connection) at a time.

    Returns ``path -> body`` of every 200 answer (a 404 leaf maps to ``b""``). With ``retry``,
    a 429 or a connection closed without an answer is retried after an exponential backoff
    with full jitter (:data:`RETRY_BASE` doubling to :data:`RETRY_CAP`), for up to
    :data:`RETRY_PATIENCE` seconds, as a careful script would; ``seen`` counts ``"429"``,
    ``"drop"`` and ``"ok"`` attempts.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    counts: Counter[str] = Counter() if seen is None else seen

    def once(method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        req = urllib.request.Request(base_url + path, method=method, headers=headers)
        try:
            with opener.open(req, timeout=URLLIB_TIMEOUT) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()

    def call(method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        start = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                status, body = once(method, path, headers)
            except (urllib.error.URLError, http.client.HTTPException, OSError):
                if not retry or time.monotonic() - start > RETRY_PATIENCE:
                    raise
                counts["drop"] += 1
            else:
                if status != 429 or not retry or time.monotonic() - start > RETRY_PATIENCE:
                    counts["429" if status == 429 else "ok"] += 1
                    return status, body
                counts["429"] += 1
            time.sleep(random.uniform(0, min(RETRY_CAP, RETRY_BASE * 2 ** (attempt - 1))))

    status, token = call("PUT", TOKEN_PATH, {TTL_HEADER: TTL})
    if status != 200:
        raise RuntimeError(f"token PUT answered {status}")
    headers = {TOKEN_HEADER: token.decode("ascii")}
    out: dict[str, bytes] = {}
    stack = [ROOT]
    while stack:
        path = stack.pop()
        status, body = call("GET", path, headers)
        if status not in (200, 404):
            raise RuntimeError(f"GET {path} answered {status}")
        out[path] = body if status == 200 else b""
        if status == 200 and path.endswith("/"):
            stack.extend(child_path(path, e) for e in reversed(_entries(body)))
    return out


async def bare_crawl(session: aiohttp.ClientSession, base_url: str,
                     concurrency: int) -> dict[str, bytes]:
    """Walk the tree with one token, ``gather`` per listing and a semaphore of ``concurrency``.

    Returns ``path -> body`` as :func:`sequential_crawl` does.
    """
    async with session.put(base_url + TOKEN_PATH, headers={TTL_HEADER: TTL}) as resp:
        headers = {TOKEN_HEADER: await resp.text()}
    gate = asyncio.Semaphore(concurrency)
    out: dict[str, bytes] = {}

    async def visit(path: str) -> None:
        async with gate, session.get(base_url + path, headers=headers) as resp:
            body = await resp.read()
            status = resp.status
        out[path] = body if status == 200 else b""
        if status == 200 and path.endswith("/"):
            await asyncio.gather(*(visit(child_path(path, e)) for e in _entries(body)))

    await visit(ROOT)
    return out


async def raw_gets(session: aiohttp.ClientSession, base_url: str, path: str, count: int,
                   concurrency: int) -> float:
    """Seconds for ``count`` GETs of ``path``, ``concurrency`` at a time, with ``session.get``
    and ``read()`` only; untimed before: the token PUT and one round opening every connection."""
    async with session.put(base_url + TOKEN_PATH, headers={TTL_HEADER: TTL}) as resp:
        headers = {TOKEN_HEADER: await resp.text()}
    url = base_url + path

    async def worker(n: int) -> None:
        for _ in range(n):
            async with session.get(url, headers=headers) as resp:
                await resp.read()

    return await timed_workers(worker, count, concurrency)
