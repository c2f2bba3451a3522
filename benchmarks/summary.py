"""The summary tables of ``docs/benchmarks.rst``, from one run's JSON files.

Usage (from the repository root)::

    python -m benchmarks.websocket --only trio_upgrade --only websockets-asyncio \\
        --only aiohttp --only picows --json websocket.json
    python -m benchmarks.http2 --server h2o --json http2.json
    python -m benchmarks.callgrind --json callgrind.json
    python -m benchmarks.summary --websocket websocket.json --http2 http2.json \\
        --callgrind callgrind.json --output docs/benchmarks-summary.inc

The output is reStructuredText that ``docs/benchmarks.rst`` includes: one
table per protocol, a row per figure, each client's figure as a ratio to the
floor measured in the same run (the ``raw-trio`` client for WebSocket, the
minimal Trio + h2 client for HTTP/2), beside the floor's absolute figure and
the target of issue 13; then the client CPU time per operation as a ratio
to the floor's, the instruction counts per operation, and when, where and
with which commands the numbers were taken. ``--note TEXT`` adds a sentence
(say, that the machine was busy). Any of the three inputs may be left out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from .harness.report import fmt, ratio

#: The WebSocket clients of the summary, in its column order.
WS_CLIENTS = [
    ("trio_upgrade", "trio_upgrade"),
    ("websockets-asyncio", "websockets (asyncio)"),
    ("aiohttp", "aiohttp"),
    ("picows", "picows"),
]
WS_FLOOR = "raw-trio"


class Target:
    """A target of issue 13: a ratio to reach, peers to be ahead of."""

    def __init__(
        self,
        text: str,
        *,
        at_least: float | None = None,
        ahead_of: tuple[str, ...] = (),
        cpu_at_most: float | None = None,
    ) -> None:
        self.text = text
        self.at_least = at_least
        self.ahead_of = ahead_of
        self.cpu_at_most = cpu_at_most

    def met(self, ratios: dict[str, float | None], cpu: dict[str, float | None]) -> str:
        """``yes``, ``no``, or ``-`` when a figure it needs is missing."""
        mine = ratios.get("trio_upgrade")
        checks: list[bool] = []
        if self.at_least is not None:
            if mine is None:
                return "-"
            checks.append(mine >= self.at_least)
        for peer in self.ahead_of:
            theirs = ratios.get(peer)
            if mine is None or theirs is None:
                return "-"
            checks.append(mine > theirs)
        if self.cpu_at_most is not None:
            mine_cpu = cpu.get("trio_upgrade")
            if mine_cpu is None:
                return "-"
            checks.append(mine_cpu <= self.cpu_at_most)
        if not checks:
            return "-"
        return "yes" if all(checks) else "no"


ALL_WS_PEERS = ("websockets-asyncio", "aiohttp", "picows")
WS_TARGETS = {
    "handshake": Target("≥ 0.85, ahead of all", at_least=0.85, ahead_of=ALL_WS_PEERS),
    "echo16": Target("≥ 1.0, ahead of all", at_least=1.0, ahead_of=ALL_WS_PEERS),
    "pipelined16": Target(
        "≥ 2.0, ahead of websockets",
        at_least=2.0,
        ahead_of=("websockets-asyncio",),
    ),
    "echo1m": Target(
        "client CPU ≤ 1.3x the floor's, ahead of websockets and aiohttp",
        ahead_of=("websockets-asyncio", "aiohttp"),
        cpu_at_most=1.3,
    ),
    "memory_rss": Target(
        "≤ 9.5 KiB as issue 13 measures it (a bare Trio socket is 7.8 KiB there)"
    ),
}
H2_TARGETS = {
    "rps": Target("≥ 1.2 and ≥ 5x httpx", at_least=1.2),
    "hps": Target("≥ 0.95", at_least=0.95),
    "mbps": Target("≥ 1.0", at_least=1.0),
}
H2_REFERENCE = {"rps": "minimal", "hps": "minimal-h2c", "mbps": "minimal"}
H2_TRIO_UPGRADE = {
    "rps": ("trio_upgrade", "trio_upgrade-h2c"),
    "hps": ("trio_upgrade-h2c",),
    "mbps": ("trio_upgrade", "trio_upgrade-h2c"),
}
H2_TITLES = {
    "rps": "16 B GETs, 100 in flight, req/s",
    "hps": "h2c upgrade handshakes/s",
    "mbps": "64 KiB GETs, 100 in flight, GETs/s",
}


def show(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def list_table(rows: list[list[str]], widths: str | None = None) -> str:
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {widths}")
    lines.append("")
    for row in rows:
        lines.append("   * - " + "\n     - ".join(cell or "\\" for cell in row))
    return "\n".join(lines)


def when_where(document: dict[str, Any]) -> str:
    """The date, the machine and the load of one suite's run, in a sentence."""
    box = document.get("machine", {})
    date = document.get("date", "?")
    try:
        stamp = datetime.datetime.fromisoformat(date).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        stamp = date
    load = box.get("load_average") or [0.0]
    library = document.get("trio_upgrade") or {}
    return (
        f"{stamp}, {box.get('cpus', '?')} CPUs ({box.get('cpu', '?')}), "
        f"Linux {box.get('kernel', '?')}, Python {box.get('python', '?')}; "
        f"1-minute load average {load[0]:.1f} at the start; trio_upgrade at "
        f"git {library.get('git', '?')}"
    )


def command(document: dict[str, Any], module: str) -> str:
    """The suite's command line, output files named without their folder."""
    argv = [a for a in document.get("argv", [])[1:] if a]
    argv = [
        Path(a).name if n and argv[n - 1] == "--json" else a for n, a in enumerate(argv)
    ]
    return "python -m " + module + (" " + shlex.join(argv) if argv else "")


# ---------------------------------------------------------------- WebSocket --


def ws_value(document: dict[str, Any], client: str, key: str, field: str) -> Any:
    return document["results"].get(client, {}).get(key, {}).get(field)


def websocket_rows(
    results: dict[str, Any], clients: list[str] | None = None
) -> tuple[list[list[str]], list[list[str]]]:
    """The summary rows: a figure per row, the clients' ratios to the floor
    (memory in KiB); then the client CPU per operation over the floor's.

    ``results`` is the ``results`` of ``python -m benchmarks.websocket
    --json``; ``clients`` the columns (default: :data:`WS_CLIENTS` present).
    """
    from .websocket.figures import FIGURES

    document = {"results": results}
    titles = dict(WS_CLIENTS)
    present = clients or [c for c, _ in WS_CLIENTS if c in results]
    names = [titles.get(c, c) for c in present]
    rows = [["figure", "floor (abs)", *names, "target", "met"]]
    cpu_rows = [["client CPU per operation", "floor (µs)", *names]]
    for key, figure in FIGURES.items():
        floor = ws_value(document, WS_FLOOR, key, "value")
        if floor is None:
            continue
        target = WS_TARGETS.get(key, Target(""))
        if figure.higher_is_better:
            ratios = {
                c: ratio(ws_value(document, c, key, "value"), floor) for c in present
            }
            floor_cpu = ws_value(document, WS_FLOOR, key, "cpu_us")
            cpus = {
                c: ratio(ws_value(document, c, key, "cpu_us"), floor_cpu)
                for c in present
            }
            rows.append(
                [
                    f"{figure.title} ({figure.unit})",
                    fmt(floor),
                    *(show(ratios[c]) for c in present),
                    target.text,
                    target.met(ratios, cpus),
                ]
            )
            if floor_cpu is not None:
                cpu_rows.append(
                    [
                        f"{figure.title} (per {figure.cpu_per})",
                        fmt(floor_cpu),
                        *(f"{show(cpus[c])}x" for c in present),
                    ]
                )
        else:  # memory: KiB per connection, absolute (a ratio would be noise)
            values = [ws_value(document, c, key, "value") for c in present]
            rows.append(
                [
                    f"{figure.title} (KiB)",
                    fmt(floor),
                    *("-" if v is None else fmt(v) for v in values),
                    target.text,
                    "-",
                ]
            )
    return rows, cpu_rows


def websocket_tables(document: dict[str, Any]) -> str:
    rows, cpu_rows = websocket_rows(document["results"])
    skipped = document.get("skipped") or {}
    out = [
        "Each cell is the client's figure divided by the floor's in the same run "
        "(above 1 is faster than the floor), except memory, in KiB per idle "
        "connection. Measured " + when_where(document) + ".",
        "",
        list_table(rows),
        "",
        "Client CPU time per operation (``process_time`` of the client process), "
        "as a multiple of the floor's (below 1 is cheaper than the floor):",
        "",
        list_table(cpu_rows),
        "",
        "Command: ``" + command(document, "benchmarks.websocket") + "``.",
    ]
    if skipped:
        out += ["", "Skipped: " + "; ".join(f"{c}: {r}" for c, r in skipped.items())]
    return "\n".join(out)


# ------------------------------------------------------------------- HTTP/2 --


def http2_tables(document: dict[str, Any]) -> str:
    found: dict[tuple[str, str], dict[str, Any]] = {
        (row["figure"], row["client"]): row
        for row in document["results"]
        if row.get("ok")
    }
    figures = list(dict.fromkeys(row["figure"] for row in document["results"]))
    rows = [
        [
            "figure",
            "floor (abs)",
            "trio_upgrade, prior knowledge",
            "trio_upgrade, after h2c",
            "httpx",
            "trio_upgrade ÷ httpx",
            "target",
            "met",
        ]
    ]
    for key in figures:
        reference = H2_REFERENCE.get(key)
        floor = found.get((key, reference or ""), {}).get("rate")
        if floor is None:
            continue
        mine = [
            ratio(found.get((key, c), {}).get("rate"), floor)
            for c in ("trio_upgrade", "trio_upgrade-h2c")
        ]
        httpx = found.get((key, "httpx"), {}).get("rate")
        best = max((r for r in mine if r is not None), default=None)
        versus_httpx = ratio(None if best is None else best * floor, httpx)
        target = H2_TARGETS.get(key, Target(""))
        met = target.met(
            {"trio_upgrade": min((r for r in mine if r), default=None)}, {}
        )
        if key == "rps" and met == "yes" and (versus_httpx or 0) < 5:
            met = "no"
        rows.append(
            [
                H2_TITLES.get(key, key),
                fmt(floor),
                show(mine[0]),
                show(mine[1]),
                show(ratio(httpx, floor)),
                "-" if versus_httpx is None else f"{versus_httpx:.1f}x",
                target.text,
                met,
            ]
        )
    cpu_rows = [
        [
            "client CPU per request (handshake)",
            "floor (µs)",
            "trio_upgrade, prior knowledge",
            "trio_upgrade, after h2c",
            "httpx",
        ]
    ]
    for key in figures:
        floor_cpu = found.get((key, H2_REFERENCE.get(key, "")), {}).get("cpu_us")
        if not floor_cpu:
            continue
        cells = [
            ratio(found.get((key, c), {}).get("cpu_us"), floor_cpu)
            for c in ("trio_upgrade", "trio_upgrade-h2c", "httpx")
        ]
        cpu_rows.append(
            [
                H2_TITLES.get(key, key),
                fmt(floor_cpu),
                *("-" if c is None else f"{c:.2f}x" for c in cells),
            ]
        )
    server = document.get("server", "?")
    streams = document.get("server_max_concurrent_streams", "?")
    return "\n".join(
        [
            f"Against {server} ({streams} streams at once); each cell is the "
            "client's rate divided by the minimal Trio + h2 client's in the same "
            "run (median of interleaved rounds). Measured "
            + when_where(document)
            + ".",
            "",
            list_table(rows),
            "",
            "Client CPU time per request (or handshake), as a multiple of the "
            "minimal client's: background load moves it much less than the "
            "rates.",
            "",
            list_table(cpu_rows),
            "",
            "Command: ``" + command(document, "benchmarks.http2") + "``.",
        ]
    )


# ---------------------------------------------------------------- callgrind --


def callgrind_table(document: dict[str, Any]) -> str:
    rows = [["operation", "instructions per operation"]]
    for found in document["operations"].values():
        rows.append([found["title"], f"{found['instructions']:,}"])
    versions = ", ".join(
        f"{dist} {version}"
        for dist, version in document.get("versions", {}).items()
        if version
    )
    return "\n".join(
        [
            "Instruction counts of the client alone (``valgrind --tool=callgrind``; "
            "repeatable on a busy machine), taken "
            f"{document.get('date', '?')} at commit {document.get('commit', '?')} "
            f"with Python {document.get('python', '?')} and {versions}"
            + ("" if document.get("speedups", True) else ", fast paths off")
            + ":",
            "",
            list_table(rows, "70 30"),
            "",
            "Command: ``python -m benchmarks.callgrind`` (``nox -s callgrind`` "
            "compares with ``benchmarks/callgrind/baseline.json``).",
        ]
    )


# -------------------------------------------------------------------- main --


def render(
    websocket: dict[str, Any] | None,
    http2: dict[str, Any] | None,
    callgrind: dict[str, Any] | None,
    note: str | None,
) -> str:
    parts = [
        "..",
        "   Generated by python -m benchmarks.summary; edit that, not this.",
        "",
    ]
    if note:
        parts += [note, ""]
    for title, document, render_part in (
        ("WebSocket", websocket, websocket_tables),
        ("HTTP/2", http2, http2_tables),
        ("Instructions per operation", callgrind, callgrind_table),
    ):
        if document is None:
            continue
        parts += [title, "-" * len(title), "", render_part(document), ""]
    return "\n".join(parts)


def load(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.summary",
        description="The summary tables of docs/benchmarks.rst from one run's JSON.",
    )
    parser.add_argument(
        "--websocket", metavar="JSON", help="python -m benchmarks.websocket --json"
    )
    parser.add_argument(
        "--http2", metavar="JSON", help="python -m benchmarks.http2 --json"
    )
    parser.add_argument(
        "--callgrind", metavar="JSON", help="python -m benchmarks.callgrind --json"
    )
    parser.add_argument("--note", help="a sentence put above the tables")
    parser.add_argument("--output", "-o", metavar="PATH", help="write here, not stdout")
    args = parser.parse_args(argv)
    if not (args.websocket or args.http2 or args.callgrind):
        parser.error("give at least one of --websocket, --http2, --callgrind")
    text = render(
        load(args.websocket), load(args.http2), load(args.callgrind), args.note
    )
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
