"""ec2-metadata (synchronous, urllib3) against the emulator: every attribute it offers,
network interfaces, public keys and tags included, equals what the served tree holds.

ec2-metadata has no endpoint setting: ``EC2Metadata.__init__`` hard-codes
``http://169.254.169.254/latest/`` into four instance attributes. :func:`pointed_at` replaces
them with the emulator's loopback URL before the first request (and checks that it did), so no
request can leave this machine. The emulator serves from a background thread (``in_thread``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import pytest

from aioimds.emulator import Emulator, Faults

from .conftest import EXTRA, Expect

ec2_metadata = pytest.importorskip("ec2_metadata", reason=EXTRA)
urllib3 = pytest.importorskip("urllib3", reason=EXTRA)

MISSING = "HTTP 404"
"""What ec2-metadata raises (urllib3 HTTPError) for an attribute whose path answers 404."""

URL_ATTRIBUTES = ("service_url", "dynamic_url", "metadata_url", "userdata_url")


def pointed_at(url: str) -> Any:
    """An ``EC2Metadata`` whose hard-coded base URLs are patched to ``url`` (loopback)."""
    md = ec2_metadata.EC2Metadata()
    base = url + "/latest/"
    md.service_url, md.dynamic_url = base, base + "dynamic/"
    md.metadata_url, md.userdata_url = base + "meta-data/", base + "user-data/"
    assert all(getattr(md, a).startswith(url) for a in URL_ATTRIBUTES)
    return md


def read(obj: Any, name: str) -> Any:
    """``obj.name``, or ``"HTTP 404"`` when ec2-metadata raises for a 404."""
    try:
        return getattr(obj, name)
    except urllib3.exceptions.HTTPError as err:
        return str(err).partition(":")[0]


def text(e: Expect, path: str, missing: Any = MISSING) -> Any:
    value = e.meta(path)
    return missing if value is None else value


def lines(e: Expect, path: str, missing: Any = MISSING) -> Any:
    value = e.lines(Expect.META + path)
    return missing if value is None else value


def expected_top(e: Expect) -> dict[str, Any]:
    """Every scalar attribute of EC2Metadata, as a faithful IMDS serving ``e.tree`` gives it."""
    doc = e.json(Expect.DOCUMENT)
    info = e.json(Expect.META + "iam/info")
    profile = None if info is None else info["InstanceProfileArn"].rsplit("/", 1)[-1]
    creds = None if profile is None else e.json(Expect.ROLES + profile)
    launch_index = e.meta("ami-launch-index")
    user_data = e.record("/latest/user-data")
    return {
        "account_id": MISSING if doc is None else doc["accountId"],
        "ami_id": text(e, "ami-id"),
        "autoscaling_target_lifecycle_state": text(e, "autoscaling/target-lifecycle-state",
                                                   None),
        "availability_zone": text(e, "placement/availability-zone"),
        "availability_zone_id": text(e, "placement/availability-zone-id", None),
        "ami_launch_index": MISSING if launch_index is None else int(launch_index),
        "ami_manifest_path": text(e, "ami-manifest-path"),
        "iam_info": info,
        # ec2-metadata takes the role name from the instance profile ARN, not from the listing
        "iam_security_credentials": None if profile is None else (
            MISSING if creds is None else creds),
        "instance_action": text(e, "instance-action"),
        "instance_id": text(e, "instance-id"),
        "instance_identity_document": MISSING if doc is None else doc,
        "instance_life_cycle": text(e, "instance-life-cycle"),
        "instance_profile_arn": None if info is None else info["InstanceProfileArn"],
        "instance_profile_id": None if info is None else info["InstanceProfileId"],
        "instance_profile_name": profile,
        "instance_type": text(e, "instance-type"),
        "kernel_id": text(e, "kernel-id", None),
        "mac": text(e, "mac"),
        "private_hostname": text(e, "local-hostname"),
        "private_ipv4": text(e, "local-ipv4"),
        "public_hostname": text(e, "public-hostname", None),
        "public_ipv4": text(e, "public-ipv4", None),
        "partition": text(e, "services/partition"),
        "domain": text(e, "services/domain"),
        "region": MISSING if doc is None else doc["region"],
        "reservation_id": text(e, "reservation-id"),
        "security_groups": lines(e, "security-groups"),
        "user_data": None if user_data is None else user_data.body,
    }


INTERFACE: dict[str, tuple[str, Callable[[str], Any], Any]] = {
    # attribute: (item under macs/MAC/, parse, value when it answers 404)
    "device_number": ("device-number", int, MISSING),
    "interface_id": ("interface-id", str, MISSING),
    "ipv6s": ("ipv6s", str.splitlines, []),
    "ipv6_prefix": ("ipv6-prefix", str.splitlines, []),
    "owner_id": ("owner-id", str, MISSING),
    "private_hostname": ("local-hostname", str, MISSING),
    "private_ipv4s": ("local-ipv4s", str.splitlines, MISSING),
    "public_hostname": ("public-hostname", str, None),
    "public_ipv4s": ("public-ipv4s", str.splitlines, []),
    "security_groups": ("security-groups", str.splitlines, MISSING),
    "security_group_ids": ("security-group-ids", str.splitlines, MISSING),
    "subnet_id": ("subnet-id", str, MISSING),
    "subnet_ipv4_cidr_block": ("subnet-ipv4-cidr-block", str, None),
    "subnet_ipv6_cidr_blocks": ("subnet-ipv6-cidr-blocks", str.splitlines, []),
    "vpc_id": ("vpc-id", str, MISSING),
    "vpc_ipv4_cidr_block": ("vpc-ipv4-cidr-block", str, None),
    "vpc_ipv4_cidr_blocks": ("vpc-ipv4-cidr-blocks", str.splitlines, []),
    "vpc_ipv6_cidr_blocks": ("vpc-ipv6-cidr-blocks", str.splitlines, []),
}
MACS = "network/interfaces/macs/"


def expected_interfaces(e: Expect) -> Any:
    macs = e.lines(Expect.META + MACS)
    if macs is None:
        return MISSING
    out = {}
    for mac in (m.rstrip("/") for m in macs):
        base = f"{MACS}{mac}/"
        values = {}
        for attr, (item, parse, missing) in INTERFACE.items():
            body = e.meta(base + item)
            values[attr] = missing if body is None else parse(body)
        publics = values["public_ipv4s"]
        values["ipv4_associations"] = {
            ip: lines(e, f"{base}ipv4-associations/{ip}") for ip in publics}
        out[mac] = values
    return out


def expected_public_keys(e: Expect) -> dict[str, Any]:
    listing = e.lines(Expect.META + "public-keys/") or []
    pairs = [entry.split("=", 1) for entry in listing]
    return {name: text(e, f"public-keys/{index}/openssh-key", None) for index, name in pairs}


def expected_tags(e: Expect) -> Any:
    names = e.lines(Expect.META + "tags/instance/")
    if names is None:
        return MISSING
    return {name: text(e, f"tags/instance/{name}") for name in names}


def expected_spot(e: Expect) -> Any:
    notice = e.json(Expect.META + "spot/instance-action")
    return None if notice is None else (notice["action"], notice["time"])


def got_everything(md: Any) -> dict[str, Any]:
    """Every attribute ec2-metadata offers, read from ``md``."""
    got = {name: read(md, name) for name in expected_top(Expect(Emulator().snapshot))}
    interfaces = read(md, "network_interfaces")
    got["network_interfaces"] = interfaces if isinstance(interfaces, str) else {
        mac: {a: read(nic, a) for a in [*INTERFACE, "ipv4_associations"]}
        for mac, nic in interfaces.items()}
    got["public_keys"] = {name: key.openssh_key for name, key in md.public_keys.items()}
    tags = read(md, "tags")
    got["tags"] = tags if isinstance(tags, str) else dict(tags)
    spot = md.spot_instance_action
    got["spot_instance_action"] = None if spot is None else (
        spot.action, spot.time.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return got


def expected_everything(e: Expect) -> dict[str, Any]:
    return {**expected_top(e), "network_interfaces": expected_interfaces(e),
            "public_keys": expected_public_keys(e), "tags": expected_tags(e),
            "spot_instance_action": expected_spot(e)}


def test_every_attribute_equals_the_served_tree(served: Emulator, expect: Expect) -> None:
    got = got_everything(pointed_at(served.url))
    assert got == expected_everything(expect)
    assert all(r.token for r in served.requests if r.method == "GET")  # IMDSv2 only
    assert {r.path.split("/")[1] for r in served.requests} == {"latest"}
    assert "/latest/user-data/" in {r.path for r in served.requests}  # asked with a slash


def offered(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items()
            if isinstance(v, property | cached_property) and not n.startswith("_")}


def test_the_tests_cover_every_attribute_ec2_metadata_offers() -> None:
    """A newer ec2-metadata with another attribute fails here: add it to the tables above."""
    top = set(expected_everything(Expect(Emulator().snapshot)))
    assert offered(ec2_metadata.EC2Metadata) == top
    assert offered(ec2_metadata.NetworkInterface) == {*INTERFACE, "ipv4_associations"}
    assert offered(ec2_metadata.PublicKey) == {"openssh_key"}


def test_the_default_tree_gives_real_values_not_only_absences() -> None:
    expected = expected_everything(Expect(Emulator().snapshot))
    assert expected["region"] == "ap-northeast-1" and expected["tags"]["Name"] == "aioimds-demo"
    assert len(expected["network_interfaces"]) == 2
    assert expected["user_data"].startswith(b"\x1f\x8b")  # gzip bytes, as served


def test_a_spot_notice_is_read() -> None:
    with Emulator().in_thread() as emu:
        emu.schedule_spot_action(0, "hibernate")
        spot = pointed_at(emu.url).spot_instance_action
        assert expected_spot(Expect(emu.snapshot)) == (
            spot.action, spot.time.strftime("%Y-%m-%dT%H:%M:%SZ"))
        assert spot.action == "hibernate"


def test_tags_disabled_at_the_instance_raise_as_ec2_metadata_does_for_a_404() -> None:
    with Emulator(instance_metadata_tags="disabled").in_thread() as emu:
        with pytest.raises(urllib3.exceptions.HTTPError, match="HTTP 404"):
            pointed_at(emu.url).tags  # noqa: B018


@pytest.mark.parametrize("status", [403, 404, 405])
def test_without_a_token_ec2_metadata_raises_even_with_tokens_optional(status: int) -> None:
    """ec2-metadata speaks IMDSv2 only: a refused PUT is an error, never an IMDSv1 fallback."""
    faults = Faults(token_put_status=status)
    with Emulator(tokens="optional", faults=faults).in_thread() as emu:
        with pytest.raises(urllib3.exceptions.HTTPError, match=f"token: {status}"):
            pointed_at(emu.url).instance_id  # noqa: B018
        assert [r.method for r in emu.requests] == ["PUT"]


def test_a_revoked_token_is_an_error_ec2_metadata_does_not_retry() -> None:
    """ec2-metadata keeps its token for 6 h less a minute and never re-PUTs after a 401."""
    with Emulator().in_thread() as emu:
        md = pointed_at(emu.url)
        assert md.instance_id == "i-0a1b2c3d4e5f60718"
        emu.revoke_tokens()
        with pytest.raises(urllib3.exceptions.HTTPError, match="HTTP 401"):
            md.ami_id  # noqa: B018
        assert [r.method for r in emu.requests] == ["PUT", "GET", "GET"]
