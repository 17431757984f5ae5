"""The bundled default metadata tree the emulator serves when given no snapshot."""

from __future__ import annotations

import functools
from importlib import resources

from ..snapshot import Snapshot

__all__ = ["default_snapshot"]


@functools.lru_cache(maxsize=1)
def default_snapshot() -> Snapshot:
    """The bundled default tree, a :class:`~aioimds.snapshot.Snapshot` (``imds-snapshot/1``).

    Loaded from ``aioimds/emulator/data/default.snapshot.json`` with :mod:`importlib.resources`.

    A made-up on-demand ``t3.micro`` in ``ap-northeast-1a`` (AZ id ``apne1-az4``) with every
    top-level category of the EC2 user guide's "Instance metadata categories": two network
    interfaces, an IAM role, tags in metadata, one public key, gzip-compressed user-data and the
    instance identity document. Addresses come from the documentation ranges (RFC 5737,
    RFC 3849) and the VPC's 10.0.0.0/16; credentials are obviously fake. The identity
    document's ``pkcs7``, ``signature`` and ``rsa2048`` are placeholders, not real signatures.
    The snapshot is immutable, so one cached instance is shared.
    """
    data = resources.files("aioimds.emulator").joinpath("data").joinpath("default.snapshot.json")
    return Snapshot.loads(data.read_bytes())
