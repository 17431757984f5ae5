"""Property tests (hypothesis): the path encoder, the listing parser, the snapshot format and
the crawl hold for any input, not only the examples in the other tests.

Checked to fail without the protections, by a sitecustomize replacing in turn:
``paths.quote`` with ``quote(s, safe="/?#")`` (both path properties fail on "/", "?" or "#" in
a name); ``paths._check_segment`` and the checks of ``child_path`` with no-ops (both path
properties fail on ".."); ``Record.to_json`` writing ``body`` with ``decode("utf-8",
"replace")`` (both snapshot round trips fail on invalid UTF-8); ``crawl.child_path`` with one
that drops the trailing "/" of directory entries (the crawl property fails).
"""

from __future__ import annotations

import asyncio
import posixpath
import string
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from aioimds import IMDSClient, IMDSResponseError, PathError, Record, Snapshot, retry
from aioimds.emulator import Emulator
from aioimds.paths import ROOT, child_path, parse_listing, request_path

FAST = settings(max_examples=150, deadline=None)
LISTINGS = ["/latest/", "/latest/meta-data/", "/latest/meta-data/public-keys/",
            "/latest/meta-data/tags/instance/"]
URL_SAFE = set(string.ascii_letters + string.digits + "!$&'()*+,;=:@-._~%/")
"""Every character a request path may hold: RFC 3986 pchar, "%" of an escape, "/"."""

NASTY = ["..", "../", ".", "./", "", "/", "a/../..", "../../etc/passwd", "%2e%2e", "?x#y",
         "a\r\nHost: evil", "0=key/..", "\u2028", "\uff0e\uff0e", "latest/..", "..\\.."]
"""Names that must never move a request: rare in a random search, so drawn often."""

# Any text at all, with the characters that matter made likely, and the nasty names above.
tricky = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.one_of(st.characters(codec="utf-8"),
                      st.sampled_from(list("\r\n./?#%=\\ \t\x00\x7f<>\u2028\uff0e")))),
)


def segments_of(path: str) -> list[str]:
    return path.removeprefix(ROOT).removesuffix("/").split("/")


def assert_confined(path: str) -> None:
    """``path`` is a plain request path below /latest/: no escape that changes where it goes."""
    assert path.startswith(ROOT), path
    assert set(path) <= URL_SAFE, path
    assert "//" not in path and not any(s in (".", "..") for s in path.split("/")), path
    normalised = posixpath.normpath(unquote(path))
    assert normalised == "/latest" or normalised.startswith("/latest/"), path


# -- the path encoder --------------------------------------------------------------------------


@FAST
@given(st.sampled_from(LISTINGS), tricky)
def test_a_child_path_stays_in_its_listing_and_decodes_back_to_the_name(
    listing: str, entry: str
) -> None:
    try:
        path = child_path(listing, entry)
    except IMDSResponseError as exc:
        assert exc.path == listing
        event("refused")
        return
    assert_confined(path)
    rest = path.removeprefix(listing)
    assert rest.count("/") <= 1 and (rest.endswith("/") or "/" not in rest), path
    name = entry.removesuffix("/")
    if listing.endswith("public-keys/"):
        name = name.split("=", 1)[0]
    assert unquote(rest.removesuffix("/"), errors="strict") == name


@FAST
@given(st.lists(tricky, min_size=1, max_size=5), st.booleans())
def test_a_request_path_never_leaves_latest_and_round_trips(
    names: list[str], listing: bool
) -> None:
    given_path = "/".join(names) + ("/" if listing else "")
    try:
        path = request_path(given_path)
    except PathError as exc:
        assert exc.path == given_path
        event("refused")
        return
    if path == "/":
        assert given_path == "/"
        return
    assert_confined(path)
    rel = given_path.lstrip("/")
    rel = rel.removeprefix("latest").removeprefix("/") if rel.split("/")[0] == "latest" else rel
    if rel:
        assert [unquote(s) for s in segments_of(path)] == rel.removesuffix("/").split("/")
        assert path.endswith("/") == rel.endswith("/")


# -- the listing parser ------------------------------------------------------------------------

entry_text = st.text(st.characters(codec="utf-8", exclude_characters="\n"), min_size=1).filter(
    lambda e: not e.endswith("\r") and e.strip("\r") != "")


@FAST
@given(st.lists(entry_text, max_size=8), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_a_listing_parses_back_to_its_entries_or_is_refused_as_a_page(
    entries: list[str], newline: str, trailing: bool
) -> None:
    # A leading byte order mark is encoding, dropped by the parser (tested in test_paths.py).
    assume(not entries or not entries[0].startswith("\ufeff"))
    body = (newline.join(entries) + (newline if trailing and entries else "")).encode()
    try:
        parsed = parse_listing(body, "/latest/meta-data/")
    except IMDSResponseError:
        assert body.decode().lstrip().startswith("<")  # refused only as an HTML/XML page
        return
    assert parsed == entries


@FAST
@given(st.binary(max_size=200))
def test_any_body_parses_to_clean_entries_or_a_typed_error(body: bytes) -> None:
    try:
        entries = parse_listing(body, "/latest/")
    except IMDSResponseError as exc:
        assert exc.path == "/latest/"
        return
    assert all(e and "\n" not in e and not e.endswith("\r") for e in entries)


# -- the snapshot format -----------------------------------------------------------------------

records = st.builds(
    Record,
    body=st.one_of(st.binary(max_size=64), st.text(max_size=32).map(str.encode)),
    status=st.integers(100, 599),
    content_type=st.one_of(st.just("text/plain"), st.text(max_size=20)),
)
snapshots = st.dictionaries(st.text(max_size=20).map(lambda k: "/" + k), records, max_size=8)


@FAST
@given(snapshots)
def test_a_snapshot_saves_and_loads_back_equal(responses: dict[str, Record]) -> None:
    snap = Snapshot(responses)
    assert Snapshot.loads(snap.dumps()) == snap
    assert Snapshot.loads(snap.dumps().encode()) == snap


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(snapshots)
def test_a_snapshot_file_round_trip_is_exact(tmp_path: Path, responses: dict[str, Record]) -> None:
    snap = Snapshot(responses)
    snap.save(tmp_path / "s.json")
    assert Snapshot.load(tmp_path / "s.json") == snap


# -- a crawl of a random tree ------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cc",),
                              exclude_characters="/<"), min_size=1, max_size=8).filter(
    lambda n: n not in (".", "..") and n.strip() == n and n != "public-keys"
    # a listing's leading byte order mark is encoding, dropped by parse_listing
    and not n.startswith("\ufeff"))
leaves = st.one_of(
    st.builds(Record, body=st.binary(max_size=40),
              content_type=st.sampled_from(["text/plain", "application/octet-stream"])),
    st.text(max_size=20).map(lambda t: Record(t.encode())),
    st.just(Record(b"", 404)),  # a listed entry that answers 404
)


@st.composite
def trees(draw: st.DrawFn) -> Snapshot:
    """A consistent tree under /latest/meta-data/: listings list exactly their children
    (some twice), leaves have odd names and any bytes, some entries answer 404."""
    responses = {ROOT: Record(b"meta-data")}

    def directory(path: str, depth: int) -> None:
        children = draw(st.dictionaries(names, st.booleans() if depth < 3 else st.just(False),
                                        max_size=4))
        entries = []
        for name, is_dir in children.items():
            entry = name + ("/" if is_dir else "")
            entries += [entry] * draw(st.sampled_from([1, 1, 1, 2]))
            child = child_path(path, entry)
            if is_dir:
                directory(child, depth + 1)
            else:
                responses[child] = draw(leaves)
        responses[path] = Record("\n".join(draw(st.permutations(entries))).encode())

    directory(ROOT + "meta-data/", 0)
    return Snapshot(responses)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[asyncio.AbstractEventLoop, Emulator, IMDSClient]]:
    """One emulator and one open client on a private loop, shared by every example."""
    loop = asyncio.new_event_loop()
    emu = Emulator()
    imds = IMDSClient(endpoint=loop.run_until_complete(emu.start()))
    loop.run_until_complete(imds.open())
    try:
        yield loop, emu, imds
    finally:
        loop.run_until_complete(imds.close())
        loop.run_until_complete(emu.stop())
        loop.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tree=trees())
def test_a_dump_of_any_random_tree_equals_the_tree(served, tree: Snapshot) -> None:
    loop, emu, imds = served
    emu.set_snapshot(tree)
    event(f"{len(tree) // 10 * 10}+ paths")
    # A listed 404 is asked again over 1-2 s (tests/test_crawl.py, tests/cases); here that
    # would only spend time: the property is what the dump records.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retry, "LISTED_404_RETRIES", 0)
        assert loop.run_until_complete(imds.dump(concurrency=4)) == tree
