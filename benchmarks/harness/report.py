"""Statistics over rounds, ratios against a named peer, tables and JSON.

A suite measures each client in N rounds and reports one figure per client:
the median round (HTTP/2) or the best round (WebSocket, as ``timeit``
reports its minimum: other work on the machine only ever slows a round
down), with the spread. Ratios compare clients measured in the same run
against one named peer (the WebSocket floor, the minimal HTTP/2 client,
httpx); comparing numbers across runs is what the ratios avoid.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def rounds_summary(rates: Sequence[float], cpu_us: Sequence[float]) -> dict[str, Any]:
    """The best and the median of a figure's rounds, and every round.

    ``value`` is the highest rate, ``cpu_us`` the lowest CPU time per item;
    the medians and the rounds are kept beside them.
    """
    return {
        "value": max(rates),
        "median": statistics.median(rates),
        "rounds": list(rates),
        "cpu_us": min(cpu_us),
        "cpu_us_median": statistics.median(cpu_us),
        "cpu_us_rounds": list(cpu_us),
    }


def ratio(value: float | None, base: float | None) -> float | None:
    """``value / base``, or None when either is missing or ``base`` is 0."""
    if value is None or not base:
        return None
    return value / base


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fmt(value: float) -> str:
    """A figure with about three significant digits (thousands separated)."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def text_table(rows: list[list[str]]) -> str:
    """Aligned columns: the first left-aligned, the others right; a rule
    under the header row."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        first = row[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def list_table(rows: list[list[str]]) -> str:
    """The rows as a reStructuredText list-table (``docs/benchmarks.rst``)."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        lines.append("   * - " + "\n     - ".join(row))
    return "\n".join(lines)


def write_json(path: str, document: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(document, indent=2) + "\n")
