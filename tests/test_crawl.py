"""The concurrent crawl and IMDSClient.dump() against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import fixture_params

from aioimds import CrawlResult, IMDSClient, IMDSCrawlError, IMDSHTTPError, Record, Snapshot
from aioimds.crawl import crawl
from aioimds.emulator import Emulator, PathFault, default_snapshot


async def test_dump_of_the_default_tree_equals_what_is_served(emulator: Emulator) -> None:
    async with IMDSClient(endpoint=emulator.url) as imds:
        snap = await imds.dump()
    assert snap == emulator.snapshot.subtree("/latest/")
    assert snap["/latest/meta-data/placement/region"].body == b"ap-northeast-1"
    assert emulator.counters.token_puts == 1
    gets = [t.path for t in emulator.counters.trace if t.method == "GET"]
    assert sorted(gets) == sorted(snap)  # every path once, nothing else


@pytest.mark.parametrize("path", fixture_params())
async def test_dump_of_each_fixture_equals_the_fixture(path: Path) -> None:
    fixture = Snapshot.load(path)
    async with Emulator(fixture) as emu, IMDSClient(endpoint=emu.url) as imds:
        assert await imds.dump(concurrency=4) == fixture


@pytest.mark.parametrize("concurrency", [1, 2, 64])
async def test_any_concurrency_gives_the_same_snapshot(concurrency: int) -> None:
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        assert await imds.dump(concurrency=concurrency) == emu.snapshot.subtree()
        assert emu.counters.max_in_flight <= concurrency + 1  # + the token PUT


def tree(**extra: Record) -> Snapshot:
    base = {
        "/latest/": Record(b"meta-data"),
        "/latest/meta-data/": Record(b"a\nempty/\ncrlf/"),
        "/latest/meta-data/a": Record(b"A"),
        "/latest/meta-data/empty/": Record(b""),
        "/latest/meta-data/crlf/": Record(b"x\r\ny\r\n"),
        "/latest/meta-data/crlf/x": Record(b"X"),
        "/latest/meta-data/crlf/y": Record(b"Y"),
    }
    base.update(extra)
    return Snapshot(base)


async def test_empty_listings_and_crlf_line_ends() -> None:
    async with Emulator(tree()) as emu, IMDSClient(endpoint=emu.url) as imds:
        snap = await imds.dump()
    assert snap["/latest/meta-data/crlf/y"].body == b"Y"
    assert snap["/latest/meta-data/empty/"].body == b""
    assert len(snap) == 7


async def test_duplicate_entries_are_fetched_once() -> None:
    t = tree(**{"/latest/meta-data/": Record(b"a\na\na/\nempty/\ncrlf/")})
    async with Emulator(t) as emu, IMDSClient(endpoint=emu.url) as imds:
        result = await imds.dump(partial=True)
    gets = [x.path for x in emu.counters.trace if x.method == "GET"]
    assert gets.count("/latest/meta-data/a") == 1
    assert "/latest/meta-data/a/" in result.snapshot or "/latest/meta-data/a/" in result.failures


async def test_hostile_entries_are_skipped_with_a_warning_and_the_listing_survives(
        caplog: pytest.LogCaptureFixture) -> None:
    body = b"a\n../\n..\nx/../../y\nempty/\ncrlf/"
    t = tree(**{"/latest/meta-data/": Record(body)})
    async with Emulator(t) as emu, IMDSClient(endpoint=emu.url) as imds:
        result = await imds.dump(partial=True)
    assert result.complete
    assert result.skipped == {"/latest/meta-data/": ["../", "..", "x/../../y"]}
    assert result.snapshot["/latest/meta-data/"].body == body  # the listing as served
    assert result.snapshot["/latest/meta-data/a"].body == b"A"
    assert result.snapshot["/latest/meta-data/crlf/y"].body == b"Y"
    assert "skipped listing entries that name no child: ['../', '..', 'x/../../y']" \
        in caplog.text
    outside = [x.path for x in emu.counters.trace if not x.path.startswith("/latest/")]
    assert outside == []
    assert all(".." not in x.path for x in emu.counters.trace)


async def test_a_failure_names_every_failed_path_and_partial_keeps_the_rest() -> None:
    t = tree(**{"/latest/meta-data/a": Record(b"", 403),
                "/latest/meta-data/crlf/x": Record(b"", 400)})
    async with Emulator(t) as emu, IMDSClient(endpoint=emu.url) as imds:
        with pytest.raises(IMDSCrawlError) as info:
            await imds.dump()
        result = await imds.dump(partial=True)
    assert sorted(info.value.failures) == ["/latest/meta-data/a", "/latest/meta-data/crlf/x"]
    assert "/latest/meta-data/a: unexpected status 403" in str(info.value)
    assert isinstance(result, CrawlResult) and not result.complete
    assert sorted(result.failures) == sorted(info.value.failures)
    assert result.snapshot["/latest/meta-data/crlf/y"].body == b"Y"
    assert "/latest/meta-data/a" not in result.snapshot
    assert info.value.partial == result.snapshot


@pytest.mark.usefixtures("virtual_time")
async def test_server_errors_are_retried_within_the_crawl_budget() -> None:
    faults = [PathFault("/latest/meta-data/a", status=503, count=5)]
    async with Emulator(tree()) as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.faults.path_faults = faults
        snap = await imds.dump()
        assert snap["/latest/meta-data/a"].body == b"A"
        emu.faults.path_faults = [PathFault("/latest/meta-data/a", status=503, count=99)]
        with pytest.raises(IMDSCrawlError) as info:
            await imds.dump(attempts=2)
    err = info.value.failures["/latest/meta-data/a"]
    assert isinstance(err, IMDSHTTPError) and err.status == 503


async def test_a_hostile_endless_tree_stops_at_max_depth(monkeypatch: pytest.MonkeyPatch) -> None:
    from aioimds import crawl as crawl_mod

    monkeypatch.setattr(crawl_mod, "MAX_DEPTH", 5)
    deep = {"/latest/": Record(b"meta-data"), "/latest/meta-data/": Record(b"d/")}
    path = "/latest/meta-data/"
    for _ in range(10):
        path += "d/"
        deep[path] = Record(b"d/")
    async with Emulator(Snapshot(deep)) as emu, IMDSClient(endpoint=emu.url) as imds:
        result = await imds.dump(partial=True)
    (failed, err), = result.failures.items()
    assert "deeper than 5" in err.message and failed.count("d/") == 4


async def test_crawl_walks_with_any_fetch_coroutine() -> None:
    snap = default_snapshot().subtree()

    async def fetch(path: str) -> Record:
        return snap.get(path, Record(b"", 404))

    result = await crawl(fetch, concurrency=3)
    assert result.complete and result.snapshot == snap


@pytest.mark.usefixtures("virtual_time")
async def test_a_service_that_stops_answering_fails_the_rest_unrequested() -> None:
    from aioimds.crawl import STALL_FAILURES

    names = [f"leaf-{i:03d}" for i in range(100)]
    tree = Snapshot({"/latest/": Record(b"meta-data"),
                     "/latest/meta-data/": Record("\n".join(names).encode()),
                     **{f"/latest/meta-data/{n}": Record(b"v") for n in names}})
    held = [PathFault(f"/latest/meta-data/{n}", delay=30, count=100) for n in names]
    async with Emulator(tree) as emu:
        emu.faults.path_faults = held
        async with IMDSClient(endpoint=emu.url, timeout=0.2) as imds:
            result = await imds.dump(concurrency=4, attempts=2, partial=True)
        asked = {t.path for t in emu.counters.trace if t.path.startswith("/latest/meta-data/l")}
    assert sorted(result.failures) == [f"/latest/meta-data/{n}" for n in names]
    assert STALL_FAILURES <= len(asked) < STALL_FAILURES + 4 + 1
    unasked = [e for p, e in result.failures.items() if p not in asked]
    assert len(unasked) == 100 - len(asked)
    assert all("not requested" in e.message for e in unasked)


async def test_a_listed_404_waiting_for_its_retry_holds_no_worker() -> None:
    """With one worker, the paths after a listed 404 are fetched while it waits to be asked
    again; it is asked 1 + LISTED_404_RETRIES times, then recorded as 404."""
    from aioimds.retry import LISTED_404_RETRIES

    names = ["gone", *(f"leaf-{i}" for i in range(5))]
    snap = Snapshot({"/latest/": Record(b"meta-data/"),
                     "/latest/meta-data/": Record("\n".join(names).encode()),
                     **{f"/latest/meta-data/{n}": Record(b"v") for n in names[1:]}})
    asked: list[str] = []

    async def fetch(path: str) -> Record:
        asked.append(path)
        return snap.get(path, Record(b"", 404))

    result = await crawl(fetch, concurrency=1)
    gone = "/latest/meta-data/gone"
    assert result.complete and result.snapshot[gone].status == 404
    assert asked.count(gone) == 1 + LISTED_404_RETRIES
    # Every leaf was asked before the first retry of the 404.
    assert asked.index(gone) == 2 and asked[3:8] == [f"/latest/meta-data/leaf-{i}"
                                                      for i in range(5)]
    assert asked[8:] == [gone] * LISTED_404_RETRIES


async def test_a_root_below_latest_answering_404_is_not_retried() -> None:
    asked: list[str] = []

    async def fetch(path: str) -> Record:
        asked.append(path)
        return Record(b"", 404)

    result = await crawl(fetch, root="/latest/meta-data/iam/")
    assert asked == ["/latest/meta-data/iam/"]
    assert result.snapshot["/latest/meta-data/iam/"].status == 404


async def test_a_listed_404_waiting_when_the_service_goes_silent_is_failed_unrequested() -> None:
    from aioimds import IMDSConnectionError
    from aioimds.crawl import STALL_FAILURES

    names = ["gone", *(f"leaf-{i:02d}" for i in range(STALL_FAILURES + 5))]
    listing = Record("\n".join(names).encode())
    asked: list[str] = []

    async def fetch(path: str) -> Record:
        asked.append(path)
        if path == "/latest/":
            return Record(b"meta-data/")
        if path == "/latest/meta-data/":
            return listing
        if path.endswith("/gone"):
            return Record(b"", 404)
        raise IMDSConnectionError("reset", path=path)

    result = await crawl(fetch, concurrency=1)
    gone = "/latest/meta-data/gone"
    assert asked.count(gone) == 1
    assert "not requested" in result.failures[gone].message
    assert gone not in result.snapshot
    assert len(result.failures) == len(names)
