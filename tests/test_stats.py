"""The client's request counters and the crawl's progress, against the emulator."""

from __future__ import annotations

import pytest

from aioimds import IMDSClient, IMDSConnectionError
from aioimds.emulator import Emulator, Faults, PathFault, default_snapshot
from aioimds.stats import CrawlProgress, RequestStats

REGION = "/latest/meta-data/placement/region"


async def test_counts_requests_retries_429s_and_drops() -> None:
    faults = Faults(path_faults=[PathFault(REGION, status=429), PathFault(REGION, status=503)])
    async with Emulator(faults=faults) as emu, IMDSClient(endpoint=emu.url, attempts=3) as imds:
        assert await imds.get("meta-data/placement/region") == "ap-northeast-1"
        # PUT, then the GET three times: 429, 503, 200
        assert imds.stats == RequestStats(requests=4, retries=2, throttled=1, dropped=0,
                                          token_puts=1, without_token=0)
        emu.faults.drop_rate = 1.0
        with pytest.raises(IMDSConnectionError):
            await imds.get("meta-data/ami-id")
        assert imds.stats.dropped == 3 and imds.stats.requests == 7


async def test_counts_requests_sent_without_a_token() -> None:
    async with Emulator(tokens="optional", faults=Faults(token_put_status=405)) as emu, \
            IMDSClient(endpoint=emu.url) as imds:
        await imds.get("meta-data/instance-id")
        await imds.get("meta-data/ami-id")
    assert imds.stats.without_token == 2 and imds.stats.token_puts == 0


async def test_a_dump_of_a_sub_tree_reports_its_progress() -> None:
    progress = CrawlProgress()
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        snap = await imds.dump("meta-data/placement", progress=progress)
    expected = default_snapshot().subtree("/latest/meta-data/placement/")
    assert snap == expected
    assert progress == CrawlProgress(done=len(expected), queued=0)
