"""The pytest plugin (aioimds.pytest_plugin), run as a user runs it: a test suite of their own
that asks for the fixtures, under pytester, with warnings as errors."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

pytest_plugins = ["pytester"]

INI = """
[pytest]
filterwarnings = error
asyncio_default_fixture_loop_scope = function
"""

USER_TESTS = '''
import os
import urllib.request

import pytest

from aioimds import IMDSClient, IMDSNotFoundError
from aioimds.emulator import Faults, PathFault
from aioimds.typed.watch import watch_spot_interruption

REGION = "meta-data/placement/region"
FIXTURE = FIXTURE_PATH


@pytest.mark.asyncio
async def test_client_reads_the_default_tree(imds_client, imds_emulator):
    assert await imds_client.get(REGION) == "ap-northeast-1"
    assert imds_client.config.endpoint == imds_emulator.url
    assert imds_emulator.counters.token_puts == 1


@pytest.mark.asyncio
async def test_leaves_can_change(imds_emulator, imds_client):
    imds_emulator.set_leaf("/latest/" + REGION, "eu-west-3")
    assert await imds_client.get(REGION) == "eu-west-3"
    imds_emulator.remove("/latest/" + REGION)
    with pytest.raises(IMDSNotFoundError):
        await imds_client.get(REGION)


@pytest.mark.asyncio
async def test_every_test_gets_a_fresh_emulator(imds_client):
    assert await imds_client.get(REGION) == "ap-northeast-1"


@pytest.mark.asyncio
async def test_faults_can_be_injected(imds_emulator, imds_client):
    imds_emulator.faults.path_faults.append(PathFault("/latest/" + REGION, status=503))
    assert await imds_client.get(REGION) == "ap-northeast-1"
    assert imds_emulator.counters.requests[("GET", 503)] == 1


@pytest.mark.asyncio
@pytest.mark.imds_emulator(tokens="optional", faults=Faults(max_token_ttl=60))
async def test_the_marker_configures_the_emulator(imds_emulator):
    assert imds_emulator.tokens == "optional"
    assert imds_emulator.faults.max_token_ttl == 60


@pytest.mark.asyncio
async def test_notices_can_be_scheduled(imds_emulator, imds_client):
    imds_emulator.schedule_spot_action(0.1, "stop")
    async for notice in watch_spot_interruption(imds_client, interval=0.05):
        assert notice.action == "stop"
        break


@pytest.mark.asyncio
async def test_the_environment_points_at_the_emulator(imds_environment):
    assert os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == imds_environment.url
    assert "AWS_EC2_METADATA_DISABLED" not in os.environ
    async with IMDSClient() as imds:
        assert await imds.get("meta-data/instance-id") == "i-0a1b2c3d4e5f60718"


def test_the_environment_is_restored_afterwards():
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    assert "AWS_EC2_METADATA_SERVICE_ENDPOINT" not in os.environ


@pytest.mark.imds_emulator(tokens="optional")
def test_a_synchronous_test_calls_the_thread_emulator(imds_emulator_thread):
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(imds_emulator_thread.url + "/latest/" + REGION, timeout=10) as resp:
        assert resp.read() == b"ap-northeast-1"
    assert [r.token for r in imds_emulator_thread.requests] == [False]


@pytest.mark.asyncio
@pytest.mark.imds_emulator(snapshot=FIXTURE)
async def test_the_marker_takes_a_snapshot_path(imds_client):
    assert await imds_client.get(REGION) == "us-east-1"
'''


def test_fixtures_work_in_a_users_suite_with_warnings_as_errors(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aioimds-test-config")
    pytester.makeini(INI)
    fixture = FIXTURES / "imds-mock-on-demand.snapshot.json"
    pytester.makepyfile(test_user=USER_TESTS.replace("FIXTURE_PATH", repr(str(fixture))))
    result = pytester.runpytest_inprocess("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=10)


POSITIONAL_MARKER = """
import pytest


@pytest.mark.imds_emulator("optional")
def test_sync(imds_emulator_thread):
    pass


@pytest.mark.imds_emulator("optional")
async def test_async(imds_emulator):
    pass
"""


def test_the_marker_rejects_positional_arguments_saying_how_to_write_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI + "asyncio_mode = auto\n")
    pytester.makepyfile(test_marker=POSITIONAL_MARKER)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([
        "*@pytest.mark.imds_emulator takes keyword arguments of Emulator only, got positional "
        "('optional',): write @pytest.mark.imds_emulator(snapshot=...) or (tokens=...)*"])


BLOCK_PYTEST_ASYNCIO = """
import sys

sys.modules["pytest_asyncio"] = None  # as if it were not installed
"""

SYNC_TESTS = """
import sys


def test_a_plain_test_runs_and_nothing_heavy_was_imported():
    assert "aioimds.emulator" not in sys.modules


def test_a_fixture_says_it_needs_pytest_asyncio(imds_emulator):
    pass
"""


def test_without_pytest_asyncio_the_plugin_loads_and_says_what_is_missing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(block_pytest_asyncio=BLOCK_PYTEST_ASYNCIO, test_sync=SYNC_TESTS)
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    result = pytester.runpytest_subprocess("-p", "block_pytest_asyncio", "-p", "no:asyncio",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*the imds_emulator fixture (aioimds) needs pytest-asyncio: pip install pytest-asyncio*"])
