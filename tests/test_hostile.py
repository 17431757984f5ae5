"""Hostile and broken endpoints: the client must not hang, follow, leak or hand back wrong data.

Every server here is a small aiohttp or raw asyncio server on 127.0.0.1 (tests/hostile_servers.py).
Each test says in a comment how it was checked to fail on a client without the protection: the
library was mutated from outside (a ``sitecustomize.py`` on ``PYTHONPATH`` patching aiohttp or
aioimds, so the CLI subprocesses are mutated too), the test run and seen to fail, and the
mutation removed; the library files were never edited for these checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import time
import tracemalloc
from collections import Counter
from urllib.parse import unquote

import pytest
from aiohttp import web
from conftest import TICK
from hostile_servers import (
    TOKEN_PATH,
    http_server,
    raw_server,
    raw_token_answer,
    read_request,
    run_cli,
    token_answer,
)

from aioimds import (
    IMDSClient,
    IMDSConnectionError,
    IMDSCrawlError,
    IMDSHTTPError,
    IMDSResponseError,
    IMDSTimeoutError,
    IMDSTokenError,
    Record,
    Snapshot,
)
from aioimds.emulator import Emulator, default_snapshot
from aioimds.retry import BACKOFF_BASE
from aioimds.speculate import START

LEAF = "/latest/meta-data/instance-id"
GUARD = 10.0
"""Seconds after which a test gives up on a client that hangs (the failure it looks for)."""


# -- redirects ---------------------------------------------------------------------------------
# Checked by a sitecustomize forcing allow_redirects=True in aiohttp.ClientSession._request:
# every case fails, the second server sees the GET (or PUT) with the token header.


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_never_followed_and_the_token_goes_nowhere_else(status: int) -> None:
    async def nowhere(request: web.BaseRequest) -> web.Response:
        return web.Response(text="stolen")

    async with http_server(nowhere) as elsewhere:
        async def hostile(request: web.BaseRequest) -> web.Response:
            if request.method == "PUT":
                return token_answer()
            return web.Response(status=status, headers={"Location": elsewhere.url + "/steal"})

        async with http_server(hostile) as server, IMDSClient(endpoint=server.url) as imds:
            with pytest.raises(IMDSResponseError, match="redirect") as info:
                await imds.get("meta-data/instance-id")
            result = await imds.dump(partial=True, speculate=False)
            assert (info.value.path, info.value.status) == (LEAF, status)
            assert list(result.failures) == ["/latest/"] and len(result.snapshot) == 0
            assert server.gets() == [LEAF, "/latest/"]  # not retried either
            guessed = await imds.dump(partial=True)  # guesses are redirected, not retried
        assert list(guessed.failures) == ["/latest/"] and len(guessed.snapshot) == 0
        assert Counter(server.gets()[2:]).most_common(1)[0][1] == 1
        assert elsewhere.seen == []


@pytest.mark.parametrize("status", [302, 307, 308])
async def test_a_redirected_token_put_is_not_followed(status: int) -> None:
    async with http_server(_tokens_only) as elsewhere:
        async def hostile(request: web.BaseRequest) -> web.Response:
            return web.Response(status=status, headers={"Location": elsewhere.url + TOKEN_PATH})

        async with http_server(hostile) as server, IMDSClient(endpoint=server.url) as imds:
            with pytest.raises(IMDSResponseError, match="redirect"):
                await imds.get("meta-data/instance-id")
        assert [s.method for s in server.seen] == ["PUT"]
        assert elsewhere.seen == []


async def _tokens_only(request: web.BaseRequest) -> web.Response:
    return token_answer()


# -- bodies over the size cap ------------------------------------------------------------------
# Checked by a sitecustomize setting aioimds.transport.Transport._read to ``resp.read()`` (no
# cap): "declared" and "chunked-endless" fail with IMDSTimeoutError after reading for the whole
# timeout (gigabytes), "declared-honest" fails with no error raised.

CAP = 64 * 1024


async def _endless(request: web.BaseRequest, declared: str | None) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": declared} if declared else None)
    if declared is None:
        response.enable_chunked_encoding()
    await response.prepare(request)
    chunk = b"x" * 65536
    with contextlib.suppress(ConnectionError):  # until the client hangs up
        while True:
            await response.write(chunk)
    return response


async def _honest(request: web.BaseRequest, size: int) -> web.Response:
    return web.Response(body=b"y" * size)


BIG_BODIES = [
    ("declared", lambda r: _endless(r, str(10**12))),
    ("chunked-endless", lambda r: _endless(r, None)),
    ("declared-honest", lambda r: _honest(r, CAP + 1)),
]


@pytest.mark.parametrize("serve", [c[1] for c in BIG_BODIES], ids=[c[0] for c in BIG_BODIES])
async def test_a_body_over_the_cap_is_refused_with_bounded_memory(serve) -> None:
    async def hostile(request: web.BaseRequest) -> web.StreamResponse:
        return token_answer() if request.method == "PUT" else await serve(request)

    async with http_server(hostile) as server:
        async with IMDSClient(endpoint=server.url, max_body=CAP, timeout=3) as imds:
            tracemalloc.start()
            try:
                start = time.monotonic()
                with pytest.raises(IMDSResponseError, match=f"cap of {CAP} bytes") as info:
                    await asyncio.wait_for(imds.get_bytes("meta-data/instance-id"), GUARD)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert info.value.path == LEAF and time.monotonic() - start < 2.0
    assert peak < 16 * CAP, peak  # a few buffers of the cap, not the body
    assert server.gets() == [LEAF]  # refused at once, not retried


# -- answers that never finish -----------------------------------------------------------------
# Checked by a sitecustomize making transport.py's aiohttp.ClientTimeout(total=T) a
# ClientTimeout(sock_read=T) (a per-read timeout, as many clients use): all three rows hang
# until the GUARD and fail with TimeoutError instead of IMDSTimeoutError.


def _trickle(head: bytes, body: bytes):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            method, _, _ = await read_request(reader)
            if method == "PUT":
                writer.write(raw_token_answer())
                continue
            for byte in head + body * 10**6:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.02)
    return handler


TRICKLES = [
    ("body-with-length", _trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b"a")),
    ("chunked-body", _trickle(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                              b"1\r\na\r\n")),
    ("headers", _trickle(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a")),
]


@pytest.mark.usefixtures("virtual_time")
@pytest.mark.parametrize("handler", [c[1] for c in TRICKLES], ids=[c[0] for c in TRICKLES])
async def test_a_body_that_trickles_forever_times_out_within_timeout_times_attempts(
    handler,
) -> None:
    timeout, attempts = 0.3, 2
    async with raw_server(handler) as url, IMDSClient(
        endpoint=url, timeout=timeout, attempts=attempts
    ) as imds:
        await imds._open()[1].get()  # the PUT is answered at once: time only the GET
        start = asyncio.get_running_loop().time()
        with pytest.raises(IMDSTimeoutError) as info:
            await asyncio.wait_for(imds.get("meta-data/instance-id"), GUARD)
        elapsed = asyncio.get_running_loop().time() - start
    assert info.value.path == LEAF
    assert timeout * attempts - TICK <= elapsed < timeout * attempts + BACKOFF_BASE + 0.3


# -- answers that are not IMDS -----------------------------------------------------------------
# Checked by a sitecustomize making parse_listing (in paths, crawl, client, render) split any
# body with no UTF-8 or HTML check: every "put-refused" row fails (lines such as '<html>' are
# requested; the "portal-answers-put" rows fail earlier, on the token) and the UTF-8 test
# fails. The "comment-first" and "head-first" rows also failed on the library as it was (only
# <!doctype, <html and <?xml were recognised): the fix is in paths.parse_listing.

PORTAL_PAGES = [
    ("doctype", b"<!DOCTYPE html>\n<html><body>Sign in to the Wi-Fi</body></html>\n"),
    ("html", b"<html>\n<head><title>Portal</title></head>\n</html>"),
    ("comment-first", b"<!-- captive portal -->\n<html>\n<meta charset=utf-8>\n</html>\n"),
    ("head-first", b"\n  <head>\n<meta http-equiv=refresh content=0>\n</head>\n"),
    ("xml", b"<?xml version='1.0'?>\n<portal>login</portal>\n"),
]


@pytest.mark.parametrize("page", [c[1] for c in PORTAL_PAGES], ids=[c[0] for c in PORTAL_PAGES])
@pytest.mark.parametrize("put_status", [200, 405], ids=["portal-answers-put", "put-refused"])
async def test_a_captive_portal_page_fails_the_dump_naming_the_path(
    page: bytes, put_status: int
) -> None:
    async def portal(request: web.BaseRequest) -> web.Response:
        return web.Response(body=page, status=put_status if request.method == "PUT" else 200,
                            content_type="text/html")

    async with http_server(portal) as server, IMDSClient(endpoint=server.url) as imds:
        with pytest.raises(IMDSCrawlError) as info:
            await imds.dump()
        with pytest.raises((IMDSResponseError, IMDSTokenError)):
            await imds.list("meta-data/")
    assert list(info.value.failures) == ["/latest/"]
    assert len(info.value.partial) == 0  # type: ignore[arg-type]
    # No garbage followed: only listed paths and the catalogue's first guesses are asked.
    assert set(server.gets()) <= {"/latest/", "/latest/meta-data/", *FIRST_GUESSES}


FIRST_GUESSES = {"/latest/" + rel for rel in START}
"""What a dump asks for before any listing arrives (aioimds.speculate)."""


def _tree(**listings: bytes) -> Snapshot:
    base = {
        "/latest/": Record(b"meta-data"),
        "/latest/meta-data/": Record(b"a\nsub/\nother/"),
        "/latest/meta-data/a": Record(b"A"),
        "/latest/meta-data/sub/": Record(b"b"),
        "/latest/meta-data/sub/b": Record(b"B"),
        "/latest/meta-data/other/": Record(b"c"),
        "/latest/meta-data/other/c": Record(b"C"),
    }
    base.update({k: Record(v) for k, v in listings.items()})
    return Snapshot(base)


async def test_a_listing_that_is_not_utf8_fails_naming_it_and_the_rest_is_kept() -> None:
    tree = _tree(**{"/latest/meta-data/sub/": b"b\n\xff\xfe\xc3("})
    async with Emulator(tree) as emu, IMDSClient(endpoint=emu.url) as imds:
        result = await imds.dump(partial=True)
        with pytest.raises(IMDSResponseError, match="UTF-8") as info:
            await imds.list("meta-data/sub/")
    assert info.value.path == "/latest/meta-data/sub/"
    assert list(result.failures) == ["/latest/meta-data/sub/"]
    assert result.snapshot == Snapshot(
        {k: v for k, v in tree.items() if not k.startswith("/latest/meta-data/sub/")},
        failures={"/latest/meta-data/sub/": result.failures["/latest/meta-data/sub/"].message})
    assert "UTF-8" in result.snapshot.failures["/latest/meta-data/sub/"]


async def test_duplicate_entries_are_fetched_once_and_the_dump_equals_the_tree() -> None:
    tree = _tree(**{"/latest/meta-data/": b"a\na\nsub/\nother/\nsub/\na",
                    "/latest/meta-data/sub/": b"b\nb\nb"})
    async with Emulator(tree) as emu, IMDSClient(endpoint=emu.url) as imds:
        assert await imds.dump() == tree
    gets = [t.path for t in emu.counters.trace if t.method == "GET"]
    assert sorted(gets) == sorted(set(gets))  # each path once, listed or guessed
    assert set(tree) <= set(gets) <= set(tree) | FIRST_GUESSES


# -- entries that would lead out of the listing ------------------------------------------------
# Checked by a sitecustomize making the crawl's child_path return listing + entry unencoded
# (no checks): the five refused rows fail; the server sees paths such as /latest/meta-data/..
# that leave the listing.

UPWARD = [
    ("dotdot", "..", True),
    ("dotdot-slash", "../", True),
    ("climb", "a/../..", True),
    ("absolute", "/etc/passwd", True),
    ("dot", "./", True),
    ("encoded-dotdot", "%2e%2e/", False),
    ("backslashes", "..\\..\\etc", False),
    ("query", "?x=..%2F..#f", False),
]


@pytest.mark.parametrize(("entry", "refused"), [c[1:] for c in UPWARD], ids=[c[0] for c in UPWARD])
async def test_an_entry_leading_back_up_the_tree_never_leaves_the_listing(
    entry: str, refused: bool
) -> None:
    async def hostile(request: web.BaseRequest) -> web.Response:
        if request.method == "PUT":
            return token_answer()
        if request.raw_path == "/latest/":
            return web.Response(text="meta-data")
        if request.raw_path == "/latest/meta-data/":
            return web.Response(text=f"ok\n{entry}")
        if request.raw_path == "/latest/meta-data/ok":
            return web.Response(text="fine")
        return web.Response(status=404)

    async with http_server(hostile) as server, IMDSClient(endpoint=server.url) as imds:
        result = await imds.dump(partial=True)
    for path in server.gets():
        normalised = posixpath.normpath(unquote(path.partition("?")[0]))
        assert normalised == "/latest" or normalised.startswith("/latest/"), path
        assert "?" not in path and "/../" not in path and "/./" not in path, path
    if refused:  # skipped with a warning; the listing and its sibling are kept
        assert result.complete and result.skipped == {"/latest/meta-data/": [entry]}
        assert result.snapshot["/latest/meta-data/ok"].body == b"fine"
    else:
        assert result.complete


# -- a 401 storm -------------------------------------------------------------------------------
# Checked by a sitecustomize making IMDSClient._fetch never set ``refreshed`` (a new token on
# every 401): the CLI never exits and the test fails at its 15 s timeout.


async def test_a_401_storm_makes_bounded_token_puts_and_the_cli_exits_1_naming_the_path() -> None:
    async def storm(request: web.BaseRequest) -> web.Response:
        if request.method == "PUT":
            return web.Response(text=f"fresh-{time.monotonic_ns()}", headers={
                "X-aws-ec2-metadata-token-ttl-seconds": "21600"})
        return web.Response(status=401, text="<html>401</html>", content_type="text/html")

    async with http_server(storm) as server:
        code, out, err = await run_cli("--endpoint", server.url, "get", "meta-data/instance-id",
                                       timeout=15)
        cli_seen = [s.method for s in server.seen]
        del server.seen[:]
        async with IMDSClient(endpoint=server.url) as imds:
            results = await asyncio.gather(
                *(imds.get("meta-data/instance-id") for _ in range(50)), return_exceptions=True)
    assert code == 1, err
    assert out == b"" and b"Traceback" not in err
    assert LEAF.encode() in err and b"401" in err
    assert cli_seen == ["PUT", "GET", "PUT", "GET"]  # one fresh token, one retry, then done
    assert all(isinstance(r, IMDSHTTPError) and r.status == 401 for r in results)
    assert sum(s.method == "PUT" for s in server.seen) <= 2 * 50


# -- connections cut off -----------------------------------------------------------------------
# Checked by a sitecustomize making aiohttp's ClientResponse.read and StreamReader.iter_any
# swallow ClientPayloadError (returning b"partial" / ending the stream): both rows fail, a
# truncated body comes back as the value.


def _cut(head: bytes):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            method, _, _ = await read_request(reader)
            if method == "PUT":
                writer.write(raw_token_answer())
                continue
            writer.write(head + b"partial")
            await writer.drain()
            writer.transport.abort()  # a reset, mid-body
            return
    return handler


CUTS = [
    ("content-length", _cut(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")),
    ("chunked", _cut(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n")),
]


@pytest.mark.usefixtures("virtual_time")
@pytest.mark.parametrize("handler", [c[1] for c in CUTS], ids=[c[0] for c in CUTS])
async def test_a_reset_in_the_middle_of_a_body_is_a_connection_error_not_data(handler) -> None:
    async with raw_server(handler) as url, IMDSClient(endpoint=url, attempts=3) as imds:
        with pytest.raises(IMDSConnectionError, match="cut off") as info:
            await asyncio.wait_for(imds.get("meta-data/instance-id"), GUARD)
        result = await imds.dump(partial=True, attempts=3)
    assert info.value.path == LEAF
    assert list(result.failures) == ["/latest/"] and len(result.snapshot) == 0


# -- Connection: close on every answer ---------------------------------------------------------
# Checked by a sitecustomize making aioimds.client treat IMDSConnectionError as final (no
# retry): the "reuse-dropped" row fails (the dump is incomplete: the paths whose request met a
# connection the server had dropped); the "header" row passes either way, as aiohttp honours
# the header and never reuses such a connection.


@pytest.mark.usefixtures("virtual_time")
@pytest.mark.parametrize("announced", [True, False], ids=["header", "reuse-dropped"])
async def test_a_server_closing_every_connection_still_gives_a_complete_dump(
    announced: bool,
) -> None:
    tree = default_snapshot().subtree()
    used: set[object] = set()

    async def closing(request: web.BaseRequest) -> web.Response:
        if not announced and request.protocol in used:
            # Keep-alive was advertised, but the server dropped the connection meanwhile: the
            # client learns it only by reusing it (the race every keep-alive client meets).
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        used.add(request.protocol)
        if request.method == "PUT":
            response = token_answer()
        else:
            rec = tree.get(request.raw_path)
            response = (web.Response(status=404) if rec is None else
                        web.Response(body=rec.body, content_type=rec.content_type))
        if announced:
            response.force_close()
        return response

    async with http_server(closing) as server, IMDSClient(endpoint=server.url) as imds:
        assert await asyncio.wait_for(imds.dump(), GUARD) == tree
        assert await imds.get("meta-data/placement/region") == "ap-northeast-1"
    assert len(used) >= len(tree)  # a new connection for every answer
