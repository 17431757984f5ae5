"""`aioimds diff A B`: snapshots and live endpoints compared, secrets redacted, exit 0/1/2."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aioimds import Snapshot
from aioimds.cli.diff import run_diff
from aioimds.cli.parser import build_parser
from aioimds.emulator import Emulator, default_snapshot

REGION = "/latest/meta-data/placement/region"
CREDS = "/latest/meta-data/iam/security-credentials/aioimds-demo-role"


def changed(base: Snapshot, path: str, body: str) -> Snapshot:
    doc = base.to_json()
    doc["responses"][path] = {"body": body}
    return Snapshot.from_json(doc)


async def diff(*argv: str, stdin: bytes = b"") -> tuple[int, str]:
    args = build_parser().parse_args(["diff", *argv])
    out = io.BytesIO()
    rc = await run_diff(args, out, io.BytesIO(stdin))
    return rc, out.getvalue().decode()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    path = tmp_path / "a.json"
    default_snapshot().subtree().save(path)
    return path


async def test_a_snapshot_against_itself_is_the_same(tree: Path) -> None:
    assert await diff(str(tree), str(tree)) == (0, "")


async def test_one_changed_leaf_exits_1_and_is_named_with_both_values(tree: Path,
                                                                     tmp_path: Path) -> None:
    other = tmp_path / "b.json"
    changed(Snapshot.load(tree), REGION, "eu-west-1").save(other)
    assert await diff(str(tree), str(other)) == (
        1, f"~ {REGION}: ap-northeast-1 -> eu-west-1\n")


async def test_added_and_removed_paths_are_marked(tree: Path, tmp_path: Path) -> None:
    base = Snapshot.load(tree)
    doc = base.to_json()
    del doc["responses"]["/latest/meta-data/ami-id"]
    doc["responses"]["/latest/meta-data/new-leaf"] = {"status": 404}
    other = tmp_path / "b.json"
    Snapshot.from_json(doc).save(other)
    rc, out = await diff(str(tree), str(other))
    assert rc == 1
    assert out.splitlines() == ["- /latest/meta-data/ami-id: " + base[
        "/latest/meta-data/ami-id"].body.decode(), "+ /latest/meta-data/new-leaf: (404)"]


async def test_dash_reads_stdin(tree: Path) -> None:
    other = changed(Snapshot.load(tree), REGION, "us-east-1").dumps().encode()
    rc, out = await diff("-", str(tree), stdin=other)
    assert (rc, out) == (1, f"~ {REGION}: us-east-1 -> ap-northeast-1\n")


async def test_a_live_endpoint_as_one_side(tree: Path) -> None:
    async with Emulator() as emu:
        assert await diff(emu.url, str(tree)) == (0, "")
        emu.set_leaf(REGION, "sa-east-1")
        assert await diff(str(tree), emu.url) == (
            1, f"~ {REGION}: ap-northeast-1 -> sa-east-1\n")
        # "imds" is the configured endpoint (here through the environment)
        os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = emu.url
        try:
            rc, out = await diff("imds", str(tree))
        finally:
            del os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
    assert rc == 1 and REGION in out


async def test_secrets_are_redacted_unless_include_secrets(tree: Path, tmp_path: Path) -> None:
    body = Snapshot.load(tree)[CREDS].body.decode()
    secret = json.loads(body)["SecretAccessKey"]
    other = tmp_path / "b.json"
    changed(Snapshot.load(tree), CREDS, body.replace(secret, "a-rotated-secret")).save(other)
    assert await diff(str(tree), str(other)) == (0, "")  # redacted, they are the same
    rc, out = await diff(str(tree), str(other), "--include-secrets")
    assert rc == 1 and out.startswith(f"~ {CREDS}: ")


def test_exit_2_on_trouble_as_a_process(tree: Path) -> None:
    env = {**os.environ, "AWS_CONFIG_FILE": os.devnull}

    def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "aioimds", "diff", *args], input=stdin,
                              capture_output=True, timeout=60, env=env, check=False)

    assert run(str(tree), "-", stdin=tree.read_bytes()).returncode == 0
    missing = run(str(tree), str(tree.with_name("missing.json")))
    bad = run(str(tree), "-", stdin=b"{}")
    both = run("-", "-")
    unreachable = run(str(tree), "http://127.0.0.1:1")
    for out in (missing, bad, both, unreachable):
        assert out.returncode == 2 and b"Traceback" not in out.stderr, out.stderr
    assert b"missing.json" in missing.stderr and b"incomplete dump" in unreachable.stderr


async def test_a_changed_listing_shows_the_entries_added_and_removed(
        tree: Path, tmp_path: Path) -> None:
    base = Snapshot.load(tree)
    listing = "/latest/meta-data/"
    entries = base[listing].body.decode().splitlines()
    new = [e for e in entries if e != "ami-id"] + ["new-leaf"]
    other = tmp_path / "b.json"
    changed(base, listing, "\n".join(new)).save(other)
    rc, out = await diff(str(tree), str(other))
    assert rc == 1
    assert out.splitlines() == [f"~ {listing}: +new-leaf, -ami-id"]


async def test_a_nested_json_dump_is_refused_with_the_snapshot_command(
        tree: Path, tmp_path: Path) -> None:
    from aioimds.cli.diff import DiffTrouble
    nested = tmp_path / "dump.json"
    nested.write_text(json.dumps({"meta-data": {"ami-id": "ami-1"}}))
    with pytest.raises(DiffTrouble) as err:
        await diff(str(nested), str(tree))
    assert str(err.value).startswith(f"{nested}: not a snapshot")
    assert "aioimds dump -f snapshot" in str(err.value)
