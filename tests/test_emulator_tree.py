"""The bundled default tree and the shared fixture trees: documented values, consistency,
served byte for byte."""

from __future__ import annotations

import ipaddress
import json
import re
from importlib import resources
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import FIXTURE_FILES
from emulator_http import get, new_token

from aioimds.emulator import Emulator, default_snapshot
from aioimds.emulator.wire import canonical_path
from aioimds.snapshot import Record, Snapshot

# -- the default tree and the fixtures ------------------------------------------------------


def test_default_tree_answers_the_documented_values() -> None:
    snap = default_snapshot()

    def text(path: str) -> str:
        body = snap["/latest/" + path].text()
        assert body is not None
        return body

    assert text("") == "dynamic\nmeta-data\nuser-data"
    assert text("meta-data/placement/") == "availability-zone\navailability-zone-id\nregion"
    assert text("meta-data/placement/availability-zone") == "ap-northeast-1a"
    assert text("meta-data/placement/availability-zone-id") == "apne1-az4"
    assert text("meta-data/public-keys/") == "0=aioimds-demo"
    assert text("meta-data/public-keys/0/") == "openssh-key"
    assert text("meta-data/events/maintenance/scheduled") == "[]"
    assert text("meta-data/ami-launch-index") == "0"
    assert set(text("meta-data/tags/instance/").split("\n")) >= {
        "Name", "aws:autoscaling:groupName", "team=platform"
    }
    assert len(text("meta-data/network/interfaces/macs/").split("\n")) == 2
    doc = json.loads(text("dynamic/instance-identity/document"))
    assert doc["region"] == "ap-northeast-1"
    assert doc["instanceId"] == text("meta-data/instance-id")
    assert doc["privateIp"] == text("meta-data/local-ipv4")
    assert '"region" : "ap-northeast-1"' in text("dynamic/instance-identity/document")
    creds = json.loads(text("meta-data/iam/security-credentials/aioimds-demo-role"))
    assert creds["AccessKeyId"] == "ASIAEXAMPLEEXAMPLE01"
    assert creds["Expiration"] == "2030-01-01T00:00:00Z"
    assert snap["/latest/user-data"].content_type == "application/octet-stream"


CATEGORIES = [
    "ami-id", "ami-launch-index", "ami-manifest-path", "autoscaling/", "block-device-mapping/",
    "events/", "hostname", "iam/", "identity-credentials/", "instance-action", "instance-id",
    "instance-life-cycle", "instance-type", "ipv6", "local-hostname", "local-ipv4", "mac",
    "metrics/", "network/", "placement/", "profile", "public-hostname", "public-ipv4",
    "public-keys/", "reservation-id", "security-groups", "services/", "system", "tags/",
]


def test_default_tree_has_every_category_and_no_error_records() -> None:
    snap = default_snapshot()
    assert set(CATEGORIES) <= set((snap["/latest/meta-data/"].text() or "").split("\n"))
    assert all(record.status == 200 for record in snap.values())


ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b|\b[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}\b")


def test_default_tree_uses_documentation_addresses_only() -> None:
    allowed = [ipaddress.ip_network(n) for n in
               ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "10.0.0.0/8", "2001:db8::/32")]
    found = 0
    for key, record in default_snapshot().items():
        text = key + " " + (record.text() or "")
        for match in ADDRESS.findall(text):
            try:
                address = ipaddress.ip_address(match)
            except ValueError:
                continue  # a MAC address or a time
            found += 1
            assert any(address in net for net in allowed), (key, match)
    assert found > 10


def test_default_file_is_canonical_snapshot_json() -> None:
    data = resources.files("aioimds.emulator").joinpath("data").joinpath("default.snapshot.json")
    assert data.read_text(encoding="utf-8") == default_snapshot().dumps()
    for key, record in default_snapshot().items():
        if key.endswith("/") and key != "/latest/meta-data/public-keys/" and record.body:
            entries = (record.text() or "").split("\n")
            assert entries == sorted(entries) and "" not in entries, key


def consistency_problems(snap: Snapshot) -> list[str]:
    """Listed entries that are not recorded, and recorded paths no listing names.

    The version listing ``/`` is checked for ``latest`` only: the emulator serves one version.
    """
    problems = []
    root = snap.get("/")
    if root is not None and "latest" not in (root.text() or "").split("\n"):
        problems.append("/ does not list latest")
    for key, record in snap.subtree("/latest/").items():
        if key.endswith("/") and record.status == 200 and record.body:
            for entry in (record.text() or "").split("\n"):
                name = canonical_path(entry)
                candidates = {key + name, key + name + "/", key + name.split("=")[0] + "/"}
                if not candidates & set(snap):
                    problems.append(f"{key} lists {entry!r}, which is not recorded")
    for key in snap:
        if key in ("/", "/latest/"):
            continue
        parent, _, name = key.rstrip("/").rpartition("/")
        listing = snap.get(parent + "/")
        entries = set((listing.text() or "").split("\n")) if listing is not None else set()
        name = unquote(name)
        named = {name, name + "/"} if key.endswith("/") else {name}
        if not (named & entries or any(e.split("=")[0] == name for e in entries if "=" in e)):
            problems.append(f"{key} is recorded but {parent}/ does not list it")
    return problems


def test_default_tree_is_consistent() -> None:
    assert consistency_problems(default_snapshot()) == []


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.name for p in FIXTURE_FILES])
def test_fixture_tree_is_consistent(path: Path) -> None:
    assert consistency_problems(Snapshot.load(path)) == []


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.name for p in FIXTURE_FILES])
async def test_fixture_tree_is_served_byte_for_byte(http, path: Path) -> None:
    snap = Snapshot.load(path)
    async with Emulator(snap) as emu:
        token = await new_token(http, emu)
        for key, record in snap.items():
            reply = await get(http, emu, key, token)
            assert (reply.status, reply.headers["Content-Type"]) == (200, record.content_type)
            assert reply.body == record.body, key


def test_consistency_check_finds_problems() -> None:
    snap = Snapshot({"/latest/": Record(body=b"meta-data"), "/latest/orphan": Record(body=b"x")})
    assert consistency_problems(snap) == [
        "/latest/ lists 'meta-data', which is not recorded",
        "/latest/orphan is recorded but /latest/ does not list it",
    ]
