"""How the emulator finds the record for a request path, as real IMDS resolves paths.

DESIGN.md sections 3 and 4: besides a path exactly as recorded (or in its canonical
percent-encoding), IMDS answers

- a leaf asked with a trailing slash (``placement/availability-zone/``, as botocore's region
  fetcher asks it) and a listing asked without one (``iam/security-credentials``, as the AWS SDK
  for Python v4 asks it);
- paths with repeated slashes (``/latest//meta-data/``);
- every dated API version that ``/`` lists (``/2021-03-23/meta-data/...``, as cloud-init asks):
  a version is served from the ``latest`` records, unless the snapshot holds paths of that
  version's own (any key under ``/2021-03-23/``), which are then its whole tree.

Nothing else is derived: a path that none of these rules maps to a record answers 404. The
exact recorded key is always tried first, so a dump of a served snapshot still equals it.

:func:`without_instance_tags` applies the instance setting "tags in metadata disabled".
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .. import catalogue
from ..paths import ROOT, VERSIONS, split_entries
from ..snapshot import Record
from .wire import canonical_path

__all__ = ["LATEST", "PathResolver", "without_instance_tags"]

LATEST = ROOT.strip("/")
"""The version whose records a dated version is served from."""

_META_DATA = catalogue.META_DATA.rstrip("/")
_TAGS = catalogue.TAGS.removeprefix(catalogue.META_DATA).rstrip("/")
_TAGS_ENTRY = _TAGS + "/"

_REPEATED_SLASHES = re.compile(r"//+")


class PathResolver:
    """Maps request paths to snapshot keys; caches what it learns from the tree.

    Call :meth:`invalidate` whenever the served mapping changes (the emulator does, in every
    method that edits the tree), so the versions listed at ``/`` and the versions with paths
    of their own are read again.
    """

    __slots__ = ("_own", "_versions", "_versions_from")

    def __init__(self) -> None:
        self._versions: frozenset[str] = frozenset()
        self._versions_from: Record | None = None
        self._own: frozenset[str] | None = None

    def invalidate(self) -> None:
        """Forget what was read from the tree."""
        self._own = None
        self._versions_from = None
        self._versions = frozenset()

    def resolve(self, responses: Mapping[str, Record], path: str) -> str | None:
        """The key of ``responses`` that answers ``path`` (raw, without its query), or
        ``None`` when IMDS would answer 404.

        Tried in order: ``path`` and its canonical percent-encoding; then, with repeated
        slashes collapsed and a dated version mapped to ``latest`` (see the module doc), that
        path, and the same path with its trailing slash removed (a leaf) or added (a
        listing), each also in canonical encoding.
        """
        for key in (path, canonical_path(path)):
            if key in responses:
                return key
        normal = _REPEATED_SLASHES.sub("/", path)
        normal = self._to_latest(responses, normal)
        flipped = normal[:-1] if normal.endswith("/") else normal + "/"
        for candidate in (normal, flipped):
            if not candidate or candidate == path:
                continue
            for key in (candidate, canonical_path(candidate)):
                if key in responses:
                    return key
        return None

    def _to_latest(self, responses: Mapping[str, Record], path: str) -> str:
        """``/2021-03-23/rest`` -> ``/latest/rest`` when that version is listed at ``/`` and
        has no paths of its own; any other path unchanged."""
        version, _, rest = path[1:].partition("/")
        if not version or version == LATEST or version not in self._listed(responses):
            return path
        if version in self._own_versions(responses):
            return path
        return f"/{LATEST}/{rest}"

    def _listed(self, responses: Mapping[str, Record]) -> frozenset[str]:
        record = responses.get(VERSIONS)
        if record is not self._versions_from:
            self._versions_from = record
            self._versions = frozenset(_entries(record))
        return self._versions

    def _own_versions(self, responses: Mapping[str, Record]) -> frozenset[str]:
        if self._own is None:
            self._own = frozenset(
                key[1:].partition("/")[0] for key in responses if key.count("/") >= 2
            )
        return self._own


def _entries(record: Record | None) -> list[str]:
    """The entries of a 200 listing record (empty for anything else)."""
    if record is None or record.status != 200:
        return []
    text = record.text()
    return split_entries(text) if text is not None else []


def without_instance_tags(key: str, record: Record) -> Record | None:
    """What ``key`` answers when tags in metadata are disabled at the instance: ``None``
    (404) under ``/VERSION/meta-data/tags/``, ``/VERSION/meta-data/`` without its ``tags/``
    entry, anything else ``record`` itself. (EC2 user guide, "View tags for your EC2 instances
    from within the instance": ``tags/instance`` is there only when access is allowed.)"""
    parts = key.split("/", 4)
    if len(parts) < 4 or parts[2] != _META_DATA:
        return record
    if parts[3] == _TAGS:
        return None
    if parts[3] or record.status != 200:
        return record
    entries = _entries(record)
    if _TAGS_ENTRY not in entries:
        return record
    body = "\n".join(e for e in entries if e != _TAGS_ENTRY).encode("utf-8")
    return Record(body, record.status, record.content_type)
