"""Odd answers that once escaped as raw Python exceptions or silently wrong data."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from hostile_servers import TOKEN, TOKEN_PATH, TTL_H, http_server, raw_server, read_request

from aioimds import (
    IMDSClient,
    IMDSConfig,
    IMDSConfigError,
    IMDSCrawlError,
    IMDSResponseError,
    IMDSTokenError,
    PathError,
    Record,
    Snapshot,
)
from aioimds.emulator import Emulator
from aioimds.render import nested

DEEP = "[" * 200_000


async def test_deeply_nested_json_is_a_typed_error_not_a_recursion_error() -> None:
    path = "/latest/meta-data/events/maintenance/scheduled"
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(path, DEEP)
        with pytest.raises(IMDSResponseError, match="nested too deeply") as info:
            await imds.get_json("meta-data/events/maintenance/scheduled")
        assert info.value.path == path
        with pytest.raises(IMDSResponseError):
            await imds.scheduled_maintenance_events()
        snap = await imds.dump()
    view = nested(snap)  # the JSON view keeps an unparseable document as text
    assert view["meta-data"]["events"]["maintenance"]["scheduled"] == DEEP


@pytest.mark.parametrize(
    "token", [b"abc\x01def", b"abc\x00def", b"abc\x7fdef", b"caf\xc3\xa9"],
    ids=["soh", "nul", "del", "non-ascii"],
)
async def test_a_token_with_control_characters_is_refused(token: bytes) -> None:
    async def handler(request: web.BaseRequest) -> web.Response:
        if request.method == "PUT":
            return web.Response(body=token, headers={TTL_H: "21600"})
        return web.Response(text="value")

    async with http_server(handler) as srv, IMDSClient(endpoint=srv.url) as imds:
        with pytest.raises(IMDSTokenError, match="not a token"):
            await imds.get("meta-data/ami-id")
    assert srv.gets() == []


@pytest.mark.parametrize("ttl", ["\u00b2", "9" * 5000, "\u0663", "-5", "21601", "abc", ""],
                         ids=["superscript", "huge", "arabic-digit", "negative", "over-max",
                              "text", "empty"])
async def test_an_odd_ttl_echo_keeps_the_ttl_asked_for(ttl: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            method, path, _ = await read_request(reader)
            if method == "PUT" and path == TOKEN_PATH:
                body = TOKEN.encode()
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{TTL_H}: {ttl}\r\n"
            else:
                body = b"ami-1"
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Content-Type: text/plain\r\n\r\n" + body)
            await writer.drain()

    async with raw_server(handle) as url, IMDSClient(endpoint=url) as imds:
        assert await imds.get("meta-data/ami-id") == "ami-1"
        assert imds._tokens is not None and imds._tokens._token is not None
        assert imds._tokens._token[0] == TOKEN


async def test_a_huge_number_leaf_is_a_typed_error() -> None:
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf("/latest/meta-data/ami-launch-index", "9" * 5000)
        with pytest.raises(IMDSResponseError, match="not a decimal integer"):
            await imds.ami_launch_index()


async def test_an_html_page_answered_200_on_a_leaf_is_refused() -> None:
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_response("/latest/meta-data/placement/region",
                         Record(b"<html><body>Please log in</body></html>", 200, "text/html"))
        with pytest.raises(IMDSResponseError, match="HTML page") as info:
            await imds.region()
        assert info.value.path == "/latest/meta-data/placement/region"
        with pytest.raises(IMDSCrawlError) as crawl:
            await imds.dump()
    assert list(crawl.value.failures) == ["/latest/meta-data/placement/region"]


async def test_a_byte_order_mark_does_not_hide_the_first_entry() -> None:
    tree = Snapshot({"/latest/": Record(b"meta-data"),
                     "/latest/meta-data/": Record("\ufeffami-id\nhostname".encode()),
                     "/latest/meta-data/ami-id": Record(b"ami-1"),
                     "/latest/meta-data/hostname": Record(b"h")})
    async with Emulator(tree) as emu, IMDSClient(endpoint=emu.url) as imds:
        assert await imds.list("meta-data/") == ["ami-id", "hostname"]
        assert await imds.dump() == tree


@pytest.mark.parametrize("suffix", ["/?", "/#", "?", "#x", "/latest"])
def test_an_endpoint_with_a_query_fragment_or_path_is_refused(suffix: str) -> None:
    with pytest.raises(IMDSConfigError, match="endpoint"):
        IMDSConfig(endpoint="http://127.0.0.1:1338" + suffix)


@pytest.mark.parametrize("raw", ["\u00b2", "9" * 5000, "\u0663"])
def test_attempts_must_be_ascii_digits(raw: str) -> None:
    with pytest.raises(IMDSConfigError, match="AWS_METADATA_SERVICE_NUM_ATTEMPTS"):
        IMDSConfig.from_environment({"AWS_CONFIG_FILE": "/nonexistent",
                                     "AWS_METADATA_SERVICE_NUM_ATTEMPTS": raw})


async def test_a_path_that_is_not_valid_unicode_is_a_path_error() -> None:
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        with pytest.raises(PathError, match="not valid Unicode"):
            await imds.get("meta-data/\udcff")
    assert emu.counters.trace == []
