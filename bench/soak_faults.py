"""Soak: 100 CLI dumps of the default tree from a faulty emulator (issue: resilience).

The emulator (a separate ``aioimds serve`` process) answers 10% of GETs with 5xx, closes 5% of
connections without an answer and throttles to 200 requests/s. Each dump is
``aioimds --endpoint URL dump --format snapshot --include-secrets`` with default settings.
Every dump must either equal the fault-free snapshot (exit 0) or exit 1 naming its failed
paths; a dump that exits 0 with a different snapshot is "silently incomplete" and must never
happen. Bounded: stops after 100 dumps or 120 s.

    python -m bench.soak_faults [--dumps 100] [--seconds 120]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from aioimds import Snapshot
from aioimds.emulator import default_snapshot

from .server import served

FAULTS = ["--error-rate", "0.1", "--drop-rate", "0.05", "--throttle-rps", "200", "--seed", "7"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dumps", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=120.0)
    args = ap.parse_args()
    clean = default_snapshot().subtree("/latest/")
    equal = failed_named = silent = other = 0
    env = {**os.environ, "AWS_CONFIG_FILE": os.devnull}
    start = time.monotonic()
    with served(*FAULTS) as url:
        for i in range(args.dumps):
            if time.monotonic() - start > args.seconds:
                print(f"stopped after {i} dumps: time bound reached", file=sys.stderr)
                break
            out = subprocess.run(
                [sys.executable, "-m", "aioimds", "--endpoint", url, "dump", "--format",
                 "snapshot", "--include-secrets"], capture_output=True, env=env, timeout=60,
                check=False)
            if out.returncode == 0:
                if Snapshot.loads(out.stdout) == clean:
                    equal += 1
                else:
                    silent += 1
            elif out.returncode == 1 and b"aioimds: /latest/" in out.stderr:
                failed_named += 1
                print(out.stderr.decode().strip(), file=sys.stderr)
            else:
                other += 1
                print(out.stderr.decode().strip(), file=sys.stderr)
    total = equal + failed_named + silent + other
    elapsed = time.monotonic() - start
    print(f"dumps: {total} in {elapsed:.1f} s; equal to the fault-free snapshot: {equal}; "
          f"exit 1 naming failed paths: {failed_named}; silently incomplete: {silent}; "
          f"other outcomes: {other}")
    return 0 if silent == 0 and other == 0 and equal >= 0.95 * total else 1


if __name__ == "__main__":
    raise SystemExit(main())
