"""Helpers of the emulator tests: raw HTTP calls to a running Emulator over loopback."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from aioimds.emulator import Emulator
from aioimds.emulator.wire import error_body

TTL_H = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_H = "X-aws-ec2-metadata-token"
TOKEN_PATH = "/latest/api/token"
REGION = "/latest/meta-data/placement/region"
NOT_FOUND_XHTML = b"""<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>404 - Not Found</title>
 </head>
 <body>
  <h1>404 - Not Found</h1>
 </body>
</html>
"""


class Reply(NamedTuple):
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes



async def call(
    http: aiohttp.ClientSession, method: str, emu: Emulator, path: str, headers: Any = None
) -> Reply:
    url = URL(emu.url + path, encoded=True)  # sent byte for byte, no normalisation
    async with http.request(method, url, headers=headers or {}) as resp:
        return Reply(resp.status, resp.headers, await resp.read())


async def new_token(http: aiohttp.ClientSession, emu: Emulator, ttl: str = "21600") -> str:
    reply = await call(http, "PUT", emu, TOKEN_PATH, {TTL_H: ttl})
    assert reply.status == 200
    return reply.body.decode()


async def get(http: aiohttp.ClientSession, emu: Emulator, path: str, token: str | None) -> Reply:
    return await call(http, "GET", emu, path, {TOKEN_H: token} if token is not None else None)


async def raw(emu: Emulator, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; everything received until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


def assert_xhtml(reply: Reply, status: int) -> None:
    assert reply.status == status
    assert reply.headers["Content-Type"] == "text/html"
    assert reply.body == error_body(status)
    assert f"<title>{status} - ".encode() in reply.body

