"""The botocore (synchronous) credential provider against the real botocore and the emulator,
which serves from a thread of its own and rotates the role's credentials."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sdk_helpers import (
    EXTENDED,
    LIFETIME,
    LISTING,
    NO_SDK,
    Clock,
    serve_extended,
    served,
    signing_key_id,
)

pytest.importorskip("botocore", reason="botocore " + NO_SDK)

import botocore.session

from aioimds import IMDSConfig
from aioimds.botocore_credentials import (
    ADVISORY_REFRESH,
    InstanceRoleCredentialProvider,
    add_instance_role,
)
from aioimds.emulator import Emulator


@pytest.fixture
def threaded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The emulator on a loop in a thread of its own (``Emulator.in_thread``), so botocore's
    blocking calls do not stop it; ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` points at it (so even
    botocore's own IMDS reader would ask it) and no credentials file of the machine is read."""
    with Emulator().in_thread() as emu:
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", emu.url)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        yield emu


def presigned_key_id(session: Any) -> str:
    s3 = session.create_client("s3", region_name="ap-northeast-1")
    try:
        url: str = s3.generate_presigned_url(
            "get_object", Params={"Bucket": "example-bucket", "Key": "k"}, ExpiresIn=60)
    finally:
        s3.close()
    return signing_key_id(url)


def test_the_session_signs_with_the_role_credentials_and_follows_their_rotation(
    threaded: Emulator,
) -> None:
    serve_extended(threaded)
    threaded.rotate_credentials(lifetime=LIFETIME)
    first = served(threaded, EXTENDED)
    clock = Clock()
    session = botocore.session.get_session()
    with add_instance_role(session, IMDSConfig(endpoint=threaded.url),
                           clock=clock) as provider:
        creds = session.get_credentials()
        assert creds.method == "aioimds"
        frozen = creds.get_frozen_credentials()
        assert (frozen.access_key, frozen.secret_key, frozen.token) == (
            first["AccessKeyId"], first["SecretAccessKey"], first["Token"])
        assert presigned_key_id(session) == first["AccessKeyId"]

        threaded.rotate_credentials(lifetime=LIFETIME)
        second = served(threaded, EXTENDED)
        assert creds.get_frozen_credentials().access_key == first["AccessKeyId"]
        clock.advance(31)  # past the provider's next refresh
        assert creds.get_frozen_credentials().access_key == second["AccessKeyId"]
        assert presigned_key_id(session) == second["AccessKeyId"]
        assert "running" in repr(provider)
        assert first["SecretAccessKey"] not in repr(provider)
    assert "idle" in repr(provider)
    trace = threaded.counters.trace
    assert sum(1 for t in trace if t.path == EXTENDED) == 2
    assert sum(1 for t in trace if t.method == "PUT") == 1
    assert not any(t.name == "aioimds-credentials" for t in threading.enumerate())


def test_a_closed_provider_starts_again_and_the_sdk_asks_it_only_in_its_refresh_window(
    threaded: Emulator,
) -> None:
    threaded.rotate_credentials(lifetime=ADVISORY_REFRESH + 100)
    first = served(threaded)
    clock = Clock()
    provider = InstanceRoleCredentialProvider(IMDSConfig(endpoint=threaded.url),
                                              clock=clock)
    try:
        creds = provider.load()
        assert creds is not None
        threaded.rotate_credentials(lifetime=ADVISORY_REFRESH + 100)
        clock.advance(200)  # the provider would read anew; the SDK (100 s early) does not ask
        assert creds.get_frozen_credentials().access_key == first["AccessKeyId"]
        provider.close()
        provider.close()
        assert provider.fetch()["access_key"] == served(threaded)["AccessKeyId"]
    finally:
        provider.close()
    trace = threaded.counters.trace
    assert sum(1 for t in trace if t.method == "PUT") == 2
    assert sum(1 for t in trace if t.path == LISTING) == 2


def test_from_inside_a_running_event_loop_it_still_answers(threaded: Emulator) -> None:
    """botocore called (blocking) from a coroutine: the provider's own loop does the work."""
    session = botocore.session.get_session()

    async def app() -> str:
        with add_instance_role(session, endpoint=threaded.url):
            key: str = session.get_credentials().get_frozen_credentials().access_key
            return key

    assert asyncio.run(app()) == served(threaded)["AccessKeyId"]


def test_without_a_role_the_chain_goes_on_and_finds_nothing(threaded: Emulator) -> None:
    threaded.remove(LISTING)
    session = botocore.session.get_session()
    with add_instance_role(session, IMDSConfig(endpoint=threaded.url), before="env"):
        resolver = session.get_component("credential_provider")
        methods = [p.METHOD for p in resolver.providers]
        assert methods[0] == "aioimds" and "iam-role" not in methods
        assert session.get_credentials() is None
    trace = threaded.counters.trace
    assert [(t.path, t.status) for t in trace if t.method == "GET"] == [(LISTING, 404)]


def test_the_environment_wins_over_the_instance_role_as_in_every_sdk(
    threaded: Emulator, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "environment-secret")
    session = botocore.session.get_session()
    with add_instance_role(session, IMDSConfig(endpoint=threaded.url)):
        assert session.get_credentials().method == "env"
    assert threaded.counters.trace == []
