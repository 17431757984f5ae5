"""The aiobotocore credential provider against the real aiobotocore and the emulator, which
rotates the role's credentials."""

from __future__ import annotations

import os
from typing import Any

import pytest
from sdk_helpers import (
    ACCOUNT,
    EXTENDED,
    LIFETIME,
    LISTING,
    NO_SDK,
    ROLE,
    Clock,
    serve_extended,
    served,
    signing_key_id,
)

pytest.importorskip("aiobotocore", reason="aiobotocore " + NO_SDK)

from aiobotocore.session import get_session
from botocore.exceptions import UnknownCredentialError

from aioimds import CredentialsProvider, IMDSClient, IMDSConfig
from aioimds.aiobotocore_credentials import (
    AioInstanceRoleCredentialProvider,
    add_instance_role,
)
from aioimds.emulator import Emulator


@pytest.fixture(autouse=True)
def no_machine_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No shared credentials file of the machine running the tests (the hermetic fixture
    already empties AWS_* and the config file)."""
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def role_reads(emu: Emulator) -> int:
    return sum(1 for t in emu.counters.trace if t.path == EXTENDED)


async def presigned_key_id(session: Any) -> str:
    """The access key id an S3 client signs with (a presigned URL: no request is sent)."""
    async with session.create_client("s3", region_name="ap-northeast-1") as s3:
        url: str = await s3.generate_presigned_url(
            "get_object", Params={"Bucket": "example-bucket", "Key": "k"}, ExpiresIn=60)
    return signing_key_id(url)


async def test_the_session_signs_with_the_role_credentials_and_follows_their_rotation(
    imds_environment: Emulator,
) -> None:
    emu = imds_environment
    serve_extended(emu)
    emu.rotate_credentials(lifetime=LIFETIME)
    first = served(emu, EXTENDED)
    clock = Clock()
    async with IMDSClient(IMDSConfig(endpoint=emu.url)) as imds:
        session = get_session()
        add_instance_role(session, CredentialsProvider(imds, clock=clock))
        creds = await session.get_credentials()
        assert creds.method == "aioimds"
        frozen = await creds.get_frozen_credentials()
        assert (frozen.access_key, frozen.secret_key, frozen.token) == (
            first["AccessKeyId"], first["SecretAccessKey"], first["Token"])
        assert frozen.account_id == ACCOUNT == first["AccountId"]
        assert await presigned_key_id(session) == first["AccessKeyId"]

        emu.rotate_credentials(lifetime=LIFETIME)
        second = served(emu, EXTENDED)
        assert second["AccessKeyId"] != first["AccessKeyId"]
        # Asked again (inside the advisory window), the provider keeps what it has until due.
        assert (await creds.get_frozen_credentials()).access_key == first["AccessKeyId"]
        clock.advance(31)  # past the provider's next refresh
        assert (await creds.get_frozen_credentials()).access_key == second["AccessKeyId"]
        assert (await creds.get_frozen_credentials()).token == second["Token"]
        assert await presigned_key_id(session) == second["AccessKeyId"]
    assert role_reads(emu) == 2
    assert {t.path for t in emu.counters.trace} <= {"/latest/api/token", LISTING, EXTENDED}


async def test_it_takes_the_place_of_botocores_imds_provider_after_env_and_files(
    imds_environment: Emulator, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with IMDSClient(IMDSConfig(endpoint=imds_environment.url)) as imds:
        session = get_session()
        resolver = session.get_component("credential_provider")
        before = [p.METHOD for p in resolver.providers]
        provider = add_instance_role(session, imds)
        after = [p.METHOD for p in resolver.providers]
        assert isinstance(provider, AioInstanceRoleCredentialProvider)
        assert after == [("aioimds" if m == "iam-role" else m) for m in before]
        assert after.index("env") < after.index("container-role") < after.index("aioimds")

        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00000")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "environment-secret")
        creds = await session.get_credentials()
        assert creds.method == "env" and creds.access_key == "AKIAENVIRONMENT00000"
    assert imds_environment.counters.trace == []  # IMDS was never asked

    session = get_session()
    with pytest.raises(UnknownCredentialError):
        add_instance_role(session, imds, before="no-such-provider")


async def test_without_a_role_the_chain_goes_on_and_finds_nothing(
    imds_environment: Emulator,
) -> None:
    imds_environment.remove(LISTING)
    async with IMDSClient(IMDSConfig(endpoint=imds_environment.url)) as imds:
        session = get_session()
        add_instance_role(session, imds, before="env")
        assert await session.get_credentials() is None
    assert [t.path for t in imds_environment.counters.trace if t.method == "GET"] == [LISTING]
    assert imds_environment.counters.requests[("GET", 404)] == 1


async def test_the_provider_repr_shows_no_secret(imds_environment: Emulator) -> None:
    async with IMDSClient(IMDSConfig(endpoint=imds_environment.url)) as imds:
        provider = AioInstanceRoleCredentialProvider(imds)
        await provider.load()
        text = repr(provider)
    doc = served(imds_environment)
    assert ROLE in text and doc["SecretAccessKey"] not in text and doc["Token"] not in text
