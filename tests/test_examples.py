"""Every program in examples/ runs and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_region_example_against_the_embedded_emulator() -> None:
    out = run("region.py")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ap-northeast-1\n"
    assert "versions: 1.0, " in out.stderr and out.stderr.split("\n")[0].endswith(", latest")
    assert "placement/: availability-zone, availability-zone-id, region" in out.stderr
