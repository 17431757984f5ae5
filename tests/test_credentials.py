"""Role credentials: where they are read from, refresh ahead of expiry, single flight, static
stability, and secrets that never show (repr, str, logs, exception messages)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone

import pytest

from aioimds import (
    CREDENTIALS_MIN_REFRESH_INTERVAL,
    CREDENTIALS_REFRESH_MARGIN,
    CREDENTIALS_RETRY_INTERVAL,
    CREDENTIALS_RETRY_JITTER,
    CredentialsProvider,
    IMDSClient,
    IMDSCredentialsError,
    IMDSError,
    IMDSHTTPError,
    RoleCredentials,
    as_botocore_metadata,
)
from aioimds.emulator import Emulator
from aioimds.snapshot import Record

ROLE = "aioimds-demo-role"
ROLES = "/latest/meta-data/iam/security-credentials/"
EXTENDED = "/latest/meta-data/iam/security-credentials-extended/"
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
SECRETS = ("SECRETsecretSECRET", "TOKENtokenTOKEN")


class Clock:
    """A settable wall clock for the provider."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def document(n: int, expires: datetime, code: str = "Success", **extra: str) -> str:
    """A role credentials document, written the way IMDS writes it; secrets numbered ``n``."""
    doc = {"Code": code, "LastUpdated": "2029-12-31T23:00:00Z", "Type": "AWS-HMAC",
           "AccessKeyId": f"ASIAKEY{n}", "SecretAccessKey": f"{SECRETS[0]}{n}",
           "Token": f"{SECRETS[1]}{n}", "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
           **extra}
    return json.dumps(doc, indent=2, separators=(",", " : "))


def gets(emu: Emulator, path: str) -> int:
    return sum(1 for t in emu.counters.trace if t.method == "GET" and t.path == path)


def test_constants_are_the_documented_values() -> None:
    assert CREDENTIALS_REFRESH_MARGIN.total_seconds() == 5 * 60
    assert CREDENTIALS_RETRY_INTERVAL.total_seconds() == 5 * 60
    assert CREDENTIALS_RETRY_JITTER.total_seconds() == 5 * 60
    assert CREDENTIALS_MIN_REFRESH_INTERVAL.total_seconds() == 30


async def test_legacy_document_is_read_after_a_404_on_the_extended_one() -> None:
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        creds = await CredentialsProvider(imds).get()
    assert creds.role_name == ROLE  # from the listing, not the profile ARN (...-profile)
    assert (creds.access_key_id, creds.account_id) == ("ASIAEXAMPLEEXAMPLE01", None)
    assert creds.expiration == T0 and creds.last_updated is not None
    assert [t.path for t in emu.counters.trace if t.method == "GET"] == [
        ROLES, EXTENDED + ROLE, ROLES + ROLE]
    assert emu.counters.trace[2].status == 404


async def test_extended_document_is_preferred() -> None:
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(EXTENDED, ROLE)
        emu.set_leaf(EXTENDED + ROLE, document(7, T0, AccountId="111122223333"))
        creds = await CredentialsProvider(imds, clock=Clock(T0 - timedelta(hours=1))).get()
    assert (creds.access_key_id, creds.account_id) == ("ASIAKEY7", "111122223333")
    assert gets(emu, ROLES + ROLE) == 0


@pytest.mark.parametrize(("setup", "message", "status"), [
    ({ROLES + ROLE: document(1, T0, code="AssumeRoleUnauthorizedAccess")},
     "Code 'AssumeRoleUnauthorizedAccess'", 200),
    ({ROLES: None}, "no IAM role is attached", 404),
    ({ROLES: ""}, "no IAM role is attached", 200),
    ({ROLES + ROLE: Record(b"", 404)}, r"are absent \(404\)", 404),  # listed, yet 404
], ids=["code-not-success", "no-role", "empty-listing", "no-document"])
async def test_credentials_errors_without_a_cache(
    setup: dict[str, str | Record | None], message: str, status: int | None
) -> None:
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        for path, body in setup.items():
            if body is None:
                emu.remove(path)
            elif isinstance(body, Record):
                emu.set_response(path, body)  # an error record leaves the listing as it is
            else:
                emu.set_leaf(path, body)
        with pytest.raises(IMDSCredentialsError, match=message) as info:
            await CredentialsProvider(imds, clock=Clock(T0 - timedelta(hours=1))).get()
    assert info.value.status == status and info.value.path is not None
    assert not any(secret in str(info.value) for secret in SECRETS)


async def test_cached_until_the_margin_then_refreshed_in_the_background() -> None:
    clock = Clock(T0 - timedelta(hours=1))
    expires = T0
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(ROLES + ROLE, document(1, expires))
        provider = CredentialsProvider(imds, clock=clock)
        assert (await provider.get()).access_key_id == "ASIAKEY1"
        emu.set_leaf(ROLES + ROLE, document(2, expires + timedelta(hours=1)))  # rotated
        clock.now = expires - CREDENTIALS_REFRESH_MARGIN - timedelta(seconds=1)
        assert (await provider.get()).access_key_id == "ASIAKEY1"
        await provider.wait_for_refresh()
        assert gets(emu, ROLES + ROLE) == 1  # served from the cache
        clock.now = expires - CREDENTIALS_REFRESH_MARGIN
        assert (await provider.get()).access_key_id == "ASIAKEY1"  # still valid: at once
        await provider.wait_for_refresh()
        fresh = await provider.get()
    assert (fresh.access_key_id, fresh.expiration) == ("ASIAKEY2", expires + timedelta(hours=1))
    assert gets(emu, ROLES + ROLE) == 2


async def test_same_credentials_inside_the_margin_are_kept_and_read_again_later() -> None:
    """AWS rotates at least five minutes ahead; until it has, the refresh finds the old ones."""
    clock = Clock(T0 - CREDENTIALS_REFRESH_MARGIN + timedelta(seconds=1))
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        async with CredentialsProvider(imds, clock=clock) as provider:
            await provider.get()
            await provider.get()
            await provider.wait_for_refresh()
            assert gets(emu, ROLES + ROLE) == 1  # not one fetch per call
            clock.now += CREDENTIALS_MIN_REFRESH_INTERVAL
            await provider.get()
            await provider.wait_for_refresh()
    assert gets(emu, ROLES + ROLE) == 2


async def test_a_background_refresh_is_cancelled_on_close() -> None:
    clock = Clock(T0 - timedelta(hours=1))
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(ROLES + ROLE, document(1, T0))
        async with CredentialsProvider(imds, clock=clock) as provider:
            await provider.get()
            emu.faults.latency = 30.0  # the refresh would hang on
            clock.now = T0 - timedelta(minutes=1)
            assert (await provider.get()).access_key_id == "ASIAKEY1"
            task = provider._background
            assert task is not None and not task.done()
        assert task.cancelled()
        emu.faults.latency = 0.0


@pytest.mark.usefixtures("virtual_time")
async def test_concurrent_callers_share_one_fetch() -> None:
    async with Emulator(latency=0.02) as emu, IMDSClient(endpoint=emu.url) as imds:
        provider = CredentialsProvider(imds, clock=Clock(T0 - timedelta(hours=1)))
        results = await asyncio.gather(*(provider.get() for _ in range(50)))
    assert len({id(r) for r in results}) == 1
    assert (gets(emu, ROLES), gets(emu, EXTENDED + ROLE), gets(emu, ROLES + ROLE)) == (1, 1, 1)


async def test_static_stability_keeps_the_last_good_credentials_when_refresh_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock(T0 - timedelta(hours=1))
    async with Emulator() as emu, IMDSClient(endpoint=emu.url, attempts=1) as imds:
        emu.set_leaf(ROLES + ROLE, document(1, T0))
        provider = CredentialsProvider(imds, clock=clock, rand=lambda: 0.5)
        cached = await provider.get()
        emu.set_response(ROLES + ROLE, Record(b"", 500))
        clock.now = T0 - timedelta(minutes=2)  # due for refresh, still valid
        assert await provider.get() is cached  # at once; the refresh fails in the background
        await provider.wait_for_refresh()
        kept = await provider.get()
        next_try = clock.now + CREDENTIALS_RETRY_INTERVAL + CREDENTIALS_RETRY_JITTER / 2
        assert kept.access_key_id == "ASIAKEY1" and kept.expiration == next_try
        assert kept.original_expiration == T0 and kept.extended
        clock.now = T0 + timedelta(minutes=1)  # past Expiration, before the next try
        assert await provider.get() is kept
        assert gets(emu, ROLES + ROLE) == 2  # the failed try is not repeated at once
        clock.now = next_try
        again = await provider.get()  # nothing valid left: awaited, fails, kept again
        assert again.access_key_id == "ASIAKEY1" and again.original_expiration == T0
        assert gets(emu, ROLES + ROLE) == 3
        emu.set_leaf(ROLES + ROLE, document(2, T0 + timedelta(hours=6)))
        clock.now = again.expiration
        fresh = await provider.get()  # recovers
    assert fresh.access_key_id == "ASIAKEY2" and not fresh.extended
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "serving the credentials" in warnings[0].getMessage()
    assert "500" in warnings[0].getMessage()
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert not any(secret in logged for secret in SECRETS)


async def test_an_error_without_any_credentials_is_raised() -> None:
    async with Emulator() as emu, IMDSClient(endpoint=emu.url, attempts=1) as imds:
        emu.set_response(ROLES + ROLE, Record(b"", 500))
        with pytest.raises(IMDSHTTPError) as info:
            await CredentialsProvider(imds, clock=Clock(T0 - timedelta(hours=1))).get()
    assert info.value.status == 500


def test_extended_credentials_say_so_in_their_repr() -> None:
    creds = RoleCredentials("ASIAKEY1", SECRETS[0], SECRETS[1], T0 + timedelta(minutes=7),
                            ROLE, original_expiration=T0)
    assert creds.extended and creds.served_expiration == T0
    assert "extended from '2030-01-01T00:00:00+00:00'" in repr(creds)
    assert not any(secret in repr(creds) for secret in SECRETS)
    assert not RoleCredentials("A", "s", "t", T0, ROLE).extended


def test_secrets_never_show_in_repr_or_str() -> None:
    creds = RoleCredentials("ASIAKEY1", SECRETS[0], SECRETS[1], T0, ROLE)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert "ASIAKEY1" in text and ROLE in text and "<redacted>" in text
        assert not any(secret in text for secret in SECRETS)


async def test_secrets_never_show_in_errors_of_a_malformed_document(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = document(1, T0).replace('"Expiration"', '"Expires"')
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        for body in (bad, bad[:-3]):
            emu.set_leaf(ROLES + ROLE, body)
            with pytest.raises(IMDSError) as info:
                await CredentialsProvider(imds).get()
            assert info.value.path == ROLES + ROLE
            assert not any(secret in str(info.value) for secret in SECRETS)
        provider = CredentialsProvider(imds)
        assert "SECRET" not in repr(provider)
    assert not any(secret in caplog.text for secret in SECRETS)


def test_botocore_metadata_has_the_keys_refreshable_credentials_read() -> None:
    creds = RoleCredentials("ASIAKEY1", "s", "t", T0, ROLE)
    meta = as_botocore_metadata(creds)
    assert meta == {"access_key": "ASIAKEY1", "secret_key": "s", "token": "t",
                    "expiry_time": "2030-01-01T00:00:00+00:00"}
    assert datetime.fromisoformat(meta["expiry_time"]) == T0
