"""The emulator, driven over loopback with a real aiohttp client (DESIGN.md section 4):
tokens, data paths, counters and trace."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from emulator_http import (
    NOT_FOUND_XHTML,
    REGION,
    TOKEN_H,
    TOKEN_PATH,
    TTL_H,
    assert_xhtml,
    call,
    get,
    new_token,
)

from aioimds.emulator import Counters, Emulator, Faults, default_snapshot
from aioimds.emulator.tokens import MAX_TOKENS, TokenStore, parse_ttl
from aioimds.emulator.wire import SERVER, canonical_path
from aioimds.snapshot import Record, Snapshot
from aioimds.wire import MAX_TOKEN_TTL as MAX_TTL
from aioimds.wire import MIN_TOKEN_TTL as MIN_TTL


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


@pytest.mark.usefixtures("virtual_time")
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


@pytest.mark.usefixtures("virtual_time")
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
    ("listing-without-slash", "/latest/meta-data/placement", 200),
    ("double-slash", "/latest/meta-data//placement/region", 200),
    ("leaf-with-slash", "/latest/meta-data/placement/region/", 200),
    ("dot-segment", "/latest/meta-data/../meta-data/ami-id", 404),
    ("encoded-slash", "/latest/meta-data/placement%2Fregion", 404),
    ("key-name-listing-entry", "/latest/meta-data/public-keys/0=aioimds-demo", 404),
    ("key-directory-without-slash", "/latest/meta-data/public-keys/0", 200),
    ("no-derived-listing", "/latest/meta-data/public-keys/1/", 404),
]


@pytest.mark.parametrize(
    ("path", "status"), [c[1:] for c in LOOKUP_CASES], ids=[c[0] for c in LOOKUP_CASES]
)
async def test_lookup_tries_raw_then_canonical_then_resolves(emu, http, path, status) -> None:
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


@pytest.mark.usefixtures("virtual_time")
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
