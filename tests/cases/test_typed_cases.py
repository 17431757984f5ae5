"""Real-world failures of IMDS credential providers and metadata readers, replayed against the
emulator over loopback: C38-C40 and C53 (role credentials), C50 (tags), C52 (user-data) of
../shared/cases/real-world-bugs.md. Each test's docstring names the upstream reports.

Time: the credentials provider reads an injected wall clock, so minutes of credential life pass
in no real time; the event loop runs in real time, and the only real waits are the client's own
attempt timeout (1 s) against a slow answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import io
import itertools
import json
import logging
import os
import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from types import TracebackType

import pytest

from aioimds import (
    CREDENTIALS_REFRESH_MARGIN,
    CREDENTIALS_RETRY_INTERVAL,
    CREDENTIALS_RETRY_JITTER,
    CredentialsProvider,
    IMDSClient,
    IMDSNotFoundError,
    Record,
    RoleCredentials,
    Snapshot,
)
from aioimds.cli import main
from aioimds.emulator import Emulator, Faults, PathFault
from aioimds.paths import request_path

MD = "/latest/meta-data/"
ROLE = "aioimds-demo-role"
ROLES = MD + "iam/security-credentials/"
LEGACY = ROLES + ROLE
EXTENDED = MD + "iam/security-credentials-extended/" + ROLE
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
SECRETS = ("SECRETsecretSECRET", "TOKENtokenTOKEN")
MINUTE = timedelta(minutes=1)


class Clock:
    """A settable wall clock for the credentials provider."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def document(n: int, expires: datetime, **extra: str) -> str:
    """A role credentials document as IMDS writes it, keys and secrets numbered ``n``."""
    doc = {"Code": "Success", "LastUpdated": "2029-12-31T23:00:00Z", "Type": "AWS-HMAC",
           "AccessKeyId": f"ASIAKEY{n}", "SecretAccessKey": f"{SECRETS[0]}{n}",
           "Token": f"{SECRETS[1]}{n}", "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
           **extra}
    return json.dumps(doc, indent=2, separators=(",", " : "))


def gets(emu: Emulator, path: str, status: int | None = None) -> int:
    """GETs of ``path`` the emulator answered (with ``status`` when given)."""
    return sum(1 for t in emu.counters.trace
               if t.method == "GET" and t.path == path and status in (None, t.status))


def no_secret_in(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


class LoopWatch:
    """Ticks on the running event loop every :attr:`PERIOD` seconds and keeps the longest gap
    between two ticks: a gap far above the period means something blocked the loop."""

    PERIOD = 0.01

    def __init__(self) -> None:
        self.ticks = 0
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopWatch:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.PERIOD)
            now = loop.time()
            self.ticks += 1
            self.longest = max(self.longest, now - last)
            last = now


STALL = 0.2
"""Seconds: the longest pause of the event loop C38 allows (ticks are 0.01 s apart)."""
SLOW = 5.0
"""Seconds the slow credentials answer of C38 takes: longer than the client's 1 s attempt
timeout, so the client gives up on it and retries, as it would in the field."""


async def until(check: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Poll ``check`` every 10 ms; fail after ``limit`` real seconds (generous: a loaded
    machine must never make this flaky)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


# -- C38: a slow refresh never stalls the event loop; early refreshes run in the background -----


async def test_c38_a_slow_credentials_answer_never_stalls_the_event_loop() -> None:
    """anthropic-sdk-python #1770, litellm #40165, mcp-proxy-for-aws PR #270: the credentials
    leaf answers once after 5 s; other tasks must keep running while the provider waits."""
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(LEGACY, document(1, T0 + 9 * MINUTE))
        slow = PathFault(LEGACY, delay=SLOW)
        emu.faults.path_faults.append(slow)
        provider = CredentialsProvider(imds, clock=Clock(T0))
        async with LoopWatch() as watch:
            creds = await provider.get()
    assert (creds.access_key_id, creds.expiration) == ("ASIAKEY1", T0 + 9 * MINUTE)
    assert slow.hits == 1  # the slow answer was met, then retried
    assert watch.ticks >= 10, "the loop did not run while the refresh was awaited"
    assert watch.longest < STALL, f"the event loop stalled {watch.longest:.3f} s"


async def test_c38_an_early_refresh_runs_in_the_background_while_the_old_keys_are_served(
) -> None:
    """anthropic-sdk-python #1770, litellm #40165, mcp-proxy-for-aws PR #270: ``Expiration`` is
    9 min ahead, so a use inside the refresh margin must refresh; callers get the old, still
    valid keys at once while one refresh, slow to answer, runs in the background."""
    clock = Clock(T0)
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(LEGACY, document(1, T0 + 9 * MINUTE))
        async with CredentialsProvider(imds, clock=clock) as provider:
            old = await provider.get()
            clock.now = old.expiration - CREDENTIALS_REFRESH_MARGIN + MINUTE / 2  # due
            emu.set_leaf(LEGACY, document(2, T0 + 69 * MINUTE))  # AWS has rotated
            slow = PathFault(LEGACY, delay=SLOW)
            emu.faults.path_faults.append(slow)
            async with LoopWatch() as watch:
                served = [await provider.get()]  # no request has been sent yet
                await until(lambda: slow.hits == 1, "the refresh to reach the slow leaf")
                served += await asyncio.gather(*(provider.get() for _ in range(50)))
                await provider.wait_for_refresh()
                fresh = await provider.get()
    assert all(creds is old for creds in served)
    assert (fresh.access_key_id, fresh.expiration) == ("ASIAKEY2", T0 + 69 * MINUTE)
    assert gets(emu, ROLES) == 2  # the first fetch, then one refresh for 52 callers
    assert watch.longest < STALL, f"the event loop stalled {watch.longest:.3f} s"


async def test_c38_expired_credentials_are_refreshed_before_use_not_served() -> None:
    """anthropic-sdk-python #1770: past ``Expiration`` the caller awaits the refresh (it never
    gets the expired keys while a refresh could still succeed)."""
    clock = Clock(T0)
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(LEGACY, document(1, T0 + 9 * MINUTE))
        async with CredentialsProvider(imds, clock=clock) as provider:
            await provider.get()
            emu.set_leaf(LEGACY, document(2, T0 + 69 * MINUTE))
            clock.now = T0 + 9 * MINUTE
            fresh = await provider.get()
    assert fresh.access_key_id == "ASIAKEY2" and not fresh.extended


# -- C39: 200 callers on a cold cache, a throttling service ------------------------------------


async def test_c39_200_cold_callers_share_one_token_one_listing_one_document() -> None:
    """aioboto3 #218, aiobotocore #808, cloud-custodian PR #7168, aws-sdk-go-v2 #1995: at most
    4 connections and 10 requests/s (429 beyond), the credentials leaf takes 0.3 s, and 200
    tasks ask for credentials at once on a cold cache."""
    faults = Faults(max_connections=4, throttle_rps=10)
    async with Emulator(faults=faults) as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(EXTENDED, document(1, T0 + timedelta(hours=6), AccountId="111122223333"))
        emu.faults.path_faults.append(PathFault(EXTENDED, delay=0.3, count=1000))
        provider = CredentialsProvider(imds, clock=Clock(T0))
        results = await asyncio.gather(*(provider.get() for _ in range(200)),
                                       return_exceptions=True)
    errors = [r for r in results if not isinstance(r, RoleCredentials)]
    assert errors == []
    assert len({id(r) for r in results}) == 1  # the same keys for every caller
    assert emu.counters.token_puts == 1
    assert (gets(emu, ROLES, 200), gets(emu, EXTENDED, 200)) == (1, 1)
    assert gets(emu, LEGACY) == 0
    assert emu.counters.total() <= 3 * imds.config.attempts  # 3 requests, 429s retried


# -- C40: static stability: expired answers and a long outage ----------------------------------


def retry_window() -> tuple[timedelta, timedelta]:
    return CREDENTIALS_RETRY_INTERVAL, CREDENTIALS_RETRY_INTERVAL + CREDENTIALS_RETRY_JITTER


async def test_c40_a_credentials_served_expired_are_returned_extended_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aws-sdk-cpp PR #3592, smithy-rs PR #2258, botocore PR #2664: IMDS serves credentials
    whose ``Expiration`` is an hour past (IMDS keeps serving the last keys it has while it
    cannot get new ones; AWS still accepts them)."""
    caplog.set_level(logging.DEBUG, logger="aioimds")
    clock = Clock(T0)
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(LEGACY, document(1, T0 - timedelta(hours=1)))
        provider = CredentialsProvider(imds, clock=clock)
        creds = await provider.get()
        again = [await provider.get() for _ in range(3)]
        clock.now += MINUTE
        again.append(await provider.get())
    low, high = retry_window()
    assert creds.access_key_id == "ASIAKEY1"
    assert creds.extended and creds.original_expiration == T0 - timedelta(hours=1)
    assert low <= creds.expiration - T0 <= high
    assert all(c is creds for c in again) and gets(emu, LEGACY) == 1
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "expired" in warnings[0].getMessage()
    assert no_secret_in(caplog.text)


OUTAGES = ["500", "drop", "expired-keys"]


def start_outage(emu: Emulator, kind: str) -> None:
    """After a good fetch, the credentials leaf fails: 500s, connections dropped without an
    answer, or (IMDS itself stuck) other keys that have already expired."""
    if kind == "500":
        emu.faults.path_faults.append(PathFault(LEGACY, status=500, count=10**6))
    elif kind == "drop":
        emu.faults.drop_rate = 1.0
    else:
        emu.set_leaf(LEGACY, document(9, T0 - timedelta(hours=1)))


def end_outage(emu: Emulator) -> None:
    emu.faults.path_faults.clear()
    emu.faults.drop_rate = 0.0
    emu.set_leaf(LEGACY, document(2, T0 + timedelta(hours=6)))


@pytest.mark.parametrize("kind", OUTAGES)
async def test_c40_b_last_good_keys_are_kept_through_a_30_minute_outage(
    kind: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """aws-sdk-cpp PR #3592, smithy-rs PR #2258, botocore PR #2664: after one good fetch the
    credentials leaf answers 500 (or drops the connection, or serves expired keys) for 30 min.
    The last good keys are kept (extended past their ``Expiration``), IMDS is asked again
    every 5-10 min with jitter, and the keys are replaced once it recovers."""
    caplog.set_level(logging.WARNING, logger="aioimds")
    clock = Clock(T0)
    step = timedelta(seconds=10)
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(LEGACY, document(1, T0 + 10 * MINUTE))
        async with CredentialsProvider(imds, clock=clock,
                                       rand=random.Random(40).random) as provider:
            good = await provider.get()
            start_outage(emu, kind)
            tries: list[datetime] = []
            served: list[tuple[datetime, RoleCredentials]] = []

            async def use() -> RoleCredentials:
                clock.now += step
                before = len(emu.counters.trace)
                creds = await provider.get()
                await provider.wait_for_refresh()
                if len(emu.counters.trace) > before:
                    tries.append(clock.now)
                served.append((clock.now, creds))
                return creds

            while clock.now < T0 + 30 * MINUTE:
                await use()
            end_outage(emu)
            recovered_at = clock.now
            while (await use()).access_key_id != "ASIAKEY2":
                assert clock.now < recovered_at + retry_window()[1] + step, "never replaced"
    during = [(t, c) for t, c in served if t <= recovered_at]
    assert all(c.access_key_id == "ASIAKEY1" for _, c in during)  # never the expired ASIAKEY9
    assert all(c.expiration > t for t, c in during)  # always usable by an SDK
    assert all(c.extended for t, c in during if t >= good.expiration)
    assert tries[0] == good.expiration - CREDENTIALS_REFRESH_MARGIN
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    low, high = retry_window()
    assert len(gaps) >= 3 and all(low <= gap <= high + step for gap in gaps), gaps
    assert len(set(gaps)) > 1  # jittered
    assert served[-1][1].expiration == T0 + timedelta(hours=6)
    assert no_secret_in(caplog.text)


# -- C50: tags in metadata: off, empty, large ----------------------------------------------------


def tags_off(emu: Emulator) -> None:
    """Tags in metadata disabled: ``tags/`` and everything under it answer 404, and
    ``meta-data/`` no longer lists ``tags/``."""
    for path in list(emu.snapshot):
        if path.startswith(MD + "tags/"):
            emu.remove(path)
    listing = emu.snapshot[MD].body.decode().split("\n")
    emu.set_leaf(MD, "\n".join(e for e in listing if e != "tags/"))


async def test_c50_a_tags_off_is_none_logged_once_without_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """amazon-ec2-metadata-mock #189, fluent-bit PR #7129, fluent-bit PR #7245: ``tags/`` and
    ``tags/instance/`` answer 404 because tags in metadata are not enabled."""
    caplog.set_level(logging.DEBUG, logger="aioimds")
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        tags_off(emu)
        results = [await imds.tags() for _ in range(3)]
    assert results == [None, None, None]
    assert gets(emu, MD + "tags/instance/") == 3  # one request a call: a 404 is not retried
    assert gets(emu, MD + "tags/instance/", 404) == 3
    assert emu.counters.total("GET") == 3  # nothing else is asked (not tags/, not per key)
    notes = [r for r in caplog.records if r.name == "aioimds.metadata"]
    assert len(notes) == 1 and "not enabled" in notes[0].getMessage()
    assert notes[0].levelno == logging.INFO


async def test_c50_a_no_tags_is_an_empty_dict_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """amazon-ec2-metadata-mock #189, fluent-bit PR #7129: ``tags/instance/`` answers 200 with
    an empty body (tags enabled, the instance has none)."""
    caplog.set_level(logging.DEBUG, logger="aioimds")
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        for path in list(emu.snapshot):
            if path.startswith(MD + "tags/instance/") and path != MD + "tags/instance/":
                emu.remove(path)
        emu.set_leaf(MD + "tags/instance/", "")
        results = [await imds.tags() for _ in range(3)]
    assert results == [{}, {}, {}]
    assert gets(emu, MD + "tags/instance/") == 3
    notes = [r for r in caplog.records if r.name == "aioimds.metadata"]
    assert len(notes) == 1 and "no tags" in notes[0].getMessage()


def long_tags() -> dict[str, str]:
    """50 tags: keys of 128 characters (the longest a tag key can be) made of every character
    a key may hold in metadata, values of 256 characters (the longest), one value empty."""
    key_chars = "abcXYZ019 +-=._:@"
    value_chars = "Valeur é ü 日本語 / + - = . _ : @ 0123456789"
    tags = {}
    for i in range(50):
        key = f"k{i:02d}" + "".join(key_chars[(i + j) % len(key_chars)] for j in range(124))
        value = "".join(value_chars[(i * 7 + j) % len(value_chars)] for j in range(256))
        tags[key + "z"] = value
    first = next(iter(tags))
    tags[first] = ""
    return tags


async def test_c50_b_fifty_long_tags_are_kept_exactly() -> None:
    """fluent-bit PR #7245, fluent-bit PR #7129: 50 tags, 128-character keys, 256-character
    values, one empty value; no line-length limit, no key or value trimmed or lost."""
    tags = long_tags()
    assert len(tags) == 50 and {len(k) for k in tags} == {128}
    assert sorted({len(v) for v in tags.values()}) == [0, 256]
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        for path in list(emu.snapshot):
            if path.startswith(MD + "tags/instance/"):
                emu.remove(path)
        for key, value in tags.items():
            emu.set_leaf(request_path("meta-data/tags/instance/" + key), value)
        emu.set_leaf(MD + "tags/instance/", "\n".join(tags))  # last: exactly this listing
        got = await imds.tags()
    assert got == tags
    assert got is not None and got[next(iter(tags))] == ""
    assert emu.counters.total("GET") == 51 and emu.counters.total("GET", 200) == 51


# -- C52: user-data bytes as served ------------------------------------------------------------


def _random_bytes() -> bytes:
    data = random.Random(52).randbytes(16 * 1024)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    return data


USER_DATA = {
    "empty": b"",
    "base64-looking-text": base64.b64encode(b"#cloud-config\nruncmd: [reboot]\n"),
    "json-looking-text": b'{"base64": "aGVsbG8=", "content_type": "text/plain"}\n',
    "random-16KiB": _random_bytes(),
    "gzip-without-content-encoding": gzip.compress(b"#cloud-config\npackages: [htop]\n"),
}


def _cli(argv: list[str]) -> tuple[int, bytes, bytes]:
    """``aioimds ARGV`` (the console script's ``main``) with its stdout and stderr captured."""
    out, err = io.TextIOWrapper(io.BytesIO()), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    out.flush()
    return code, out.buffer.getvalue(), err.getvalue().encode()


async def dump_json(url: str) -> tuple[int, bytes, bytes]:
    """``aioimds --endpoint URL dump``, the console script's ``main`` run in a thread (it runs
    its own event loop) while the emulator keeps serving on this one; in-process, because a
    child process costs seconds of start-up per case (tests/test_cli.py runs the real process
    against the default tree, whose user-data is gzip)."""
    return await asyncio.to_thread(_cli, ["--endpoint", url, "dump"])


@pytest.mark.parametrize("body", USER_DATA.values(), ids=USER_DATA.keys())
async def test_c52_user_data_is_bytes_as_served_and_dumps_as_valid_json(body: bytes) -> None:
    """cloud-init #4386, amazon.aws PR #1575, bolt #3095: user-data answers 200 with an empty
    body, text that looks like base64 (or JSON), 16 KiB of random bytes, or gzip bytes with
    no ``Content-Encoding``; nothing is decoded, and ``aioimds dump`` stays valid JSON."""
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf("/latest/user-data", body, "application/octet-stream")
        raw = await imds.get_bytes("user-data")
        typed = await imds.user_data()
        snap = await imds.dump()
        code, out, err = await dump_json(emu.url)
    assert raw == body and typed == body and isinstance(typed, bytes)
    assert snap["/latest/user-data"] == Record(body, 200, "application/octet-stream")
    assert Snapshot.loads(snap.dumps()) == snap
    assert code == 0, err
    tree = json.loads(out)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        assert tree["user-data"] == {"base64": base64.b64encode(body).decode(),
                                     "content_type": "application/octet-stream"}
    else:
        assert tree["user-data"] == text  # a string, never parsed or decoded further


async def test_c52_no_user_data_is_absent_not_an_error() -> None:
    """cloud-init #4386, bolt #3095: user-data answers 404 (the instance has none)."""
    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_response("/latest/user-data", Record(b"", 404))  # listed, and 404
        assert await imds.user_data() is None
        with pytest.raises(IMDSNotFoundError):
            await imds.get_bytes("user-data")
        snap = await imds.dump()
        code, out, err = await dump_json(emu.url)
    assert snap["/latest/user-data"].status == 404
    assert code == 0, err
    assert "user-data" not in json.loads(out)


# -- C53: rotating credentials, a long-lived consumer ------------------------------------------


async def test_c53_a_long_lived_consumer_gets_rotated_keys_never_the_environment() -> None:
    """pr-agent #3400, helio #15, aws-nitro-enclaves-acm #131: credentials rotate every 2 min,
    each expiring 5 min ahead; a consumer holds the provider for 15 min. The library never
    writes credentials into the environment; the provider refreshes by itself and each
    credentials object carries its ``expiration``."""
    clock = Clock(T0)
    environ = dict(os.environ)
    rotation = timedelta(minutes=2)
    lifetime = timedelta(minutes=5)

    def current(now: datetime) -> int:
        return (now - T0) // rotation

    async with Emulator() as emu, IMDSClient(endpoint=emu.url) as imds:
        provider = CredentialsProvider(imds, clock=clock)
        published = -1
        used: list[tuple[datetime, int, RoleCredentials]] = []
        while clock.now <= T0 + 15 * MINUTE:
            k = current(clock.now)
            if k != published:
                emu.set_leaf(LEGACY, document(k, T0 + k * rotation + lifetime))
                published = k
            creds = await provider.get()
            await provider.wait_for_refresh()
            used.append((clock.now, k, creds))
            assert dict(os.environ) == environ
            clock.now += timedelta(seconds=10)
    for now, k, creds in used:
        n = int(creds.access_key_id.removeprefix("ASIAKEY"))
        assert n in (k, k - 1)  # the current keys, or the previous ones shortly after a rotation
        assert creds.expiration == T0 + n * rotation + lifetime  # as IMDS published it
        assert creds.expiration - now >= timedelta(minutes=2)
        assert not creds.extended
    assert len({creds.access_key_id for _, _, creds in used}) == 8  # every rotation seen
    assert dict(os.environ) == environ
