"""What ``aioimds doctor`` reads from the process's surroundings: proxy variables and whether it
runs inside a container. Paths and the environment are parameters, so tests can point them at
files of their own."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "CGROUP_FILES",
    "CONTAINER_MARKERS",
    "PROXY_VARIABLES",
    "ContainerPaths",
    "container_evidence",
    "proxies",
    "proxy_bypassed",
]

PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                   "ALL_PROXY")
"""The variables curl, botocore (urllib3/requests) and most tools take a proxy from."""
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")
"""Files Docker and Podman create in every container."""
CGROUP_FILES = ("/proc/1/cgroup", "/proc/self/cgroup")
"""Files whose cgroup paths name the container runtime (cgroup v1, and v2 under systemd)."""
_CGROUP_WORDS = re.compile(r"docker|kubepods|containerd|libpod|lxc|/ecs/|garden", re.I)
_CONTAINER_VARIABLES = ("KUBERNETES_SERVICE_HOST", "ECS_CONTAINER_METADATA_URI_V4",
                        "ECS_CONTAINER_METADATA_URI")


@dataclass(frozen=True)
class ContainerPaths:
    """Where :func:`container_evidence` looks (the defaults are the real paths)."""

    markers: Sequence[str] = CONTAINER_MARKERS
    cgroups: Sequence[str] = CGROUP_FILES


def container_evidence(paths: ContainerPaths, environ: Mapping[str, str]) -> list[str]:
    """Reasons to think this process runs in a container, in words (empty: none found)."""
    found = [f"{marker} exists" for marker in paths.markers if os.path.exists(marker)]
    for name in paths.cgroups:
        try:
            with open(name, encoding="utf-8", errors="replace") as fh:
                text = fh.read(65536)
        except OSError:
            continue
        match = _CGROUP_WORDS.search(text)
        if match:
            found.append(f"{name} names {match.group(0).strip('/')}")
            break
    found += [f"{var} is set" for var in _CONTAINER_VARIABLES if environ.get(var)]
    return found


def _hide_password(url: str) -> str:
    """``url`` with the password of its user info replaced by ``***`` (a user info without a
    password, often an API key, is replaced whole). The user info ends at the last ``@`` and
    the scheme is optional, as curl reads a proxy variable, so a password holding ``@`` or
    ``/``, or a value without ``scheme://``, shows nothing of the secret."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***" if colon else "***"
    return f"{scheme}{sep}{shown}@{host}"


def proxies(environ: Mapping[str, str]) -> dict[str, str]:
    """The proxy variables set, values with any password replaced by ``***``."""
    return {var: _hide_password(environ[var]) for var in PROXY_VARIABLES
            if environ.get(var, "").strip()}


def proxy_bypassed(host: str, environ: Mapping[str, str]) -> bool:
    """Whether ``NO_PROXY``/``no_proxy`` exempts ``host``, as curl and requests read it:
    ``*``, the host itself, a domain suffix, or (for an IP address) a CIDR block."""
    raw = ",".join(environ.get(var, "") for var in ("no_proxy", "NO_PROXY"))
    host = host.strip("[]").lower()
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = \
            ipaddress.ip_address(host)
    except ValueError:
        address = None
    for item in (i.strip().lower() for i in raw.split(",")):
        if not item:
            continue
        if item == "*" or item.strip("[]") == host:
            return True
        if address is not None and "/" in item:
            try:
                if address in ipaddress.ip_network(item, strict=False):
                    return True
            except ValueError:
                continue
        elif address is None and host.endswith("." + item.lstrip(".")):
            return True
    return False
