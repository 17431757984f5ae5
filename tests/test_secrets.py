"""Secrets: the session token and role credentials never leak into logs, reprs, errors or dumps.

The tests learn the real values (every token the emulator issues, read by wrapping
``TokenStore.issue``; the credentials of the default tree) and scan for them: in log output at
DEBUG, in the str and repr of everything reachable (client, token session, config, errors with
their whole cause/context chain and args, snapshot, crawl result), in CLI stderr with ``-vv``,
and in every dump format unless ``--include-secrets``. Each test says how it was checked to
fail on a client without the protection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable

import pytest
from aiohttp import web
from hostile_servers import http_server, raw_server, raw_token_answer, read_request, run_cli

from aioimds import (
    CrawlResult,
    IMDSClient,
    IMDSCrawlError,
    IMDSError,
    IMDSTokenError,
    Record,
)
from aioimds.emulator import Emulator, Faults, PathFault, default_snapshot
from aioimds.emulator.tokens import TokenStore
from aioimds.typed.credentials import CredentialsProvider

ROLE = "/latest/meta-data/iam/security-credentials/aioimds-demo-role"
IDENTITY = "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance"


def role_secrets() -> list[str]:
    """The SecretAccessKey and Token of every credential document in the default tree."""
    out = []
    for path in (ROLE, IDENTITY):
        doc = json.loads(default_snapshot()[path].body)
        out += [doc["SecretAccessKey"], doc["Token"]]
    return out


@pytest.fixture
def issued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token the emulator hands out during the test, in order."""
    tokens: list[str] = []
    original = TokenStore.issue

    def issue(self: TokenStore, ttl: int) -> str:
        tokens.append(original(self, ttl))
        return tokens[-1]

    monkeypatch.setattr(TokenStore, "issue", issue)
    return tokens


def reachable_texts(*roots: object) -> list[str]:
    """str and repr of each root and of everything an error or a result leads to."""
    texts: list[str] = []
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        texts += [str(obj), repr(obj)]
        if isinstance(obj, BaseException):
            stack += [obj.__cause__, obj.__context__, *obj.args, *vars(obj).values()]
        if isinstance(obj, IMDSCrawlError):
            stack += [*obj.failures.values(), obj.partial]
        if isinstance(obj, CrawlResult):
            stack += [obj.snapshot, *obj.failures.values()]
    return texts


def assert_absent(secrets: Iterable[str], texts: Iterable[str]) -> None:
    texts = list(texts)
    for secret in secrets:
        assert not [t for t in texts if secret in t], f"{secret[:6]}... leaked"


async def collect(errors: list[BaseException], coro) -> object:  # type: ignore[no-untyped-def]
    """Await ``coro``; keep an IMDSError it raises in ``errors`` instead of raising."""
    try:
        return await coro
    except IMDSError as exc:
        errors.append(exc)
        return None


# Checked by a sitecustomize making TokenSession.__repr__ show the token and Transport.send log
# its headers at DEBUG: this test and every CLI test below fail.
async def test_the_token_is_in_no_log_repr_or_error_across_get_dump_refresh_and_failures(
    issued: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: aioimds, aiohttp and asyncio alike
    errors: list[BaseException] = []
    faults = Faults(path_faults=[PathFault("/latest/meta-data/ami-id", status=503),
                                 PathFault("/latest/meta-data/hostname", status=401)])
    async with Emulator(faults=faults) as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_response("/latest/meta-data/mac", Record(b"", 403))
        objects: list[object] = [imds, imds._tokens, imds.config]
        await imds.get("meta-data/ami-id")  # a 503, retried and logged
        await imds.get("meta-data/hostname")  # a 401: a fresh token, logged
        emu.revoke_tokens()
        objects.append(await imds.dump(partial=True))  # a 401 refresh and a 403 failure
        objects.append(await collect(errors, imds.dump()))
        for path in ("meta-data/nope", "meta-data/mac", "meta-data/../x"):
            await collect(errors, imds.get(path))
        await collect(errors, imds.get_json("meta-data/placement/region"))
        await collect(errors, imds.get("user-data"))
        objects += [imds, imds._tokens]
    assert len(issued) >= 3 and len(errors) == 6
    assert emu.counters.requests[("GET", 401)] >= 2
    assert_absent(issued, [caplog.text, *reachable_texts(*objects, *errors)])


# Checked on the library as it was: aiohttp's ClientResponseError (a malformed answer) keeps
# the request headers in request_info, which it shows in its repr, and the IMDSConnectionError
# chained from it led there; the fix in transport.py redacts it before chaining.
BAD_ANSWERS = [
    ("bad-header", b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n"),
    ("bad-status-line", b"HTTP/1.1 OK\r\n\r\n"),
    ("bad-length", b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n"),
    ("long-header", b"HTTP/1.1 200 OK\r\nX: " + b"x" * 70_000 + b"\r\n\r\n"),
]


@pytest.mark.parametrize("answer", [c[1] for c in BAD_ANSWERS], ids=[c[0] for c in BAD_ANSWERS])
async def test_an_error_from_a_malformed_answer_does_not_lead_to_the_token(
    answer: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def malformed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            method, _, _ = await read_request(reader)
            writer.write(raw_token_answer() if method == "PUT" else answer)
            await writer.drain()

    async with raw_server(malformed) as url, IMDSClient(endpoint=url, attempts=1) as imds:
        with pytest.raises(IMDSError) as info:
            await imds.get("meta-data/instance-id")
        token = imds._tokens._token[0] if imds._tokens and imds._tokens._token else ""
    assert token and info.value.path == "/latest/meta-data/instance-id"
    assert_absent([token], [caplog.text, *reachable_texts(info.value)])


# Checked by a sitecustomize making aioimds.client._parse_token put the refused body in its
# message: every row fails.
@pytest.mark.parametrize("body", [b"secret token with spaces", b"s3cr3t" * 1000, b"\xffs3cr3t"],
                         ids=["whitespace", "too-long", "not-ascii"])
async def test_a_refused_token_answer_is_not_echoed_in_the_error(body: bytes) -> None:
    async def hostile(request: web.BaseRequest) -> web.Response:
        return web.Response(body=body)

    async with http_server(hostile) as server, IMDSClient(endpoint=server.url) as imds:
        with pytest.raises(IMDSTokenError) as info:
            await imds.get("meta-data/instance-id")
    assert_absent(["s3cr3t", "secret token"], reachable_texts(info.value))


# Checked by a sitecustomize making the CLI's redact return its input: the three "redacted"
# rows fail (the secrets are in stdout).
@pytest.mark.parametrize("include", [False, True], ids=["redacted", "include-secrets"])
@pytest.mark.parametrize("fmt", ["json", "flat", "snapshot"])
async def test_cli_dump_with_vv_logs_no_token_and_prints_credentials_only_when_asked(
    fmt: str, include: bool, issued: list[str]
) -> None:
    faults = Faults(path_faults=[PathFault(ROLE, status=401), PathFault(IDENTITY, status=503)])
    async with Emulator(faults=faults) as emu:
        emu.set_response("/latest/meta-data/mac", Record(b"", 403))
        extra = ["--include-secrets"] if include else []
        code, out, err = await run_cli("-vv", "--endpoint", emu.url, "dump", "--format", fmt,
                                       "--partial", *extra)
        assert emu.counters.requests[("GET", 401)] == 1  # the refresh happened, and was logged
    assert code == 1 and b"/latest/meta-data/mac" in err and b"aioimds: debug: " in err
    assert len(issued) == 2
    assert_absent(issued, [out.decode(), err.decode()])
    assert_absent(role_secrets(), [err.decode()])
    if include:
        assert all(secret in out.decode() for secret in role_secrets())
    else:
        assert_absent(role_secrets(), [out.decode()])
        assert "<redacted>" in out.decode() and "ASIAEXAMPLEEXAMPLE01" in out.decode()


async def test_cli_get_of_the_credentials_prints_them_and_logs_neither_them_nor_the_token(
    issued: list[str],
) -> None:
    async with Emulator(faults=Faults(path_faults=[PathFault(ROLE, status=401)])) as emu:
        code, out, err = await run_cli(
            "-vv", "--endpoint", emu.url, "get", ROLE.removeprefix("/latest/"))
    assert code == 0 and out == default_snapshot()[ROLE].body
    assert len(issued) == 2 and b"refreshing the token" in err
    assert_absent([*issued, *role_secrets()], [err.decode()])


# Checked on the library as it was (get_json and the typed views' JSON parsing chained the
# JSONDecodeError, whose ``doc`` is the whole document), restored by a sitecustomize: the test
# fails; the fixes are in client.get_json and _fields._json.
async def test_role_credentials_are_in_no_log_repr_or_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        provider = CredentialsProvider(imds)
        objects: list[object] = [imds, await imds.dump(), await imds.dump(partial=True),
                                 provider, await provider.get(), provider]
        for path, rec in emu.snapshot.items():
            if "security-credentials/" in path and not path.endswith("/"):
                emu.set_response(path, Record(rec.body[:-40]))  # a truncated document
        await collect(errors, imds.get_json(ROLE.removeprefix("/latest/")))
        await collect(errors, CredentialsProvider(imds).get())
        emu.set_response(ROLE, Record(b"", 500))
        objects.append(await collect(errors, imds.dump(attempts=1)))
    assert len(errors) == 3
    assert_absent(role_secrets(), [caplog.text, *reachable_texts(*objects, *errors)])
