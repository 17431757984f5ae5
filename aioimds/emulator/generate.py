"""Generated trees for load tests and benchmarks: the default tree grown to any size.

:func:`large_tree` adds network interfaces (each with many private addresses and public-IP
associations), tags, a spot interruption notice and a rebalance recommendation to the bundled
default tree, keeping every listing consistent with what it lists.
"""

from __future__ import annotations

import json

from .. import catalogue
from ..paths import ROOT, split_entries
from ..snapshot import Record, Snapshot
from .default import default_snapshot

__all__ = ["large_tree"]

_MACS = ROOT + catalogue.MAC_INTERFACES


def _ip(n: int, base: int) -> str:
    return f"10.{base}.{n // 256 % 256}.{n % 256}"


def _add_entries(responses: dict[str, Record], listing: str, entries: list[str]) -> None:
    old = responses[listing].body.decode() if listing in responses else ""
    names = set(split_entries(old)) | set(entries)
    responses[listing] = Record("\n".join(sorted(names)).encode())


def _interface(responses: dict[str, Record], index: int, associations: int) -> str:
    mac = f"0e:a0:{index // 256 % 256:02x}:{index % 256:02x}:00:01"
    d = f"{_MACS}{mac}/"
    private = [_ip(index * 1000 + k, 1 + index % 200) for k in range(max(1, associations))]
    leaves = {
        "device-number": str(index + 2),
        "interface-id": f"eni-0{index:016x}",
        "local-hostname": f"ip-{private[0].replace('.', '-')}.ap-northeast-1.compute.internal",
        "local-ipv4s": "\n".join(private),
        "mac": mac,
        "owner-id": "111122223333",
        "security-group-ids": "sg-0123456789abcdef0",
        "security-groups": "default",
        "subnet-id": f"subnet-0{index:016x}",
        "subnet-ipv4-cidr-block": f"10.{1 + index % 200}.0.0/16",
        "vpc-id": "vpc-0123456789abcdef0",
        "vpc-ipv4-cidr-block": "10.0.0.0/8",
        "vpc-ipv4-cidr-blocks": "10.0.0.0/8",
    }
    for name, value in leaves.items():
        responses[d + name] = Record(value.encode())
    # 198.18.0.0/15 is reserved for benchmarks (RFC 2544): made-up, never routed.
    first = index * associations
    publics = [f"198.{18 + (first + k) // 65536 % 2}.{(first + k) // 256 % 256}.{(first + k) % 256}"
               for k in range(associations)]
    for public, priv in zip(publics, private, strict=False):
        responses[f"{d}ipv4-associations/{public}"] = Record(priv.encode())
    entries = list(leaves)
    if associations:
        _add_entries(responses, d + "ipv4-associations/", publics)
        responses[d + "public-ipv4s"] = Record("\n".join(publics).encode())
        entries += ["ipv4-associations/", "public-ipv4s"]
    _add_entries(responses, d, entries)
    return mac + "/"


def large_tree(interfaces: int = 40, associations: int = 40, tags: int = 50) -> Snapshot:
    """The default tree plus ``interfaces`` network interfaces with ``associations`` public-IP
    associations (and as many private addresses) each, ``tags`` instance tags, a spot
    ``instance-action`` and a rebalance recommendation.

    The defaults give about 2,500 paths; ``large_tree(200, 480)`` about 100,000.
    """
    responses = dict(default_snapshot().responses)
    macs = [_interface(responses, i, associations) for i in range(interfaces)]
    _add_entries(responses, _MACS, macs)
    tag_dir = ROOT + catalogue.TAGS_INSTANCE
    names = [f"generated-tag-{k:03d}" for k in range(tags)]
    for name in names:
        responses[tag_dir + name] = Record(f"value of {name}".encode())
    _add_entries(responses, tag_dir, names)
    notice = {"action": "terminate", "time": "2026-11-29T12:00:00Z"}
    responses[ROOT + catalogue.SPOT_ACTION] = Record(json.dumps(notice).encode())
    responses[ROOT + catalogue.SPOT_TERMINATION_TIME] = Record(b"2026-11-29T12:00:00Z")
    _add_entries(responses, ROOT + catalogue.SPOT, ["instance-action", "termination-time"])
    responses[ROOT + catalogue.REBALANCE] = Record(
        b'{"noticeTime": "2026-11-29T11:58:00Z"}')
    _add_entries(responses, "/latest/meta-data/events/recommendations/", ["rebalance"])
    _add_entries(responses, "/latest/meta-data/events/", ["recommendations/"])
    _add_entries(responses, ROOT + catalogue.META_DATA, ["spot/", "events/", "tags/"])
    return Snapshot(responses)
