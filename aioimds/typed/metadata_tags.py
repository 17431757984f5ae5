"""The typed view of ``meta-data/tags/instance/``: instance tags, or ``None`` when tags in
metadata are off.

Tags are in metadata only when the instance's metadata options say so (EC2 user guide, "View
tags for your EC2 instances using instance metadata"); otherwise ``tags/`` and
``tags/instance/`` answer 404. That is a setting the reader may want to change, so unlike other
404s it is logged, once per reader (fluent-bit PR #7129 logged it on every flush).
"""

from __future__ import annotations

import logging

from ..catalogue import TAGS_INSTANCE
from ..errors import IMDSNotFoundError
from ..paths import request_path
from ._fetch import Source, gather_all, optional_text

__all__ = ["TagsReader"]

_log = logging.getLogger("aioimds.metadata")


class TagsReader:
    """Reads the instance tags through ``source`` and remembers what it has logged."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._noted: str | None = None

    async def read(self, max_age: float | None = None) -> dict[str, str] | None:
        """Tags by exact key, values as served; ``None`` when the listing answers 404 (tags in
        metadata off), ``{}`` when it lists none. Each of the two is logged (INFO, DEBUG) when
        first seen, and again only after the other was seen. A 404 is not retried. ``max_age``
        goes to every read (``None``: fresh).

        A key that names no child (``a/b``, cloud-init #4012; ``..``; a control character)
        cannot be asked for: it is left out with a warning and the other tags are kept.

        Raises: the :class:`~aioimds.IMDSError` subclasses of the source.
        """
        listing = TAGS_INSTANCE
        path = request_path(listing)
        try:
            keys = await self._source.list(listing, max_age=max_age)
        except IMDSNotFoundError:
            self._note("off", logging.INFO, f"instance tags are not enabled in metadata ({path} "
                       "answers 404; aws ec2 modify-instance-metadata-options "
                       "--instance-metadata-tags enabled); tags() returns None")
            return None
        if not keys:
            self._note("none", logging.DEBUG, f"{path} lists no tags; tags() returns {{}}")
        keys = [key for key in keys if self._askable(key, path)]
        values = await gather_all(optional_text(self._source, listing + key, max_age)
                                  for key in keys)
        return {k: v for k, v in zip(keys, values, strict=True) if v is not None}

    @staticmethod
    def _askable(key: str, path: str) -> bool:
        if "/" in key or key in (".", "..") or any(ord(ch) < 0x20 or ord(ch) == 0x7F
                                                   for ch in key):
            _log.warning("%s: tag key %r names no child; left out", path, key)
            return False
        return True

    def _note(self, state: str, level: int, message: str) -> None:
        if self._noted != state:
            self._noted = state
            _log.log(level, message)
