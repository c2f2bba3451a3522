"""Compare WebSocket clients against one Node ``ws`` echo server, in one run.

Usage (from the repository root, in a venv with the bench dependencies)::

    python benchmarks/ws_bench.py                 # full run, about 2.5 minutes
    python benchmarks/ws_bench.py --quick         # smoke run, about 20 s
    python benchmarks/ws_bench.py --only trio_upgrade --json out.json

Figures: handshakes/s (connect, upgrade, close, one after another), 16-byte
echo round trips/s, pipelined 16-byte messages/s (one task sends K messages
back to back while another receives the K echoes), 1 MiB binary echo MB/s,
and memory per idle connection with 1,000 open (RSS delta, and tracemalloc's
traced delta in another process). Each client runs each figure in a fresh
subprocess; by default the server and the client share CPU 0 (``--cpus``).
The raw floor (``raw-trio``: pre-built handshake and frames on a bare Trio
socket) is the denominator of every ratio; the client CPU time per operation
is reported too. Methodology: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INTEROP = ROOT / "tests" / "interop"
sys.path.insert(0, str(INTEROP))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from wsbench.figures import (  # noqa: E402
    CLIENTS,
    FIGURES,
    FLOOR,
    MEMORY,
    RESULT_PREFIX,
    TIMED,
    Params,
    params_dict,
    raise_fd_limit,
    run_worker,
)

FULL = Params()  # see Params for the numbers
QUICK = Params(warmup=0.05, rounds=1, duration=0.2, pipeline=200, connections=100)
# A short run of the floor before the measurements: Node's JIT warms up.
SERVER_WARMUP = Params(warmup=0.3, rounds=1, duration=0.3, pipeline=1000)
WORKER_TIMEOUT = 90.0
#: Where the server and the clients run (``--cpus``): CPU sets, or None
#: for wherever the kernel puts them. "shared" is the default because it is
#: the steady one: on this kind of machine (2 vCPUs) a cross-CPU wake-up
#: costs tens of microseconds, and Node's GC helper threads pinned beside
#: its main thread give handshakes multi-millisecond stalls, so "split"
#: mostly measures the machine; "free" depends on where the scheduler
#: happens to put each process. Sharing one CPU, each round trip costs the
#: client's CPU time plus the server's, which is constant across clients.
CPU_MODES: dict[str, tuple[set[int] | None, set[int] | None]] = {
    "shared": ({0}, {0}),
    "split": ({1}, {0}),
    "free": (None, None),
}

Results = dict[str, dict[str, dict[str, Any]]]


# ------------------------------------------------------------------ running --


def run_subprocess(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one worker (``--worker SPEC``) and return what it printed."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()  # our own child, by its PID
        proc.communicate()
        return {"error": f"worker timed out after {WORKER_TIMEOUT:.0f} s"}
    for line in out.splitlines():
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    tail = (err.strip().splitlines() or ["(no output)"])[-1]
    return {"error": f"worker exited with {proc.returncode}: {tail}"}


def pin_server(pid: int, cpus: set[int]) -> None:
    """Pin every thread of the server (libuv pool, GC helpers) to ``cpus``."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), cpus)


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


class Run:
    def __init__(
        self,
        clients: list[str],
        figures: list[str],
        params: Params,
        quick: bool,
        host: str,
        port: int,
        cpus: set[int] | None,
    ) -> None:
        self.clients = clients
        self.figures = figures
        self.params = params
        self.quick = quick
        self.host = host
        self.port = port
        self.cpus = cpus
        self.results: Results = {name: {} for name in clients}
        self.skipped: dict[str, str] = {}

    def spec(self, client: str, figures: list[str], params: Params) -> dict[str, Any]:
        return {
            "client": client,
            "figures": figures,
            "host": self.host,
            "port": self.port,
            "params": params_dict(params),
            "cpus": sorted(self.cpus) if self.cpus is not None else None,
        }

    def one(self, client: str, figures: list[str]) -> None:
        if client in self.skipped:
            return
        result = run_subprocess(self.spec(client, figures, self.params))
        if "skipped" in result:
            self.skipped[client] = result["skipped"]
            print(f"  {client:<19} SKIPPED: {result['skipped']}", flush=True)
            return
        if "error" in result:
            per_figure = {key: {"error": result["error"]} for key in figures}
        else:
            per_figure = result["figures"]
        for key in figures:
            outcome = per_figure[key]
            self.results[client][key] = outcome
            figure = FIGURES[key]
            shown = (
                f"{fmt(outcome['value'])} {figure.unit}"
                if "value" in outcome
                else f"ERROR: {outcome['error']}"
            )
            print(f"  {figure.title:<21} {client:<19} {shown}", flush=True)

    def warm_server(self) -> None:
        timed = [f for f in TIMED if f in self.figures]
        if timed:
            run_subprocess(self.spec(FLOOR, timed, SERVER_WARMUP))

    def run(self) -> None:
        timed = [f for f in TIMED if f in self.figures]
        memory = [f for f in MEMORY if f in self.figures]
        if self.quick:
            # Smoke run: one process per client for the timed figures.
            for client in self.clients:
                if timed:
                    self.one(client, timed)
        else:
            # Figure by figure, so that every client of a figure meets the
            # server in the same state (warm, same uptime).
            for key in timed:
                for client in self.clients:
                    self.one(client, [key])
        if self.quick and memory:
            # Smoke run: both memory figures in one process per client
            # (tracemalloc counts only what is allocated after it starts).
            for client in self.clients:
                self.one(client, memory)
            return
        for key in memory:  # one fresh process per client and figure
            for client in self.clients:
                self.one(client, [key])


# ------------------------------------------------------------------ report --


def ratio(results: Results, client: str, key: str) -> float | None:
    mine = results.get(client, {}).get(key, {}).get("value")
    floor = results.get(FLOOR, {}).get(key, {}).get("value")
    if mine is None or not floor:
        return None
    return float(mine) / float(floor)


def cell(results: Results, client: str, key: str, skipped: dict[str, str]) -> str:
    if client in skipped:
        return "skipped"
    outcome = results.get(client, {}).get(key)
    if outcome is None:
        return "-"
    if "value" not in outcome:
        return "error"
    return fmt(float(outcome["value"]))


def difference(results: Results, client: str, key: str) -> float | None:
    mine = results.get(client, {}).get(key, {}).get("value")
    floor = results.get(FLOOR, {}).get(key, {}).get("value")
    if mine is None or floor is None:
        return None
    return float(mine) - float(floor)


def relative(results: Results, client: str, key: str) -> str | None:
    """Speed: the ratio to the floor; memory: KiB more than the floor's.

    A ratio of memory would divide by the floor's few hundred bytes (its RSS
    delta is often a page or two for 1,000 connections): noise, not a figure.
    """
    if FIGURES[key].higher_is_better:
        r = ratio(results, client, key)
        return None if r is None else f"{r:.2f}"
    d = difference(results, client, key)
    return None if d is None else f"{d:+.1f}"


def ratio_cell(results: Results, client: str, key: str) -> str:
    return relative(results, client, key) or "-"


def headers(figures: list[str]) -> list[str]:
    return [f"{FIGURES[k].title} ({FIGURES[k].unit})" for k in figures]


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        first = row[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cpu_cell(results: Results, client: str, key: str) -> str:
    cpu = results.get(client, {}).get(key, {}).get("cpu_us")
    return "-" if cpu is None else fmt(float(cpu))


def tables(run: Run) -> tuple[str, str, str]:
    figures = [f for f in FIGURES if f in run.figures]
    timed = [f for f in figures if FIGURES[f].cpu_per]
    absolute = [["client", *headers(figures)]]
    ratios = [["client", *headers(figures)]]
    cpu = [
        ["client", *(f"{FIGURES[k].title} (per {FIGURES[k].cpu_per})" for k in timed)]
    ]
    for client in run.clients:
        absolute.append(
            [client, *(cell(run.results, client, k, run.skipped) for k in figures)]
        )
        ratios.append([client, *(ratio_cell(run.results, client, k) for k in figures)])
        cpu.append([client, *(cpu_cell(run.results, client, k) for k in timed)])
    return text_table(absolute), text_table(ratios), text_table(cpu)


def _list_table(rows: list[list[str]]) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {text}" for text in row[1:])
    return lines


def rst_tables(run: Run) -> str:
    """The results as RST list-tables: ``value (relative to the floor)``,
    then the client CPU time per operation."""
    figures = [f for f in FIGURES if f in run.figures]
    timed = [f for f in figures if FIGURES[f].cpu_per]
    rows = [["client", *headers(figures)]]
    cpu = [
        [
            "client",
            *(f"{FIGURES[k].title} (µs per {FIGURES[k].cpu_per})" for k in timed),
        ]
    ]
    for client in run.clients:
        row = [client]
        for key in figures:
            text = cell(run.results, client, key, run.skipped)
            rel = relative(run.results, client, key)
            if rel is not None and client != FLOOR:
                text += f" ({rel})"
            row.append(text)
        rows.append(row)
        cpu.append([client, *(cpu_cell(run.results, client, k) for k in timed)])
    return "\n".join([*_list_table(rows), "", *_list_table(cpu)])


def source_state() -> str | None:
    """The trio_upgrade source measured: commit, ``+dirty``, content digest.

    The digest identifies uncommitted work too (the WebSocket client was
    being written while these benchmarks were).
    """
    package = ROOT / "trio_upgrade"
    if not package.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0")
        digest.update(path.read_bytes())
    state = f"sha256:{digest.hexdigest()[:12]}"
    git = shutil.which("git")
    if git:
        head = subprocess.run(
            [git, "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        )
        dirty = subprocess.run(
            [git, "-C", str(ROOT), "status", "--porcelain", "--", "trio_upgrade"],
            capture_output=True,
            text=True,
        )
        if head.returncode == 0:
            mark = "+dirty" if dirty.stdout.strip() else ""
            state = f"{head.stdout.strip()}{mark} {state}"
    return state


def versions(clients: list[str]) -> dict[str, str]:
    from wsbench.figures import load_client

    found: dict[str, str] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }
    for dist in ("trio", "wsproto", "h11", "trio_upgrade", "httpx", "anyio"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    state = source_state()
    if state:
        found["trio_upgrade source"] = state
    for client in clients:
        try:
            dist = load_client(client).dist
            found[dist] = importlib.metadata.version(dist)
        except (ImportError, importlib.metadata.PackageNotFoundError):
            continue
    node = shutil.which("node")
    if node:
        out = subprocess.run([node, "--version"], capture_output=True, text=True)
        found["node"] = out.stdout.strip()
    ws_package = INTEROP / "node" / "node_modules" / "ws" / "package.json"
    with contextlib.suppress(OSError, ValueError):
        found["ws (node)"] = json.loads(ws_package.read_text())["version"]
    return found


# -------------------------------------------------------------------- main --


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="WebSocket client benchmark against Node's ws echo server."
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: short rounds, 100 conns"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        choices=list(CLIENTS),
        help=f"run this client (repeatable; {FLOOR} always runs): "
        + ", ".join(CLIENTS),
    )
    parser.add_argument(
        "--figure",
        action="append",
        metavar="KEY",
        choices=list(FIGURES),
        help="run this figure (repeatable): " + ", ".join(FIGURES),
    )
    parser.add_argument("--json", metavar="PATH", help="also write results here")
    parser.add_argument(
        "--rst", action="store_true", help="also print the table as RST"
    )
    parser.add_argument(
        "--connections", type=int, help="open connections for the memory figures"
    )
    parser.add_argument(
        "--cpus",
        choices=list(CPU_MODES),
        default="shared",
        help="shared (default): server and client both on CPU 0; split: server"
        " on CPU 1, client on CPU 0; free: no pinning",
    )
    parser.add_argument("--worker", metavar="SPEC", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = run_worker(json.loads(args.worker))
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    import servers  # tests/interop/servers.py

    params = QUICK if args.quick else FULL
    if args.connections:
        params = Params(**{**params_dict(params), "connections": args.connections})
    clients = [c for c in CLIENTS if c == FLOOR or not args.only or c in args.only]
    figures = [f for f in FIGURES if not args.figure or f in args.figure]
    mode = args.cpus
    if mode == "split" and (os.cpu_count() or 1) < 2:
        mode = "shared"
    server_cpus, client_cpus = CPU_MODES[mode]
    # Node inherits this limit: it holds the other end of every connection.
    raise_fd_limit(2 * params.connections + 1024)

    began = time.perf_counter()
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(
            f"note: 1-minute load average {load_before[0]:.2f} at the start;"
            " if something else is running, the numbers will be noisy",
            flush=True,
        )
    try:
        server = servers.node_ws_server(deflate=False)
    except servers.ServerUnavailable as exc:
        print(f"cannot start the Node ws server: {exc}", file=sys.stderr)
        return 2
    with server:
        if server_cpus is not None:
            pin_server(server.pid, server_cpus)
        found = versions(clients)
        print(
            "WebSocket client benchmark: Node ws {} on node {}, CPython {},"
            " {} CPUs, --cpus {} (server {}, clients {})".format(
                found.get("ws (node)", "?"),
                found.get("node", "?"),
                found["python"],
                os.cpu_count(),
                mode,
                sorted(server_cpus) if server_cpus else "any",
                sorted(client_cpus) if client_cpus else "any",
            ),
            flush=True,
        )
        print(f"params: {params_dict(params)}", flush=True)
        print(
            "versions: " + ", ".join(f"{k} {v}" for k, v in found.items()),
            flush=True,
        )
        run = Run(
            clients,
            figures,
            params,
            args.quick,
            server.host,
            server.port,
            client_cpus,
        )
        run.warm_server()
        run.run()
        alive = server.process.poll() is None
    elapsed = time.perf_counter() - began

    absolute, ratios, cpu = tables(run)
    print()
    print("Absolute (higher is better, except memory):")
    print(absolute)
    print()
    print(
        f"Relative to {FLOOR}: speed as a ratio (above 1 is faster),"
        " memory as KiB more per connection:"
    )
    print(ratios)
    print()
    print("Client CPU time, microseconds (process_time; lower is better):")
    print(cpu)
    for client, reason in run.skipped.items():
        print(f"skipped {client}: {reason}")
    for client, per_figure in run.results.items():
        for key, outcome in per_figure.items():
            if "error" in outcome:
                print(f"error {client} {key}: {outcome['error']}")
    if not alive:
        print("warning: the Node server died during the run", file=sys.stderr)
    print(f"total time: {elapsed:.1f} s")
    if args.rst:
        print()
        print(rst_tables(run))
    if args.json:
        document = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "cpu_count": os.cpu_count(),
            "cpu_mode": mode,
            "params": params_dict(params),
            "versions": found,
            "results": run.results,
            "skipped": run.skipped,
            "seconds": elapsed,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
