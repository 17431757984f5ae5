"""What the botocore and aiobotocore provider tests share: the role's documents in the
emulator, a movable clock, and the key id in a presigned URL."""

from __future__ import annotations

import json
import urllib.parse
from datetime import datetime, timedelta, timezone
from typing import Any

from aioimds.emulator import Emulator

ROLE = "aioimds-demo-role"
LISTING = "/latest/meta-data/iam/security-credentials/"
LEGACY = LISTING + ROLE
EXTENDED = f"/latest/meta-data/iam/security-credentials-extended/{ROLE}"
ACCOUNT = "111122223333"
LIFETIME = 240.0
"""Seconds the emulator's rotated credentials live: inside the SDK's advisory refresh window
(300 s), so it asks the provider on every use, and outside the mandatory one (60 s)."""
NO_SDK = ("is not installed: it comes with the 'conformance' extra, "
          "pip install -e '.[conformance]'")
"""The end of the reason a test of an SDK provider is skipped."""


class Clock:
    """The credentials provider's clock: real time plus an offset the test moves on."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def served(emu: Emulator, path: str = LEGACY) -> dict[str, Any]:
    """The credentials document the emulator serves at ``path``."""
    doc: dict[str, Any] = json.loads(emu.snapshot[path].body)
    return doc


def serve_extended(emu: Emulator) -> None:
    """Serve the role's extended credentials document (the legacy one plus ``AccountId``),
    which the provider reads first; the emulator's rotation rewrites both."""
    doc = {**served(emu), "AccountId": ACCOUNT}
    emu.set_leaf(EXTENDED, json.dumps(doc, indent=2))


def signing_key_id(url: str) -> str:
    """The access key id in a presigned URL (SigV4 ``X-Amz-Credential`` or S3's SigV2
    ``AWSAccessKeyId``, as the SDK version picks)."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    if "X-Amz-Credential" in query:
        return query["X-Amz-Credential"][0].split("/")[0]
    return query["AWSAccessKeyId"][0]
