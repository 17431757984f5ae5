"""aiobotocore against the emulator: the asyncio counterparts of the botocore tests (region
fetcher and provider, the default credential chain, the credentials fetcher and its IMDSv1
fallback). aiobotocore is asyncio, so the emulator serves on the test's own loop."""

from __future__ import annotations

import pytest

from aioimds.emulator import Emulator, Faults

from .conftest import EXTRA, Expect
from .test_botocore import NO_TOKEN, assert_credentials, gets

aio_session = pytest.importorskip("aiobotocore.session", reason=EXTRA)
aio_utils = pytest.importorskip("aiobotocore.utils", reason=EXTRA)

ENDPOINT = "AWS_EC2_METADATA_SERVICE_ENDPOINT"


async def test_region_fetcher_reads_the_availability_zone_asked_with_a_slash(
    served_async: Emulator, expect: Expect
) -> None:
    fetcher = aio_utils.AioInstanceMetadataRegionFetcher(base_url=served_async.url)
    assert await fetcher.retrieve_region() == expect.region_from_az()
    assert gets(served_async) == [(Expect.META + "placement/availability-zone/", 200, True)]


async def test_region_provider_with_only_the_endpoint_variable(
    served_async: Emulator, expect: Expect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENDPOINT, served_async.url)
    provider = aio_utils.AioIMDSRegionProvider(aio_session.get_session())
    assert await provider.provide() == expect.region_from_az()


async def test_default_credential_chain_reads_the_role(
    served_async: Emulator, expect: Expect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENDPOINT, served_async.url)
    creds = await aio_session.get_session().get_credentials()
    role = expect.role()
    if role is None:
        assert creds is None
        return
    frozen = await creds.get_frozen_credentials()
    doc = role[1]
    assert creds.method == "iam-role"
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        doc["AccessKeyId"], doc["SecretAccessKey"], doc["Token"])
    assert all(token for _, _, token in gets(served_async))


async def test_credentials_fetcher_reads_the_role(served_async: Emulator, expect: Expect
                                                  ) -> None:
    fetcher = aio_utils.AioInstanceMetadataFetcher(base_url=served_async.url)
    assert_credentials(await fetcher.retrieve_iam_role_credentials(), expect)


@pytest.mark.parametrize("faults", NO_TOKEN)
async def test_without_a_token_aiobotocore_falls_back_to_imdsv1(faults: Faults) -> None:
    async with Emulator(tokens="optional", faults=faults) as emu:
        creds = await aio_utils.AioInstanceMetadataFetcher(
            base_url=emu.url, timeout=0.5).retrieve_iam_role_credentials()
        region = await aio_utils.AioInstanceMetadataRegionFetcher(
            base_url=emu.url, timeout=0.5).retrieve_region()
        assert_credentials(creds, Expect(emu.snapshot))
        assert region == "ap-northeast-1"
        assert gets(emu) and all(status == 200 and not token for _, status, token in gets(emu))


@pytest.mark.parametrize("faults", NO_TOKEN)
async def test_without_a_token_and_imdsv2_required_aiobotocore_returns_nothing(
    faults: Faults,
) -> None:
    async with Emulator(tokens="required", faults=faults) as emu:
        fetcher = aio_utils.AioInstanceMetadataFetcher(base_url=emu.url, timeout=0.5)
        assert await fetcher.retrieve_iam_role_credentials() == {}
        region = aio_utils.AioInstanceMetadataRegionFetcher(base_url=emu.url, timeout=0.5)
        assert await region.retrieve_region() is None
        assert [(s, t) for _, s, t in gets(emu)] == [(401, False), (401, False)]
