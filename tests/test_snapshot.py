"""Snapshot format imds-snapshot/1 and its views (aioimds.snapshot, aioimds.render)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest
from conftest import fixture_params

from aioimds import Record, Snapshot, SnapshotFormatError
from aioimds.render import REDACTED, flat_lines, nested, redact

CREDS = (
    '{\n  "Code" : "Success",\n  "LastUpdated" : "2026-11-29T00:00:00Z",\n'
    '  "Type" : "AWS-HMAC",\n  "AccessKeyId" : "ASIAEXAMPLE",\n'
    '  "SecretAccessKey" : "very/secret+key",\n  "Token" : "tok\\"en==",\n'
    '  "Expiration" : "2030-01-01T00:00:00Z"\n}'
)
GZ = gzip.compress(b"#cloud-config\n", mtime=0)


def small() -> Snapshot:
    return Snapshot({
        "/latest/": Record(b"dynamic\nmeta-data\nuser-data"),
        "/latest/dynamic/": Record(b"instance-identity/"),
        "/latest/dynamic/instance-identity/": Record(b"document"),
        "/latest/dynamic/instance-identity/document": Record(b'{"region": "ap-northeast-1"}'),
        "/latest/meta-data/": Record(
            b"ami-launch-index\niam/\npublic-keys/\npublic-ipv4\nsecurity-groups\ntags/"),
        "/latest/meta-data/ami-launch-index": Record(b"0"),
        "/latest/meta-data/iam/": Record(b"security-credentials/"),
        "/latest/meta-data/iam/security-credentials/": Record(b"role"),
        "/latest/meta-data/iam/security-credentials/role": Record(CREDS.encode()),
        "/latest/meta-data/public-keys/": Record(b"0=my-key"),
        "/latest/meta-data/public-keys/0/": Record(b"openssh-key"),
        "/latest/meta-data/public-keys/0/openssh-key": Record(b"ssh-ed25519 AAAA my-key\n"),
        "/latest/meta-data/public-ipv4": Record(b"", 404),
        "/latest/meta-data/security-groups": Record(b"a\nb"),
        "/latest/meta-data/tags/": Record(b"instance/"),
        "/latest/meta-data/tags/instance/": Record(b"my tag\nx:y"),
        "/latest/meta-data/tags/instance/my%20tag": Record(b"[1]"),
        "/latest/meta-data/tags/instance/x:y": Record(b""),
        "/latest/user-data": Record(GZ, 200, "application/octet-stream"),
    })


def test_json_shape_follows_the_format() -> None:
    obj = small().to_json()
    assert obj["format"] == "imds-snapshot/1"
    r = obj["responses"]
    assert r["/latest/meta-data/public-ipv4"] == {"status": 404}
    assert r["/latest/meta-data/tags/instance/x:y"] == {"body": ""}
    assert r["/latest/user-data"] == {
        "body_base64": base64.b64encode(GZ).decode(), "content_type": "application/octet-stream"}
    assert r["/latest/meta-data/public-keys/0/openssh-key"] == {
        "body": "ssh-ed25519 AAAA my-key\n"}


def test_save_load_round_trip(tmp_path: Path) -> None:
    snap = small()
    snap.save(tmp_path / "s.json")
    again = Snapshot.load(tmp_path / "s.json")
    assert again == snap
    assert again["/latest/user-data"].body == GZ


def test_equality_sees_every_difference() -> None:
    a = small()
    changed = dict(a.responses)
    changed["/latest/meta-data/ami-launch-index"] = Record(b"0", 200, "application/json")
    assert Snapshot(changed) != a
    changed["/latest/meta-data/ami-launch-index"] = Record(b"0 ")
    assert Snapshot(changed) != a


@pytest.mark.parametrize("path", fixture_params())
def test_fixture_files_round_trip_exactly(path: Path) -> None:
    raw = json.loads(path.read_text())
    snap = Snapshot.load(path)
    assert snap.to_json() == raw


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({"format": "imds-snapshot/2", "responses": {}}, "format"),
        ({"format": "imds-snapshot/1"}, "responses"),
        ({"format": "imds-snapshot/1", "responses": {"x": {"body": ""}}}, "request path"),
        ({"format": "imds-snapshot/1", "responses": {"/a": {"body": 1}}}, "body must"),
        ({"format": "imds-snapshot/1", "responses": {"/a": {"body_base64": "!!"}}}, "base64"),
        ({"format": "imds-snapshot/1", "responses": {"/a": {"status": 99}}}, "status"),
        ({"format": "imds-snapshot/1", "responses": {"/a": {"bodyy": ""}}}, "unknown"),
        ({"format": "imds-snapshot/1", "responses": {"/a": {"body": "", "body_base64": ""}}},
         "both"),
    ],
    ids=["format", "no-responses", "relative-key", "body-type", "bad-base64", "bad-status",
         "unknown-field", "both-bodies"],
)
def test_bad_snapshots_are_refused_with_the_reason(obj: object, match: str) -> None:
    with pytest.raises(SnapshotFormatError, match=match):
        Snapshot.from_json(obj)


def test_not_json_is_refused() -> None:
    with pytest.raises(SnapshotFormatError, match="not JSON"):
        Snapshot.loads("{nope")


def test_nested_view() -> None:
    view = nested(small())
    assert view["meta-data"]["ami-launch-index"] == "0"
    assert view["meta-data"]["public-keys"]["0=my-key"]["openssh-key"] == (
        "ssh-ed25519 AAAA my-key\n")
    assert "public-ipv4" not in view["meta-data"]  # a 404 is absent (vector #8677)
    assert view["meta-data"]["tags"]["instance"] == {"my tag": "[1]", "x:y": ""}
    assert view["dynamic"]["instance-identity"]["document"] == {"region": "ap-northeast-1"}
    assert view["meta-data"]["iam"]["security-credentials"]["role"]["AccessKeyId"] == (
        "ASIAEXAMPLE")
    assert view["user-data"] == {"base64": base64.b64encode(GZ).decode(),
                                 "content_type": "application/octet-stream"}


def test_flat_view() -> None:
    lines = flat_lines(small())
    assert "meta-data/ami-launch-index: 0" in lines
    assert 'meta-data/security-groups: "a\\nb"' in lines
    assert 'meta-data/tags/instance/my tag: [1]' in lines
    assert 'meta-data/tags/instance/x:y: ""' in lines
    assert f"user-data: base64:{base64.b64encode(GZ).decode()}" in lines
    assert not any(line.startswith("meta-data/public-ipv4") for line in lines)
    assert not any(line.split(":")[0].endswith("/") for line in lines)


def test_redact_replaces_only_secret_values_and_keeps_format() -> None:
    red = redact(small())
    body = red["/latest/meta-data/iam/security-credentials/role"].body.decode()
    doc = json.loads(body)
    assert doc["SecretAccessKey"] == REDACTED and doc["Token"] == REDACTED
    assert doc["AccessKeyId"] == "ASIAEXAMPLE"
    assert "very/secret+key" not in red.dumps() and 'tok\\"en' not in red.dumps()
    assert body.startswith('{\n  "Code" : "Success",')
    others = {k: v for k, v in red.items() if "security-credentials/role" not in k}
    assert others == {k: v for k, v in small().items() if "security-credentials/role" not in k}


def test_record_repr_never_shows_the_body() -> None:
    rec = small()["/latest/meta-data/iam/security-credentials/role"]
    assert "very/secret+key" not in repr(rec) and "very/secret+key" not in str(rec)
    assert repr(rec) == f"Record(status=200, {len(CREDS.encode())} bytes, text/plain)"


def test_flat_and_tree_views_escape_c1_controls_of_values_and_paths() -> None:
    from aioimds.cli.tree import tree_lines
    snap = Snapshot.from_json({"format": "imds-snapshot/1", "responses": {
        "/latest/": {"body": "meta-data"},
        "/latest/meta-data/": {"body": "csi\nodd%C2%9Bname"},
        "/latest/meta-data/csi": {"body": "a\u009b31mred\u0085"},
        "/latest/meta-data/odd%C2%9Bname": {"body": "x"},
    }})
    flat = flat_lines(snap)
    assert flat == ['meta-data/csi: "a\\u009b31mred\\u0085"', '"meta-data/odd\\u009bname": x']
    tree = "\n".join(tree_lines(snap))
    assert "\u009b" not in tree and "\u0085" not in tree and "\\x9b" in tree
