"""Typed fields of the JSON documents and text leaves IMDS serves, and its two time formats.

Every failure is an :class:`~aioimds.IMDSResponseError` naming the request path and the field,
never the value: a role credentials document's values are secrets.

Times: IMDS writes ISO 8601 in UTC (``2017-09-18T08:22:00Z``: spot ``instance-action``,
rebalance ``noticeTime``, ``LastUpdated``, ``Expiration``) and, in maintenance events only,
``21 Jan 2019 09:00:43 GMT`` (EC2 user guide, "Instance metadata categories"). Both parse to
timezone-aware UTC datetimes.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from ..errors import IMDSResponseError
from ..wire import parse_event_time

__all__ = [
    "int_leaf",
    "json_array",
    "json_object",
    "opt_str",
    "opt_strs",
    "opt_time",
    "parse_time",
    "req_str",
    "req_time",
]

def _error(path: str, what: str) -> IMDSResponseError:
    return IMDSResponseError(what, path=path, status=200)


def parse_time(value: str, path: str, field: str) -> datetime:
    """``value`` (ISO 8601, or ``21 Jan 2019 09:00:43 GMT``) as a timezone-aware UTC datetime.

    An ISO time without an offset is taken as UTC, as IMDS means it.

    Raises: :class:`~aioimds.IMDSResponseError` naming ``path`` and ``field``.
    """
    text = value.strip()
    try:
        event_time = parse_event_time(text)
        if event_time is not None:
            return event_time
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _error(path, f"{field} is not a time IMDS writes") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def json_object(text: str, path: str, what: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object; ``what`` names the document in errors."""
    doc = parse_json(text, path, what)
    if not isinstance(doc, dict):
        raise _error(path, f"{what} is not a JSON object")
    return doc


def json_array(text: str, path: str, what: str) -> list[Any]:
    """``text`` parsed as a JSON array (``[]`` is an empty list); ``what`` names it in errors."""
    doc = parse_json(text, path, what)
    if not isinstance(doc, list):
        raise _error(path, f"{what} is not a JSON array")
    return doc


def parse_json(text: str, path: str, what: str = "body") -> Any:
    """``text`` parsed as JSON; raises :class:`~aioimds.IMDSResponseError` naming ``path`` (never
    the text) when it is not JSON or nests too deeply to parse."""
    try:
        return json.loads(text)
    except ValueError as exc:
        reason = exc.args[0]
    except RecursionError:
        reason = "nested too deeply"
    # Raised outside the except clause: the JSONDecodeError keeps the whole text (role
    # credentials too) in its ``doc``, so it is neither the cause nor the context.
    raise _error(path, f"{what} is not JSON ({reason})")


def req_str(doc: dict[str, Any], key: str, path: str) -> str:
    """The string field ``key`` of ``doc``; missing, null or another type raises."""
    value = doc.get(key)
    if not isinstance(value, str):
        raise _error(path, f"field {key!r} is missing or not a string")
    return value


def opt_str(doc: dict[str, Any], key: str, path: str) -> str | None:
    """The string field ``key``, ``None`` when absent or null; another type raises."""
    value = doc.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _error(path, f"field {key!r} is not a string")


def opt_strs(doc: dict[str, Any], key: str, path: str) -> tuple[str, ...] | None:
    """The array of strings ``key``, ``None`` when absent or null; another type raises."""
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _error(path, f"field {key!r} is not an array of strings")
    return tuple(value)


def req_time(doc: dict[str, Any], key: str, path: str) -> datetime:
    """The time field ``key`` (see :func:`parse_time`); missing or malformed raises."""
    return parse_time(req_str(doc, key, path), path, f"field {key!r}")


def opt_time(doc: dict[str, Any], key: str, path: str) -> datetime | None:
    """The time field ``key``, ``None`` when absent or null; malformed raises."""
    value = opt_str(doc, key, path)
    return None if value is None else parse_time(value, path, f"field {key!r}")


def int_leaf(text: str, path: str) -> int:
    """A leaf holding a decimal integer (``ami-launch-index`` answers ``0``: amazon.aws #1134).

    Raises: :class:`~aioimds.IMDSResponseError` naming ``path`` when it is not one.
    """
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 20):
        raise _error(path, "leaf is not a decimal integer")
    return int(value)
