"""Real-world failures of other IMDS clients, replayed; each test names the upstream report."""

from __future__ import annotations

import gzip

from aioimds import IMDSClient, IMDSCrawlError, Record, Snapshot
from aioimds.emulator import Emulator
from aioimds.render import nested


async def test_c09_public_key_listed_as_index_equals_name() -> None:
    """amazon.aws #942: `public-keys/` lists `0=my-key`; `public-keys/0=my-key` is 404."""
    snap = Snapshot({
        "/latest/": Record(b"meta-data"),
        "/latest/meta-data/": Record(b"public-keys/"),
        "/latest/meta-data/public-keys/": Record(b"0=my-key"),
        "/latest/meta-data/public-keys/0/": Record(b"openssh-key"),
        "/latest/meta-data/public-keys/0/openssh-key": Record(b"ssh-ed25519 AAAA my-key\n"),
    })
    async with Emulator(snap) as emu, IMDSClient(endpoint=emu.url) as imds:
        got = await imds.dump()
    assert got == snap
    assert nested(got)["meta-data"]["public-keys"]["0=my-key"]["openssh-key"].endswith(
        "my-key\n")
    assert "/latest/meta-data/public-keys/0=my-key" not in [t.path for t in emu.counters.trace]


async def test_c16_gzip_user_data_is_kept_as_bytes() -> None:
    """salt #59541: gzip user-data, application/octet-stream, no Content-Encoding."""
    data = gzip.compress(b"#cloud-config\nruncmd: [true]\n", mtime=0)
    snap = Snapshot({"/latest/": Record(b"user-data"),
                     "/latest/user-data": Record(data, 200, "application/octet-stream")})
    async with Emulator(snap) as emu, IMDSClient(endpoint=emu.url) as imds:
        assert await imds.get_bytes("user-data") == data
        got = await imds.dump()
    assert got == snap
    assert "body_base64" in got.to_json()["responses"]["/latest/user-data"]


async def test_c18_no_user_data_is_recorded_not_an_error() -> None:
    """salt #43258: user-data answers 404."""
    snap = Snapshot({"/latest/": Record(b"meta-data\nuser-data"),
                     "/latest/meta-data/": Record(b"ami-id"),
                     "/latest/meta-data/ami-id": Record(b"ami-1")})
    async with Emulator(snap) as emu, IMDSClient(endpoint=emu.url) as imds:
        got = await imds.dump()
    assert got["/latest/user-data"].status == 404
    assert got.to_json()["responses"]["/latest/user-data"] == {"status": 404}


async def test_c19_tokens_required_a_401_body_is_never_data() -> None:
    """salt #65233: GETs without a token answer 401: a token is fetched and used."""
    async with Emulator(tokens="required") as emu, IMDSClient(endpoint=emu.url) as imds:
        assert await imds.get("meta-data/placement/region") == "ap-northeast-1"
        snap = await imds.dump()
    assert all(b"401" not in r.body for r in snap.values())
    assert all(t.token for t in emu.counters.trace if t.method == "GET")
    assert emu.counters.token_puts == 1


async def test_c31_absent_public_ip_is_absent_in_the_dump() -> None:
    """vector #8677: public-ipv4 and public-hostname 404 on a private instance."""
    snap = Snapshot({"/latest/": Record(b"meta-data"),
                     "/latest/meta-data/": Record(b"local-ipv4\npublic-hostname\npublic-ipv4"),
                     "/latest/meta-data/local-ipv4": Record(b"10.0.0.5")})
    async with Emulator(snap) as emu, IMDSClient(endpoint=emu.url) as imds:
        got = await imds.dump()
    assert got["/latest/meta-data/public-ipv4"].status == 404
    assert nested(got) == {"meta-data": {"local-ipv4": "10.0.0.5"}}


async def test_c37_listed_entry_404_is_recorded_and_the_crawl_goes_on() -> None:
    """ohai #315: a listed entry answers 404; other failures name their path."""
    snap = Snapshot({"/latest/": Record(b"meta-data"),
                     "/latest/meta-data/": Record(b"gone\nhere\nbroken"),
                     "/latest/meta-data/here": Record(b"yes"),
                     "/latest/meta-data/broken": Record(b"", 403)})
    async with Emulator(snap) as emu, IMDSClient(endpoint=emu.url) as imds:
        result = await imds.dump(partial=True)
        try:
            await imds.dump()
        except IMDSCrawlError as exc:
            message = str(exc)
    assert result.snapshot["/latest/meta-data/gone"].status == 404
    assert result.snapshot["/latest/meta-data/here"].body == b"yes"
    assert list(result.failures) == ["/latest/meta-data/broken"]
    assert "/latest/meta-data/broken" in message and "gone" not in message
