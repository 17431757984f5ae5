"""Figures of a benchmark run: repeated measurements, targets, the table and the JSON record.

Every figure is a :class:`Stats` of repeated measurements (median, min and max); a ratio
pairs the i-th run of one side with the i-th run of the other, measured in turn in the same
run, so drift of a shared machine hits both sides alike.
"""

from __future__ import annotations

import json
import operator
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Row", "Stats", "Target", "format_table", "ratio", "write_json"]


@dataclass(frozen=True)
class Stats:
    """Repeated measurements of one figure."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> Stats:
        """Stats of ``values`` (at least one)."""
        vals = tuple(values)
        if not vals:
            raise ValueError("no measurement")
        return cls(vals)

    @property
    def median(self) -> float:
        """The median."""
        return float(statistics.median(self.values))

    @property
    def low(self) -> float:
        """The smallest value."""
        return min(self.values)

    @property
    def high(self) -> float:
        """The largest value."""
        return max(self.values)

    def scaled(self, factor: float) -> Stats:
        """Every value times ``factor`` (units: seconds to milliseconds, ...)."""
        return Stats(tuple(v * factor for v in self.values))


def ratio(num: Stats, den: Stats) -> Stats:
    """``num / den`` run by run when both have as many runs, else each ``num`` run over the
    median of ``den``."""
    if len(num.values) == len(den.values):
        return Stats(tuple(a / b for a, b in zip(num.values, den.values, strict=True)))
    mid = den.median
    return Stats(tuple(a / mid for a in num.values))


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "<": operator.lt, "==": operator.eq}


@dataclass(frozen=True)
class Target:
    """A goal for the median of a figure, ``median OP value`` (``>= 8``)."""

    op: str
    value: float

    def met(self, stats: Stats) -> bool:
        """Whether the median meets the goal."""
        return _OPS[self.op](stats.median, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure, its unit, and its target if it has one."""

    scenario: str
    name: str
    stats: Stats
    unit: str
    target: Target | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        """Whether the target is met; ``None`` without a target."""
        return None if self.target is None else self.target.met(self.stats)


def _num(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_table(rows: list[Row]) -> str:
    """A Markdown table: targets first (ratios and counts), then the other figures."""
    lines = ["| scenario | figure | median | spread (min-max) | n | target | met |",
             "|---|---|---|---|---|---|---|"]
    ordered = sorted(rows, key=lambda r: (r.target is None, r.scenario))
    for r in ordered:
        s = r.stats
        unit = "x" if r.unit == "x" else f" {r.unit}"
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        target = "" if r.target is None else f"{r.target}{'' if r.unit == 'x' else ' '}{r.unit}"
        name = r.name + (f" ({r.note})" if r.note else "")
        lines.append(
            f"| {r.scenario} | {name} | {_num(s.median)}{unit} | "
            f"{_num(s.low)}-{_num(s.high)} | {len(s.values)} | {target} | {met} |")
    return "\n".join(lines)


def write_json(rows: list[Row], path: Path, meta: dict[str, Any],
               details: list[dict[str, Any]]) -> None:
    """Write the run's rows (every value, median, min, max, target, met), ``meta`` and the
    scenario details (scenario a's per-tree lines)."""
    doc = {"meta": meta, "details": details, "rows": [
        {"scenario": r.scenario, "name": r.name, "unit": r.unit, "note": r.note,
         "median": r.stats.median, "min": r.stats.low, "max": r.stats.high,
         "values": list(r.stats.values),
         "target": None if r.target is None else str(r.target), "met": r.met}
        for r in rows]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
