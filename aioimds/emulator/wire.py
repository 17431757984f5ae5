"""What IMDS looks like on the wire: paths, header names, the XHTML error body, path encoding.

Sources: DESIGN.md section 4 and the EC2 user guide ("Use the Instance Metadata Service to
access instance metadata", "Instance metadata service version 2").
"""

from __future__ import annotations

import functools
import re
from http import HTTPStatus
from urllib.parse import quote, unquote_to_bytes

from ..wire import PCHAR_SAFE, TOKEN_HEADER, TOKEN_PATH, TTL_HEADER

__all__ = [
    "SERVER",
    "TOKEN_HEADER",
    "TOKEN_PATH",
    "TOKEN_PATH_VARIANT",
    "TTL_HEADER",
    "XFF_HEADER",
    "canonical_path",
    "error_body",
]

TOKEN_PATH_VARIANT = re.compile(r"/[^/]+/api/token/?")
"""``fullmatch`` of the token paths IMDS refuses a PUT on with 403 (versioned, trailing /)."""

XFF_HEADER = "X-Forwarded-For"
"""A token PUT carrying this header is refused (403): it came through a proxy."""

SERVER = "EC2ws"
"""The ``Server`` header IMDS sends."""


_XHTML = """<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>{title}</title>
 </head>
 <body>
  <h1>{title}</h1>
 </body>
</html>
"""


@functools.lru_cache(maxsize=64)
def error_body(status: int) -> bytes:
    """The XHTML body IMDS sends with an error ``status`` (``<title>404 - Not Found</title>``)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return _XHTML.format(title=f"{status} - {phrase}").encode("iso-8859-1")


def canonical_path(path: str) -> str:
    """``path`` with each segment percent-decoded and re-encoded keeping RFC 3986 pchars.

    ``/latest/meta-data/tags/instance/aws%3Aname`` becomes ``.../aws:name``; a space becomes
    ``%20``; ``%2F`` stays encoded. The emulator tries this form when the raw path is not a
    snapshot key.
    """
    return "/".join(quote(unquote_to_bytes(seg), safe=PCHAR_SAFE) for seg in path.split("/"))
