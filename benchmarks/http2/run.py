"""Compare HTTP/2 clients against one native cleartext HTTP/2 server, in one run.

Usage (from the repository root, in a venv with the bench dependencies)::

    python -m benchmarks.http2                    # full run, about 2 minutes
    python -m benchmarks.http2 --quick            # smoke run, about 30 s
    python -m benchmarks.http2 --server h2o --json out.json
    python -m benchmarks.http2 --only trio_upgrade,minimal
    python -m benchmarks.http2 --profile trio_upgrade   # where CPU goes
    python -m benchmarks.http2 --profile trio_upgrade-h2c:hps

Figures:

* ``rps``: requests/s for ``GET /index.html`` (60 bytes) from 100 tasks
  sharing ONE connection (as many on the wire as the server's
  ``SETTINGS_MAX_CONCURRENT_STREAMS`` allows: lighttpd 8, h2o 100), for
  trio_upgrade (prior knowledge, and after an h2c upgrade), httpx
  (``http2=True``, on Trio), a minimal Trio + h2 client written here (one
  reader task, one writer task sending all h2 has queued in one
  ``send_all``), and ``h2load -c 1 -m 100`` as the native ceiling. A
  sans-I/O row gives h2's own CPU cost per request, the floor of any client
  built on h2.
* ``mbps``: MB/s of ``GET /64k.bin`` (64 KiB) from 100 tasks sharing one
  connection, as ``rps`` (the throughput figure of issue 13), for the
  minimal client, trio_upgrade and httpx.
* ``hps``: h2c upgrade handshakes/s, one after another: connect, send
  ``GET /index.html`` with ``Upgrade: h2c``, read the 101 and the stream-1
  response, close (GOAWAY); trio_upgrade and the minimal client by hand.

Each round of each client runs in a fresh subprocess (``--worker``): a
new connection, a warm-up, then one timed round; the rounds of all clients
are interleaved, and the median round is reported with the client
process's CPU time per request. By default the server and the clients
share one CPU (``--cpus``, ``--cpu``). A client that fails, hangs
(``trio.fail_after``, and a watchdog that gives up when no request
completes for ``STALL`` seconds) or answers wrongly is skipped with the
reason. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import trio

from .. import servers
from ..harness import cpus, environment, processes, profiler, report
from .h2load import H2Load
from .minimal import open_minimal
from .plan import (
    BIG_PATH,
    CONCURRENCY,
    FULL,
    HTTPX,
    PATH,
    PLAN,
    PROFILE,
    QUICK,
    REFERENCE,
    Params,
)
from .worker import run_worker

MODULE = "benchmarks.http2"
#: Distributions whose versions the record keeps.
DISTS = ["trio", "h2", "hpack", "hyperframe", "httpx", "httpcore", "anyio"]
LAUNCHERS = {"lighttpd": servers.lighttpd_server, "h2o": servers.h2o_server}
SERVER_VERSION = {"lighttpd": ["lighttpd", "-v"], "h2o": ["h2o", "--version"]}


@dataclasses.dataclass
class Series:
    """What one client measured for one figure, round by round."""

    figure: str
    client: str
    label: str
    rounds: list[dict[str, float]] = dataclasses.field(default_factory=list)
    error: str | None = None
    detail: str = ""
    fingerprints: set[str] = dataclasses.field(default_factory=set)
    profile: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.rounds)

    def add(self, result: dict[str, Any]) -> None:
        if not result.get("ok"):
            self.error = str(result.get("error", "?"))
            self.detail = str(result.get("traceback", ""))
            return
        self.rounds += result["rounds"]
        if "library" in result:
            self.fingerprints.add(result["library"]["fingerprint"])
        if result.get("profile") is not None:
            self.profile = result["profile"]

    @property
    def rate(self) -> float:
        """The median round's rate."""
        return statistics.median(r["rate"] for r in self.rounds)

    @property
    def cpu_us(self) -> float:
        """Client CPU time per request (handshake), over all rounds."""
        count = sum(r["count"] for r in self.rounds)
        return sum(r["cpu"] for r in self.rounds) / count * 1e6 if count else 0.0

    @property
    def cpu_share(self) -> float:
        wall = sum(r["wall"] for r in self.rounds)
        return sum(r["cpu"] for r in self.rounds) / wall if wall else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "figure": self.figure,
            "client": self.client,
            "label": self.label,
            "ok": self.ok,
        }
        if self.ok:
            rates = [r["rate"] for r in self.rounds]
            out.update(
                rate=self.rate,
                rate_min=min(rates),
                rate_max=max(rates),
                cpu_us=self.cpu_us,
                cpu_share=self.cpu_share,
            )
        else:
            out.update(error=self.error or "no result", traceback=self.detail)
        if self.fingerprints:
            out["trio_upgrade_fingerprints"] = sorted(self.fingerprints)
        out["rounds"] = self.rounds
        return out


async def _probe_async(host: str, port: int) -> int:
    async with open_minimal(host, port) as client:
        return client.server_streams


def probe_streams(server: servers.RunningServer) -> int:
    """The server's SETTINGS_MAX_CONCURRENT_STREAMS."""
    return trio.run(_probe_async, server.host, server.port)


@dataclasses.dataclass
class Bench:
    """One run: the server, the workers, where the clients run."""

    workers: processes.Workers
    server: servers.RunningServer
    cpus: set[int] | None
    batch: int

    def worker(
        self, figure: str, client: str, params: Params, profile: str | None = None
    ) -> dict[str, Any]:
        """One round of ``client`` in a fresh process; its result dict."""
        spec = {
            "figure": figure,
            "client": client,
            "host": self.server.host,
            "port": self.server.port,
            "params": dataclasses.asdict(params),
            "batch": self.batch,
            "profile": profile,
        }
        timeout = params.budget(figure) + 30.0
        if client == "h2-sansio":
            timeout += params.rounds * params.sansio_requests * 1e-3
        return self.workers.run(spec, cpus=self.cpus, timeout=timeout)


# ------------------------------------------------------------- printing ---

#: What a figure's rate (requests/s) is multiplied by for its unit: MB/s of
#: 64 KiB bodies for ``mbps``.
_SCALE = {"mbps": servers.MEDIUM_FILE_SIZE / 1e6}


def _ratio(value: Series, base: Series | None, by_cpu: bool = False) -> str:
    """``value``'s rate over ``base``'s; by CPU, ``base``'s CPU us over its."""
    if base is None or not base.ok or not value.ok:
        return "-"
    if by_cpu:
        return report.fmt_ratio(report.ratio(base.cpu_us, value.cpu_us))
    return report.fmt_ratio(report.ratio(value.rate, base.rate))


def format_table(series: list[Series], server: str, streams: int) -> str:
    by_key = {(s.figure, s.client): s for s in series}
    titles = {
        "rps": (
            f"Small GETs: GET {PATH} (60 B), {CONCURRENCY} tasks on one "
            f"connection ({server} allows {streams} streams at once)",
            "req/s",
        ),
        "mbps": (
            f"64 KiB GETs: GET {BIG_PATH}, {CONCURRENCY} tasks on one connection",
            "MB/s",
        ),
        "hps": (
            "h2c handshakes, one after another: connect, Upgrade: h2c, "
            "stream-1 response, close",
            "hs/s",
        ),
    }
    lines: list[str] = []
    for figure in ("rps", "mbps", "hps"):
        rows = [s for s in series if s.figure == figure]
        if not rows:
            continue
        title, unit = titles[figure]
        ref = by_key.get((figure, REFERENCE[figure]))
        httpx = by_key.get((figure, HTTPX)) if figure == "rps" else None
        header = ["client", unit, "(min-max)", "CPU us", "CPU%", "xMIN", "xMINc"]
        if figure == "rps":
            header += ["xHTTPX", "xHTTPXc"]
        table = [header]
        skipped = []
        for row in rows:
            if not row.ok:
                skipped.append(f"{row.label}  SKIPPED: {row.error}")
                continue
            scale = _SCALE.get(figure, 1.0)
            rates = [r["rate"] * scale for r in row.rounds]
            cells = [
                row.label,
                f"{row.rate * scale:,.0f}",
                f"{min(rates):,.0f}-{max(rates):,.0f}",
                f"{row.cpu_us:.1f}",
                f"{row.cpu_share * 100:.0f}%",
                _ratio(row, ref),
                _ratio(row, ref, True),
            ]
            if figure == "rps":
                cells += [_ratio(row, httpx), _ratio(row, httpx, True)]
            table.append(cells)
        lines += ["", title, report.text_table(table), *skipped]
    lines += [
        "",
        "Median round (min-max). CPU us: the client process's CPU time per",
        "request (handshake); CPU%: that CPU time over wall time. xMIN, xHTTPX:",
        "rate over the minimal client's, httpx's; xMINc, xHTTPXc: the same from",
        "CPU us (their CPU us over this one), which background load leaves alone.",
        "The sans-I/O row's rate is 1/CPU: h2's own cost, the ceiling of h2",
        "clients.",
    ]
    return "\n".join(lines)


def format_rst(series: list[Series]) -> str:
    """The tables as reStructuredText list-tables (docs/benchmarks.rst)."""
    by_key = {(s.figure, s.client): s for s in series}
    out: list[str] = []
    for figure, unit in (("rps", "req/s"), ("mbps", "MB/s"), ("hps", "handshakes/s")):
        rows = [s for s in series if s.figure == figure]
        if not rows:
            continue
        ref = by_key.get((figure, REFERENCE[figure]))
        httpx = by_key.get((figure, HTTPX)) if figure == "rps" else None
        head = ["client", unit, "CPU µs", "vs minimal", "vs minimal (CPU)"]
        if figure == "rps":
            head += ["vs httpx", "vs httpx (CPU)"]
        table = [head]
        for row in rows:
            if not row.ok:
                cells = [row.label, f"skipped: {row.error}"] + [""] * (len(head) - 2)
            else:
                cells = [
                    row.label,
                    f"{row.rate * _SCALE.get(figure, 1.0):,.0f}",
                    f"{row.cpu_us:.1f}" if row.cpu_us < 10 else f"{row.cpu_us:.0f}",
                    _ratio(row, ref),
                    _ratio(row, ref, True),
                ]
                if figure == "rps":
                    cells += [_ratio(row, httpx), _ratio(row, httpx, True)]
            table.append(cells)
        out.append(report.list_table(table))
    return "\n\n".join(out)


def profile_client(bench: Bench, target: str, mode: str) -> int:
    client = target.removesuffix(":hps")
    figure = "hps" if target.endswith(":hps") or client == "minimal-h2c" else "rps"
    path = str(Path(f"h2-{client}-{figure}.pstats").resolve())
    series = Series(figure, client, client)
    series.add(
        bench.worker(
            figure, client, PROFILE, profile="sample" if mode == "sample" else path
        )
    )
    if not series.ok:
        print(f"{client} failed: {series.error}\n{series.detail}")
        return 1
    print(
        f"{client} ({figure}): {series.rate:,.0f}/s under {mode} "
        f"({series.cpu_us:.1f} us CPU each, CPU {series.cpu_share * 100:.0f}%)"
    )
    if series.profile is not None:
        profiler.print_samples(series.profile, series.cpu_us)
    else:
        profiler.print_cprofile(path)
        print(f"(stats kept in {path})")
    return 0


# ----------------------------------------------------------------- main ---


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.http2",
        description="HTTP/2 (h2c) client benchmark against lighttpd or h2o.",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run, ~30 s")
    parser.add_argument("--json", metavar="PATH", help="also write results here")
    parser.add_argument(
        "--server",
        choices=tuple(LAUNCHERS),
        default="lighttpd",
        help="the server (benchmarks/servers.py launchers; default lighttpd)",
    )
    parser.add_argument(
        "--only",
        metavar="CLIENTS",
        help="comma-separated clients: " + ", ".join(sorted({c for _, c, _ in PLAN})),
    )
    parser.add_argument(
        "--cpus",
        choices=cpus.CPU_MODES,
        default="shared",
        help="server/client placement: shared (default: both on CPU N), "
        "split (server on CPU N, clients on the next), free",
    )
    parser.add_argument(
        "--cpu",
        metavar="N",
        default="auto",
        help="the CPU of --cpus shared/split (default auto: the least busy one "
        "over a second before the run)",
    )
    parser.add_argument(
        "--profile",
        metavar="CLIENT[:hps]",
        help="instead of the table: profile CLIENT's rps figure (with :hps, "
        "its handshakes) and print where its CPU time goes",
    )
    parser.add_argument(
        "--profiler",
        choices=profiler.PROFILERS,
        default="sample",
        help="sample: SIGPROF sampling, shares by package and function "
        "(default); cprofile: exact call counts, but its per-call cost "
        "inflates call-heavy code (stats kept in h2-CLIENT-FIGURE.pstats)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="print tracebacks of failures"
    )
    parser.add_argument(
        "--rst", action="store_true", help="also print the tables as rst list-tables"
    )
    parser.add_argument("--worker", metavar="SPEC", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_rounds(
    bench: Bench,
    plan: list[tuple[str, str, str]],
    params: Params,
    verbose: bool,
    meter: cpus.LoadMeter,
) -> list[Series]:
    """Every client's rounds, interleaved; failures skip the client.

    A round in which other processes took more than ``cpus.FOREIGN_LIMIT``
    of our CPUs is re-run once they are quiet, at most ``params.retries``
    times and only in the first ``params.retry_until`` seconds.
    """
    series = [Series(figure, client, label) for figure, client, label in plan]
    h2load = H2Load(bench.server, params.duration, bench.cpus)
    one = dataclasses.replace(params, rounds=1)
    start = time.monotonic()
    for index in range(params.rounds):
        print(f"round {index + 1}/{params.rounds}:", flush=True)
        for row in series:
            if row.error is not None:
                continue
            if row.client == "h2-sansio" and index:
                continue  # one worker ran all its rounds (its rate is 1/CPU)
            for attempt in range(params.retries + 1):
                before = meter.read()
                if row.client == "h2-sansio":
                    result = bench.worker("rps", row.client, params)
                elif row.client == "h2load":
                    result = h2load.round()
                else:
                    result = bench.worker(row.figure, row.client, one)
                foreign = meter.foreign(before, meter.read())
                if (
                    not result.get("ok")
                    or foreign <= cpus.FOREIGN_LIMIT
                    or row.client == "h2-sansio"
                    or attempt == params.retries
                    or time.monotonic() - start > params.retry_until
                ):
                    break
                print(
                    f"  {row.figure} {row.client:<18} other processes took "
                    f"{foreign * 100:.0f}% of the CPU: again when it is quiet",
                    flush=True,
                )
                cpus.wait_quiet(meter.cpus, deadline=start + params.retry_until)
            for measured in result.get("rounds", []):
                measured["foreign"] = foreign
            row.add(result)
            if not row.ok:
                print(f"  {row.figure} {row.client:<18} SKIPPED: {row.error}")
                if verbose and row.detail:
                    print(row.detail)
            else:
                last = row.rounds[-1]
                print(
                    f"  {row.figure} {row.client:<18} {last['rate']:>10,.0f}/s "
                    f"{last['cpu'] / last['count'] * 1e6:7.1f} us CPU"
                    f"  (others {foreign * 100:.0f}%)",
                    flush=True,
                )
    return series


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return processes.serve(args.worker, run_worker)
    params = QUICK if args.quick else FULL
    plan = PLAN
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {c for _, c, _ in PLAN}
        if unknown:
            print(f"unknown clients: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        plan = [p for p in PLAN if p[1] in wanted]
    allowed = cpus.allowed()
    if args.cpu != "auto" and not (args.cpu.isdigit() and int(args.cpu) in allowed):
        print(
            f"--cpu takes auto or one of {sorted(allowed)}, not {args.cpu!r}",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    busy_before = cpus.cpu_busy(1.0)
    print(f"background load before: {cpus.format_busy(busy_before)}")
    cpu = cpus.least_busy(busy_before) if args.cpu == "auto" else int(args.cpu)
    server_cpus, client_cpus = cpus.placement(args.cpus, cpu)
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(LAUNCHERS[args.server]())
        except (servers.ServerUnavailable, servers.ServerStartError) as exc:
            print(f"cannot start {args.server}: {exc}", file=sys.stderr)
            return 2
        workers = stack.enter_context(processes.Workers(MODULE))
        cpus.pin_group(server.pgid, server_cpus)
        streams = probe_streams(server)
        tools = {
            "h2load": environment.tool_version(["h2load", "--version"]),
            args.server: environment.tool_version(SERVER_VERSION[args.server]),
        }
        found = environment.record(DISTS, tools, workers.library())
        print(environment.summary(found))
        print(
            f"{args.server} on {server.host}:{server.port}, "
            f"SETTINGS_MAX_CONCURRENT_STREAMS={streams}; CPUs ({args.cpus}): "
            f"server {sorted(server_cpus) if server_cpus else 'any'}, "
            f"clients {sorted(client_cpus) if client_cpus else 'any'}",
            flush=True,
        )
        bench = Bench(workers, server, client_cpus, min(CONCURRENCY, streams))
        if args.profile:
            return profile_client(bench, args.profile, args.profiler)
        meter = cpus.LoadMeter(
            (server_cpus or set()) | (client_cpus or set()) or None, server.pgid
        )
        series = run_rounds(bench, plan, params, args.verbose, meter)
    busy_after = cpus.cpu_busy()
    elapsed = time.monotonic() - started
    table = format_table(series, args.server, streams)
    print(table)
    if args.rst:
        print("\n" + format_rst(series))
    warnings: list[str] = [
        f"SKIPPED {row.client} ({row.figure}): {row.error}"
        for row in series
        if not row.ok
    ]
    flagged = [
        f"{row.client} ({row.figure})"
        for row in series
        for measured in row.rounds
        if measured.get("foreign", 0.0) > cpus.FOREIGN_LIMIT
        and row.client != "h2-sansio"
    ]
    if flagged:
        warnings.append(
            f"{len(flagged)} round{'s' if len(flagged) > 1 else ''} shared "
            "their CPU with other processes "
            f"(> {cpus.FOREIGN_LIMIT:.0%} of it) after {params.retries} retries: "
            f"{', '.join(sorted(set(flagged)))}. Their rates are low; CPU us per "
            "request moves much less (the xMINc, xHTTPXc ratios)"
        )
    library = found["trio_upgrade"]
    fingerprint = library["fingerprint"] if library else "?"
    seen = {f for row in series for f in row.fingerprints} | {fingerprint}
    if len(seen) > 1:
        warnings.append(
            f"trio_upgrade's sources changed during the run: {sorted(seen)}"
        )
    for warning in warnings:
        print(f"\n  WARNING: {warning}", file=sys.stderr)
    mode = "--quick" if args.quick else "full run"
    print(f"\n  ({elapsed:.0f} s; {mode}; trio_upgrade sources {fingerprint})")
    if args.json:
        report.write_json(
            args.json,
            {
                **found,
                "server": args.server,
                "server_max_concurrent_streams": streams,
                "cpus": {
                    "mode": args.cpus,
                    "server": sorted(server_cpus) if server_cpus else None,
                    "client": sorted(client_cpus) if client_cpus else None,
                },
                "background_load": {"before": busy_before, "after": busy_after},
                "concurrency": CONCURRENCY,
                "path": PATH,
                "params": dataclasses.asdict(params),
                "results": [row.summary() for row in series],
                "warnings": warnings,
                "table": table,
            },
        )
    return 0
