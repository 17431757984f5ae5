"""IMDSConfig: every setting of the client, with its default, environment variable and config key.

Precedence, written once: an explicit argument wins over the environment, and the environment
wins over the shared config file (``AWS_CONFIG_FILE``, default ``~/.aws/config``; the profile
from ``profile=`` or ``AWS_PROFILE``, section ``[default]`` or ``[profile NAME]``), which wins
over the default. An empty value (a variable set to ``""``, a key written ``key =``) counts as
unset. A profile that is named but found in neither the config file nor the shared credentials
file (``AWS_SHARED_CREDENTIALS_FILE``, default ``~/.aws/credentials``) is an error, as botocore
raises ``ProfileNotFound``.
The names match the AWS SDKs:
https://docs.aws.amazon.com/sdkref/latest/guide/feature-imds-credentials.html
"""

from __future__ import annotations

import configparser
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from .errors import IMDSConfigError
from .retry import BACKOFF_CAP
from .wire import MAX_TOKEN_TTL, MIN_TOKEN_TTL

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_ENDPOINT_IPV4",
    "DEFAULT_ENDPOINT_IPV6",
    "DEFAULT_MAX_BODY",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOKEN_TTL",
    "IMDSConfig",
    "setting_sources",
]

DEFAULT_ENDPOINT_IPV4 = "http://169.254.169.254"
"""Endpoint of endpoint mode IPv4 (the link-local address every instance has)."""
DEFAULT_ENDPOINT_IPV6 = "http://[fd00:ec2::254]"
"""Endpoint of endpoint mode IPv6 (Nitro instances with IPv6 IMDS enabled)."""
DEFAULT_TIMEOUT = 1.0
"""Seconds per attempt, as the AWS SDKs (IMDS answers in well under a millisecond)."""
DEFAULT_ATTEMPTS = 3
"""Attempts per request, as the AWS SDK for Go v2: one slow answer (botocore #1791) is survived."""
DEFAULT_TOKEN_TTL = MAX_TOKEN_TTL
"""Token TTL asked for, in seconds: the service's maximum (6 hours), so one PUT per client."""
DEFAULT_MAX_BODY = 1 << 20
"""Largest body accepted, in bytes (1 MiB); user-data is at most 16 KiB, leaves far less."""

EndpointMode = Literal["IPv4", "IPv6"]

# setting -> (environment variable, config-file key); precedence is applied in one place below.
_SOURCES: dict[str, tuple[str, str | None]] = {
    "disabled": ("AWS_EC2_METADATA_DISABLED", None),
    "endpoint": ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "ec2_metadata_service_endpoint"),
    "endpoint_mode": (
        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
        "ec2_metadata_service_endpoint_mode",
    ),
    "v1_disabled": ("AWS_EC2_METADATA_V1_DISABLED", "ec2_metadata_v1_disabled"),
    "timeout": ("AWS_METADATA_SERVICE_TIMEOUT", "metadata_service_timeout"),
    "attempts": ("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "metadata_service_num_attempts"),
}


@dataclass(frozen=True)
class IMDSConfig:
    """The client's settings. Build it directly, or with :meth:`from_environment`.

    Attributes:
        endpoint: base URL (``http://host:port``); ``None`` derives it from ``endpoint_mode``.
            Env ``AWS_EC2_METADATA_SERVICE_ENDPOINT``, key ``ec2_metadata_service_endpoint``.
        endpoint_mode: ``"IPv4"`` (default, :data:`DEFAULT_ENDPOINT_IPV4`) or ``"IPv6"``
            (:data:`DEFAULT_ENDPOINT_IPV6`), in any case (stored as ``IPv4``/``IPv6``). A
            custom ``endpoint`` wins over the mode.
            Env ``AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE``, key
            ``ec2_metadata_service_endpoint_mode``.
        disabled: refuse every request with :class:`~aioimds.IMDSDisabledError` before any
            connection. Default ``False``. Env ``AWS_EC2_METADATA_DISABLED``: ``true`` in any
            case disables, any other value leaves IMDS enabled (as botocore and the Go SDK).
        v1_disabled: never fall back to IMDSv1 (token-less requests). Default ``False``.
            Env ``AWS_EC2_METADATA_V1_DISABLED``, key ``ec2_metadata_v1_disabled``: ``true`` or
            ``false`` in any case; anything else is an error (botocore reads it as false).
        timeout: seconds per attempt (connect + answer). Default :data:`DEFAULT_TIMEOUT`.
            Env ``AWS_METADATA_SERVICE_TIMEOUT``, key ``metadata_service_timeout``.
        attempts: attempts per request (1 = no retry). Default :data:`DEFAULT_ATTEMPTS`.
            Env ``AWS_METADATA_SERVICE_NUM_ATTEMPTS``, key ``metadata_service_num_attempts``.
        token_ttl: seconds asked for in the token PUT, 1..21600
            (:data:`~aioimds.wire.MAX_TOKEN_TTL`). Default
            :data:`DEFAULT_TOKEN_TTL`.
        deadline: overall seconds one request may take across its attempts, waits included;
            ``None`` (default) means :meth:`deadline_for`: ``attempts * (timeout +``
            :data:`~aioimds.retry.BACKOFF_CAP` ``)``.
        max_body: largest body accepted, in bytes. Default :data:`DEFAULT_MAX_BODY`.
        cache: keep answers for reads that accept a cached one (``max_age``; the typed views'
            values that cannot change while the instance runs). Default ``True``; ``False``
            sends every read (:mod:`aioimds.coalesce`). Not read from the environment.

    Raises: :class:`~aioimds.IMDSConfigError` for an invalid value, or a value of the wrong
    type (a string for a bool field: ``disabled="false"`` would be truthy).
    """

    endpoint: str | None = None
    endpoint_mode: EndpointMode = "IPv4"
    disabled: bool = False
    v1_disabled: bool = False
    timeout: float = DEFAULT_TIMEOUT
    attempts: int = DEFAULT_ATTEMPTS
    token_ttl: int = DEFAULT_TOKEN_TTL
    deadline: float | None = None
    max_body: int = DEFAULT_MAX_BODY
    cache: bool = True

    def __post_init__(self) -> None:
        mode = _MODES.get(self.endpoint_mode.lower()) if isinstance(self.endpoint_mode, str) \
            else None
        if mode is None:
            raise IMDSConfigError(
                f"{self.endpoint_mode!r} is not a valid endpoint mode: use IPv4 or IPv6")
        object.__setattr__(self, "endpoint_mode", mode)
        for name in ("disabled", "v1_disabled", "cache"):
            if not isinstance(getattr(self, name), bool):
                raise IMDSConfigError(
                    f"{name} must be True or False, not {getattr(self, name)!r}")
        if self.endpoint is not None and not isinstance(self.endpoint, str):
            raise IMDSConfigError(f"endpoint must be a URL string, not {self.endpoint!r}")
        if self.endpoint is not None:
            object.__setattr__(self, "endpoint", _check_endpoint(self.endpoint, "endpoint"))
        if not (_is_number(self.timeout) and math.isfinite(self.timeout)
                and self.timeout > 0):
            raise IMDSConfigError(f"timeout must be a positive number of seconds, not "
                                  f"{self.timeout!r}")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) \
                or self.attempts < 1:
            raise IMDSConfigError(f"attempts must be an integer >= 1, not {self.attempts!r}")
        if isinstance(self.token_ttl, bool) or not isinstance(self.token_ttl, int) \
                or not MIN_TOKEN_TTL <= self.token_ttl <= MAX_TOKEN_TTL:
            raise IMDSConfigError(f"token TTL must be {MIN_TOKEN_TTL}..{MAX_TOKEN_TTL} seconds, "
                                  f"not {self.token_ttl!r}")
        if self.deadline is not None and not (_is_number(self.deadline) and self.deadline > 0):
            raise IMDSConfigError(f"deadline must be positive seconds, not {self.deadline!r}")
        if isinstance(self.max_body, bool) or not isinstance(self.max_body, int) \
                or self.max_body < 1:
            raise IMDSConfigError(f"max_body must be a positive byte count, not "
                                  f"{self.max_body!r}")

    @property
    def base_url(self) -> str:
        """The endpoint to use: ``endpoint`` if set, else the endpoint of ``endpoint_mode``."""
        if self.endpoint is not None:
            return self.endpoint
        return DEFAULT_ENDPOINT_IPV6 if self.endpoint_mode == "IPv6" else DEFAULT_ENDPOINT_IPV4

    def deadline_for(self, attempts: int) -> float:
        """The overall deadline in seconds of a request making up to ``attempts`` attempts:
        ``deadline`` when set, else ``attempts * (timeout + BACKOFF_CAP)`` (each attempt and
        the longest backoff after it)."""
        if self.deadline is not None:
            return self.deadline
        return attempts * (self.timeout + BACKOFF_CAP)

    def with_overrides(self, **overrides: Any) -> IMDSConfig:
        """A copy with the given settings replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        profile: str | None = None,
        profile_origin: str = "profile=",
        config_file: bool = True,
        **overrides: Any,
    ) -> IMDSConfig:
        """Read every setting from ``environ`` (default ``os.environ``) and the shared config.

        Args:
            environ: the environment variables to read.
            profile: the config-file profile to read; default ``AWS_PROFILE``, else
                ``default``.
            profile_origin: where ``profile`` came from, for the message of a profile that
                exists nowhere (the CLI passes ``"--profile"``).
            config_file: ``False`` reads no file at all (the CLI's ``--emulator``).
            overrides: any field name; they win over both; ``None`` values are ignored.

        Raises: :class:`~aioimds.IMDSConfigError` naming the variable or key of a bad value,
        a profile that exists nowhere, or the file and line of a malformed config file.
        """
        env = os.environ if environ is None else environ
        file_values = _read_config_file(env, profile, profile_origin) if config_file \
            else {"": "no file"}
        values: dict[str, Any] = {}
        for name, (var, key) in _SOURCES.items():
            if overrides.get(name) is not None:
                continue  # the argument wins: a bad environment value for it does not matter
            if var in env and env[var].strip() != "":
                values[name] = _parse(name, env[var], var)
            elif key is not None and file_values.get(key, "").strip() != "":
                values[name] = _parse(name, file_values[key], f"{key} in {file_values['']}")
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise IMDSConfigError(f"unknown settings {sorted(unknown)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def setting_sources(environ: Mapping[str, str] | None = None, *, profile: str | None = None,
                    profile_origin: str = "profile=", config_file: bool = True,
                    **overrides: Any) -> dict[str, str]:
    """Where :meth:`IMDSConfig.from_environment` with the same arguments takes each setting
    read from outside (the keys of the table in DESIGN.md section 5) from, by the same
    precedence: ``"argument"``, ``"variable NAME"``, ``"KEY in [SECTION] of FILE"`` or
    ``"default"``. Values are not checked here; ``from_environment`` does that.

    Raises: :class:`~aioimds.IMDSConfigError` for an unreadable or malformed config file, or
    a profile that exists nowhere.
    """
    env = os.environ if environ is None else environ
    file_values = _read_config_file(env, profile, profile_origin) if config_file \
        else {"": "no file"}
    out: dict[str, str] = {}
    for name, (var, key) in _SOURCES.items():
        if overrides.get(name) is not None:
            out[name] = "argument"
        elif var in env and env[var].strip() != "":
            out[name] = f"variable {var}"
        elif key is not None and file_values.get(key, "").strip() != "":
            out[name] = f"{key} in {file_values['']}"
        else:
            out[name] = "default"
    return out


_MODES = {"ipv4": "IPv4", "ipv6": "IPv6"}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_config_file(env: Mapping[str, str], profile: str | None,
                      origin: str = "profile=") -> dict[str, str]:
    """The IMDS keys of the active profile; key ``""`` holds a description for messages."""
    path = env.get("AWS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "config")
    named = profile if profile is not None else env.get("AWS_PROFILE") or None
    name = named or "default"
    section = "default" if name == "default" else f"profile {name}"
    parser = _parse_file(path)
    if parser is not None and parser.has_section(section):
        out = {k: v for k, v in parser.items(section) if k in _FILE_KEYS}
        out[""] = f"[{section}] of {path}"
        return out
    if named is not None and name != "default" and not _in_credentials_file(env, name):
        source = f"from {origin}" if profile is not None else "from AWS_PROFILE"
        undo = f"check the name given to {origin}" if profile is not None \
            else "check the name, or unset AWS_PROFILE"
        raise IMDSConfigError(
            f"the profile {name!r} ({source}) is not in the AWS config file {path} nor in the "
            f"shared credentials file; {undo}")
    return {"": path}


def _parse_file(path: str) -> configparser.RawConfigParser | None:
    """The parsed file, ``None`` when it does not exist; one-line error naming file and line."""
    parser = configparser.RawConfigParser()
    try:
        read = parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        if isinstance(exc, configparser.MissingSectionHeaderError) and _starts_with_bom(path):
            # botocore refuses such a file too; say what is wrong with line 1
            raise IMDSConfigError(
                f"malformed AWS config file {path}: line 1: it starts with a UTF-8 byte order "
                "mark (as some Windows editors save); save it as UTF-8 without one") from None
        raise IMDSConfigError(f"malformed AWS config file {path}: {_one_line(exc)}") from None
    except UnicodeDecodeError:
        raise IMDSConfigError(f"malformed AWS config file {path}: not UTF-8 text") from None
    except OSError as exc:
        raise IMDSConfigError(f"cannot read AWS config file {path}: {exc.strerror}") from None
    return parser if read else None


def _starts_with_bom(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(3) == b"\xef\xbb\xbf"
    except OSError:
        return False


def _one_line(exc: configparser.Error) -> str:
    """``line N: what`` of a configparser error (its own message spans several lines)."""
    at = getattr(exc, "lineno", None)
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {at}: a key before any [section] header"
    if isinstance(exc, configparser.ParsingError) and exc.errors:
        # the line itself is left out: a config file can hold secrets
        return f"line {exc.errors[0][0]}: neither 'key = value' nor a [section] header"
    if isinstance(exc, (configparser.DuplicateSectionError, configparser.DuplicateOptionError)):
        what = exc.message.split(":", 1)[-1].strip().splitlines()[0]
        return f"line {at}: {what}"
    return exc.message.splitlines()[0]


def _in_credentials_file(env: Mapping[str, str], name: str) -> bool:
    path = env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(
        os.path.expanduser("~"), ".aws", "credentials")
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError):
        return False
    return parser.has_section(name)


_FILE_KEYS = {key for _, key in _SOURCES.values() if key is not None}


def _parse(name: str, raw: str, source: str) -> Any:
    """Parse one raw setting; raise :class:`IMDSConfigError` naming ``source``."""
    text = raw.strip()
    if name == "disabled":
        return text.lower() == "true"  # as botocore: only "true" (any case) disables
    if name == "v1_disabled":
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise IMDSConfigError(f"{source} must be true or false, not {raw!r}")
    if name == "endpoint_mode":
        mode = _MODES.get(text.lower())
        if mode is None:
            raise IMDSConfigError(f"{source}: {raw!r} is not a valid endpoint mode: use IPv4 "
                                  "or IPv6")
        return mode
    if name == "timeout":
        try:
            value = float(text)
        except ValueError:
            raise IMDSConfigError(
                f"{source} must be a number of seconds, not {raw!r}"
            ) from None
        if not (math.isfinite(value) and value > 0):
            raise IMDSConfigError(f"{source} must be a positive number of seconds, not {raw!r}")
        return value
    if name == "attempts":
        if not (text.isascii() and text.isdigit() and len(text) <= 6) or int(text) < 1:
            raise IMDSConfigError(f"{source} must be an integer >= 1, not {raw!r}")
        return int(text)
    return _check_endpoint(text, source)


def _check_endpoint(raw: str, source: str) -> str:
    """``raw`` without a trailing ``/`` when it is ``http(s)://host[:port]``; else raise
    :class:`IMDSConfigError` naming ``source`` (and ``raw`` with any user info hidden: an
    endpoint written with ``user:password@`` must not put the password in the message)."""
    from yarl import URL  # aiohttp's URL parser; imported here to keep config import-light

    shown, userinfo = _hide_userinfo(raw)
    if "?" in raw or "#" in raw:
        raise IMDSConfigError(f"{source} must be only scheme, host and port, not {shown!r}")
    try:
        url = URL(raw)
        port = url.port
    except (ValueError, TypeError) as exc:
        why = str(exc).replace(userinfo, "***") if userinfo else str(exc)
        raise IMDSConfigError(f"{source} is not a valid URL ({why}): {shown!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise IMDSConfigError(f"{source} must be an http:// URL with a host, not {shown!r}")
    if url.path not in ("", "/") or url.query_string or url.fragment or userinfo:
        raise IMDSConfigError(
            f"{source} must be only scheme, host and port (http://host:port), not {shown!r}; "
            "the client adds /latest/ itself")
    if port is None or not 0 < port < 65536:
        raise IMDSConfigError(f"{source} has an invalid port: {shown!r}")
    return raw.rstrip("/")


def _hide_userinfo(raw: str) -> tuple[str, str]:
    """(``raw`` with the user info before its last ``@`` replaced by ``***``, that user
    info); ``(raw, "")`` when it has none."""
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "", raw
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return raw, ""
    return f"{scheme}{sep}***@{host}", userinfo
