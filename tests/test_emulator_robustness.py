"""The emulator under malformed, absurd and random input: it never crashes, leaks or lies.

Truly malformed HTTP goes over raw sockets (``asyncio.open_connection``). After each ordeal the
emulator must still answer correctly (a dump equals its tree), hold no request in flight and no
connection open, and have logged nothing at ERROR (aiohttp logs a crashed handler there and
answers 500, which no test here allows).

Checked by a sitecustomize replacing aioimds.emulator.tokens.parse_ttl (and the server's
import of it) with a naive ``int(values[0])``: 19 rows of the TTL table fail (a token for "0",
"+5", "٣", "1_000"; a crashed handler, 500, for "abc" or ""), as do the duplicate-TTL test,
the pipelined PUTs (500s) and the fuzz test (the 500s it provokes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from typing import Any

import pytest

from aioimds import IMDSClient
from aioimds.emulator import Emulator, default_snapshot

TTL_H = b"X-aws-ec2-metadata-token-ttl-seconds"
REGION = b"/latest/meta-data/placement/region"
STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


@pytest.fixture
async def emu(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG)
    async with Emulator(seed=11) as emulator:
        yield emulator
        await assert_still_sound(emulator, caplog)


async def assert_still_sound(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    """The emulator answers a full dump exactly, and nothing is left in flight or logged."""
    async with IMDSClient(endpoint=emu.url) as imds:
        assert await imds.dump() == emu.snapshot.subtree()
    for _ in range(500):  # closed connections are noticed within a few loop turns
        if emu.counters.in_flight == 0 and emu._admitted == 0:
            break
        await asyncio.sleep(0.01)
    assert (emu.counters.in_flight, emu._admitted) == (0, 0)
    assert emu.counters.total(status=500) == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def exchange(emu: Emulator, data: bytes, *, idle: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection; read until the server closes it or stays silent
    for ``idle`` seconds (a request cut short is waited for, as HTTP servers do)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
    received = b""
    try:
        writer.write(data)
        await writer.drain()
        while chunk := await asyncio.wait_for(reader.read(65536), idle):
            received += chunk
    except (ConnectionError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()
        # A server that refuses a request before reading all of it (a 400 for a header over
        # aiohttp's limits) closes with bytes unread, so the kernel resets the connection; the
        # reset is that close, and it may surface here rather than in read() (it does on 3.13).
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return received


def statuses(reply: bytes) -> list[int]:
    return [int(s) for s in STATUS.findall(reply)]


def put(ttl: bytes | None, *extra: bytes) -> bytes:
    head = b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n"
    if ttl is not None:
        head += TTL_H + b": " + ttl + b"\r\n"
    return head + b"".join(h + b"\r\n" for h in extra) + b"\r\n"


# -- invalid TTLs, raw ---------------------------------------------------------------------------

RAW_TTLS = [
    ("missing", None, 400),
    ("empty", b"", 400),
    ("blank", b"   ", 400),
    ("zero", b"0", 400),
    ("negative-zero", b"-0", 400),
    ("above-max", b"21601", 400),
    ("huge", b"9" * 5000, 400),
    ("plus", b"+5", 400),
    ("decimal", b"60.0", 400),
    ("exponent", b"6e1", 400),
    ("hex", b"0x3c", 400),
    ("underscore", b"1_000", 400),
    ("inner-space", b"6 0", 400),
    ("inner-tab", b"6\t0", 400),
    ("comma-list", b"60, 60", 400),
    ("arabic-indic-digit", "\u0663".encode(), 400),
    ("fullwidth-digit", "\uff16\uff10".encode(), 400),
    ("latin1-byte", b"6\xb2", 400),
    ("invalid-utf8", b"\xff\xfe", 400),
    ("nul", b"6\x00", 400),
    ("letters", b"abc", 400),
    ("obs-fold", b"6\r\n 0", 400),
    ("surrounding-ows", b" 5\t", 200),
    ("max", b"21600", 200),
]


@pytest.mark.parametrize(("ttl", "status"), [c[1:] for c in RAW_TTLS], ids=[c[0] for c in RAW_TTLS])
async def test_every_kind_of_invalid_ttl_is_400_and_issues_no_token(emu, ttl, status) -> None:
    reply = await exchange(emu, put(ttl, b"Connection: close"))
    assert statuses(reply) == [status], reply[:200]
    assert emu.counters.requests[("PUT", 200)] == (1 if status == 200 else 0)
    assert len(emu._store) == (1 if status == 200 else 0)


async def test_ttl_given_twice_even_equal_is_400(emu) -> None:
    reply = await exchange(emu, put(b"60", TTL_H + b": 60", b"Connection: close"))
    assert statuses(reply) == [400] and len(emu._store) == 0


# -- bad methods, absurd headers -----------------------------------------------------------------

MALFORMED = [
    ("lowercase-method", b"get /latest/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("unknown-method", b"FROB /latest/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("long-method", b"G" * 10_000 + b" /latest/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("method-with-at", b"G@T /latest/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("no-method", b" /latest/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("connect", b"CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("trace", b"TRACE /latest/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("absolute-uri", b"GET http://169.254.169.254/latest/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("asterisk", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("nul-in-path", b"GET /latest/\x00 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bare-lf", b"GET /latest/ HTTP/1.1\nHost: x\n\n"),
    ("huge-header-value", b"GET /latest/ HTTP/1.1\r\nX-Big: " + b"v" * 200_000 + b"\r\n\r\n"),
    ("huge-token", b"GET /latest/ HTTP/1.1\r\nX-aws-ec2-metadata-token: " + b"t" * 100_000
     + b"\r\n\r\n"),
    ("many-headers", b"GET /latest/ HTTP/1.1\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(20_000)) + b"\r\n"),
    ("space-in-name", b"GET /latest/ HTTP/1.1\r\nBad Name: v\r\n\r\n"),
    ("nul-in-value", b"GET /latest/ HTTP/1.1\r\nX-A: a\x00b\r\n\r\n"),
    ("cl-and-te", b"PUT /latest/api/token HTTP/1.1\r\nContent-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("two-lengths", b"PUT /latest/api/token HTTP/1.1\r\nContent-Length: 1\r\n"
     b"Content-Length: 2\r\n\r\nab"),
    ("bad-chunk", b"PUT /latest/api/token HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ("body-never-sent", b"PUT /latest/api/token HTTP/1.1\r\nContent-Length: 99999\r\n\r\nab"),
    ("http-0.9", b"GET /latest/\r\n\r\n"),
    ("http-2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("tls-hello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(160))),
    ("random-bytes", bytes(random.Random(1).randrange(256) for _ in range(4096))),
]


@pytest.mark.usefixtures("virtual_time")
@pytest.mark.parametrize("data", [c[1] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
async def test_malformed_requests_get_a_4xx_or_a_close_never_a_crash(emu, data) -> None:
    found = statuses(await exchange(emu, data, idle=0.3))
    assert all(400 <= s < 500 for s in found), found
    assert emu.counters.requests[("PUT", 200)] == 0


async def test_a_duplicated_token_header_is_never_served_on_an_unknown_token(emu) -> None:
    valid = (await exchange(emu, put(b"60", b"Connection: close"))).split(b"\r\n\r\n", 1)[1]
    get = b"GET " + REGION + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    forged = b"X-aws-ec2-metadata-token: forged\r\n"
    real = b"X-aws-ec2-metadata-token: " + valid + b"\r\n"
    assert statuses(await exchange(emu, get + forged + real + b"\r\n")) == [401]
    assert statuses(await exchange(emu, get + real + real + b"\r\n")) in ([200], [400], [401])


# -- load --------------------------------------------------------------------------------------


async def test_ten_thousand_pipelined_token_puts_valid_and_invalid(emu) -> None:
    connections, per_connection = 50, 200
    good, bad = put(b"60"), put(b"+60")

    async def one(n: int) -> list[int]:
        batch = b"".join(good if (n + i) % 2 else bad for i in range(per_connection))
        return statuses(await exchange(emu, batch + put(b"60", b"Connection: close")))

    start = time.monotonic()
    replies = await asyncio.gather(*(one(n) for n in range(connections)))
    assert [len(r) for r in replies] == [per_connection + 1] * connections
    flat = [s for r in replies for s in r[:-1]]
    assert flat.count(200) == flat.count(400) == connections * per_connection // 2
    issued = connections * (per_connection // 2 + 1)
    assert len(emu._store) == issued  # every token distinct and kept
    assert emu.counters.token_puts == connections * (per_connection + 1)
    assert time.monotonic() - start < 20


# -- fuzz --------------------------------------------------------------------------------------

FUZZ_SECONDS = 2.0
METHODS = [b"GET", b"GET", b"HEAD", b"PUT", b"PUT", b"POST", b"DELETE", b"get", b"FROB", b"",
           b"G\x00T"]
TOKEN_PATHS = [b"/latest/api/token", b"/latest/api/token/", b"/2021-03-23/api/token"]
DATA_PATHS = [key.encode() for key in default_snapshot()]
ODD_PATHS = [b"/", b"", b"/latest/meta-data/../../etc/passwd", b"/latest/%2e%2e/%2e%2e/",
             b"/latest/%ff%fe", b"/latest/meta-data/tags/instance/%", b"*",
             b"/latest/meta-data/?" + b"q" * 300]
SANE_HEADERS = [
    b"X-aws-ec2-metadata-token-ttl-seconds: 60", b"X-aws-ec2-metadata-token-ttl-seconds: x",
    b"X-aws-ec2-metadata-token-ttl-seconds: 99999999999999999999",
    b"X-aws-ec2-metadata-token-ttl-seconds: -5", b"X-aws-ec2-metadata-token:",
    b"X-aws-ec2-metadata-token: nope", b"X-Forwarded-For: 203.0.113.9", b"Accept: */*",
    b"Connection: close", b"Content-Length: 3", b"User-Agent: fuzz",
]
ODD_HEADERS = [
    b"Content-Length: -1", b"Transfer-Encoding: chunked", b"Expect: 100-continue", b"Host:",
    b": empty-name", b"X-Long: " + b"L" * 9000, b"X-Nul: \x00", b"X-Fold: a\r\n b",
]


def fuzz_request(rng: random.Random, token: bytes) -> bytes:
    """One request, mostly well formed (so the handler runs), sometimes odd or cut short."""
    method = rng.choice(METHODS)
    path = rng.choice(rng.choice([TOKEN_PATHS, DATA_PATHS, DATA_PATHS, ODD_PATHS]))
    if rng.random() < 0.1:
        path = bytes(rng.randrange(33, 256) for _ in range(rng.randrange(1, 40)))
    version = b"HTTP/1.1" if rng.random() < 0.95 else rng.choice([b"HTTP/1.0", b"HTTP/9"])
    lines = [method + b" " + path + b" " + version, b"Host: 169.254.169.254"]
    lines += rng.sample(SANE_HEADERS, rng.randrange(0, 3))
    if path in TOKEN_PATHS and rng.random() < 0.8:
        ttl = rng.choice([t for _, t, _ in RAW_TTLS if t is not None])
        lines.append(TTL_H + b": " + ttl)
    if rng.random() < 0.1:
        lines.append(rng.choice(ODD_HEADERS))
    if rng.random() < 0.6:
        lines.append(b"X-aws-ec2-metadata-token: " + token)
    body = b"abc" if b"Content-Length: 3" in lines else b""
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body
    if rng.random() < 0.05:
        data = data[: rng.randrange(len(data))]  # cut short
    if rng.random() < 0.03:
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    return data


async def test_random_requests_for_a_bounded_time_leave_a_sound_emulator(emu) -> None:
    token = (await exchange(emu, put(b"21600", b"Connection: close"))).split(b"\r\n\r\n", 1)[1]
    seen: list[int] = []
    deadline = time.monotonic() + FUZZ_SECONDS

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            batch = b"".join(fuzz_request(rng, token) for _ in range(rng.randrange(1, 4)))
            seen.extend(statuses(await exchange(emu, batch, idle=0.2)))

    await asyncio.gather(*(client(seed) for seed in range(16)))
    assert len(seen) > 200  # it really ran
    assert 500 not in seen and {200, 400, 401, 403, 404, 405} <= set(seen)
