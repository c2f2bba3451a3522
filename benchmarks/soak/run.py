"""Soak and load: ``python -m benchmarks.soak`` (``nox -s soak``).

Usage (from the repository root, with the interop servers installed by
``.ci/install-interop.sh``)::

    python -m benchmarks.soak                        # full size, about 25 minutes
    python -m benchmarks.soak --short                # about 2 minutes
    python -m benchmarks.soak --minutes 3 --json soak.json
    python -m benchmarks.soak --only websocket --connections 200

Phases, one after another in this process against servers of
``benchmarks/servers.py`` (Node ``ws`` for WebSocket, h2o for HTTP/2):

``websocket``
    1,000 connections open at once, each sending 1,000 messages (16 in
    flight, binary and text, 12 B to 2 kB) and checking every echo.
``http2``
    1,000 ``POST /echo`` streams open at once, on as many h2c connections as
    h2o's limit of concurrent streams requires, every body checked.
``sequential``
    80,000 requests one after another on one HTTP/2 connection, with the
    settled RSS every 1,000: what a long-lived connection keeps per request.
``mixed``
    all of it at once for ``--minutes`` (10): 50 long-lived WebSocket
    connections with messages up to 200 kB, WebSocket connections opened and
    closed again and again, a long-lived HTTP/2 connection with sequential
    requests, HTTP/2 connections opened for 50 streams and closed; RSS and
    descriptors sampled every ``--interval`` seconds.

The run fails (exit status 1) on any lost, reordered, duplicated or
corrupted message, any session that ended in an error or a close code other
than 1000, descriptors or Trio tasks not back to their count before the
phase, or an RSS slope after warm-up above ``--max-slope`` KiB per minute.
``--json`` writes every figure and sample with the machine's record.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import resource
import signal
import sys
import time
from typing import Any

import trio

from .. import servers
from ..harness import environment, processes, report
from . import phases, probe

DISTS = ["trio", "h11", "wsproto", "h2", "trio_upgrade"]
#: In this order: ``sequential`` measures what one connection keeps per
#: request by its RSS, which only a fresh process shows.
PHASES = ("sequential", "websocket", "http2", "mixed")

#: RSS slope allowed after warm-up, in KiB per minute. A leak of one 100-byte
#: object per message at the mixed run's rate (about 1,000 messages and
#: requests a second) grows by about 6 MiB a minute; allocator noise on a
#: flat run stays well under 100 KiB a minute over ten minutes.
MAX_SLOPE_KIB = 256.0
#: Mixed runs shorter than this are too short for a slope to mean anything
#: (the warm-up alone is a fifth of the run): it is reported, not judged,
#: unless ``--max-slope`` is given.
JUDGED_MINUTES = 5.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--short", action="store_true", help=(
        "100 connections x 100 messages, 100 streams, 5,000 sequential "
        "requests, 1 minute mixed"))  # fmt: skip
    parser.add_argument("--connections", type=int, help="WebSocket connections (1000)")
    parser.add_argument("--messages", type=int, help="messages per connection (1000)")
    parser.add_argument("--streams", type=int, help="concurrent HTTP/2 streams (1000)")
    parser.add_argument(
        "--requests", type=int, help="sequential HTTP/2 requests (80000)"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="length of the mixed run (10; also $SOAK_MINUTES)",
    )
    parser.add_argument("--interval", type=float, help="seconds between samples (5)")
    parser.add_argument(
        "--warmup", type=float, help="seconds of the mixed run left out of the slope"
    )
    parser.add_argument("--max-slope", type=float, help=(
        f"RSS KiB per minute allowed after warm-up ({MAX_SLOPE_KIB:.0f}; not "
        f"judged on mixed runs under {JUDGED_MINUTES:g} minutes)"))  # fmt: skip
    parser.add_argument(
        "--h2-long",
        type=int,
        default=1,
        help="long-lived HTTP/2 connections of the mixed run (1; 0 for none)",
    )
    parser.add_argument(
        "--ws-server",
        choices=("node", "websockets"),
        default="node",
        help="the WebSocket echo server: Node ws (default) or websockets",
    )
    parser.add_argument(
        "--only", action="append", choices=PHASES, help="run only this phase"
    )
    parser.add_argument("--json", help="write every figure and sample here")
    parser.add_argument(
        "--rst", action="store_true", help="also print the docs/soak.rst tables"
    )
    args = parser.parse_args(argv)
    short = args.short
    defaults = {
        "connections": 100 if short else 1000,
        "messages": 100 if short else 1000,
        "streams": 100 if short else 1000,
        "requests": 5000 if short else 80_000,
        "minutes": float(os.environ.get("SOAK_MINUTES", 1 if short else 10)),
        "interval": 1.0 if short else 5.0,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.max_slope is None:
        judged = args.minutes >= JUDGED_MINUTES
        args.max_slope = MAX_SLOPE_KIB if judged else math.inf
    if args.warmup is None:
        # The first fifth of the run, at most two minutes: pools, caches and
        # the allocator's arenas fill up then.
        args.warmup = min(120.0, args.minutes * 60 / 5)
    return args


#: The servers each phase needs: started for it, stopped after it, so a
#: phase meets a fresh server and a server that died is seen in its phase.
NEEDS = {
    "websocket": ("ws",),
    "http2": ("h2",),
    "sequential": ("h2",),
    "mixed": ("ws", "h2"),
}


def _start(kind: str, ws_server: str) -> servers.RunningServer:
    if kind == "h2":
        return servers.h2o_server()
    return (
        servers.node_ws_server() if ws_server == "node" else servers.websockets_server()
    )


def _url(kind: str, srv: servers.RunningServer) -> str:
    return srv.url("/echo", scheme="ws") if kind == "ws" else srv.url("/index.html")


async def _phase(args: argparse.Namespace, name: str) -> phases.Figures:
    """Start the phase's servers, run it, stop them (with their logs kept
    when the phase failed)."""
    with contextlib.ExitStack() as stack:
        started = {
            k: stack.enter_context(_start(k, args.ws_server)) for k in NEEDS[name]
        }
        url = {k: _url(k, srv) for k, srv in started.items()}
        figures: phases.Figures
        try:
            figures = await _steps(args, name, url)
        except trio.TooSlowError:
            # The phase's deadline: what did not finish counts as lost.
            figures = {"ok": False, "deadline": True}
        except Exception as exc:  # a connection the phase needed failed
            figures = {"ok": False, "error": repr(exc)}
        for kind, srv in started.items():
            if srv.process.poll() is not None:
                figures["ok"] = False
                figures.setdefault("ledger", {}).setdefault("details", []).append(
                    f"{srv.name} exited with {srv.process.returncode}"
                )
            if not figures["ok"]:
                figures.setdefault("server_logs", {})[kind] = srv.log_text()
        return figures


async def _steps(
    args: argparse.Namespace, name: str, url: dict[str, str]
) -> phases.Figures:
    if name == "websocket":
        return await phases.websocket_load(
            url["ws"], args.connections, args.messages, deadline=1800.0
        )
    if name == "http2":
        return await phases.http2_streams(url["h2"], args.streams, deadline=300.0)
    if name == "sequential":
        return await phases.http2_sequential(url["h2"], args.requests, deadline=900.0)
    plan = phases.MixedPlan(
        seconds=args.minutes * 60,
        interval=args.interval,
        warmup=args.warmup,
        max_slope_kib=args.max_slope,
        h2_long=args.h2_long,
    )
    return await phases.mixed(url["ws"], url["h2"], plan)


async def _soak(args: argparse.Namespace) -> dict[str, Any]:
    wanted = args.only or PHASES
    results: dict[str, Any] = {}

    async def run_phases() -> None:
        for name in PHASES:
            if name not in wanted:
                continue
            print(f"== {name}", flush=True)
            started = time.perf_counter()
            results[name] = await _phase(args, name)
            verdict = "ok" if results[name]["ok"] else "FAILED"
            print(f"   {verdict} in {time.perf_counter() - started:.1f} s", flush=True)

    # SIGTERM (nox, CI, kill PID) and Ctrl-C cancel the phase under way: its
    # connections close and the servers are stopped on the way out.
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signal() -> None:
                async for signum in signals:
                    print(f"signal {signum}: stopping", file=sys.stderr)
                    results["interrupted"] = {"ok": False, "signal": signum}
                    nursery.cancel_scope.cancel()

            nursery.start_soon(on_signal)
            await run_phases()
            nursery.cancel_scope.cancel()
    return results


def table(results: dict[str, Any]) -> list[list[str]]:
    """The published figures, one row per phase."""
    rows = [["phase", "figure", "value"]]

    def add(phase: str, figure: str, value: object) -> None:
        if isinstance(value, float | int):
            value = report.fmt(value)
        rows.append([phase, figure, str(value)])

    if (ws := results.get("websocket")) and "peak_rss_kib" in ws:
        name = f"WebSocket {ws['connections']:,} x {ws['messages_per_connection']:,}"
        add(name, "messages/s (echoed and checked)", ws["messages_per_s"])
        add(name, "KiB per open connection", ws["kib_per_connection"])
        add(name, "peak RSS (MiB)", ws["peak_rss_kib"] / 1024)
        add(name, "descriptors before/open/after",
            f"{ws['fds_before']}/{ws['fds_connected']}/{ws['fds_after']}")  # fmt: skip
    if (h2 := results.get("http2")) and "peak_rss_kib" in h2:
        name = f"HTTP/2 {h2['streams']:,} streams"
        add(name, "connections x streams", f"{h2['connections']} x "
            f"{h2['streams_per_connection']}")  # fmt: skip
        add(name, "KiB per open stream", h2["kib_per_stream"])
        add(name, "peak RSS (MiB)", h2["peak_rss_kib"] / 1024)
        add(name, "descriptors before/after", f"{h2['fds_before']}/{h2['fds_after']}")
    if (seq := results.get("sequential")) and "peak_rss_kib" in seq:
        name = f"HTTP/2 {seq['requests']:,} sequential"
        add(name, "requests/s", seq["requests_per_s"])
        add(name, "RSS growth (KiB)", seq["rss_growth_kib"])
        for half in ("first", "second"):
            add(name, f"bytes per request, {half} half",
                seq[f"bytes_per_request_{half}_half"])  # fmt: skip
            add(name, f"memory blocks per request, {half} half",
                seq[f"blocks_per_request_{half}_half"])  # fmt: skip
    if (mix := results.get("mixed")) and "peak_rss_kib" in mix:
        name = f"mixed, {mix['seconds'] / 60:.1f} min"
        add(name, "WebSocket messages/s", mix["ws_messages_per_s"])
        add(name, "HTTP/2 requests/s", mix["h2_requests_per_s"])
        add(name, "sessions opened and closed",
            mix["ws_sessions"] + mix["h2_sessions"])  # fmt: skip
        add(name, "peak RSS (MiB)", mix["peak_rss_kib"] / 1024)
        add(name, "RSS slope after warm-up (KiB/min)", mix["rss_slope_kib_per_min"])
        add(name, "descriptors before/after", f"{mix['fds_before']}/{mix['fds_after']}")
    for phase, figures in results.items():
        if "sent" not in figures.get("ledger", {}):
            if figures.get("deadline"):
                add(phase, "did not finish", "before its deadline")
            elif "error" in figures:
                add(phase, "failed", figures["error"][:60])
            elif "signal" in figures:
                add(phase, "stopped by signal", str(figures["signal"]))
            continue
        ledger = figures["ledger"]
        add(phase, "verified / sent",
            f"{ledger['verified']:,} / {ledger['sent']:,}")  # fmt: skip
        add(phase, "failures", ", ".join(
            f"{k} {v}" for k, v in ledger["failures"].items()) or "none")  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not probe.available():
        print("the soak reads /proc (Linux only)", file=sys.stderr)
        return 2
    # A descriptor per connection, twice over for the server's side when it
    # shares our limit, and room for the rest.
    processes.raise_fd_limit(2 * args.connections + 1024)
    record = environment.record(
        DISTS,
        {
            "node": environment.tool_version(["node", "--version"]),
            "h2o": environment.tool_version(["h2o", "--version"]),
        },
        environment.library(),
    )
    record["fd_limit"] = list(resource.getrlimit(resource.RLIMIT_NOFILE))
    print(environment.summary(record), flush=True)
    results = trio.run(_soak, args)
    rows = table(results)
    print(report.text_table(rows))
    if args.rst:
        print()
        print(report.list_table(rows))
    failed = [name for name, figures in results.items() if not figures["ok"]]
    for name in failed:
        for line in results[name].get("ledger", {}).get("details", []):
            print(f"{name}: {line}", file=sys.stderr)
        for kind, log in results[name].get("server_logs", {}).items():
            print(f"{name}: the {kind} server's log:\n{log}", file=sys.stderr)
    if args.json:
        record["servers"] = {"websocket": args.ws_server, "http2": "h2o"}
        report.write_json(args.json, {"record": record, "results": results,
                                      "failed": failed})  # fmt: skip
    print("FAILED: " + ", ".join(failed) if failed else "all phases passed")
    return 1 if failed else 0
