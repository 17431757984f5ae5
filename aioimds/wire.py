"""Names and facts both ends of the IMDS wire state: the client (``config``, ``transport``,
``client``, ``paths``, the typed layer) and the emulator, so the two cannot drift apart.

Source: the EC2 user guide, "Use the Instance Metadata Service to access instance metadata",
"Instance metadata service version 2", "Instance metadata categories" (the maintenance-event
time format) and "Retrieve security credentials from instance metadata" (rotation); RFC 3986
for path characters. The category paths are in :mod:`aioimds.catalogue`, the listing rules in
:mod:`aioimds.paths`.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

__all__ = [
    "CREDENTIALS_ROTATION_LEAD",
    "MAX_TOKEN_TTL",
    "MIN_TOKEN_TTL",
    "PCHAR_SAFE",
    "REDACTED",
    "TOKEN_HEADER",
    "TOKEN_PATH",
    "TTL_HEADER",
    "format_event_time",
    "parse_event_time",
]

TOKEN_PATH = "/latest/api/token"
"""The only path that issues session tokens (``PUT``)."""

TOKEN_HEADER = "X-aws-ec2-metadata-token"
"""Request header carrying the session token on GET/HEAD."""

TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
"""Header of the token PUT (the TTL asked for, seconds) and of its answer (the TTL granted)."""

PCHAR_SAFE = "!$&'()*+,;=:@-._~"
"""RFC 3986 ``pchar`` characters (besides letters and digits) a path segment keeps as they are;
everything else is percent-encoded."""

REDACTED = "<redacted>"
"""What stands in place of a token or a secret in reprs, traces, errors and dumps."""

MIN_TOKEN_TTL = 1
"""Shortest session-token TTL IMDS grants, in seconds."""
MAX_TOKEN_TTL = 21600
"""Longest session-token TTL IMDS grants, in seconds (6 hours); a PUT asking for more is 400."""

CREDENTIALS_ROTATION_LEAD = 300.0
"""Seconds before ``Expiration`` at which new role credentials are available: EC2 makes them
available at least five minutes before the old ones expire."""

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
"""English month abbreviations, written and matched without the locale (``%b`` follows it)."""
_EVENT_TIME = re.compile(r"(\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT")


def format_event_time(when: datetime) -> str:
    """``21 Jan 2019 09:00:43 GMT``: the time format of maintenance events (``NotBefore``,
    ``NotAfter``, ``NotBeforeDeadline``), ``when`` converted to UTC."""
    t = when.astimezone(timezone.utc)
    return f"{t.day:02d} {_MONTHS[t.month - 1]} {t.year} {t:%H:%M:%S} GMT"


def parse_event_time(text: str) -> datetime | None:
    """``21 Jan 2019 09:00:43 GMT`` as a timezone-aware UTC datetime; ``None`` when ``text``
    is not written in that format at all.

    Raises: :class:`ValueError` for a field out of range (an unknown month, 31 Feb, 25:00).
    """
    match = _EVENT_TIME.fullmatch(text)
    if match is None:
        return None
    day, month, year, hh, mm, ss = match.groups()
    # An unknown month gives 0, which datetime() refuses like any bad field.
    number = _MONTHS.index(month) + 1 if month in _MONTHS else 0
    return datetime(int(year), number, int(day), int(hh), int(mm), int(ss), tzinfo=timezone.utc)
