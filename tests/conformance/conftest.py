"""Fixtures of the conformance tests: every served tree (the default one and each file of
tests/fixtures/) with tokens required and optional, and an environment in which a client can
only reach the emulator: no proxy variables, empty AWS config and credentials files."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURE_FILES

from aioimds import Record, Snapshot
from aioimds.emulator import Emulator, default_snapshot

EXTRA = "needs the conformance extra: pip install -e '.[conformance]'"
"""The reason every conformance test module is skipped with when its client is missing."""

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

TREES = [pytest.param(None, id="default"),
         *(pytest.param(p, id=p.name.removesuffix(".snapshot.json")) for p in FIXTURE_FILES)]


@pytest.fixture(autouse=True)
def only_the_emulator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No proxy from the environment (urllib, botocore and requests read them) and an empty
    shared credentials file, so credentials can only come from IMDS."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    empty = tmp_path / "aws-credentials-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))


@pytest.fixture(params=TREES)
def tree(request: pytest.FixtureRequest) -> Snapshot:
    """The tree served: the bundled default, or one fixture file."""
    path: Path | None = request.param
    return default_snapshot() if path is None else Snapshot.load(path)


@pytest.fixture(params=["required", "optional"])
def tokens(request: pytest.FixtureRequest) -> str:
    """IMDSv2 required, or IMDSv1 allowed too."""
    value: str = request.param
    return value


@pytest.fixture
def served(tree: Snapshot, tokens: Any) -> Iterator[Emulator]:
    """``tree`` served in a background thread, for the synchronous clients."""
    with Emulator(tree, tokens=tokens).in_thread() as emu:
        yield emu


@pytest.fixture
async def served_async(tree: Snapshot, tokens: Any) -> AsyncIterator[Emulator]:
    """``tree`` served on the test's loop, for the asyncio clients."""
    async with Emulator(tree, tokens=tokens) as emu:
        yield emu


class Expect:
    """What a faithful IMDS serving ``tree`` answers, read straight from the snapshot."""

    META = "/latest/meta-data/"
    ROLES = META + "iam/security-credentials/"
    DOCUMENT = "/latest/dynamic/instance-identity/document"

    def __init__(self, tree: Snapshot) -> None:
        self.tree = tree

    def record(self, path: str) -> Record | None:
        """The 200 record at ``path``, or None where IMDS answers 404."""
        record = self.tree.get(path)
        return record if record is not None and record.status == 200 else None

    def text(self, path: str) -> str | None:
        record = self.record(path)
        return None if record is None else record.body.decode("utf-8")

    def lines(self, path: str) -> list[str] | None:
        text = self.text(path)
        return None if text is None else text.splitlines()

    def json(self, path: str) -> Any:
        text = self.text(path)
        return None if text is None else json.loads(text)

    def meta(self, name: str) -> str | None:
        return self.text(self.META + name)

    def role(self) -> tuple[str, dict[str, Any]] | None:
        """The first role listed and its credentials document, or None without a role."""
        roles = self.lines(self.ROLES)
        if not roles:
            return None
        return roles[0], self.json(self.ROLES + roles[0])

    def region_from_az(self) -> str | None:
        """The region as botocore derives it: the availability zone less its last letter."""
        zone = self.meta("placement/availability-zone")
        return None if zone is None else zone[:-1]


@pytest.fixture
def expect(tree: Snapshot) -> Expect:
    return Expect(tree)
