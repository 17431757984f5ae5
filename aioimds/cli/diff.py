"""``aioimds diff A B``: what changed between two snapshots, or a snapshot and a live endpoint.

A side is a snapshot file (``imds-snapshot/1``), ``-`` (a snapshot on stdin; one side at
most), ``imds`` (a dump of the configured endpoint: the global options, the environment and
the config file, or ``--emulator``) or ``http://host:port`` (a dump of that endpoint). When a
side is live, only ``/latest/`` of the other is compared, since a dump covers that alone.

Output, one line per path that differs, in path order::

    - /latest/meta-data/old-leaf: its value         (only in A)
    + /latest/meta-data/new-leaf: its value         (only in B)
    ~ /latest/meta-data/placement/region: ap-northeast-1 -> eu-west-1
    ~ /latest/meta-data/: +new-leaf, -old-leaf      (a listing: entries added, removed)

Values are shortened to one line as in ``dump --format tree``; a 404 record shows as
``(404)``. Credential documents are redacted on both sides before comparing, unless
``--include-secrets``. Exit status, as diff(1): 0 same, 1 differ, 2 trouble (a bad file, a live
dump that failed, a usage error).
"""

from __future__ import annotations

import argparse
from typing import BinaryIO

from ..client import IMDSClient
from ..config import IMDSConfig
from ..errors import SnapshotFormatError
from ..paths import ROOT
from ..render import redact
from ..snapshot import Record, Snapshot
from .log import log
from .settings import open_settings, settings_for
from .tree import one_line

__all__ = ["LIVE", "DiffTrouble", "compare", "run_diff"]

LIVE = "imds"
"""The side that stands for the configured endpoint."""
VALUE_WIDTH = 100
"""Characters each value is shortened to."""


class DiffTrouble(Exception):
    """A side could not be read (exit status 2)."""


def compare(a: Snapshot, b: Snapshot) -> list[tuple[str, str, Record | None, Record | None]]:
    """Every path whose record differs: ``(sign, path, record in a, record in b)`` with sign
    ``-`` (only in a), ``+`` (only in b) or ``~`` (changed), in path order."""
    out: list[tuple[str, str, Record | None, Record | None]] = []
    for path in sorted(set(a) | set(b)):
        ra, rb = a.get(path), b.get(path)
        if ra == rb:
            continue
        out.append(("-" if rb is None else "+" if ra is None else "~", path, ra, rb))
    return out


def _value(rec: Record | None) -> str:
    if rec is None:
        return ""
    if rec.status != 200:
        return f"({rec.status})"
    return one_line(rec, VALUE_WIDTH)


def _entries(rec: Record) -> list[str]:
    return rec.body.decode("utf-8", "replace").splitlines()


def _listing_change(ra: Record, rb: Record) -> str:
    """The entries a listing gained (``+entry``) and lost (``-entry``), in entry order."""
    old, new = _entries(ra), _entries(rb)
    added = [f"+{one_line(Record(e.encode()), VALUE_WIDTH)}" for e in new if e not in old]
    removed = [f"-{one_line(Record(e.encode()), VALUE_WIDTH)}" for e in old if e not in new]
    return ", ".join(added + removed) or "entries reordered"


def _lines(changes: list[tuple[str, str, Record | None, Record | None]]) -> list[str]:
    lines = []
    for sign, path, ra, rb in changes:
        if sign == "~" and path.endswith("/") and ra and rb and ra.status == rb.status == 200:
            lines.append(f"~ {path}: {_listing_change(ra, rb)}")
        elif sign == "~":
            va, vb = _value(ra), _value(rb)
            if va == vb:  # the difference is past the shortened part, or in the content type
                vb += " (differs further on)" if ra and rb and ra.body != rb.body \
                    else f" ({rb.content_type if rb else ''})"
            lines.append(f"~ {path}: {va} -> {vb}")
        else:
            lines.append(f"{sign} {path}: {_value(ra if sign == '-' else rb)}")
    return lines


def _is_live(side: str) -> bool:
    return side == LIVE or side.startswith(("http://", "https://"))


async def _dump(args: argparse.Namespace, side: str) -> Snapshot:
    if side == LIVE:
        async with open_settings(args) as settings:
            return await _crawl(settings.config, side)
    return await _crawl(settings_for(args, endpoint=side).config, side)


async def _crawl(config: IMDSConfig, side: str) -> Snapshot:
    async with IMDSClient(config) as imds:
        result = await imds.dump(partial=True)
    if not result.complete:
        raise DiffTrouble(f"{side}: incomplete dump, {len(result.failures)} path(s) failed "
                          f"(first: {min(result.failures)}: "
                          f"{result.failures[min(result.failures)].message})")
    return result.snapshot


async def _side(args: argparse.Namespace, side: str, stdin: BinaryIO) -> Snapshot:
    if _is_live(side):
        return await _dump(args, side)
    try:
        return Snapshot.loads(stdin.read()) if side == "-" else Snapshot.load(side)
    except SnapshotFormatError as exc:
        if not exc.message.startswith("not a snapshot"):
            raise
        # the usual cause: a `dump -o` file, which is nested JSON by default
        raise DiffTrouble(f"{'stdin' if side == '-' else side}: {exc.message}; write "
                          "snapshots with `aioimds dump -f snapshot`") from None


async def run_diff(args: argparse.Namespace, stdout: BinaryIO, stdin: BinaryIO) -> int:
    """``aioimds diff A B``: print the differences; 0 same, 1 differ (2 is raised as
    :class:`DiffTrouble`, :class:`OSError` or an IMDSError for the CLI to map)."""
    if args.a == "-" and args.b == "-":
        raise DiffTrouble("only one side can be - (stdin)")
    a = await _side(args, args.a, stdin)
    b = await _side(args, args.b, stdin)
    if _is_live(args.a) or _is_live(args.b):
        a, b = a.subtree(ROOT), b.subtree(ROOT)
    if not args.include_secrets:
        a, b = redact(a), redact(b)
    changes = compare(a, b)
    stdout.write("".join(line + "\n" for line in _lines(changes)).encode())
    stdout.flush()
    counts = {s: sum(1 for c in changes if c[0] == s) for s in "~+-"}
    log.info("diff: %d changed, %d added, %d removed", counts["~"], counts["+"], counts["-"])
    return 1 if changes else 0
