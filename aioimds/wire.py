"""Names both ends of the IMDS wire use: the client (``transport``, ``client``, ``paths``) and
the emulator (``emulator.wire``), so the two cannot drift apart.

Source: the EC2 user guide, "Use the Instance Metadata Service to access instance metadata"
and "Instance metadata service version 2"; RFC 3986 for path characters.
"""

from __future__ import annotations

__all__ = ["PCHAR_SAFE", "REDACTED", "TOKEN_HEADER", "TOKEN_PATH", "TTL_HEADER"]

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
