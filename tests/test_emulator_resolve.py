"""The emulator resolves request paths as real IMDS does (DESIGN.md sections 3-4): a leaf asked
with a trailing slash, a listing asked without one, repeated slashes and every dated version
that / lists; anything else is 404. Also the two instance switches: tags in metadata disabled
and IMDSv2 required."""

from __future__ import annotations

import pytest
from emulator_http import REGION, assert_xhtml, call, get, new_token

from aioimds import IMDSClient, Record, Snapshot
from aioimds.emulator import Emulator, PathFault, default_snapshot
from aioimds.emulator.resolve import PathResolver, without_instance_tags

DEFAULT = default_snapshot()
META = "/latest/meta-data/"
AZ = META + "placement/availability-zone"
ROLES = META + "iam/security-credentials/"

# (id, requested path, the snapshot key whose record answers it)
RESOLVED = [
    ("leaf-with-trailing-slash", AZ + "/", AZ),
    ("listing-without-trailing-slash", ROLES[:-1], ROLES),
    ("user-data-with-trailing-slash", "/latest/user-data/", "/latest/user-data"),
    ("latest-without-slash", "/latest", "/latest/"),
    ("repeated-slashes", "/latest//meta-data///placement//region", REGION),
    ("leading-double-slash", "//latest/meta-data/ami-id", META + "ami-id"),
    ("repeated-and-trailing", "/latest//meta-data/placement/region//", REGION),
    ("dated-version-leaf", "/2021-03-23/meta-data/placement/region", REGION),
    ("dated-version-listing", "/2016-09-02/meta-data/", META),
    ("dated-version-root-without-slash", "/2009-04-04", "/latest/"),
    ("oldest-version", "/1.0/meta-data/ami-id", META + "ami-id"),
    ("dated-version-dynamic", "/2024-04-11/dynamic/instance-identity/document",
     "/latest/dynamic/instance-identity/document"),
    ("dated-version-and-trailing-slash", "/2021-03-23/meta-data/iam/security-credentials",
     ROLES),
    ("encoded-and-trailing-slash", META + "tags/instance/aws%3Aautoscaling%3AgroupName/",
     META + "tags/instance/aws:autoscaling:groupName"),
    ("versions-listing", "/", "/"),
]

NOT_RESOLVED = [
    ("unlisted-version", "/2099-01-01/meta-data/ami-id"),
    ("not-a-version", "/meta-data/ami-id"),
    ("unknown-leaf-with-slash", META + "no-such-leaf/"),
    ("dot-segments", "/latest/meta-data/../meta-data/ami-id"),
    ("encoded-slash", "/latest/meta-data/placement%2Fregion"),
    ("key-name-entry", "/latest/meta-data/public-keys/0=aioimds-demo"),
    ("unrecorded-key-directory", "/latest/meta-data/public-keys/1"),
    ("token-path-as-data", "/latest/api/token/"),
]


@pytest.mark.parametrize(("path", "key"), [c[1:] for c in RESOLVED], ids=[c[0] for c in RESOLVED])
async def test_a_path_resolves_to_its_record_and_is_answered_with_it(
    emu: Emulator, http, path: str, key: str
) -> None:
    reply = await get(http, emu, path, await new_token(http, emu))
    record = DEFAULT[key]
    assert (reply.status, reply.body) == (200, record.body)
    assert reply.headers["Content-Type"] == record.content_type
    assert emu.requests[-1].path == path  # recorded as requested


@pytest.mark.parametrize("path", [c[1] for c in NOT_RESOLVED], ids=[c[0] for c in NOT_RESOLVED])
async def test_anything_else_is_404(emu: Emulator, http, path: str) -> None:
    assert_xhtml(await get(http, emu, path, await new_token(http, emu)), 404)


async def test_a_recorded_404_stays_404_with_a_trailing_slash_and_head_resolves_too(
    emu: Emulator, http
) -> None:
    emu.set_response(META + "spot/instance-action", Record(b"", 404))
    token = await new_token(http, emu)
    assert_xhtml(await get(http, emu, META + "spot/instance-action/", token), 404)
    head = await call(http, "HEAD", emu, AZ + "/", {"X-aws-ec2-metadata-token": token})
    assert (head.status, head.body) == (200, b"")


async def test_a_version_with_paths_of_its_own_is_served_from_them_alone(http) -> None:
    snap = Snapshot({
        "/": Record(b"2009-04-04\nlatest"),
        "/latest/": Record(b"meta-data"),
        "/latest/meta-data/": Record(b"ami-id\ninstance-id"),
        "/latest/meta-data/ami-id": Record(b"ami-new"),
        "/latest/meta-data/instance-id": Record(b"i-new"),
        "/2009-04-04/meta-data/": Record(b"ami-id"),
        "/2009-04-04/meta-data/ami-id": Record(b"ami-old"),
    })
    async with Emulator(snap, tokens="optional") as emu:
        assert (await get(http, emu, "/2009-04-04/meta-data/ami-id", None)).body == b"ami-old"
        assert (await get(http, emu, "/2009-04-04/meta-data", None)).body == b"ami-id"
        assert_xhtml(await get(http, emu, "/2009-04-04/meta-data/instance-id", None), 404)
        assert (await get(http, emu, "/latest/meta-data/ami-id", None)).body == b"ami-new"


async def test_without_a_versions_listing_no_dated_version_resolves(http) -> None:
    snap = DEFAULT.subtree("/latest/")
    async with Emulator(snap, tokens="optional") as emu:
        assert_xhtml(await get(http, emu, "/2021-03-23/meta-data/ami-id", None), 404)
        assert_xhtml(await get(http, emu, "/", None), 404)
        assert (await get(http, emu, "/latest/meta-data/ami-id/", None)).status == 200


async def test_editing_the_versions_listing_changes_what_resolves(emu: Emulator, http) -> None:
    token = await new_token(http, emu)
    assert (await get(http, emu, "/2021-03-23/meta-data/ami-id", token)).status == 200
    emu.set_response("/", Record(b"latest"))
    assert_xhtml(await get(http, emu, "/2021-03-23/meta-data/ami-id", token), 404)
    emu.set_leaf("/2021-03-23/meta-data/ami-id", "ami-own")
    emu.set_response("/", Record(b"2021-03-23\nlatest"))
    assert (await get(http, emu, "/2021-03-23/meta-data/ami-id", token)).body == b"ami-own"
    assert_xhtml(await get(http, emu, "/2021-03-23/meta-data/instance-id", token), 404)


def test_resolver_prefers_the_exact_key_over_any_rule() -> None:
    responses = {"/latest/x": Record(b"leaf"), "/latest/x/": Record(b"listing")}
    resolver = PathResolver()
    assert resolver.resolve(responses, "/latest/x") == "/latest/x"
    assert resolver.resolve(responses, "/latest/x/") == "/latest/x/"
    assert resolver.resolve(responses, "/latest//x") == "/latest/x"
    assert resolver.resolve(responses, "/latest/y") is None


async def test_the_client_reads_the_resolved_paths(emu: Emulator) -> None:
    async with IMDSClient(endpoint=emu.url) as imds:
        assert await imds.get("meta-data/placement/availability-zone/") == "ap-northeast-1a"
        assert await imds.list("meta-data/iam/security-credentials") == ["aioimds-demo-role"]


async def test_a_path_fault_applies_to_the_resolved_key(emu: Emulator, http) -> None:
    emu.faults.path_faults.append(PathFault(AZ, status=503))
    token = await new_token(http, emu)
    assert_xhtml(await get(http, emu, AZ + "/", token), 503)
    assert (await get(http, emu, AZ + "/", token)).status == 200


# -- instance switches --------------------------------------------------------------------

TAGS = META + "tags/instance/"


@pytest.mark.parametrize("path", [
    META + "tags/", META + "tags", TAGS, TAGS + "Name", TAGS + "Name/",
    "/2021-03-23/meta-data/tags/instance/Name",
])
async def test_tags_disabled_answers_404_under_tags(http, path: str) -> None:
    async with Emulator(instance_metadata_tags="disabled") as emu:
        assert_xhtml(await get(http, emu, path, await new_token(http, emu)), 404)


async def test_tags_disabled_drops_tags_from_the_listing_and_can_be_switched(http) -> None:
    async with Emulator(instance_metadata_tags="disabled") as emu:
        token = await new_token(http, emu)
        listing = (await get(http, emu, META, token)).body.decode().split("\n")
        expected = DEFAULT[META].body.decode().split("\n")
        assert "tags/" in expected
        assert listing == [e for e in expected if e != "tags/"]
        assert (await get(http, emu, "/2016-09-02/meta-data/", token)).body == b"\n".join(
            e.encode() for e in listing)
        assert (await get(http, emu, META + "ami-id", token)).status == 200
        emu.instance_metadata_tags = "enabled"
        assert (await get(http, emu, TAGS + "Name", token)).body == b"aioimds-demo"
        assert (await get(http, emu, META, token)).body == DEFAULT[META].body
    async with Emulator(instance_metadata_tags="disabled") as emu:
        async with IMDSClient(endpoint=emu.url) as imds:
            assert await imds.tags() is None  # tags in metadata off: None, not {}


def test_tags_switch_rejects_other_values() -> None:
    with pytest.raises(ValueError, match="enabled"):
        Emulator(instance_metadata_tags="off")  # type: ignore[arg-type]


def test_without_instance_tags_leaves_other_records_alone() -> None:
    record = Record(b"ami-id\ntags/")
    assert without_instance_tags(META + "ami-id", record) is record
    assert without_instance_tags(META + "tags/instance/Name", record) is None
    assert without_instance_tags(META, record) == Record(b"ami-id")
    error = Record(b"", 500)
    assert without_instance_tags(META, error) is error


@pytest.mark.parametrize("path", [META, META + "no-such-leaf", "/", "/2021-03-23/meta-data/",
                                  AZ + "/"])
async def test_imdsv2_required_is_tokens_required_every_tokenless_get_is_401(
    emu: Emulator, http, path: str
) -> None:
    assert emu.tokens == "required"
    assert_xhtml(await get(http, emu, path, None), 401)
    assert (await call(http, "HEAD", emu, path)).status == 401
