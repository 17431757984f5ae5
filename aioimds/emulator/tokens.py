"""The emulator's server-side session token store and TTL parsing (IMDSv2).

IMDS hands out opaque tokens on ``PUT /latest/api/token`` for 1..21600 seconds and refuses them
(401) once they expire. Tokens here are random (:func:`secrets.token_urlsafe`) and the store
maps each one to its expiry on the monotonic clock; nothing about a token is derivable from its
expiry. See "Use IMDSv2" in the EC2 user guide.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from itertools import islice

from .. import clock
from ..wire import MAX_TOKEN_TTL, MIN_TOKEN_TTL

__all__ = ["MAX_TOKENS", "TOKEN_BYTES", "TokenStore", "parse_ttl"]

MAX_TOKENS = 16_384
"""Most live tokens kept; above 10,000 so a 10,000-PUT burst keeps every token."""

TOKEN_BYTES = 42
"""Random bytes per token: 56 URL-safe characters, the length of a real IMDS token."""

_TTL = re.compile(r"[0-9]{1,10}")  # ASCII digits only: no sign, point, space or "²"


def parse_ttl(values: Sequence[str]) -> int | None:
    """The TTL of a token PUT from its ``X-aws-ec2-metadata-token-ttl-seconds`` values.

    Returns the integer when there is exactly one value made of ASCII digits in
    :data:`MIN_TOKEN_TTL`..:data:`MAX_TOKEN_TTL`, else ``None`` (the PUT is answered 400).
    """
    if len(values) != 1 or not _TTL.fullmatch(values[0]):
        return None
    ttl = int(values[0])
    return ttl if MIN_TOKEN_TTL <= ttl <= MAX_TOKEN_TTL else None


class TokenStore:
    """Live tokens and their expiry times, bounded to ``max_tokens`` entries.

    When the store is full, expired tokens are pruned; if every token is still live, the oldest
    half is forgotten. A forgotten token answers 401 like a revoked one, and a client recovers
    the same way (a new PUT). The bound keeps memory flat under endless PUTs.
    """

    __slots__ = ("_clock", "_expiry", "max_tokens")

    def __init__(
        self, max_tokens: int = MAX_TOKENS, clock: Callable[[], float] = clock.now
    ) -> None:
        if max_tokens < 2:
            raise ValueError("max_tokens must be >= 2")
        self.max_tokens = max_tokens
        self._clock = clock
        self._expiry: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._expiry)

    def issue(self, ttl: int) -> str:
        """A new random token valid for ``ttl`` seconds from now."""
        if len(self._expiry) >= self.max_tokens:
            self._prune()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._expiry[token] = self._clock() + ttl
        return token

    def valid(self, token: str) -> bool:
        """Whether ``token`` was issued here, is not revoked and has not expired."""
        expiry = self._expiry.get(token)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._expiry[token]
            return False
        return True

    def revoke_all(self) -> None:
        """Forget every token: each one now answers 401."""
        self._expiry.clear()

    def _prune(self) -> None:
        now = self._clock()
        live = {t: e for t, e in self._expiry.items() if e > now}
        if len(live) > self.max_tokens * 3 // 4:
            # Insertion order is issue order: keep the newest half.
            live = dict(islice(live.items(), len(live) - self.max_tokens // 2, None))
        self._expiry = live
