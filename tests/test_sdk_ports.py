"""Ports of the token, fallback and retry tests of two AWS SDKs, against real servers on
127.0.0.1. Each test id carries the SDK's own test name:

- AWS SDK for Go v2, ``feature/ec2/imds``: ``TestRequestGetToken`` (request_middleware_test.go,
  one case per table row), ``TestGetToken`` (api_op_GetToken_test.go),
  ``TestUnauthorizedErrorUnwrapsToResponseError`` (token_provider_test.go),
  ``TestClientEnableState`` and ``TestClientEndpoint`` (api_client_test.go);
- botocore, ``tests/unit/test_utils.py``, class ``TestInstanceMetadataFetcher``.

Where aioimds deliberately differs, the test asserts what aioimds does and says so; the README
section "Parity with the AWS SDKs" lists every difference, naming the SDK.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from hostile_servers import TTL_H, Scripted, http_server, raw_server, unanswered_port

from aioimds import (
    CredentialsProvider,
    IMDSClient,
    IMDSConfig,
    IMDSConfigError,
    IMDSCredentialsError,
    IMDSDisabledError,
    IMDSError,
    IMDSHTTPError,
    IMDSTokenError,
    IMDSUnreachableError,
)
from aioimds.token import token_from_answer

TOKEN_PATH = "/latest/api/token"
FOO = "/latest/foo"  # the Go tests' path

# -- AWS SDK for Go v2: TestRequestGetToken ----------------------------------------------------


@dataclass
class GoServer:
    """The Go tests' handlers (shared_test.go): a secure handler handing out ``tokens`` in turn
    with ``ttl`` echoed, an insecure one answering the PUT ``put_status``, or the
    "unauthorized" one (PUT 404 and GET 401 until a GET was refused, then secure)."""

    kind: str
    tokens: list[str] = field(default_factory=lambda: ["tokenA"])
    ttl: str = "300"
    put_status: int = 0
    delay: float = 0.0
    trace: list[str] = field(default_factory=list)
    active: str = ""
    enabled: bool = False

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        self.trace.append(request.path)
        if request.path == TOKEN_PATH:
            assert request.method == "PUT" and request.headers.get(TTL_H)
            if self.kind == "insecure" or (self.kind == "unauthorized" and not self.enabled):
                status = self.put_status or 404
                return web.Response(status=status, text=str(status))
            self.active = self.tokens[0]
            if len(self.tokens) > 1:
                self.tokens = self.tokens[1:]
            return web.Response(text=self.active, headers={TTL_H: self.ttl})
        token = request.headers.get("X-aws-ec2-metadata-token")
        if self.kind == "insecure":
            assert token is None
        elif self.kind == "unauthorized" and not self.enabled:
            self.enabled = True
            return web.Response(status=401)
        elif token != self.active:
            return web.Response(status=401)
        await asyncio.sleep(self.delay)
        return web.Response(text="hello")


GO_CASES = {
    # name: (server, API calls, v1 allowed, expected trace, expected error or None)
    "secure": (GoServer("secure"), 2, True, [TOKEN_PATH, FOO, FOO], None),
    "secure multi token": (
        GoServer("secure", tokens=["tokenA", "tokenB", "tokenC"], ttl="0", delay=0.1), 4, True,
        [TOKEN_PATH, FOO] * 4, None),
    "insecure 405": (GoServer("insecure", put_status=405), 2, True, [TOKEN_PATH, FOO, FOO], None),
    "insecure 404": (GoServer("insecure", put_status=404), 2, True, [TOKEN_PATH, FOO, FOO], None),
    "insecure 403": (GoServer("insecure", put_status=403), 2, True, [TOKEN_PATH, FOO, FOO], None),
    "unauthorized 401 re-enable": (
        GoServer("unauthorized"), 2, True, [TOKEN_PATH, FOO, TOKEN_PATH, FOO, FOO], None),
    "bad request 400": (GoServer("insecure", put_status=400), 1, True, [TOKEN_PATH],
                        IMDSTokenError),
    "token failure fallback enabled": (
        GoServer("insecure", put_status=500), 1, True, [TOKEN_PATH] * 3 + [FOO], None),
    "token failure fallback disabled": (
        GoServer("insecure", put_status=500), 1, False, [TOKEN_PATH] * 3, IMDSTokenError),
    "insecure 403 fallback disabled": (
        GoServer("insecure", put_status=403), 1, False, [TOKEN_PATH], IMDSTokenError),
}


@pytest.mark.parametrize("name", list(GO_CASES), ids=[f"TestRequestGetToken/{n}" for n in GO_CASES])
async def test_go_request_get_token(name: str) -> None:
    server, calls, v1_allowed, trace, error = GO_CASES[name]
    async with http_server(server) as srv, IMDSClient(
            endpoint=srv.url, v1_disabled=not v1_allowed) as imds:
        for _ in range(calls):
            if error is None:
                assert await imds.get_bytes("foo") == b"hello"
            else:
                with pytest.raises(error):
                    await imds.get_bytes("foo")
    assert server.trace == trace


async def test_go_get_token_success() -> None:
    """TestGetToken/success: the TTL asked for is sent, the echoed TTL is the token's."""
    seen: list[str | None] = []

    async def handler(request: web.BaseRequest) -> web.Response:
        if request.method == "PUT":
            seen.append(request.headers.get(TTL_H))
            return web.Response(text="tokenABC", headers={TTL_H: "10"})
        return web.Response(text="ok" if request.headers.get(
            "X-aws-ec2-metadata-token") == "tokenABC" else "no")

    async with http_server(handler) as srv, IMDSClient(endpoint=srv.url, token_ttl=10) as imds:
        assert await imds.get("meta-data/ami-id") == "ok"
        assert imds._tokens is not None and imds._tokens._token is not None
        value = imds._tokens._token[0]
    assert seen == ["10"] and value == "tokenABC"
    assert token_from_answer(200, b"tokenABC", "10", 10) == ("tokenABC", 10)


async def test_go_unauthorized_error_unwraps_to_response_error() -> None:
    """TestUnauthorizedErrorUnwrapsToResponseError: GETs answer 401 whatever the token; the
    error carries the status 401. (Go with NopRetryer sends one GET; aioimds re-PUTs once.)"""
    async def handler(request: web.BaseRequest) -> web.Response:
        return web.Response(text="token") if request.method == "PUT" else web.Response(status=401)

    async with http_server(handler) as srv, IMDSClient(endpoint=srv.url, attempts=1) as imds:
        with pytest.raises(IMDSHTTPError) as info:
            await imds.get("meta-data/iam/security-credentials/")
    assert info.value.status == 401
    assert [s.method for s in srv.seen] == ["PUT", "GET", "PUT", "GET"]


@pytest.mark.parametrize(
    ("env", "option", "disabled"),
    [({}, None, False), ({"AWS_EC2_METADATA_DISABLED": "true"}, None, True),
     ({"AWS_EC2_METADATA_DISABLED": "blah"}, None, False), ({}, True, True),
     ({"AWS_EC2_METADATA_DISABLED": "true"}, False, False)],
    ids=["TestClientEnableState/default", "TestClientEnableState/disabled environment var",
         "TestClientEnableState/unknown environment value",
         "TestClientEnableState/disabled option", "TestClientEnableState/enabled option"])
async def test_go_client_enable_state(tmp_path: Path, env: dict[str, str], option: bool | None,
                                      disabled: bool) -> None:
    env = {"AWS_CONFIG_FILE": str(tmp_path / "none"), **env}
    async with http_server(lambda r: _hello(r)) as srv:
        async with IMDSClient(IMDSConfig.from_environment(env, disabled=option),
                              endpoint=srv.url) as imds:
            if disabled:
                with pytest.raises(IMDSDisabledError, match="disabled"):
                    await imds.get("meta-data/ami-id")
            else:
                assert await imds.get("meta-data/ami-id") == "hello"
    assert (srv.seen == []) is disabled


async def _hello(request: web.BaseRequest) -> web.Response:
    return web.Response(text="token" if request.method == "PUT" else "hello")


@pytest.mark.parametrize(
    ("option", "env", "expect"),
    [(None, None, "http://169.254.169.254"),
     ("http://endpoint.localhost", None, "http://endpoint.localhost"),
     ("http://endpoint.localhost", "http://[::1]", "http://endpoint.localhost"),
     (None, "http://[::1]", "http://[::1]")],
    ids=["TestClientEndpoint/default", "TestClientEndpoint/from option",
         "TestClientEndpoint/from option with environment",
         "TestClientEndpoint/from environment"])
def test_go_client_endpoint(tmp_path: Path, option: str | None, env: str | None,
                            expect: str) -> None:
    environ = {"AWS_CONFIG_FILE": str(tmp_path / "none")}
    if env:
        environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = env
    assert IMDSConfig.from_environment(environ, endpoint=option).base_url == expect


# -- botocore: TestInstanceMetadataFetcher -----------------------------------------------------

ROLES = "/latest/meta-data/iam/security-credentials/"
EXTENDED = "/latest/meta-data/iam/security-credentials-extended/role-name"
CREDS = {"Code": "Success", "AccessKeyId": "spam", "SecretAccessKey": "eggs",
         "Token": "spam-token", "Expiration": "2099-01-01T00:00:00Z"}


BOTO_TREE = {ROLES: b"role-name", ROLES + "role-name": json.dumps(CREDS).encode()}


def boto_script() -> Scripted:
    """botocore's IMDS: token ``token``, role ``role-name``, its credentials."""
    return Scripted(dict(BOTO_TREE), token="token")


def gets(script: Scripted) -> list[tuple[str, str | None]]:
    """The GETs botocore would send: aioimds also asks the extended credentials path first."""
    return [(p, t) for m, p, t in script.seen if m == "GET" and p != EXTENDED]


@asynccontextmanager
async def fetcher(script: Scripted, **settings: object) -> AsyncIterator[IMDSClient]:
    async with raw_server(script.handle) as url, IMDSClient(endpoint=url, **settings) as imds:
        yield imds


async def credentials(imds: IMDSClient) -> dict[str, str]:
    creds = await CredentialsProvider(imds).get()
    return {"access_key": creds.access_key_id, "secret_key": creds.secret_access_key,
            "token": creds.token, "role_name": creds.role_name}


EXPECTED = {"access_key": "spam", "secret_key": "eggs", "token": "spam-token",
            "role_name": "role-name"}


@pytest.mark.parametrize(
    ("path", "action"),
    [(ROLES, (429, b'{"message": "Slow down"}')), (ROLES, "drop"),
     (ROLES + "role-name", (429, b'{"message": "Slow down"}')), (ROLES + "role-name", "drop")],
    ids=["test_non_200_response_for_role_name_is_retried",
         "test_http_connection_error_for_role_name_is_retried",
         "test_non_200_response_is_retried", "test_http_connection_errors_is_retried"])
async def test_botocore_is_retried(path: str, action: tuple[int, bytes] | str) -> None:
    script = boto_script().add(path, action)
    async with fetcher(script, attempts=2) as imds:
        assert await credentials(imds) == EXPECTED
    assert [p for p, _ in gets(script)].count(path) == 2


@pytest.mark.parametrize(
    ("path", "body"),
    [(ROLES, b""), (ROLES + "role-name", b""), (ROLES + "role-name", b'{"AccessKey":')],
    ids=["test_empty_response_for_role_name_is_retried", "test_empty_response_is_retried",
         "test_invalid_json_is_retried"])
async def test_botocore_empty_or_invalid_200_is_an_error_not_a_retry(path: str,
                                                                     body: bytes) -> None:
    """Differs from botocore: a 200 is the service's answer (an empty listing is valid IMDS),
    so it is not retried; it is a typed error naming the path."""
    script = boto_script().add(path, (200, body))
    async with fetcher(script, attempts=2) as imds:
        with pytest.raises(IMDSError) as info:
            await credentials(imds)
    assert isinstance(info.value, IMDSCredentialsError) or info.value.path == path
    assert [p for p, _ in gets(script)].count(path) == 1


@pytest.mark.parametrize("path", [ROLES, ROLES + "role-name"],
                         ids=["test_exhaust_retries_on_role_name_request",
                              "test_exhaust_retries_on_credentials_request"])
async def test_botocore_exhaust_retries(path: str) -> None:
    """botocore returns ``{}``; aioimds raises the 400 (never a silent empty answer)."""
    script = boto_script().add(path, (400, b""))
    async with fetcher(script, attempts=1) as imds:
        with pytest.raises(IMDSHTTPError) as info:
            await credentials(imds)
    assert info.value.status == 400 and info.value.path == path


async def test_botocore_missing_fields_in_credentials_response() -> None:
    """botocore returns ``{}``; aioimds raises IMDSCredentialsError naming the Code."""
    body = b'{"Code":"AssumeRoleUnauthorizedAccess","Message":"error"}'
    async with fetcher(boto_script().add(ROLES + "role-name", (200, body))) as imds:
        with pytest.raises(IMDSCredentialsError, match="AssumeRoleUnauthorizedAccess"):
            await credentials(imds)


async def test_botocore_token_is_included() -> None:
    script = boto_script()
    async with fetcher(script) as imds:
        assert await credentials(imds) == EXPECTED
    assert script.seen[0][:2] == ("PUT", TOKEN_PATH)
    assert [t for _, t in gets(script)] == ["token", "token"]


@pytest.mark.parametrize("status", [404, 403, 405], ids=[
    "test_metadata_token_not_supported_404", "test_metadata_token_not_supported_403",
    "test_metadata_token_not_supported_405"])
async def test_botocore_metadata_token_not_supported(status: int) -> None:
    script = boto_script().add(TOKEN_PATH, (status, b""))
    async with fetcher(script) as imds:
        assert await credentials(imds) == EXPECTED
    assert [t for _, t in gets(script)] == [None, None]


@pytest.mark.parametrize("attempts", [1, 3])
async def test_botocore_metadata_token_not_supported_timeout(attempts: int) -> None:
    """A read timeout on the PUT: botocore goes IMDSv1 at once. aioimds does with attempts=1;
    with more attempts it retries the PUT first, so one slow answer is no IMDSv1 downgrade."""
    script = boto_script().add(TOKEN_PATH, *["hold"] * attempts)
    async with fetcher(script, attempts=attempts, timeout=0.3) as imds:
        assert await credentials(imds) == EXPECTED
    assert [m for m, p, _ in script.seen if p == TOKEN_PATH] == ["PUT"] * attempts
    assert [t for _, t in gets(script)] == [None, None]


async def test_botocore_token_not_supported_exhaust_retries() -> None:
    """A connect timeout on the PUT: botocore goes IMDSv1. aioimds retries the PUT; when no
    connection ever gets an answer, the endpoint is dead: one clear error, no IMDSv1 GETs."""
    with unanswered_port() as url:
        async with IMDSClient(endpoint=url, timeout=0.3) as imds:
            with pytest.raises(IMDSUnreachableError, match="not on EC2"):
                await credentials(imds)


async def test_botocore_metadata_token_bad_request_yields_no_credentials() -> None:
    """botocore returns ``{}``; aioimds raises IMDSTokenError (400) and sends no GET."""
    script = boto_script().add(TOKEN_PATH, (400, b""))
    async with fetcher(script) as imds:
        with pytest.raises(IMDSTokenError) as info:
            await credentials(imds)
    assert info.value.status == 400 and gets(script) == []


async def test_botocore_v1_disabled_by_config(tmp_path: Path) -> None:
    config_file = tmp_path / "config"
    config_file.write_text("[default]\nec2_metadata_v1_disabled = true\n")
    script = boto_script().add(TOKEN_PATH, (404, b""))
    config = IMDSConfig.from_environment({"AWS_CONFIG_FILE": str(config_file)}, attempts=1)
    async with raw_server(script.handle) as url, IMDSClient(config, endpoint=url) as imds:
        with pytest.raises(IMDSTokenError, match="IMDSv1 fallback is disabled"):
            await credentials(imds)
    assert gets(script) == []


@pytest.mark.parametrize("value", ["true", "tRuE"], ids=[
    "test_disabled_by_environment", "test_disabled_by_environment_mixed_case"])
async def test_botocore_disabled_by_environment(tmp_path: Path, value: str) -> None:
    """botocore returns ``{}`` without a request; aioimds raises IMDSDisabledError, no request."""
    script = boto_script()
    env = {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": value}
    async with raw_server(script.handle) as url, IMDSClient(
            IMDSConfig.from_environment(env), endpoint=url) as imds:
        with pytest.raises(IMDSDisabledError):
            await credentials(imds)
    assert script.seen == []


async def test_botocore_disabling_env_var_not_true(tmp_path: Path) -> None:
    env = {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "false"}
    async with raw_server(boto_script().handle) as url, IMDSClient(
            IMDSConfig.from_environment(env), endpoint=url) as imds:
        assert await credentials(imds) == EXPECTED


@pytest.mark.parametrize(
    ("config", "expect"),
    [({"ec2_metadata_service_endpoint_mode": "ipv6"}, "http://[fd00:ec2::254]"),
     ({"ec2_metadata_service_endpoint_mode": "ipv4"}, "http://169.254.169.254"),
     ({"ec2_metadata_service_endpoint_mode": "foo"}, IMDSConfigError),
     ({"ec2_metadata_service_endpoint_mode": "ipv6",
       "ec2_metadata_service_endpoint": "http://[fd00:ec2::010]/"}, "http://[fd00:ec2::010]"),
     ({"ec2_metadata_service_endpoint": ""}, "http://169.254.169.254"),
     ({"ec2_metadata_service_endpoint_mode": ""}, "http://169.254.169.254"),
     ({}, "http://169.254.169.254")],
    ids=["test_ec2_metadata_endpoint_service_mode/ipv6",
         "test_ec2_metadata_endpoint_service_mode/ipv4",
         "test_ec2_metadata_endpoint_service_mode/foo",
         "test_ec2_metadata_endpoint_service_mode/endpoint-wins",
         "test_ipv6_imds_empty_config/endpoint", "test_ipv6_imds_empty_config/mode",
         "test_ipv6_imds_empty_config/none"])
def test_botocore_endpoint_from_config(tmp_path: Path, config: dict[str, str],
                                       expect: str | type[Exception]) -> None:
    """The mode ``foo``: botocore falls back to IPv4; aioimds refuses it, as the AWS SDK for
    Rust's conformance table ("invalid config endpoint mode")."""
    path = tmp_path / "config"
    path.write_text("[default]\n" + "".join(f"{k} = {v}\n" for k, v in config.items()))
    env = {"AWS_CONFIG_FILE": str(path)}
    if isinstance(expect, str):
        assert IMDSConfig.from_environment(env).base_url == expect
    else:
        with pytest.raises(expect):
            IMDSConfig.from_environment(env)


@pytest.mark.parametrize("endpoint", ["not.a:valid:dom@in", "http://fd00:ec2::010/"],
                         ids=["test_ipv6_invalid_endpoint",
                              "test_ipv6_endpoint_no_brackets_env_var_set"])
def test_botocore_invalid_endpoint(endpoint: str) -> None:
    with pytest.raises(IMDSConfigError):
        IMDSConfig(endpoint=endpoint)


def test_botocore_ipv6_endpoint_env_var_set_and_args(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("[default]\nec2_metadata_service_endpoint = http://[fd00:ec2::254]/\n")
    arg = "http://[fd00:ec2::8a2e:370:7334]"
    config = IMDSConfig.from_environment({"AWS_CONFIG_FILE": str(path)}, endpoint=arg)
    assert config.base_url == arg


async def test_botocore_ipv6_imds_not_allocated() -> None:
    """The PUT answers 400: botocore returns ``{}``; aioimds raises IMDSTokenError (400)."""
    async with fetcher(boto_script().add(TOKEN_PATH, (400, b"{}"))) as imds:
        with pytest.raises(IMDSTokenError) as info:
            await credentials(imds)
    assert info.value.status == 400


async def test_botocore_includes_user_agent_header() -> None:
    seen: list[str | None] = []

    async def handler(request: web.BaseRequest) -> web.Response:
        seen.append(request.headers.get("User-Agent"))
        return await _hello(request)

    async with http_server(handler) as srv, IMDSClient(endpoint=srv.url) as imds:
        await imds.get("meta-data/ami-id")
    assert seen == ["aioimds", "aioimds"]
