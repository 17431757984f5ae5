"""aws-credentials-imds (the AWS SDK for Python v4's IMDS credentials, asyncio) against the
emulator: its resolver, and the SDK's default identity chain with only
``AWS_EC2_METADATA_SERVICE_ENDPOINT`` set. It asks for the role listing without its trailing
slash (``/latest/meta-data/iam/security-credentials``). It needs Python 3.12 or newer (its
``requires-python``), so on older Pythons this module is skipped, saying so."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import pytest

from aioimds.emulator import Emulator, Faults

from .conftest import EXTRA, Expect

if sys.version_info < (3, 12):
    pytest.skip("aws-credentials-imds requires Python >= 3.12 (its requires-python)",
                allow_module_level=True)

imds = pytest.importorskip("aws_credentials_imds", reason=EXTRA)
smithy_core = pytest.importorskip("smithy_core", reason=EXTRA)
smithy_exceptions = pytest.importorskip("smithy_core.exceptions", reason=EXTRA)
smithy_aiohttp = pytest.importorskip("smithy_http.aio.aiohttp", reason=EXTRA)
chain = pytest.importorskip("smithy_aws_core.identity.chain", reason=EXTRA)
identity = pytest.importorskip("smithy_aws_core.identity", reason=EXTRA)

LISTING = "/latest/meta-data/iam/security-credentials"


def resolver_for(emu: Emulator, http: object) -> object:
    uri = smithy_core.URI(scheme="http", host="127.0.0.1", port=emu.port)
    return imds.IMDSCredentialsResolver(http_client=http,
                                        config=imds.IMDSConfig(endpoint_uri=uri))


def assert_identity(got: object, e: Expect) -> None:
    role = e.role()
    assert role is not None
    doc = role[1]
    assert (got.access_key_id, got.secret_access_key, got.session_token) == (
        doc["AccessKeyId"], doc["SecretAccessKey"], doc["Token"])
    assert got.account_id == doc.get("AccountId")
    assert got.expiration == datetime.fromisoformat(doc["Expiration"]).replace(
        tzinfo=timezone.utc)


async def test_the_resolver_reads_the_role(served_async: Emulator, expect: Expect) -> None:
    async with smithy_aiohttp.AIOHTTPClient() as http:
        resolver = resolver_for(served_async, http)
        if expect.role() is None:
            with pytest.raises(smithy_exceptions.SmithyIdentityError, match="404"):
                await resolver.get_identity(properties={})
        else:
            assert_identity(await resolver.get_identity(properties={}), expect)
    gets = [(r.path, r.token) for r in served_async.requests if r.method == "GET"]
    assert gets[0] == (LISTING, True)  # a listing asked without its slash


async def test_the_default_chain_reads_the_role_from_the_endpoint_variable(
    served_async: Emulator, expect: Expect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", served_async.url)
    async with smithy_aiohttp.AIOHTTPClient() as http:
        resolvers = await chain.IdentityChain.create(identity.AWSCredentialsIdentity,
                                                     http_client=http)
        if expect.role() is None:
            with pytest.raises(chain.IdentityChainError):
                await resolvers.get_identity(properties={})
        else:
            assert_identity(await resolvers.get_identity(properties={}), expect)


@pytest.mark.parametrize("status", [403, 404, 405])
async def test_without_a_token_it_raises_even_with_tokens_optional(status: int) -> None:
    """IMDSv2 only: a refused token PUT is an error, never an IMDSv1 fallback."""
    async with Emulator(tokens="optional", faults=Faults(token_put_status=status)) as emu:
        async with smithy_aiohttp.AIOHTTPClient() as http:
            with pytest.raises(smithy_exceptions.SmithyIdentityError,
                               match=f"IMDS returned {status} when fetching a metadata token"):
                await resolver_for(emu, http).get_identity(properties={})
        assert [r.method for r in emu.requests] == ["PUT"]
