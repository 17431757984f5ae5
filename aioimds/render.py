"""Rendering a Snapshot: nested JSON, flat ``path: value`` lines, and secret redaction.

Nested JSON: a listing is an object keyed by its entries as served without the trailing ``/``
(``public-keys`` keeps ``0=key-name``); a text leaf is a string; a leaf whose text is a JSON
object or array (identity document, ``iam/info``, credentials, events) is parsed, except under
``tags/`` and ``user-data`` where text is the user's; a leaf that is not UTF-8 is
``{"base64": "...", "content_type": "..."}``. Paths that answered 404 are left out.

Flat: one line per leaf, ``meta-data/placement/region: ap-northeast-1``, the path relative to
``latest/`` and decoded. A value that is one line of printable text is written as it is; any
other text (empty, several lines, surrounding spaces, starting with ``"``) as a JSON string
literal; a binary value as ``base64:`` and its base64.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from . import catalogue
from .errors import IMDSResponseError
from .paths import ROOT, child_path, is_listing, parse_listing
from .snapshot import Record, Snapshot
from .wire import REDACTED

__all__ = ["REDACTED", "SECRET_FIELDS", "answered_children", "flat_lines", "holds_secrets",
           "nested", "redact"]

SECRET_FIELDS = ("SecretAccessKey", "Token")
"""Fields of a credential document (one with ``AccessKeyId``) that are replaced."""

_SECRET_RE = re.compile(
    r'("(?:' + "|".join(SECRET_FIELDS) + r')"\s*:\s*)"(?:[^"\\]|\\.)*"'
)
_TEXT_ONLY = (ROOT + catalogue.TAGS, ROOT + catalogue.USER_DATA)


def holds_secrets(body: bytes) -> bool:
    """Whether ``body`` is a credential document (a JSON object with ``AccessKeyId``), whose
    :data:`SECRET_FIELDS` are secrets."""
    return body.lstrip()[:1] == b"{" and b'"AccessKeyId"' in body


def _credential_document(record: Record) -> bool:
    return record.status == 200 and holds_secrets(record.body)


def redact(snapshot: Snapshot) -> Snapshot:
    """A copy of ``snapshot`` whose credential documents have ``SecretAccessKey`` and
    ``Token`` replaced by :data:`REDACTED`, formatting otherwise unchanged."""
    out: dict[str, Record] = {}
    for path, rec in snapshot.items():
        if _credential_document(rec):
            text = rec.body.decode("utf-8", "replace")
            body = _SECRET_RE.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text).encode()
            rec = Record(body, rec.status, rec.content_type)
        out[path] = rec
    return Snapshot(out, snapshot.failures)


def _leaf_value(path: str, rec: Record) -> Any:
    text = rec.text()
    if text is None:
        return {"base64": base64.b64encode(rec.body).decode("ascii"),
                "content_type": rec.content_type}
    if text.lstrip()[:1] in ("{", "[") and not path.startswith(_TEXT_ONLY):
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return text
    return text


def answered_children(snapshot: Snapshot, listing: str, rec: Record
                      ) -> Iterator[tuple[str, str, Record]]:
    """``(entry, child request path, record)`` for each entry of the listing ``rec`` (at the
    request path ``listing``) whose child answered 200 in ``snapshot``, in listed order; an
    entry naming no child, or answered 404, is left out."""
    for entry in parse_listing(rec.body, listing):
        try:
            child = child_path(listing, entry)
        except IMDSResponseError:
            continue
        sub = snapshot.get(child)
        if sub is not None and sub.status == 200:
            yield entry, child, sub


def nested(snapshot: Snapshot, root: str = ROOT) -> dict[str, Any]:
    """The nested JSON view (see the module docstring) of the tree below the listing ``root``
    (a request path; default ``/latest/``)."""

    def walk(listing: str, rec: Record) -> dict[str, Any]:
        node: dict[str, Any] = {}
        for entry, child, sub in answered_children(snapshot, listing, rec):
            key = entry[:-1] if entry.endswith("/") else entry
            node[key] = walk(child, sub) if is_listing(child) else _leaf_value(child, sub)
        return node

    top = snapshot.get(root)
    return walk(root, top) if top is not None and top.status == 200 else {}


def _flat_value(rec: Record) -> str:
    text = rec.text()
    if text is None:
        return "base64:" + base64.b64encode(rec.body).decode("ascii")
    simple = (text != "" and text.isprintable() and text == text.strip()
              and not text.startswith(('"', "base64:")))
    return text if simple else _escape_c1(json.dumps(text, ensure_ascii=False))


def _escape_c1(text: str) -> str:
    """JSON text with DEL and the C1 controls escaped too (``json.dumps`` leaves them raw, and
    U+009B is a terminal's CSI)."""
    return "".join(f"\\u{ord(c):04x}" if 0x7F <= ord(c) <= 0x9F else c for c in text)


def _flat_path(path: str) -> str:
    text = unquote(path[len(ROOT):])
    return text if text.isprintable() else _escape_c1(json.dumps(text, ensure_ascii=False))


def flat_lines(snapshot: Snapshot) -> list[str]:
    """The flat view: ``path: value`` for every leaf that answered 200, in path order."""
    return [
        f"{_flat_path(path)}: {_flat_value(rec)}"
        for path, rec in snapshot.items()
        if rec.status == 200 and not is_listing(path) and path.startswith(ROOT)
    ]
