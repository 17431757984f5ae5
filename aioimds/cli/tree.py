"""``dump --format tree``: the tree below a listing, indented, each value on one line.

::

    latest/
      dynamic/
        instance-identity/
          document: {"accountId": "123456789012", "architecture": "x86_64", ...
      meta-data/
        ami-id: ami-0abcdef1234567890
        placement/
          region: ap-northeast-1
      user-data: <312 bytes, gzip, application/octet-stream>

Listings end with ``/`` and keep their entries' order as served; paths that answered 404 are
left out. A value is shortened to one line: a JSON document is written compactly, other text
keeps its first line (``(+N lines)`` says what was cut), control characters are escaped so
nothing reaches the terminal raw, and a value longer than the width ends with ``...``.
"""

from __future__ import annotations

import contextlib
import json
from urllib.parse import unquote

from ..paths import ROOT, is_listing
from ..render import answered_children
from ..snapshot import Record, Snapshot

__all__ = ["DEFAULT_WIDTH", "escape", "one_line", "tree_lines"]

DEFAULT_WIDTH = 120
"""Characters per line when the output is not a terminal."""
_ELLIPSIS = "..."


def escape(text: str) -> str:
    """``text`` with every character that is not printable (control characters, escape
    sequences a hostile endpoint could send to a terminal) written as its Python escape."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def one_line(record: Record, width: int) -> str:
    """``record``'s value on one line of at most ``width`` characters (at least 16)."""
    width = max(16, width)
    text = record.text()
    if text is None:
        kind = ", gzip" if record.body[:2] == b"\x1f\x8b" else ""
        return f"<{len(record.body)} bytes{kind}, {record.content_type or 'no Content-Type'}>"
    if text == "":
        return '""'
    suffix = ""
    if text.lstrip()[:1] in ("{", "["):
        with contextlib.suppress(ValueError, RecursionError):
            text = json.dumps(json.loads(text), ensure_ascii=False)
    lines = text.splitlines() or [text]
    if len(lines) > 1:
        suffix = f" (+{len(lines) - 1} lines)"
    value = escape(lines[0])
    if len(value) + len(suffix) > width:
        value = value[:max(1, width - len(suffix) - len(_ELLIPSIS))] + _ELLIPSIS
    return value + suffix


def tree_lines(snapshot: Snapshot, root: str = ROOT, width: int = DEFAULT_WIDTH) -> list[str]:
    """The tree view of ``snapshot`` below the listing ``root`` (a request path), one string
    a line, first the root itself (``latest/``, or ``meta-data/iam/`` for a sub-tree)."""
    top = unquote(root[len(ROOT):]) if root.startswith(ROOT) and root != ROOT else "latest/"
    out = [top]

    def walk(listing: str, rec: Record, depth: int) -> None:
        indent = "  " * depth
        for entry, child, sub in answered_children(snapshot, listing, rec):
            if is_listing(child):  # public-keys/ lists "0=my-key" for the listing 0/
                out.append(f"{indent}{entry if entry.endswith('/') else entry + '/'}")
                walk(child, sub, depth + 1)
            else:
                prefix = f"{indent}{entry}: "
                out.append(prefix + one_line(sub, width - len(prefix)))

    record = snapshot.get(root)
    if record is not None and record.status == 200:
        walk(root, record, 1)
    return out
