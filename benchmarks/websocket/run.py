"""Compare WebSocket clients against one Node ``ws`` echo server, in one run.

Usage (from the repository root, in a venv with the bench dependencies)::

    python -m benchmarks.websocket                 # full run, about 2.5 minutes
    python -m benchmarks.websocket --quick         # smoke run, about 20 s
    python -m benchmarks.websocket --only trio_upgrade --json out.json
    python -m benchmarks.websocket --profile trio_upgrade:echo16

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
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .. import servers, summary
from ..harness import cpus, environment, processes, profiler, report
from .figures import (
    CLIENTS,
    FIGURES,
    FLOOR,
    MEMORY,
    TIMED,
    Params,
    params_dict,
    run_worker,
)

MODULE = "benchmarks.websocket"
FULL = Params()  # see Params for the numbers
QUICK = Params(warmup=0.05, rounds=1, duration=0.2, pipeline=200, connections=100)
# A short run of the floor before the measurements: Node's JIT warms up.
SERVER_WARMUP = Params(warmup=0.3, rounds=1, duration=0.3, pipeline=1000)
PROFILE = Params(warmup=0.4, rounds=1, duration=6.0)
WORKER_TIMEOUT = 90.0
#: More seconds per connection of the memory figures: 10,000 connections
#: opened (and traced) on a loaded machine take minutes.
WORKER_TIMEOUT_PER_CONNECTION = 0.03
#: Distributions whose versions the record keeps (besides the clients').
DISTS = ["trio", "wsproto", "h11", "trio_upgrade", "httpx", "anyio"]

Results = dict[str, dict[str, dict[str, Any]]]


# ------------------------------------------------------------------ running --


class Run:
    def __init__(
        self,
        workers: processes.Workers,
        clients: list[str],
        figures: list[str],
        params: Params,
        quick: bool,
        server: servers.RunningServer,
        client_cpus: set[int] | None,
    ) -> None:
        self.workers = workers
        self.clients = clients
        self.figures = figures
        self.params = params
        self.quick = quick
        self.server = server
        self.cpus = client_cpus
        self.results: Results = {name: {} for name in clients}
        self.skipped: dict[str, str] = {}
        self.libraries: list[dict[str, str]] = []

    def worker(
        self,
        client: str,
        figures: list[str],
        params: Params,
        profile: str | None = None,
    ) -> dict[str, Any]:
        spec = {
            "client": client,
            "figures": figures,
            "host": self.server.host,
            "port": self.server.port,
            "params": params_dict(params),
            "profile": profile,
        }
        timeout = WORKER_TIMEOUT
        if any(key in MEMORY for key in figures):
            timeout += WORKER_TIMEOUT_PER_CONNECTION * params.connections
        result = self.workers.run(spec, cpus=self.cpus, timeout=timeout)
        if "library" in result:
            self.libraries.append(result["library"])
        return result

    def one(self, client: str, figures: list[str]) -> None:
        if client in self.skipped:
            return
        result = self.worker(client, figures, self.params)
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
                f"{report.fmt(outcome['value'])} {figure.unit}"
                if "value" in outcome
                else f"ERROR: {outcome['error']}"
            )
            print(f"  {figure.title:<21} {client:<19} {shown}", flush=True)

    def warm_server(self) -> None:
        timed = [f for f in TIMED if f in self.figures]
        if timed:
            self.worker(FLOOR, timed, SERVER_WARMUP)

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


def value(results: Results, client: str, key: str) -> float | None:
    found = results.get(client, {}).get(key, {}).get("value")
    return None if found is None else float(found)


def relative(results: Results, client: str, key: str) -> str | None:
    """Speed: the ratio to the floor; memory: KiB more than the floor's.

    A ratio of memory would divide by the floor's few hundred bytes (its RSS
    delta is often a page or two for 1,000 connections): noise, not a figure.
    """
    mine, floor = value(results, client, key), value(results, FLOOR, key)
    if FIGURES[key].higher_is_better:
        ratio = report.ratio(mine, floor)
        return None if ratio is None else f"{ratio:.2f}"
    if mine is None or floor is None:
        return None
    return f"{mine - floor:+.1f}"


def cell(results: Results, client: str, key: str, skipped: dict[str, str]) -> str:
    if client in skipped:
        return "skipped"
    outcome = results.get(client, {}).get(key)
    if outcome is None:
        return "-"
    if "value" not in outcome:
        return "error"
    return report.fmt(float(outcome["value"]))


def cpu_cell(results: Results, client: str, key: str) -> str:
    cpu = results.get(client, {}).get(key, {}).get("cpu_us")
    return "-" if cpu is None else report.fmt(float(cpu))


def headers(figures: list[str]) -> list[str]:
    return [f"{FIGURES[k].title} ({FIGURES[k].unit})" for k in figures]


def table_rows(run: Run) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """Absolute figures, figures relative to the floor, CPU per operation."""
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
        ratios.append(
            [client, *(relative(run.results, client, k) or "-" for k in figures)]
        )
        cpu.append([client, *(cpu_cell(run.results, client, k) for k in timed)])
    return absolute, ratios, cpu


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
    return report.list_table(rows) + "\n\n" + report.list_table(cpu)


def tools() -> dict[str, str]:
    found = {"node": environment.tool_version(["node", "--version"])}
    ws_package = servers.NODE_DIR / "node_modules" / "ws" / "package.json"
    try:
        found["ws (node)"] = json.loads(ws_package.read_text())["version"]
    except (OSError, ValueError, KeyError):
        found["ws (node)"] = "?"
    return found


def client_dists(clients: list[str]) -> list[str]:
    """The distributions of the clients (read from the adapters, not imported)."""
    from .figures import load_client

    dists = []
    for client in clients:
        try:
            dist = load_client(client).dist
        except ImportError:
            continue
        if dist and dist not in DISTS:
            dists.append(dist)
    return dists


# -------------------------------------------------------------------- main --


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.websocket",
        description="WebSocket client benchmark against Node's ws echo server.",
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
        choices=cpus.CPU_MODES,
        default="shared",
        help="shared (default): server and client both on CPU N; split: server"
        " on CPU N, client on the next; free: no pinning",
    )
    parser.add_argument(
        "--cpu", type=int, default=0, metavar="N", help="the CPU N of --cpus"
    )
    parser.add_argument(
        "--profile",
        metavar="CLIENT:FIGURE",
        help="instead of the tables: one 6 s round of CLIENT's timed FIGURE "
        "under a profiler; prints where its CPU time goes",
    )
    parser.add_argument(
        "--profiler",
        choices=profiler.PROFILERS,
        default="sample",
        help="the profiler of --profile (default sample; cprofile keeps its "
        "stats in ws-CLIENT-FIGURE.pstats)",
    )
    parser.add_argument("--worker", metavar="SPEC", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def profile_client(run: Run, target: str, mode: str) -> int:
    client, _, figure = target.partition(":")
    figure = figure or "echo16"
    if client not in CLIENTS or figure not in TIMED:
        print(
            f"--profile takes CLIENT:FIGURE with a client of {', '.join(CLIENTS)} "
            f"and a figure of {', '.join(TIMED)}, not {target!r}",
            file=sys.stderr,
        )
        return 2
    path = str(Path(f"ws-{client}-{figure}.pstats").resolve())
    result = run.worker(
        client, [figure], PROFILE, profile="sample" if mode == "sample" else path
    )
    outcome = result.get("figures", {}).get(figure, {})
    if "value" not in outcome:
        print(f"{client} failed: {result.get('skipped') or outcome or result}")
        return 1
    unit = FIGURES[figure]
    print(
        f"{client} ({figure}): {report.fmt(outcome['value'])} {unit.unit} under "
        f"{mode} ({outcome['cpu_us']:.1f} us CPU per {unit.cpu_per})"
    )
    if result.get("profile") is not None:
        profiler.print_samples(result["profile"], outcome["cpu_us"], unit="op")
    else:
        profiler.print_cprofile(path)
        print(f"(stats kept in {path})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return processes.serve(args.worker, run_worker)

    params = QUICK if args.quick else FULL
    if args.connections:
        params = Params(**{**params_dict(params), "connections": args.connections})
    clients = [c for c in CLIENTS if c == FLOOR or not args.only or c in args.only]
    figures = [f for f in FIGURES if not args.figure or f in args.figure]
    if args.cpu not in cpus.allowed():
        print(f"--cpu takes one of {sorted(cpus.allowed())}", file=sys.stderr)
        return 2
    server_cpus, client_cpus = cpus.placement(args.cpus, args.cpu)
    # Node inherits this limit: it holds the other end of every connection.
    processes.raise_fd_limit(2 * params.connections + 1024)

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
    except (servers.ServerUnavailable, servers.ServerStartError) as exc:
        print(f"cannot start the Node ws server: {exc}", file=sys.stderr)
        return 2
    with server, processes.Workers(MODULE) as workers:
        cpus.pin_group(server.pgid, server_cpus)
        found = environment.record(
            DISTS + client_dists(clients), tools(), workers.library()
        )
        print(
            "WebSocket client benchmark: Node ws {} on node {}, --cpus {} "
            "(server {}, clients {})".format(
                found["tools"]["ws (node)"],
                found["tools"]["node"],
                args.cpus,
                sorted(server_cpus) if server_cpus else "any",
                sorted(client_cpus) if client_cpus else "any",
            ),
            flush=True,
        )
        print(environment.summary(found), flush=True)
        print(f"params: {params_dict(PROFILE if args.profile else params)}", flush=True)
        run = Run(workers, clients, figures, params, args.quick, server, client_cpus)
        if args.profile:
            return profile_client(run, args.profile, args.profiler)
        run.warm_server()
        run.run()
        alive = server.process.poll() is None
    elapsed = time.perf_counter() - began

    absolute, ratios, cpu = table_rows(run)
    print()
    print("Absolute (higher is better, except memory):")
    print(report.text_table(absolute))
    print()
    print(
        f"Relative to {FLOOR}: speed as a ratio (above 1 is faster),"
        " memory as KiB more per connection:"
    )
    print(report.text_table(ratios))
    print()
    print("Client CPU time, microseconds (process_time; lower is better):")
    print(report.text_table(cpu))
    summary_rows, summary_cpu = summary.websocket_rows(
        run.results, [c for c in run.clients if c != FLOOR]
    )
    print()
    print(
        f"Summary (docs/benchmarks.rst): ratios to {FLOOR}, memory in KiB;"
        " the targets of issue 13:"
    )
    print(report.text_table(summary_rows))
    print()
    print(f"Client CPU per operation, as a multiple of {FLOOR}'s:")
    print(report.text_table(summary_cpu))
    warnings = [f"SKIPPED {client}: {reason}" for client, reason in run.skipped.items()]
    for client, per_figure in run.results.items():
        for key, outcome in per_figure.items():
            if "error" in outcome:
                warnings.append(f"ERROR {client} {key}: {outcome['error']}")
    fingerprints = {lib["fingerprint"] for lib in run.libraries}
    if found["trio_upgrade"] is not None:
        fingerprints.add(found["trio_upgrade"]["fingerprint"])
    if len(fingerprints) > 1:
        warnings.append(
            f"trio_upgrade's sources changed during the run: {fingerprints}"
        )
    if not alive:
        warnings.append("the Node server died during the run")
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    print(f"total time: {elapsed:.1f} s")
    if args.rst:
        print()
        print(rst_tables(run))
    if args.json:
        report.write_json(
            args.json,
            {
                **found,
                "cpu_mode": args.cpus,
                "cpus": {
                    "server": sorted(server_cpus) if server_cpus else None,
                    "client": sorted(client_cpus) if client_cpus else None,
                },
                "params": params_dict(params),
                "results": run.results,
                "skipped": run.skipped,
                "warnings": warnings,
                "seconds": elapsed,
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
            },
        )
    return 0 if alive else 1
