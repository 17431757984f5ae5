"""A faithful IMDS server (aiohttp.web) that serves a snapshot, with fault injection.

``async with Emulator() as emu:`` serves the bundled default tree on ``emu.url``.
"""

from .default import default_snapshot
from .faults import Counters, Faults, PathFault, TraceEntry
from .server import Emulator

__all__ = ["Counters", "Emulator", "Faults", "PathFault", "TraceEntry", "default_snapshot"]
