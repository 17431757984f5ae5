"""Request paths and listings: validation, percent-encoding and listing parsing.

Every request aioimds sends is built here, so nothing can leave ``/latest/``: a path is split
into segments, each segment is checked (no ``.``, ``..``, control characters or empty names) and
percent-encoded on its own, so ``/``, ``?``, ``#`` and ``%`` inside a name can never change where
the request goes. Entry names keep ``= , + @ : .`` and spaces (as tag keys may hold them,
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/work-with-tags-in-IMDS.html).
"""

from __future__ import annotations

import functools
from urllib.parse import quote

from . import catalogue
from .errors import IMDSResponseError, PathError
from .wire import PCHAR_SAFE

__all__ = [
    "ROOT",
    "child_path",
    "is_listing",
    "key_entry",
    "parse_listing",
    "request_path",
    "split_entries",
]

ROOT = "/latest/"
"""The request path of the top listing (``dynamic``, ``meta-data``, ``user-data``)."""

VERSIONS = "/"
"""The service root: it lists the API versions, ending with ``latest``."""

PATH_CACHE_SIZE = 1024
"""Caller paths whose encoding is kept: a service asks for the same few leaves again and again,
and validating and encoding one costs about 12 us (bench/README.md)."""


_PUBLIC_KEYS = ROOT + catalogue.PUBLIC_KEYS
"""The listing whose ``N=name`` entries stand for the directories ``N/``."""
_ROOT_LISTINGS = (catalogue.META_DATA.rstrip("/"), catalogue.DYNAMIC.rstrip("/"))
"""What ``/latest/`` lists without the trailing ``/`` although they are listings."""


def _is_control(c: str) -> bool:
    """C0 controls, DEL and the C1 controls (U+0080-U+009F, e.g. U+009B, a terminal CSI)."""
    return ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F


def _check_segment(segment: str, where: str) -> None:
    if segment in ("", ".", ".."):
        raise PathError(f"invalid path segment {segment!r}: empty, '.' and '..' are refused",
                        path=where)
    if any(_is_control(c) for c in segment):
        raise PathError(f"control character in path segment {segment!r}", path=where)
    try:
        segment.encode("utf-8")
    except UnicodeEncodeError:
        raise PathError(f"path segment {segment!r} is not valid Unicode text",
                        path=where) from None


@functools.lru_cache(maxsize=PATH_CACHE_SIZE)
def request_path(path: str) -> str:
    """The percent-encoded request path for a caller's ``path``.

    ``path`` is relative to ``latest/`` (``meta-data/placement/region``); ``latest/...`` and
    ``/latest/...`` are accepted too, ``""`` is ``/latest/`` and ``"/"`` alone is the service
    root (the list of API versions). A trailing ``/`` marks a listing. Names are given decoded:
    ``%`` is sent as ``%25``.

    Returns: a path such as ``/latest/meta-data/tags/instance/my%20tag``.
    Raises: :class:`PathError` for ``.``/``..``/empty segments or control characters.
    """
    if path == VERSIONS:
        return VERSIONS
    rel = path.lstrip("/")
    if rel == "latest":
        rel = ""
    elif rel.startswith("latest/"):
        rel = rel[len("latest/"):]
    if rel == "":
        return ROOT
    is_dir = rel.endswith("/")
    segments = (rel[:-1] if is_dir else rel).split("/")
    for segment in segments:
        _check_segment(segment, path)
    encoded = "/".join(quote(s, safe=PCHAR_SAFE) for s in segments)
    return ROOT + encoded + ("/" if is_dir else "")


def is_listing(path: str) -> bool:
    """Whether a path (request path, snapshot key or listing entry) names a listing: it ends
    with ``/``. ``/latest/`` lists ``meta-data`` and ``dynamic`` without it (:func:`child_path`
    knows), and ``public-keys/`` lists ``N=name`` for ``N/`` (:func:`key_entry`)."""
    return path.endswith("/")


def split_entries(text: str) -> list[str]:
    """The entries of a listing body's text, as served: separated by LF, a CR before the LF
    dropped, blank lines (a trailing newline, an empty listing) giving no entry. Duplicates
    and order are kept. The client, the crawl and the emulator all split listings here."""
    return [line.removesuffix("\r") for line in text.split("\n") if line.strip("\r")]


def key_entry(entry: str) -> tuple[str, str] | None:
    """A ``public-keys/`` entry ``0=my-key`` as ``("0", "my-key")``: it stands for the listing
    ``0/``, whose ``openssh-key`` is the key. ``None`` for an entry without ``=``."""
    index, sep, name = entry.partition("=")
    return (index, name) if sep else None


def parse_listing(body: bytes, req_path: str) -> list[str]:
    """Split a listing body into its entries, as served.

    Entries are separated by LF; a CR before the LF is dropped; blank lines (a trailing newline,
    an empty listing) give no entry; a leading byte order mark is dropped. Duplicates are kept.

    Raises: :class:`IMDSResponseError` naming ``req_path`` when the body is not UTF-8 or is an
    HTML or XML page (its first non-blank character is ``<``: a captive portal or proxy
    answering 200 in place of IMDS).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IMDSResponseError(
            "listing is not valid UTF-8; the endpoint may not be an IMDS", path=req_path
        ) from exc
    text = text.removeprefix("\ufeff")  # a byte order mark is encoding, not part of an entry
    # No IMDS entry starts with "<" (tag keys allow only letters, digits, spaces and
    # _ . : / = + - @), while every HTML or XML page does, whatever comes first in it.
    if text.lstrip().startswith("<"):
        raise IMDSResponseError(
            "listing is an HTML/XML page, not an IMDS listing; check the endpoint "
            "(a proxy or captive portal may be answering)",
            path=req_path,
        )
    return split_entries(text)


def child_path(listing: str, entry: str) -> str:
    """The request path of ``entry`` as listed in the listing at ``listing``.

    A trailing ``/`` makes a listing; in ``public-keys/`` an entry ``N=name`` stands for the
    directory ``N/``; ``/latest/`` lists ``meta-data`` and ``dynamic`` without slashes, which
    are listings too.

    Raises: :class:`IMDSResponseError` naming the listing for an entry that would leave the
    listing (``.``, ``..``, a ``/`` inside the name, a control character or an empty name).
    """
    name = entry
    is_dir = is_listing(name)
    if is_dir:
        name = name[:-1]
    key = key_entry(name) if listing == _PUBLIC_KEYS else None
    if key is not None:
        name, is_dir = key[0], True
    if listing == ROOT and name in _ROOT_LISTINGS:
        is_dir = True
    if name in ("", ".", "..") or "/" in name or any(_is_control(c) for c in name):
        raise IMDSResponseError(
            f"listing has an entry {entry!r} that does not name a child; refusing to follow it",
            path=listing,
        )
    return listing + quote(name, safe=PCHAR_SAFE) + ("/" if is_dir else "")
