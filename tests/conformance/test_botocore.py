"""botocore against the emulator: the region fetcher and provider, credentials through the
default chain, and the IMDS credentials fetcher with its IMDSv1 fallback.

botocore is synchronous, so the emulator serves from a background thread (``in_thread``).
botocore is pointed at it only with ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` or ``base_url``.
"""

from __future__ import annotations

from typing import Any

import pytest

from aioimds.emulator import Emulator, Faults, PathFault

from .conftest import EXTRA, Expect

botocore_session = pytest.importorskip("botocore.session", reason=EXTRA)
botocore_utils = pytest.importorskip("botocore.utils", reason=EXTRA)
botocore_exceptions = pytest.importorskip("botocore.exceptions", reason=EXTRA)

ENDPOINT = "AWS_EC2_METADATA_SERVICE_ENDPOINT"


def gets(emu: Emulator) -> list[tuple[str, int, bool]]:
    return [(r.path, r.status, r.token) for r in emu.requests if r.method == "GET"]


def assert_credentials(got: dict[str, Any], expect: Expect) -> None:
    """``got`` (InstanceMetadataFetcher's dict) holds the served role's credentials."""
    role = expect.role()
    if role is None:
        assert got == {}
        return
    name, doc = role
    assert (got["role_name"], got["access_key"], got["secret_key"], got["token"]) == (
        name, doc["AccessKeyId"], doc["SecretAccessKey"], doc["Token"])
    # botocore moves an expiry that has passed a few minutes into the future ("extension")
    assert got["expiry_time"] >= doc["Expiration"]


def test_region_fetcher_reads_the_availability_zone_asked_with_a_slash(
    served: Emulator, expect: Expect
) -> None:
    fetcher = botocore_utils.InstanceMetadataRegionFetcher(base_url=served.url)
    assert fetcher.retrieve_region() == expect.region_from_az()
    if expect.meta("placement/region") is not None:
        assert expect.region_from_az() == expect.meta("placement/region")
    assert gets(served) == [(Expect.META + "placement/availability-zone/", 200, True)]


def test_region_provider_with_only_the_endpoint_variable(
    served: Emulator, expect: Expect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENDPOINT, served.url)
    provider = botocore_utils.IMDSRegionProvider(botocore_session.get_session())
    assert provider.provide() == expect.region_from_az()


def test_default_credential_chain_reads_the_role(
    served: Emulator, expect: Expect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENDPOINT, served.url)
    creds = botocore_session.get_session().get_credentials()
    role = expect.role()
    if role is None:
        assert creds is None
        return
    frozen = creds.get_frozen_credentials()
    doc = role[1]
    assert creds.method == "iam-role"
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        doc["AccessKeyId"], doc["SecretAccessKey"], doc["Token"])
    assert all(token for _, _, token in gets(served))  # IMDSv2 whenever the PUT answers


def test_credentials_fetcher_reads_the_role(served: Emulator, expect: Expect) -> None:
    fetcher = botocore_utils.InstanceMetadataFetcher(base_url=served.url)
    assert_credentials(fetcher.retrieve_iam_role_credentials(), expect)


# -- faults whose outcome botocore documents (botocore/utils.py IMDSFetcher) ----------------

NO_TOKEN = [
    pytest.param(Faults(hold_token_put=True), id="held-put"),  # a container with hop limit 1
    pytest.param(Faults(token_put_status=403), id="put-403"),
    pytest.param(Faults(token_put_status=404), id="put-404"),
    pytest.param(Faults(token_put_status=405), id="put-405"),
]


@pytest.mark.parametrize("faults", NO_TOKEN)
def test_without_a_token_botocore_falls_back_to_imdsv1(faults: Faults) -> None:
    with Emulator(tokens="optional", faults=faults).in_thread() as emu:
        creds = botocore_utils.InstanceMetadataFetcher(
            base_url=emu.url, timeout=0.5).retrieve_iam_role_credentials()
        region = botocore_utils.InstanceMetadataRegionFetcher(
            base_url=emu.url, timeout=0.5).retrieve_region()
        assert_credentials(creds, Expect(emu.snapshot))
        assert region == "ap-northeast-1"
        assert gets(emu) and all(status == 200 and not token for _, status, token in gets(emu))


@pytest.mark.parametrize("faults", NO_TOKEN)
def test_without_a_token_and_imdsv2_required_botocore_returns_nothing(faults: Faults) -> None:
    with Emulator(tokens="required", faults=faults).in_thread() as emu:
        fetcher = botocore_utils.InstanceMetadataFetcher(base_url=emu.url, timeout=0.5)
        assert fetcher.retrieve_iam_role_credentials() == {}
        region = botocore_utils.InstanceMetadataRegionFetcher(base_url=emu.url, timeout=0.5)
        assert region.retrieve_region() is None
        assert [(s, t) for _, s, t in gets(emu)] == [(401, False), (401, False)]


def test_with_imdsv1_disabled_a_held_put_raises() -> None:
    with Emulator(tokens="optional", faults=Faults(hold_token_put=True)).in_thread() as emu:
        fetcher = botocore_utils.InstanceMetadataFetcher(
            base_url=emu.url, timeout=0.5, config={"ec2_metadata_v1_disabled": True})
        with pytest.raises(botocore_exceptions.MetadataRetrievalError):
            fetcher.retrieve_iam_role_credentials()
        assert gets(emu) == []


def test_a_put_answered_400_gives_no_credentials_and_no_get() -> None:
    with Emulator(faults=Faults(token_put_status=400)).in_thread() as emu:
        fetcher = botocore_utils.InstanceMetadataFetcher(base_url=emu.url)
        assert fetcher.retrieve_iam_role_credentials() == {}
        assert gets(emu) == []


@pytest.mark.parametrize(("attempts", "found"), [(1, False), (2, True)])
def test_a_5xx_is_retried_within_num_attempts(attempts: int, found: bool) -> None:
    role = Expect.ROLES + "aioimds-demo-role"
    with Emulator(faults=Faults(path_faults=[PathFault(role, status=503)])).in_thread() as emu:
        creds = botocore_utils.InstanceMetadataFetcher(
            base_url=emu.url, num_attempts=attempts).retrieve_iam_role_credentials()
        assert bool(creds) is found
        assert [s for p, s, _ in gets(emu) if p == role] == [503, 200][:attempts]


async def test_an_emulator_on_the_callers_own_loop_gives_no_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Why in_thread() exists: the blocked loop cannot answer, so botocore's PUT and then its
    IMDSv1 GET each time out (1 s), and the chain returns no credentials, without an error."""
    async with Emulator() as emu:
        monkeypatch.setenv(ENDPOINT, emu.url)
        assert botocore_session.get_session().get_credentials() is None
    with Emulator().in_thread() as emu:
        monkeypatch.setenv(ENDPOINT, emu.url)
        assert botocore_session.get_session().get_credentials().method == "iam-role"


def test_the_documented_pytest_fixture_example(imds_emulator_thread: Emulator,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds_emulator_thread.url)
    creds = botocore_session.get_session().get_credentials()
    assert creds.method == "iam-role"
