"""Retry decisions and backoff (aioimds.retry)."""

from __future__ import annotations

import pytest

from aioimds import retry
from aioimds.retry import Action, Outcome

GET, PUT = False, True
_NO = retry.NoAnswer

# One row per row of the table in aioimds/retry.py's docstring, in its order.
TABLE = [
    (GET, Outcome(200), Action.DONE),
    (GET, Outcome(404), Action.NOT_FOUND),
    (GET, Outcome(401), Action.REFRESH_TOKEN),
    (PUT, Outcome(200, put=True), Action.DONE),
    *[(PUT, Outcome(s, put=True), Action.FALLBACK) for s in (403, 404, 405)],
    *[(m, Outcome(s, put=m), Action.RETRY) for m in (GET, PUT) for s in (408, 429, 500, 503, 599)],
    *[(m, Outcome(no_answer=k, put=m), Action.RETRY) for m in (GET, PUT) for k in _NO],
    *[(GET, Outcome(s), Action.FAIL) for s in (400, 403, 405, 302, 409, 418)],
    *[(PUT, Outcome(s, put=True), Action.FAIL) for s in (400, 401, 302, 409)],
    *[(m, Outcome(bad_answer=True, put=m), Action.FAIL) for m in (GET, PUT)],
]


@pytest.mark.parametrize(("put", "outcome", "action"), TABLE,
                         ids=[f"{'PUT' if p else 'GET'}-{o.status or o.no_answer or 'bad'}"
                              for p, o, _ in TABLE])
def test_classify_follows_the_documented_table(put: bool, outcome: Outcome,
                                               action: Action) -> None:
    assert outcome.put is put
    assert retry.classify(outcome) is action


def test_the_docstring_table_names_every_action_the_code_returns() -> None:
    doc = retry.__doc__ or ""
    for action in Action:
        assert f"``{action.name}``" in doc
    for status in ("408, 429, 500-599", "403, 404, 405", "401", "404", "200"):
        assert status in doc


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


def test_listed_404_delays_are_capped_spaced_and_bounded() -> None:
    low = [retry.listed_404_delay(n, 0.0, rand=lambda: 0.0) for n in range(1, 7)]
    high = [retry.listed_404_delay(n, 0.0, rand=lambda: 0.999999) for n in range(1, 7)]
    assert low[:5] == pytest.approx([0.05, 0.1, 0.2, 0.25, 0.25])
    assert high[:5] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5], rel=1e-5)
    assert low[5] is None and high[5] is None  # LISTED_404_RETRIES spent
    assert retry.LISTED_404_RETRIES == 5
    assert sum(d for d in high if d is not None) <= retry.LISTED_404_SECONDS
    # The time budget stops the retries whatever the count.
    assert retry.listed_404_delay(1, retry.LISTED_404_SECONDS - 0.01, rand=lambda: 0.5) is None
    late = retry.listed_404_delay(1, retry.LISTED_404_SECONDS - 0.1, rand=lambda: 0.5)
    assert late == pytest.approx(0.075)
