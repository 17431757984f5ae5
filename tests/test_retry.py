"""Retry decisions and backoff (aioimds.retry)."""

from __future__ import annotations

import pytest

from aioimds import retry
from aioimds.retry import Action


@pytest.mark.parametrize(
    ("status", "action"),
    [(200, Action.DONE), (404, Action.NOT_FOUND), (401, Action.REFRESH_TOKEN),
     (429, Action.RETRY), (500, Action.RETRY), (503, Action.RETRY), (None, Action.RETRY),
     (400, Action.FAIL), (403, Action.FAIL), (405, Action.FAIL), (302, Action.FAIL)],
    ids=lambda v: str(v),
)
def test_decide(status: int | None, action: Action) -> None:
    assert retry.decide(status) is action


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    top = [retry.backoff(n, rand=lambda: 1.0) for n in range(1, 8)]
    assert top == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert retry.backoff(3, rand=lambda: 0.0) == 0.0
    assert retry.backoff(3, rand=lambda: 0.5) == pytest.approx(0.1)


def test_defaults() -> None:
    assert (retry.BACKOFF_BASE, retry.BACKOFF_CAP, retry.RETRY_AFTER_CAP) == (0.05, 1.0, 5.0)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("2", 2.0), ("0.5", 0.5), (" 1 ", 1.0), ("999", 5.0), ("-1", None),
     ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("nan", None)],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert retry.parse_retry_after(header) == seconds
