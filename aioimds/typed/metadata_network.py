"""The typed view of ``meta-data/network/interfaces/macs/``: one :class:`NetworkInterface` per MAC.

Per interface, its listing is read first; then every leaf it names that this view knows, and
the ``ipv4-associations/`` listing, are fetched at once; then the association leaves. So a view
of any number of interfaces takes three round trips after the MAC listing. A leaf name written
with underscores (``subnet_ipv6_cidr_blocks``, as some trees have it) is read as the hyphenated
one. Leaf formats: EC2 user guide, "Instance metadata categories", ``network/interfaces/...``.

Everything this view reads was named by the listing above it, so a 404 is retried a few times
over about 1-2 s before the value is taken as absent (``listed_text``): IMDS lists a hot-attached
interface before its keys answer (amazon-ec2-net-utils #38). A key the listing does not name
(``ipv6s`` on an interface without IPv6) is never requested: its field is empty at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..catalogue import MAC_INTERFACES
from ..paths import is_listing, request_path
from ._fetch import Source, gather_all, listed_entries, listed_text, optional_entries
from ._fields import int_leaf

__all__ = ["NetworkInterface", "fetch_network_interfaces"]

ASSOCIATIONS = "ipv4-associations/"

_ONE, _LINES, _INT = "one", "lines", "int"
_LEAVES: dict[str, tuple[str, str]] = {
    "mac": ("mac", _ONE),
    "device-number": ("device_number", _INT),
    "network-card-index": ("network_card_index", _INT),
    "interface-id": ("interface_id", _ONE),
    "local-hostname": ("local_hostname", _ONE),
    "local-ipv4s": ("local_ipv4s", _LINES),
    "ipv6s": ("ipv6s", _LINES),
    "public-hostname": ("public_hostname", _ONE),
    "public-ipv4s": ("public_ipv4s", _LINES),
    "owner-id": ("owner_id", _ONE),
    "security-group-ids": ("security_group_ids", _LINES),
    "security-groups": ("security_groups", _LINES),
    "subnet-id": ("subnet_id", _ONE),
    "subnet-ipv4-cidr-block": ("subnet_ipv4_cidr_block", _ONE),
    "subnet-ipv6-cidr-blocks": ("subnet_ipv6_cidr_blocks", _LINES),
    "vpc-id": ("vpc_id", _ONE),
    "vpc-ipv4-cidr-block": ("vpc_ipv4_cidr_block", _ONE),
    "vpc-ipv4-cidr-blocks": ("vpc_ipv4_cidr_blocks", _LINES),
    "vpc-ipv6-cidr-blocks": ("vpc_ipv6_cidr_blocks", _LINES),
}
"""Leaf name -> (attribute, kind): one value (stripped), lines (a tuple), or an int."""


@dataclass(frozen=True)
class NetworkInterface:
    """One network interface, ``meta-data/network/interfaces/macs/MAC/``.

    A leaf that is absent or empty gives ``None`` (single values) or ``()`` (lists, one entry
    per line of the leaf). ``ipv4_associations`` maps each public IPv4 address to the private
    one it is associated with (``ipv4-associations/PUBLIC``).
    """

    mac: str
    device_number: int | None = None
    network_card_index: int | None = None
    interface_id: str | None = None
    local_hostname: str | None = None
    local_ipv4s: tuple[str, ...] = ()
    ipv6s: tuple[str, ...] = ()
    public_hostname: str | None = None
    public_ipv4s: tuple[str, ...] = ()
    ipv4_associations: dict[str, str] = field(default_factory=dict, hash=False)
    owner_id: str | None = None
    security_group_ids: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    subnet_id: str | None = None
    subnet_ipv4_cidr_block: str | None = None
    subnet_ipv6_cidr_blocks: tuple[str, ...] = ()
    vpc_id: str | None = None
    vpc_ipv4_cidr_block: str | None = None
    vpc_ipv4_cidr_blocks: tuple[str, ...] = ()
    vpc_ipv6_cidr_blocks: tuple[str, ...] = ()


async def fetch_network_interfaces(source: Source, max_age: float | None = None,
                                   ) -> dict[str, NetworkInterface]:
    """Every interface by MAC (``{}`` when the listing is absent), fetched concurrently;
    ``max_age`` goes to every read (``None``: all fresh).

    Raises: :class:`~aioimds.IMDSResponseError` naming the path of a malformed leaf (an
    ``int`` leaf that is not a number), and the other errors of ``source.get``.
    """
    listed = await optional_entries(source, MAC_INTERFACES, max_age)
    macs = [entry.rstrip("/") for entry in listed]
    views = await gather_all(_interface(source, mac, max_age) for mac in macs)
    return dict(zip(macs, views, strict=True))


async def _interface(source: Source, mac: str, max_age: float | None) -> NetworkInterface:
    base = f"{MAC_INTERFACES}{mac}/"
    entries = await listed_entries(source, base, max_age)
    known = [(e, _LEAVES[e.replace("_", "-")]) for e in entries
             if e.replace("_", "-") in _LEAVES]
    texts, associations = await asyncio.gather(
        gather_all(listed_text(source, base + entry, max_age) for entry, _ in known),
        _associations(source, base, max_age, listed=ASSOCIATIONS in entries),
    )
    values: dict[str, Any] = {"mac": mac, "ipv4_associations": associations}
    for (entry, (attribute, kind)), text in zip(known, texts, strict=True):
        if text is not None:
            values[attribute] = _value(text, kind, base + entry)
    return NetworkInterface(**values)


def _value(text: str, kind: str, path: str) -> Any:
    if kind == _LINES:
        return tuple(line.strip() for line in text.splitlines() if line.strip())
    value = text.strip()
    if not value:
        return None
    return int_leaf(value, request_path(path)) if kind == _INT else value


async def _associations(source: Source, base: str, max_age: float | None, *,
                        listed: bool) -> dict[str, str]:
    """Public IPv4 -> private IPv4 from ``ipv4-associations/`` ({} when not listed)."""
    if not listed:
        return {}
    listing = base + ASSOCIATIONS
    publics = [entry for entry in await listed_entries(source, listing, max_age)
               if not is_listing(entry)]
    privates = await gather_all(listed_text(source, listing + ip, max_age) for ip in publics)
    return {ip: private.strip() for ip, private in zip(publics, privates, strict=True)
            if private is not None}
