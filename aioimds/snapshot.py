"""Snapshot: the lossless record of what an IMDS answered, in the ``imds-snapshot/1`` format.

The format (DESIGN.md section 3)::

    {"format": "imds-snapshot/1",
     "responses": {"/latest/meta-data/ami-id": {"body": "ami-0abc"},
                   "/latest/user-data": {"body_base64": "H4sI...",
                                         "content_type": "application/octet-stream"},
                   "/latest/meta-data/spot/instance-action": {"status": 404}}}

A key is the request path exactly as requested (percent-encoded where the request needed it);
listings end with ``/``. ``body`` holds a body that is valid UTF-8, byte for byte; ``body_base64``
any other body. ``content_type`` appears only when it is not ``text/plain``; ``""`` means the
answer carried no ``Content-Type`` at all. ``status`` appears only when it is not 200.

A partial dump adds a top-level ``"failures": {"/latest/...": "message"}`` naming every path
that failed, so the file alone tells absent (``"status": 404``) from failed. A complete dump has
no ``failures`` key; the emulator serves ``responses`` only and ignores it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SnapshotFormatError

__all__ = ["FORMAT", "Record", "Snapshot"]

FORMAT = "imds-snapshot/1"
"""The value of the snapshot's ``format`` field."""

TEXT_PLAIN = "text/plain"
"""The content type IMDS serves listings and most leaves with; the snapshot's default."""


@dataclass(frozen=True)
class Record:
    """One recorded answer.

    Attributes:
        body: the response body, bytes exactly as served (empty for a 404).
        status: the HTTP status (200 unless recorded otherwise).
        content_type: the ``Content-Type`` as served, in lower case without parameters
            (``text/plain`` by default; ``""`` when the answer had none). The client reads
            JSON from the body whatever it says; only ``text/html`` is refused (a proxy or
            captive portal answering).
    """

    body: bytes = b""
    status: int = 200
    content_type: str = TEXT_PLAIN

    def __repr__(self) -> str:
        # The body may be a credentials document: a repr never shows it.
        ctype = self.content_type or "no Content-Type"
        return f"Record(status={self.status}, {len(self.body)} bytes, {ctype})"

    def text(self) -> str | None:
        """The body as text when it is valid UTF-8, else ``None``."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def to_json(self) -> dict[str, Any]:
        """This record as the snapshot format's JSON object."""
        out: dict[str, Any] = {}
        if self.status != 200:
            out["status"] = self.status
        if self.body or self.status == 200:
            text = self.text()
            if text is not None:
                out["body"] = text
            else:
                out["body_base64"] = base64.b64encode(self.body).decode("ascii")
        if self.content_type != TEXT_PLAIN:
            out["content_type"] = self.content_type
        return out

    @classmethod
    def from_json(cls, key: str, obj: object) -> Record:
        """Parse one ``responses`` value; raises :class:`SnapshotFormatError` naming ``key``."""
        if not isinstance(obj, dict):
            raise SnapshotFormatError("a response must be a JSON object", path=key)
        unknown = set(obj) - {"body", "body_base64", "status", "content_type"}
        if unknown:
            raise SnapshotFormatError(f"unknown fields {sorted(unknown)}", path=key)
        if "body" in obj and "body_base64" in obj:
            raise SnapshotFormatError("has both body and body_base64", path=key)
        status = obj.get("status", 200)
        ctype = obj.get("content_type", TEXT_PLAIN)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise SnapshotFormatError(f"status must be an HTTP status, not {status!r}", path=key)
        if not isinstance(ctype, str):
            raise SnapshotFormatError("content_type must be a string", path=key)
        if "body" in obj:
            if not isinstance(obj["body"], str):
                raise SnapshotFormatError("body must be a string", path=key)
            body = obj["body"].encode("utf-8")
        elif "body_base64" in obj:
            try:
                body = base64.b64decode(obj["body_base64"], validate=True)
            except (binascii.Error, TypeError, ValueError) as exc:
                raise SnapshotFormatError("body_base64 is not valid base64", path=key) from exc
        else:
            body = b""
        return cls(body=body, status=status, content_type=ctype)


@dataclass(frozen=True)
class Snapshot(Mapping[str, Record]):
    """An immutable map of request path (``/latest/...``) to :class:`Record`.

    Attributes:
        responses: request path -> :class:`Record`, every answer recorded.
        failures: request path -> message, for every path a partial dump failed on (empty
            for a complete one); not part of the mapping, which holds answers only.

    Equality compares every path, body, status and content type, and the failures.
    ``Snapshot.load(p) == snap`` after ``snap.save(p)``.
    """

    responses: Mapping[str, Record] = field(default_factory=dict)
    failures: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "responses", dict(sorted(self.responses.items())))
        object.__setattr__(self, "failures", dict(sorted(self.failures.items())))

    def __getitem__(self, path: str) -> Record:
        return self.responses[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self.responses)

    def __len__(self) -> int:
        return len(self.responses)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Snapshot):
            return NotImplemented
        return self.responses == other.responses and self.failures == other.failures

    def __hash__(self) -> int:
        return hash((tuple(self.responses.items()), tuple(self.failures.items())))

    def __repr__(self) -> str:
        failed = f", {len(self.failures)} failures" if self.failures else ""
        return f"Snapshot({len(self.responses)} responses{failed})"

    def subtree(self, prefix: str = "/latest/") -> Snapshot:
        """The responses whose path starts with ``prefix``: what a dump of ``/latest/`` of a
        server serving this snapshot gives back (the ``/`` version listing is not crawled)."""
        return Snapshot({k: v for k, v in self.responses.items() if k.startswith(prefix)},
                        {k: v for k, v in self.failures.items() if k.startswith(prefix)})

    def to_json(self) -> dict[str, Any]:
        """The ``imds-snapshot/1`` JSON object."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "responses": {k: r.to_json() for k, r in self.responses.items()},
        }
        if self.failures:
            out["failures"] = dict(self.failures)
        return out

    def dumps(self) -> str:
        """The snapshot as JSON text (2-space indent, trailing newline)."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, obj: object) -> Snapshot:
        """Build from a parsed ``imds-snapshot/1`` object; raises :class:`SnapshotFormatError`."""
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise SnapshotFormatError(f'not a snapshot: "format" must be "{FORMAT}"')
        responses = obj.get("responses")
        if not isinstance(responses, dict):
            raise SnapshotFormatError('"responses" must be a JSON object')
        failures = obj.get("failures", {})
        if not isinstance(failures, dict):
            raise SnapshotFormatError('"failures" must be a JSON object')
        for key in [*responses, *failures]:
            if not key.startswith("/"):
                raise SnapshotFormatError("a key must be a request path starting with /", path=key)
        for key, message in failures.items():
            if not isinstance(message, str):
                raise SnapshotFormatError("a failure must be a message string", path=key)
        return cls({k: Record.from_json(k, v) for k, v in responses.items()}, failures)

    @classmethod
    def loads(cls, text: str | bytes) -> Snapshot:
        """Parse snapshot JSON text; raises :class:`SnapshotFormatError`."""
        try:
            obj = json.loads(text)
        except ValueError as exc:
            reason = str(exc)
        except RecursionError:
            reason = "nested too deeply"
        else:
            return cls.from_json(obj)
        # Raised outside the except clause: a JSONDecodeError keeps the whole text (credentials
        # included) in its ``doc``, so it is neither the cause nor the context.
        raise SnapshotFormatError(f"not JSON: {reason}")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Snapshot:
        """Read a snapshot file; raises :class:`SnapshotFormatError` or :class:`OSError`."""
        with open(path, "rb") as fh:
            return cls.loads(fh.read())

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the snapshot to ``path`` as UTF-8 JSON."""
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.dumps())
