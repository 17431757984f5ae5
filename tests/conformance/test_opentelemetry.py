"""The EC2 resource detector of opentelemetry-sdk-extension-aws (synchronous, urllib) against
the emulator: its resource attributes equal the served identity document and hostname.

The detector has no endpoint setting: it builds ``"http://" + _AWS_METADATA_HOST + path`` with
``_AWS_METADATA_HOST = "169.254.169.254"``. The tests patch that module constant to the
emulator's loopback ``127.0.0.1:PORT`` (``monkeypatch``, undone after each test), so no request
can leave this machine. The emulator serves from a background thread (``in_thread``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from aioimds.emulator import Emulator, Faults

from .conftest import EXTRA, Expect

ec2 = pytest.importorskip("opentelemetry.sdk.extension.aws.resource.ec2", reason=EXTRA)

HOSTNAME = Expect.META + "hostname"
PointAt = Callable[[Emulator], None]


@pytest.fixture
def point_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[PointAt]:
    """``point_at(emu)`` patches the detector's hard-coded host to the emulator's."""

    def patch(emu: Emulator) -> None:
        monkeypatch.setattr(ec2, "_AWS_METADATA_HOST", f"127.0.0.1:{emu.port}")

    yield patch
    assert ec2._AWS_METADATA_HOST != "169.254.169.254"  # still patched at the end


def expected_attributes(e: Expect) -> dict[str, str]:
    doc = e.json(Expect.DOCUMENT)
    hostname = e.text(HOSTNAME)
    if doc is None or hostname is None:
        return {}  # the detector returns an empty resource when a read fails
    return {
        "cloud.provider": "aws",
        "cloud.platform": "aws_ec2",
        "cloud.account.id": doc["accountId"],
        "cloud.region": doc["region"],
        "cloud.availability_zone": doc["availabilityZone"],
        "host.id": doc["instanceId"],
        "host.type": doc["instanceType"],
        "host.name": hostname,
    }


def test_the_resource_equals_the_identity_document_and_hostname(
    served: Emulator, expect: Expect, point_at: PointAt, caplog: pytest.LogCaptureFixture
) -> None:
    point_at(served)
    with caplog.at_level(logging.WARNING):
        resource = ec2.AwsEc2ResourceDetector().detect()
    expected = expected_attributes(expect)
    assert dict(resource.attributes) == expected
    if not expected:  # a tree without the identity document: 404, logged, not raised
        assert "HTTP Error 404" in caplog.text
    assert served.requests[0].method == "PUT"
    assert all(r.token for r in served.requests if r.method == "GET")


def test_the_default_tree_fills_every_attribute(point_at: PointAt) -> None:
    with Emulator().in_thread() as emu:
        point_at(emu)
        attributes = dict(ec2.AwsEc2ResourceDetector().detect().attributes)
    assert attributes["cloud.region"] == "ap-northeast-1" and len(attributes) == 8


@pytest.mark.parametrize("faults", [
    pytest.param(Faults(hold_token_put=True), id="held-put"),
    pytest.param(Faults(token_put_status=404), id="put-404"),
])
def test_without_a_token_the_detector_gives_an_empty_resource(faults: Faults,
                                                              point_at: PointAt) -> None:
    """Documented in the detector: "If can't get a token quick assume we are not on ec2"
    (1 s): no IMDSv1 fallback, even with tokens optional."""
    with Emulator(tokens="optional", faults=faults).in_thread() as emu:
        point_at(emu)
        assert dict(ec2.AwsEc2ResourceDetector().detect().attributes) == {}
        assert [r.method for r in emu.requests if r.method == "GET"] == []
