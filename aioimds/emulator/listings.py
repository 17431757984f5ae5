"""Keeping parent listings in step with the emulator's edits (``set_response``, ``remove``).

IMDS lists every child of a directory in the directory's listing, so a leaf added with
``set_leaf`` must appear there too (``tags()`` reads the listing first), and a removed one must
leave it. The rules, written once here:

- A path answered 200 is added, as its entry, to its parent listing, and each missing
  directory up to the version root (``/latest/``) is added to its own parent; a listing that is
  missing or answers an error is created. An entry is added in order when the listing was
  sorted, else at the end. Entries are listed decoded (``my tag?`` for ``my%20tag%3F``);
  the version root lists its children without a slash (``meta-data``, ``user-data``), as IMDS
  does. The version listing ``/`` is never changed.
- A path set to an error status (404, 500...) leaves listings as they are: a crawl records
  listed entries that answered 404, and a listed path can fail.
- Removing a path takes its entry out of its parent listing (a listing left empty stays, as an
  empty 200); removing a directory (a path ending with ``/``) removes every path under it too.
- ``public-keys/`` lists ``N=key-name`` for the directory ``N/``: ``N=...`` counts as that
  directory's entry, and removing ``N/`` removes it; a new ``N/`` is not added there, since its
  key name is not known (set ``public-keys/`` yourself).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from urllib.parse import unquote

from .. import catalogue
from ..paths import is_listing, key_entry, split_entries
from ..snapshot import Record

__all__ = ["add_to_listings", "remove_from_listing"]

_PUBLIC_KEYS = "/" + catalogue.PUBLIC_KEYS
"""How a ``public-keys/`` listing ends, in any version."""


def _parent(path: str) -> tuple[str, str] | None:
    """``/a/b/c`` -> (``/a/b/``, ``c``); ``/a/b/`` -> (``/a/``, ``b/``); None at ``/V/`` or
    above (nothing to list it in but ``/``, which is left alone)."""
    head, _, name = path.rstrip("/").rpartition("/")
    if not head:
        return None
    entry = unquote(name) + ("/" if is_listing(path) else "")
    if head.count("/") == 1:  # the version root lists its children without a slash
        entry = entry.rstrip("/")
    return head + "/", entry


def _entries(record: Record | None) -> list[str] | None:
    """A 200 listing's entries; [] for a missing or error listing; None for one that is not
    UTF-8 (left alone)."""
    if record is None or record.status != 200:
        return []
    text = record.text()
    if text is None:
        return None
    return split_entries(text)


def _is_key_directory(listing: str, entry: str) -> bool:
    return listing.endswith(_PUBLIC_KEYS) and is_listing(entry)


def _matches(listing: str, entry: str, candidate: str) -> bool:
    """Whether the listing's ``candidate`` entry stands for ``entry`` (``0=name`` for ``0/``)."""
    if candidate == entry:
        return True
    key = key_entry(candidate)
    return _is_key_directory(listing, entry) and key is not None and key[0] + "/" == entry


def _listing_record(entries: list[str]) -> Record:
    return Record("\n".join(entries).encode("utf-8"))


def add_to_listings(responses: MutableMapping[str, Record], path: str) -> None:
    """List ``path`` in its parent listing and each missing ancestor in its own, up to the
    version root."""
    child = path
    while (found := _parent(child)) is not None:
        listing, entry = found
        entries = _entries(responses.get(listing))
        if entries is None or any(_matches(listing, entry, e) for e in entries):
            return
        if _is_key_directory(listing, entry):
            return  # the key's name is not known: public-keys/ is the caller's to set
        was_sorted = entries == sorted(entries)
        entries.append(entry)
        if was_sorted:
            entries.sort()
        was_listed = listing in responses and responses[listing].status == 200
        responses[listing] = _listing_record(entries)
        if was_listed:
            return
        child = listing


def remove_from_listing(responses: MutableMapping[str, Record], path: str) -> None:
    """Take ``path``'s entry out of its parent listing, when that listing answers 200."""
    found = _parent(path)
    if found is None:
        return
    listing, entry = found
    record = responses.get(listing)
    entries = _entries(record)
    if not entries or record is None or record.status != 200:
        return
    kept = [e for e in entries if not _matches(listing, entry, e)]
    if len(kept) != len(entries):
        responses[listing] = _listing_record(kept)
