"""Editing the served tree: set_leaf, set_response and remove keep parent listings in step
(aioimds.emulator.listings), and snapshot= takes a file's path."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import fixture_params

from aioimds import IMDSClient, Record, Snapshot
from aioimds.emulator import Emulator, default_snapshot
from aioimds.emulator.listings import add_to_listings, remove_from_listing

META = "/latest/meta-data/"
TAGS = META + "tags/instance/"


def listing(emu: Emulator, path: str) -> list[str]:
    return emu.snapshot[path].body.decode().split("\n") if emu.snapshot[path].body else []


def test_a_new_leaf_is_listed_in_order_and_seen_by_tags() -> None:
    emu = Emulator()
    emu.set_leaf(TAGS + "Owner", "me")
    assert listing(emu, TAGS) == ["Name", "Owner", "aws:autoscaling:groupName", "team=platform"]


async def test_tags_sees_a_new_tag_and_loses_a_removed_one() -> None:
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(TAGS + "my%20tag%3F", "spaced")  # listed decoded, as IMDS lists keys
        emu.remove(TAGS + "Name")
        tags = await imds.tags()
    assert tags == {"my tag?": "spaced", "aws:autoscaling:groupName": "aioimds-demo-asg",
                    "team=platform": "owner"}


def test_missing_directories_are_created_and_listed_up_to_the_version_root() -> None:
    emu = Emulator(Snapshot({"/latest/": Record(b"meta-data"),
                             META: Record(b"ami-id"), META + "ami-id": Record(b"ami-1")}))
    emu.set_leaf(META + "events/recommendations/rebalance", "{}")
    emu.set_leaf("/latest/user-data", b"\x1f\x8b", "application/octet-stream")
    assert listing(emu, META + "events/recommendations/") == ["rebalance"]
    assert listing(emu, META + "events/") == ["recommendations/"]
    assert listing(emu, META) == ["ami-id", "events/"]
    assert listing(emu, "/latest/") == ["meta-data", "user-data"]  # no slashes at the root
    assert "/" not in emu.snapshot  # the versions listing is never made up


def test_an_error_listing_is_replaced_and_an_unsorted_one_appended_to() -> None:
    emu = Emulator()
    emu.set_response(META + "spot/", Record(b"", 404))
    emu.set_leaf(META + "spot/instance-action", '{"action": "stop"}')
    assert listing(emu, META + "spot/") == ["instance-action"]
    assert "spot/" in listing(emu, META)
    emu.set_response(META + "security-groups/", Record(b"zeta/\nalpha/"))
    emu.set_leaf(META + "security-groups/beta", "x")
    assert listing(emu, META + "security-groups/") == ["zeta/", "alpha/", "beta"]


def test_error_records_leave_listings_as_they_are() -> None:
    emu = Emulator()
    before = emu.snapshot
    emu.set_response(META + "ami-id", Record(b"", 500))  # listed, and failing
    emu.set_response(META + "spot/instance-action", Record(b"", 404))  # not yet a notice
    after = emu.snapshot
    assert after[META] == before[META] and META + "spot/" not in after


def test_setting_an_already_listed_leaf_changes_no_listing() -> None:
    emu = Emulator()
    emu.set_leaf(META + "ami-id", "ami-other")
    assert emu.snapshot == Snapshot({**default_snapshot(), META + "ami-id": Record(b"ami-other")})


def test_removing_a_directory_removes_everything_under_it_and_its_entry() -> None:
    emu = Emulator()
    emu.remove(META + "iam/")
    snap = emu.snapshot
    assert not [k for k in snap if k.startswith(META + "iam/")]
    assert "iam/" not in listing(emu, META)


def test_removing_the_last_entry_leaves_an_empty_listing() -> None:
    emu = Emulator()
    emu.remove(META + "iam/security-credentials/aioimds-demo-role")
    assert emu.snapshot[META + "iam/security-credentials/"] == Record(b"")


def test_public_keys_entries_match_their_key_directories() -> None:
    emu = Emulator()
    emu.set_leaf(META + "public-keys/0/openssh-key", "ssh-ed25519 AAAA other")
    assert listing(emu, META + "public-keys/") == ["0=aioimds-demo"]
    emu.set_leaf(META + "public-keys/1/openssh-key", "ssh-ed25519 AAAA second")
    assert listing(emu, META + "public-keys/") == ["0=aioimds-demo"]  # name unknown: untouched
    assert listing(emu, META + "public-keys/1/") == ["openssh-key"]
    emu.remove(META + "public-keys/0/")
    assert listing(emu, META + "public-keys/") == []


def test_listing_helpers_leave_a_non_utf8_listing_alone() -> None:
    responses = {META: Record(b"\xff\xfe"), "/latest/": Record(b"meta-data")}
    add_to_listings(responses, META + "x")
    remove_from_listing(responses, META + "x")
    assert responses[META] == Record(b"\xff\xfe")


def test_set_snapshot_serves_as_given() -> None:
    emu = Emulator()
    odd = Snapshot({"/latest/": Record(b"meta-data"), META + "orphan": Record(b"x")})
    emu.set_snapshot(odd)
    assert emu.snapshot == odd


@pytest.mark.parametrize("path", fixture_params())
def test_snapshot_may_be_given_as_a_path(path: Path) -> None:
    assert Emulator(path).snapshot == Snapshot.load(path)
    assert Emulator(str(path)).snapshot == Snapshot.load(path)
    emu = Emulator()
    emu.set_snapshot(path)
    assert emu.snapshot == Snapshot.load(path)


def test_a_bad_snapshot_path_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        Emulator(tmp_path / "missing.json")
