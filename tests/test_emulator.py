"""The emulator, driven over loopback with a real aiohttp client (DESIGN.md section 4)."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import ipaddress
import json
import os
import random
import re
import signal
import socket
import time
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from yarl import URL

from aioimds.emulator import Counters, Emulator, Faults, PathFault, default_snapshot
from aioimds.emulator.serve import add_serve_arguments, emulator_from_args, run_serve
from aioimds.emulator.tokens import MAX_TOKENS, MAX_TTL, MIN_TTL, TokenStore, parse_ttl
from aioimds.emulator.wire import SERVER, canonical_path, error_body
from aioimds.snapshot import Record, Snapshot, SnapshotFormatError

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
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


@pytest.fixture
async def emu() -> Any:
    async with Emulator(seed=7) as emulator:
        yield emulator


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


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


def test_constants_have_the_documented_values() -> None:
    assert (MIN_TTL, MAX_TTL, MAX_TOKENS) == (1, 21600, 16_384)
    off = Faults()
    assert (off.latency, off.jitter, off.error_rate, off.drop_rate) == (0.0, 0.0, 0.0, 0.0)
    assert (off.hold_token_put, off.path_faults) == (False, [])
    unset = (off.throttle_rps, off.retry_after, off.token_put_status, off.max_token_ttl,
             off.revoke_every, off.max_connections)
    assert unset == (None,) * 6


# -- tokens ---------------------------------------------------------------------------------


async def test_token_put_grants_a_random_token_and_echoes_the_ttl(emu, http) -> None:
    reply = await call(http, "PUT", emu, TOKEN_PATH, {TTL_H: "300"})
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/plain"
    assert reply.headers["Server"] == SERVER == "EC2ws"
    assert reply.headers[TTL_H] == "300"
    assert len(reply.body) == 56
    assert reply.body != (await call(http, "PUT", emu, TOKEN_PATH, {TTL_H: "300"})).body
    assert (await get(http, emu, REGION, reply.body.decode())).body == b"ap-northeast-1"


TTL_CASES = [
    ("min", "1", 200),
    ("max", "21600", 200),
    ("leading-zeros", "007", 200),
    # RFC 9110: whitespace around a field value is not part of it; the parser strips it.
    ("surrounding-ows", " 5", 200),
    ("missing", None, 400),
    ("empty", "", 400),
    ("zero", "0", 400),
    ("too-long", "21601", 400),
    ("negative", "-1", 400),
    ("plus-sign", "+5", 400),
    ("decimal", "1.5", 400),
    ("hex", "0x10", 400),
    ("exponent", "1e3", 400),
    ("huge", "9" * 40, 400),
    ("inner-space", "5 5", 400),
    ("list", "5,5", 400),
    ("superscript-digit", "\u00b2", 400),
]


@pytest.mark.parametrize(
    ("ttl", "status"), [c[1:] for c in TTL_CASES], ids=[c[0] for c in TTL_CASES]
)
async def test_token_ttl_must_be_an_integer_from_1_to_21600(emu, http, ttl, status) -> None:
    reply = await call(http, "PUT", emu, TOKEN_PATH, {TTL_H: ttl} if ttl is not None else {})
    if status == 200:
        assert reply.headers[TTL_H] == str(int(ttl))
    else:
        assert_xhtml(reply, status)


async def test_token_ttl_given_twice_is_400(emu, http) -> None:
    assert_xhtml(await call(http, "PUT", emu, TOKEN_PATH, [(TTL_H, "5"), (TTL_H, "6")]), 400)
    assert parse_ttl(["60"]) == 60 and parse_ttl([]) is None


@pytest.mark.parametrize("xff", ["203.0.113.7", ""], ids=["address", "empty"])
async def test_token_put_with_x_forwarded_for_is_403(emu, http, xff) -> None:
    headers = {TTL_H: "60", "X-Forwarded-For": xff}
    assert_xhtml(await call(http, "PUT", emu, TOKEN_PATH, headers), 403)


async def test_get_with_x_forwarded_for_is_served(emu, http) -> None:
    headers = {TOKEN_H: await new_token(http, emu), "X-Forwarded-For": "203.0.113.7"}
    assert (await call(http, "GET", emu, REGION, headers)).body == b"ap-northeast-1"


@pytest.mark.parametrize(
    "path",
    ["/2021-03-23/api/token", "/1.0/api/token", "/latest/api/token/", "/2021-03-23/api/token/"],
)
async def test_token_put_to_another_token_path_is_403(emu, http, path) -> None:
    assert_xhtml(await call(http, "PUT", emu, path, {TTL_H: "60"}), 403)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", TOKEN_PATH, "PUT"),
        ("POST", TOKEN_PATH, "PUT"),
        ("DELETE", TOKEN_PATH, "PUT"),
        ("POST", REGION, "GET, HEAD"),
        ("PUT", REGION, "GET, HEAD"),
        ("PATCH", "/latest/meta-data/", "GET, HEAD"),
        ("DELETE", "/latest/no-such-path", "GET, HEAD"),
    ],
)
async def test_other_methods_are_405(emu, http, method, path, allow) -> None:
    reply = await call(http, method, emu, path, {TTL_H: "60"})
    assert_xhtml(reply, 405)
    assert reply.headers["Allow"] == allow


async def test_get_without_token_is_401_when_tokens_are_required(emu, http) -> None:
    assert_xhtml(await get(http, emu, REGION, None), 401)


@pytest.mark.parametrize("mode", ["required", "optional"])
async def test_unknown_token_is_401_in_either_mode(http, mode) -> None:
    async with Emulator(tokens=mode) as emu:
        assert_xhtml(await get(http, emu, REGION, "not-a-token"), 401)
        assert_xhtml(await get(http, emu, REGION, ""), 401)


async def test_tokens_optional_serves_imdsv1(http) -> None:
    async with Emulator(tokens="optional") as emu:
        assert (await get(http, emu, REGION, None)).body == b"ap-northeast-1"
        emu.tokens = "required"
        assert_xhtml(await get(http, emu, REGION, None), 401)


async def test_token_expires_after_the_granted_ttl(http) -> None:
    async with Emulator(faults=Faults(max_token_ttl=1)) as emu:
        reply = await call(http, "PUT", emu, TOKEN_PATH, {TTL_H: "21600"})
        assert reply.headers[TTL_H] == "1"
        token = reply.body.decode()
        assert (await get(http, emu, REGION, token)).status == 200
        await asyncio.sleep(1.05)
        assert_xhtml(await get(http, emu, REGION, token), 401)


async def test_revoked_tokens_are_401_and_new_ones_work(emu, http) -> None:
    token = await new_token(http, emu)
    emu.revoke_tokens()
    assert_xhtml(await get(http, emu, REGION, token), 401)
    assert (await get(http, emu, REGION, await new_token(http, emu))).status == 200


async def test_revoke_every_revokes_on_schedule(http) -> None:
    async with Emulator(faults=Faults(revoke_every=0.3)) as emu:
        token = await new_token(http, emu)
        assert (await get(http, emu, REGION, token)).status == 200
        await asyncio.sleep(0.35)
        assert (await get(http, emu, REGION, token)).status == 401
        assert (await get(http, emu, REGION, await new_token(http, emu))).status == 200


def test_token_store_is_bounded_and_expires_tokens() -> None:
    now = [0.0]
    store = TokenStore(max_tokens=100, clock=lambda: now[0])
    tokens = [store.issue(10) for _ in range(1000)]
    assert len(store) <= 100
    assert store.valid(tokens[-1]) and not store.valid(tokens[0])
    now[0] = 10.0
    assert not store.valid(tokens[-1])


# -- data paths -----------------------------------------------------------------------------


async def test_unknown_path_is_404_with_the_imds_xhtml_body(emu, http) -> None:
    reply = await get(http, emu, "/latest/meta-data/no-such-key", await new_token(http, emu))
    assert reply.status == 404
    assert reply.body == NOT_FOUND_XHTML
    assert reply.headers["Content-Type"] == "text/html"
    assert reply.headers["Server"] == "EC2ws"


async def test_recorded_status_is_answered(emu, http) -> None:
    emu.set_response("/latest/meta-data/spot/instance-action", Record(status=404))
    emu.set_response("/latest/meta-data/broken", Record(body=b"boom", status=500))
    token = await new_token(http, emu)
    assert (await get(http, emu, "/latest/meta-data/spot/instance-action", token)).body == (
        NOT_FOUND_XHTML
    )
    reply = await get(http, emu, "/latest/meta-data/broken", token)
    assert (reply.status, reply.body) == (500, b"boom")


async def test_bodies_and_content_types_are_served_exactly(emu, http) -> None:
    token = await new_token(http, emu)
    user_data = await get(http, emu, "/latest/user-data", token)
    assert user_data.headers["Content-Type"] == "application/octet-stream"
    assert "Content-Encoding" not in user_data.headers
    assert user_data.body == default_snapshot()["/latest/user-data"].body
    assert gzip.decompress(user_data.body).startswith(b"#cloud-config\n")
    leaf = await get(http, emu, "/latest/meta-data/public-keys/0/openssh-key", token)
    assert leaf.headers["Content-Type"] == "text/plain"
    assert leaf.body.startswith(b"ssh-ed25519 ") and leaf.body.endswith(b" aioimds-demo\n")
    empty = await get(http, emu, "/latest/meta-data/events/recommendations/", token)
    assert (empty.status, empty.body) == (200, b"")


async def test_head_answers_headers_without_a_body(emu, http) -> None:
    reply = await call(http, "HEAD", emu, REGION, {TOKEN_H: await new_token(http, emu)})
    assert (reply.status, reply.body) == (200, b"")
    assert reply.headers["Content-Length"] == str(len(b"ap-northeast-1"))


LOOKUP_CASES = [
    ("raw-colon", "/latest/meta-data/tags/instance/aws:autoscaling:groupName", 200),
    ("encoded-colon", "/latest/meta-data/tags/instance/aws%3Aautoscaling%3AgroupName", 200),
    ("lowercase-hex", "/latest/meta-data/tags/instance/aws%3aautoscaling%3agroupName", 200),
    ("encoded-letter", "/latest/meta-data/placement/%72egion", 200),
    ("query-ignored", REGION + "?x=1&y", 200),
    ("encoded-space-key", "/latest/meta-data/tags/instance/two%20words", 200),
    ("equals-in-tag", "/latest/meta-data/tags/instance/team=platform", 200),
    ("no-trailing-slash", "/latest/meta-data/placement", 404),
    ("double-slash", "/latest/meta-data//placement/region", 404),
    ("dot-segment", "/latest/meta-data/../meta-data/ami-id", 404),
    ("encoded-slash", "/latest/meta-data/placement%2Fregion", 404),
    ("key-name-listing-entry", "/latest/meta-data/public-keys/0=aioimds-demo", 404),
    ("no-derived-listing", "/latest/meta-data/public-keys/0", 404),
]


@pytest.mark.parametrize(
    ("path", "status"), [c[1:] for c in LOOKUP_CASES], ids=[c[0] for c in LOOKUP_CASES]
)
async def test_lookup_tries_the_raw_path_then_its_canonical_form(emu, http, path, status) -> None:
    emu.set_leaf("/latest/meta-data/tags/instance/two%20words", "spaced")
    assert (await get(http, emu, path, await new_token(http, emu))).status == status


def test_canonical_path_keeps_pchars_and_encodes_the_rest() -> None:
    assert canonical_path("/a/b%3Ac/%7E/x%2Fy/a%20b/%ff") == "/a/b:c/~/x%2Fy/a%20b/%FF"
    assert canonical_path("/t/k.with+odd,chars@x:y=$!'()*;&") == "/t/k.with+odd,chars@x:y=$!'()*;&"


async def test_tree_edits_apply_to_the_next_request(emu, http) -> None:
    token = await new_token(http, emu)
    emu.set_leaf("/latest/meta-data/instance-action", "stop")
    emu.set_leaf("/latest/meta-data/raw", b"\xff\x00", content_type="application/octet-stream")
    emu.remove("/latest/meta-data/placement/region")
    emu.remove("/latest/meta-data/never-there")
    assert (await get(http, emu, "/latest/meta-data/instance-action", token)).body == b"stop"
    assert (await get(http, emu, "/latest/meta-data/raw", token)).body == b"\xff\x00"
    assert (await get(http, emu, REGION, token)).status == 404
    assert emu.snapshot["/latest/meta-data/instance-action"] == Record(body=b"stop")
    emu.set_snapshot(Snapshot({"/latest/": Record(body=b"meta-data")}))
    assert (await get(http, emu, "/latest/", token)).body == b"meta-data"
    assert (await get(http, emu, "/latest/meta-data/ami-id", token)).status == 404
    with pytest.raises(ValueError):
        emu.set_leaf("latest/x", "no leading slash")


# -- faults ---------------------------------------------------------------------------------


async def test_latency_delays_every_answer(http) -> None:
    async with Emulator(latency=0.1, faults=Faults(latency=0.1), tokens="optional") as emu:
        for path in (REGION, "/latest/no-such-path"):
            start = time.monotonic()
            await get(http, emu, path, None)
            assert time.monotonic() - start >= 0.2


async def test_jitter_adds_seeded_random_delays(http) -> None:
    rng = random.Random(5)
    draws = [rng.uniform(0, 0.1) for _ in range(4)]
    async with Emulator(tokens="optional", faults=Faults(jitter=0.1), seed=5) as emu:
        for expected in draws:
            start = time.monotonic()
            await get(http, emu, REGION, None)
            assert expected <= time.monotonic() - start < expected + 0.1


async def test_faults_can_be_replaced_while_running(emu, http) -> None:
    token = await new_token(http, emu)
    emu.faults = Faults(error_rate=1.0)
    assert (await get(http, emu, REGION, token)).status in (500, 503)
    emu.faults = Faults()
    assert (await get(http, emu, REGION, token)).status == 200


async def test_error_rate_answers_500_or_503_with_xhtml_and_is_seeded(http) -> None:
    runs = []
    for _ in range(2):
        async with Emulator(tokens="optional", faults=Faults(error_rate=0.5), seed=3) as emu:
            replies = [await get(http, emu, REGION, None) for _ in range(30)]
        for reply in replies:
            if reply.status != 200:
                assert_xhtml(reply, reply.status)
        runs.append([r.status for r in replies])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500, 503}


async def test_error_rate_spares_the_token_put(http) -> None:
    async with Emulator(faults=Faults(error_rate=1.0)) as emu:
        assert (await get(http, emu, REGION, await new_token(http, emu))).status in (500, 503)


async def test_throttling_answers_429_beyond_the_rate(http) -> None:
    async with Emulator(tokens="optional", faults=Faults(throttle_rps=4)) as emu:
        statuses = [(await get(http, emu, REGION, None)).status for _ in range(3)]
        assert statuses == [200, 429, 429]  # burst max(1, 4 / 10) = 1
        reply = await get(http, emu, REGION, None)
        assert_xhtml(reply, 429)
        assert "Retry-After" not in reply.headers
        await asyncio.sleep(0.3)
        assert (await get(http, emu, REGION, None)).status == 200
        emu.faults.retry_after = 1.5
        assert (await get(http, emu, REGION, None)).headers["Retry-After"] == "1.5"


async def test_drop_rate_closes_the_connection_without_an_answer(http) -> None:
    async with Emulator(tokens="optional", faults=Faults(drop_rate=1.0)) as emu:
        assert await raw(emu, b"GET /latest/ HTTP/1.1\r\nHost: x\r\n\r\n") == b""
        assert emu.counters.requests == {("GET", 0): 1}
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await get(http, emu, REGION, None)


async def test_token_put_status_answers_every_put(emu, http) -> None:
    emu.faults.token_put_status = 404
    assert_xhtml(await call(http, "PUT", emu, TOKEN_PATH, {TTL_H: "60"}), 404)
    emu.faults.token_put_status = 405
    assert_xhtml(await call(http, "PUT", emu, TOKEN_PATH, {}), 405)
    assert emu.counters.token_puts == 2


async def test_hold_token_put_never_answers_and_stop_releases_it(http) -> None:
    emu = Emulator(tokens="optional", faults=Faults(hold_token_put=True))
    await emu.start()
    before = asyncio.all_tasks()
    timeout = aiohttp.ClientTimeout(total=0.2)
    with pytest.raises(asyncio.TimeoutError):  # C02/C03: the hop limit of 1
        async with http.put(emu.url + TOKEN_PATH, headers={TTL_H: "9"}, timeout=timeout):
            pass
    assert (await get(http, emu, REGION, None)).status == 200  # C03: IMDSv1 still answers
    put = f"PUT {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\n{TTL_H}: 60\r\n\r\n".encode()
    held = asyncio.ensure_future(raw(emu, put))
    slow = asyncio.ensure_future(raw(emu, b"GET /latest/ HTTP/1.1\r\nHost: x\r\n\r\n"))
    emu.faults.latency = 30.0
    await asyncio.sleep(0.1)
    assert emu.counters.in_flight == 2
    start = time.monotonic()
    await emu.stop()
    assert time.monotonic() - start < 1.0
    assert await held == b"" and await slow == b""
    assert emu.counters.token_puts == 2
    assert emu.counters.requests[("PUT", 0)] == 2  # the timed-out one and the released one
    assert asyncio.all_tasks() <= before


async def test_path_fault_delays_only_the_first_request(http) -> None:  # C01
    path = "/latest/meta-data/iam/security-credentials/"
    fault = PathFault(path, delay=0.3)
    async with Emulator(tokens="optional", faults=Faults(path_faults=[fault])) as emu:
        start = time.monotonic()
        assert (await get(http, emu, path, None)).body == b"aioimds-demo-role"
        assert time.monotonic() - start >= 0.3
        start = time.monotonic()
        await get(http, emu, path, None)
        assert time.monotonic() - start < 0.25
        assert fault.hits == 1


async def test_path_faults_apply_in_order_and_skip_refused_requests(emu, http) -> None:
    emu.faults.path_faults = [PathFault(REGION, status=503), PathFault(REGION, status=429)]
    assert (await get(http, emu, REGION, None)).status == 401
    token = await new_token(http, emu)
    statuses = [(await get(http, emu, REGION + "?q", token)).status for _ in range(3)]
    assert statuses == [503, 429, 200]


async def test_max_connections_closes_the_excess_connections(http) -> None:
    async with Emulator(tokens="optional", faults=Faults(max_connections=1)) as emu:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        writer.write(b"GET /latest/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"user-data")).startswith(b"HTTP/1.1 200 OK")
        assert await raw(emu, b"GET /latest/ HTTP/1.1\r\nHost: x\r\n\r\n") == b""
        writer.close()
        await writer.wait_closed()
        for _ in range(100):  # the server notices the close within a few loop turns
            reply = await raw(emu, b"GET /latest/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if reply:
                break
            await asyncio.sleep(0.01)
        assert reply.startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize(
    "bad",
    [
        {"latency": -1},
        {"jitter": float("inf")},
        {"error_rate": 1.5},
        {"drop_rate": float("nan")},
        {"throttle_rps": 0},
        {"retry_after": -1},
        {"token_put_status": 99},
        {"max_token_ttl": 21601},
        {"revoke_every": 0},
        {"max_connections": 0},
    ],
)
def test_faults_reject_out_of_range_values(bad) -> None:
    with pytest.raises(ValueError):
        Faults(**bad)


def test_path_fault_rejects_bad_values() -> None:
    for kwargs in ({"path": "x"}, {"path": "/x", "status": 600}, {"path": "/x", "delay": -1}):
        with pytest.raises(ValueError):
            PathFault(**kwargs)


# -- counters and trace ---------------------------------------------------------------------


async def test_counters_count_by_method_and_status(emu, http) -> None:
    token = await new_token(http, emu)
    await get(http, emu, REGION, token)
    await get(http, emu, "/latest/nope", token)
    await get(http, emu, REGION, None)
    await call(http, "POST", emu, REGION)
    assert emu.counters.requests == {
        ("PUT", 200): 1, ("GET", 200): 1, ("GET", 404): 1, ("GET", 401): 1, ("POST", 405): 1
    }
    assert emu.counters.token_puts == 1
    assert emu.counters.total() == 5 and emu.counters.total("GET") == 3
    assert emu.counters.total(status=401) == 1
    emu.counters.reset()
    assert emu.counters == Counters()


async def test_max_in_flight_counts_requests_handled_at_once(http) -> None:
    async with Emulator(tokens="optional", latency=0.1) as emu:
        await asyncio.gather(*(get(http, emu, REGION, None) for _ in range(5)))
        assert (emu.counters.max_in_flight, emu.counters.in_flight) == (5, 0)


async def test_trace_records_requests_and_redacts_the_token(emu, http) -> None:
    token = await new_token(http, emu)
    await get(http, emu, REGION + "?a=1", token)
    put, got = emu.counters.trace
    assert (put.method, put.path, put.status, put.token) == ("PUT", TOKEN_PATH, 200, False)
    assert put.headers[TTL_H] == "21600"
    assert (got.method, got.path, got.status, got.token) == ("GET", REGION + "?a=1", 200, True)
    assert got.headers[TOKEN_H] == "<redacted>"
    assert token not in repr(emu.counters)
    emu.counters.trace_enabled = False
    await get(http, emu, REGION, token)
    assert len(emu.counters.trace) == 2 and emu.counters.total() == 3


# -- life cycle, load, malformed input ------------------------------------------------------


async def test_url_and_port_exist_only_while_running() -> None:
    emu = Emulator()
    with pytest.raises(RuntimeError):
        emu.url  # noqa: B018
    url = await emu.start()
    assert url == emu.url == f"http://127.0.0.1:{emu.port}"
    with pytest.raises(RuntimeError):
        await emu.start()
    await emu.stop()
    await emu.stop()
    with pytest.raises(RuntimeError):
        emu.port  # noqa: B018
    with pytest.raises(ValueError):
        Emulator(tokens="sometimes")  # type: ignore[arg-type]


async def test_ipv6_loopback_url(http) -> None:
    try:
        socket.socket(socket.AF_INET6).close()
        emu = Emulator(host="::1", tokens="optional")
        await emu.start()
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        assert emu.url == f"http://[::1]:{emu.port}"
        assert (await get(http, emu, REGION, None)).body == b"ap-northeast-1"
    finally:
        await emu.stop()


async def test_ten_thousand_concurrent_token_puts() -> None:
    connector = aiohttp.TCPConnector(limit=500)
    async with Emulator(latency=0.01) as emu, aiohttp.ClientSession(connector=connector) as http:
        replies = await asyncio.gather(
            *(call(http, "PUT", emu, TOKEN_PATH, {TTL_H: "60"}) for _ in range(10_000))
        )
        assert {r.status for r in replies} == {200}
        assert len({r.body for r in replies}) == 10_000
        assert emu.counters.token_puts == 10_000 and emu.counters.max_in_flight > 100
        assert (await get(http, emu, REGION, replies[0].body.decode())).status == 200


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET /latest/ HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),
    b"PUT /latest/api/token HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"GET /latest/ HTTP/9.9\r\n\r\n",
]


@pytest.mark.parametrize("data", MALFORMED, ids=["garbage", "header", "long", "tls", "len", "ver"])
async def test_malformed_requests_are_refused_without_harm(emu, http, data) -> None:
    reply = await raw(emu, data)
    assert reply == b"" or re.match(rb"HTTP/1\.[01] 4\d\d ", reply), reply[:40]
    assert (await get(http, emu, REGION, await new_token(http, emu))).status == 200


# -- the default tree and the fixtures ------------------------------------------------------


def test_default_tree_answers_the_documented_values() -> None:
    snap = default_snapshot()

    def text(path: str) -> str:
        body = snap["/latest/" + path].text()
        assert body is not None
        return body

    assert text("") == "dynamic\nmeta-data\nuser-data"
    assert text("meta-data/placement/") == "availability-zone\navailability-zone-id\nregion"
    assert text("meta-data/placement/availability-zone") == "ap-northeast-1a"
    assert text("meta-data/placement/availability-zone-id") == "apne1-az4"
    assert text("meta-data/public-keys/") == "0=aioimds-demo"
    assert text("meta-data/public-keys/0/") == "openssh-key"
    assert text("meta-data/events/maintenance/scheduled") == "[]"
    assert text("meta-data/ami-launch-index") == "0"
    assert set(text("meta-data/tags/instance/").split("\n")) >= {
        "Name", "aws:autoscaling:groupName", "team=platform"
    }
    assert len(text("meta-data/network/interfaces/macs/").split("\n")) == 2
    doc = json.loads(text("dynamic/instance-identity/document"))
    assert doc["region"] == "ap-northeast-1"
    assert doc["instanceId"] == text("meta-data/instance-id")
    assert doc["privateIp"] == text("meta-data/local-ipv4")
    assert '"region" : "ap-northeast-1"' in text("dynamic/instance-identity/document")
    creds = json.loads(text("meta-data/iam/security-credentials/aioimds-demo-role"))
    assert creds["AccessKeyId"] == "ASIAEXAMPLEEXAMPLE01"
    assert creds["Expiration"] == "2030-01-01T00:00:00Z"
    assert snap["/latest/user-data"].content_type == "application/octet-stream"


CATEGORIES = [
    "ami-id", "ami-launch-index", "ami-manifest-path", "autoscaling/", "block-device-mapping/",
    "events/", "hostname", "iam/", "identity-credentials/", "instance-action", "instance-id",
    "instance-life-cycle", "instance-type", "ipv6", "local-hostname", "local-ipv4", "mac",
    "metrics/", "network/", "placement/", "profile", "public-hostname", "public-ipv4",
    "public-keys/", "reservation-id", "security-groups", "services/", "system", "tags/",
]


def test_default_tree_has_every_category_and_no_error_records() -> None:
    snap = default_snapshot()
    assert set(CATEGORIES) <= set((snap["/latest/meta-data/"].text() or "").split("\n"))
    assert all(record.status == 200 for record in snap.values())


ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b|\b[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}\b")


def test_default_tree_uses_documentation_addresses_only() -> None:
    allowed = [ipaddress.ip_network(n) for n in
               ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "10.0.0.0/8", "2001:db8::/32")]
    found = 0
    for key, record in default_snapshot().items():
        text = key + " " + (record.text() or "")
        for match in ADDRESS.findall(text):
            try:
                address = ipaddress.ip_address(match)
            except ValueError:
                continue  # a MAC address or a time
            found += 1
            assert any(address in net for net in allowed), (key, match)
    assert found > 10


def test_default_file_is_canonical_snapshot_json() -> None:
    data = resources.files("aioimds.emulator").joinpath("data").joinpath("default.snapshot.json")
    assert data.read_text(encoding="utf-8") == default_snapshot().dumps()
    for key, record in default_snapshot().items():
        if key.endswith("/") and key != "/latest/meta-data/public-keys/" and record.body:
            entries = (record.text() or "").split("\n")
            assert entries == sorted(entries) and "" not in entries, key


def consistency_problems(snap: Snapshot) -> list[str]:
    """Listed entries that are not recorded, and recorded paths no listing names.

    The version listing ``/`` is checked for ``latest`` only: the emulator serves one version.
    """
    problems = []
    root = snap.get("/")
    if root is not None and "latest" not in (root.text() or "").split("\n"):
        problems.append("/ does not list latest")
    for key, record in snap.subtree("/latest/").items():
        if key.endswith("/") and record.status == 200 and record.body:
            for entry in (record.text() or "").split("\n"):
                name = canonical_path(entry)
                candidates = {key + name, key + name + "/", key + name.split("=")[0] + "/"}
                if not candidates & set(snap):
                    problems.append(f"{key} lists {entry!r}, which is not recorded")
    for key in snap:
        if key in ("/", "/latest/"):
            continue
        parent, _, name = key.rstrip("/").rpartition("/")
        listing = snap.get(parent + "/")
        entries = set((listing.text() or "").split("\n")) if listing is not None else set()
        name = unquote(name)
        named = {name, name + "/"} if key.endswith("/") else {name}
        if not (named & entries or any(e.split("=")[0] == name for e in entries if "=" in e)):
            problems.append(f"{key} is recorded but {parent}/ does not list it")
    return problems


FIXTURE_FILES = sorted(FIXTURES.glob("*.snapshot.json")) if FIXTURES.is_dir() else []


def test_default_tree_is_consistent() -> None:
    assert consistency_problems(default_snapshot()) == []


@pytest.mark.skipif(not FIXTURE_FILES, reason=f"no fixtures at {FIXTURES}")
@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.name for p in FIXTURE_FILES])
def test_fixture_tree_is_consistent(path: Path) -> None:
    assert consistency_problems(Snapshot.load(path)) == []


@pytest.mark.skipif(not FIXTURE_FILES, reason=f"no fixtures at {FIXTURES}")
@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.name for p in FIXTURE_FILES])
async def test_fixture_tree_is_served_byte_for_byte(http, path: Path) -> None:
    snap = Snapshot.load(path)
    async with Emulator(snap) as emu:
        token = await new_token(http, emu)
        for key, record in snap.items():
            reply = await get(http, emu, key, token)
            assert (reply.status, reply.headers["Content-Type"]) == (200, record.content_type)
            assert reply.body == record.body, key


def test_consistency_check_finds_problems() -> None:
    snap = Snapshot({"/latest/": Record(body=b"meta-data"), "/latest/orphan": Record(body=b"x")})
    assert consistency_problems(snap) == [
        "/latest/ lists 'meta-data', which is not recorded",
        "/latest/orphan is recorded but /latest/ does not list it",
    ]


# -- serve ----------------------------------------------------------------------------------


def serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aioimds serve")
    add_serve_arguments(parser)
    return parser.parse_args(argv)


def test_serve_options_build_the_emulator(tmp_path) -> None:
    emu = emulator_from_args(serve_args(
        "--tokens", "optional", "--latency-ms", "50", "--jitter-ms", "5", "--error-rate", "0.1",
        "--throttle-rps", "100", "--drop-rate", "0.01", "--hold-token-put", "--max-token-ttl",
        "60", "--revoke-every", "2.5", "--max-connections", "8", "--token-put-status", "404",
        "--retry-after", "1", "--seed", "4",
    ))
    assert (emu.tokens, emu.latency, emu.host) == ("optional", 0.05, "127.0.0.1")
    assert emu.faults == Faults(jitter=0.005, error_rate=0.1, throttle_rps=100, retry_after=1,
                                drop_rate=0.01, hold_token_put=True, token_put_status=404,
                                max_token_ttl=60, revoke_every=2.5, max_connections=8)
    assert emu.snapshot == default_snapshot() and not emu.counters.trace_enabled
    for bad in ("--error-rate=2", "--port=-1", "--throttle-rps=0", "--tokens=x", "--seed=x"):
        with pytest.raises(SystemExit):
            serve_args(bad)


async def test_run_serve_prints_the_url_and_stops_on_sigterm(http, tmp_path) -> None:
    snap_file = tmp_path / "tree.json"
    Snapshot({"/latest/": Record(body=b"meta-data")}).save(snap_file)
    lines: list[str] = []
    listening = asyncio.Event()

    def out(line: str) -> None:
        lines.append(line)
        listening.set()

    task = asyncio.ensure_future(run_serve(serve_args("--snapshot", str(snap_file)), out))
    await asyncio.wait_for(listening.wait(), 5)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", lines[0])
    async with http.get(lines[0] + "/latest/") as resp:
        assert resp.status == 401
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(task, 5) == 0


async def test_run_serve_raises_for_a_bad_snapshot_file(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(SnapshotFormatError):
        await run_serve(serve_args("--snapshot", str(bad)), print)
    with pytest.raises(OSError):
        await run_serve(serve_args("--snapshot", str(tmp_path / "missing.json")), print)
