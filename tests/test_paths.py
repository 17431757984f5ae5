"""Path encoding and listing parsing (aioimds.paths)."""

from __future__ import annotations

import pytest

from aioimds import IMDSResponseError, PathError
from aioimds.paths import child_path, parse_listing, request_path


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("meta-data/placement/region", "/latest/meta-data/placement/region"),
        ("latest/meta-data/placement/region", "/latest/meta-data/placement/region"),
        ("/latest/meta-data/placement/region", "/latest/meta-data/placement/region"),
        ("meta-data/", "/latest/meta-data/"),
        ("", "/latest/"),
        ("latest", "/latest/"),
        ("/latest/", "/latest/"),
        ("/", "/"),
        ("meta-data/tags/instance/my tag", "/latest/meta-data/tags/instance/my%20tag"),
        ("meta-data/tags/instance/a=b,c+d@e:f.g", "/latest/meta-data/tags/instance/a=b,c+d@e:f.g"),
        ("meta-data/tags/instance/50%", "/latest/meta-data/tags/instance/50%25"),
        ("meta-data/tags/instance/a?b#c", "/latest/meta-data/tags/instance/a%3Fb%23c"),
        ("meta-data/tags/instance/caf\u00e9", "/latest/meta-data/tags/instance/caf%C3%A9"),
    ],
    ids=["relative", "latest", "slash-latest", "listing", "empty", "latest-bare",
         "latest-slash", "root", "space", "legal-punctuation", "percent", "query-fragment",
         "unicode"],
)
def test_request_path_encodes(given: str, expected: str) -> None:
    assert request_path(given) == expected


@pytest.mark.parametrize(
    "bad",
    ["meta-data/../../etc", "..", "meta-data/./x", "meta-data//x", "a\nb", "a\rb", "x\x00"],
    ids=["dotdot", "bare-dotdot", "dot", "empty-segment", "lf", "cr", "nul"],
)
def test_request_path_refuses(bad: str) -> None:
    with pytest.raises(PathError) as info:
        request_path(bad)
    assert info.value.path == bad


@pytest.mark.parametrize(
    ("body", "entries"),
    [
        (b"ami-id\nplacement/\npublic-keys/", ["ami-id", "placement/", "public-keys/"]),
        (b"ami-id\r\nplacement/\r\n", ["ami-id", "placement/"]),
        (b"", []),
        (b"\n", []),
        (b"a\na", ["a", "a"]),
        (b"my tag\nk=v", ["my tag", "k=v"]),
        ("\ufeffami-id\nmac".encode(), ["ami-id", "mac"]),
    ],
    ids=["lf", "crlf", "empty", "only-newline", "duplicates-kept", "odd-names", "bom-dropped"],
)
def test_parse_listing(body: bytes, entries: list[str]) -> None:
    assert parse_listing(body, "/latest/meta-data/") == entries


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe", b"<!DOCTYPE html><html><body>Login</body></html>", b"  <html>x</html>"],
    ids=["not-utf8", "doctype", "html"],
)
def test_parse_listing_refuses(body: bytes) -> None:
    with pytest.raises(IMDSResponseError) as info:
        parse_listing(body, "/latest/meta-data/")
    assert info.value.path == "/latest/meta-data/"


@pytest.mark.parametrize(
    ("listing", "entry", "child"),
    [
        ("/latest/", "meta-data", "/latest/meta-data/"),
        ("/latest/", "dynamic", "/latest/dynamic/"),
        ("/latest/", "user-data", "/latest/user-data"),
        ("/latest/meta-data/", "placement/", "/latest/meta-data/placement/"),
        ("/latest/meta-data/public-keys/", "0=my-key", "/latest/meta-data/public-keys/0/"),
        ("/latest/meta-data/tags/instance/", "a=b", "/latest/meta-data/tags/instance/a=b"),
        ("/latest/meta-data/tags/instance/", "my tag", "/latest/meta-data/tags/instance/my%20tag"),
        ("/latest/meta-data/tags/instance/", "100%", "/latest/meta-data/tags/instance/100%25"),
    ],
    ids=["meta-data", "dynamic", "user-data", "dir", "public-key", "tag-equals", "tag-space",
         "tag-percent"],
)
def test_child_path(listing: str, entry: str, child: str) -> None:
    assert child_path(listing, entry) == child


@pytest.mark.parametrize("entry", ["..", "../", ".", "a/b", "a/../", "/", "", "x\x01"])
def test_child_path_refuses_entries_that_leave_the_listing(entry: str) -> None:
    with pytest.raises(IMDSResponseError) as info:
        child_path("/latest/meta-data/", entry)
    assert info.value.path == "/latest/meta-data/"


@pytest.mark.parametrize("char", ["\x80", "\x9b", "\x9f", "\x7f", "\x1b"])
def test_c0_and_c1_control_characters_are_refused_in_segments(char: str) -> None:
    with pytest.raises(PathError, match="control character"):
        request_path(f"meta-data/a{char}b")
    with pytest.raises(IMDSResponseError, match="does not name a child"):
        child_path("/latest/meta-data/", f"a{char}b")


def test_the_first_printable_character_past_c1_is_a_valid_segment() -> None:
    assert child_path("/latest/meta-data/", "a\xa0b") == "/latest/meta-data/a%C2%A0b"
