"""Counters of one client's requests and of a crawl's progress, for logs and progress lines.

Plain integers, updated in place by the request pipeline and the crawl; reading them costs
nothing and they never hold a path, a body or a token.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CrawlProgress", "RequestStats"]


@dataclass
class RequestStats:
    """What one :class:`~aioimds.IMDSClient` sent since it was made (never reset on close).

    Attributes:
        requests: attempts sent (every try of every request, token PUTs included).
        retries: attempts that were retries of a request that failed before.
        throttled: answers with status 429.
        dropped: attempts that got no answer (connection refused, reset, closed, timed out).
        token_puts: token PUTs answered 200 (an IMDSv2 token obtained).
        without_token: GETs sent without a token (IMDSv1).
    """

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    dropped: int = 0
    token_puts: int = 0
    without_token: int = 0


@dataclass
class CrawlProgress:
    """How far a crawl got: ``done`` paths answered or failed, ``queued`` paths waiting."""

    done: int = 0
    queued: int = 0
