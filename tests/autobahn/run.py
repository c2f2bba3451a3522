"""Run the Autobahn Testsuite against trio_upgrade's WebSocket client.

Starts ``wstest -m fuzzingserver`` (installed by ``.ci/install-autobahn.sh``)
on a free loopback port, runs ``client.py`` against it, stops the server and
reads its report (``REPORT_DIR/clients/index.json``). Exits 1 and lists every
case whose ``behavior`` or ``behaviorClose`` is not ``OK``, ``NON-STRICT`` or
``INFORMATIONAL``, and every case missing from the report.

Profiles: ``full`` (default, and what CI and ``nox -s autobahn`` run) runs
every case, about 20 minutes on 2 cores; ``quick`` runs every case but the
permessage-deflate cases 12.x and 13.x, plus the sample of them in
``QUICK_SAMPLE``, in about 2 minutes (see docs/conformance.rst).

Usage: python tests/autobahn/run.py [--profile full|quick] [--cases PATTERN ...]
       [--exclude-cases PATTERN ...] [--report-dir DIR] [--wstest PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

# This file runs as a script, so its own folder is first on the import
# path: client.py beside it imports as a top-level module.
import client
import trio

__all__ = ["PASSING", "QUICK_SAMPLE", "QUICK_SECTIONS", "main"]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WSTEST = ROOT / ".venv-autobahn" / "bin" / "wstest"
DEFAULT_REPORT_DIR = ROOT / "build" / "autobahn"

PASSING = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})

# The quick profile: everything but the permessage-deflate cases (12.x,
# 13.x), which take 95% of the full run's time, plus this sample of them. Each
# of the 12 groups (12.1-12.5: five kinds of data with the default offer;
# 13.1-13.7: seven offer and answer parameter sets) has 18 cases of 1,000
# messages; the sample takes from each group case .1 (16-byte messages),
# .5 (4 KiB) and .11 (8 KiB messages auto-fragmented into 256-byte frames).
# (The fuzzing server drops excluded cases after matching, so the profile
# names the other sections rather than excluding 12.* and 13.*.)
QUICK_SECTIONS = ("1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*")
QUICK_SAMPLE = tuple(
    f"{group}.{case}"
    for group in (
        *(f"12.{n}" for n in range(1, 6)),
        *(f"13.{n}" for n in range(1, 8)),
    )
    for case in (1, 5, 11)
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"wstest exited with status {proc.returncode}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1),
        ):
            return
        time.sleep(0.1)
    raise RuntimeError(f"wstest did not listen on port {port} within {timeout} s")


@contextlib.contextmanager
def fuzzingserver(
    wstest: Path, spec: dict[str, Any], workdir: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``wstest -m fuzzingserver`` with ``spec``, stopped on exit (its group)."""
    spec_path = workdir / "fuzzingserver.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    env = dict(os.environ, PYTHONWARNINGS="ignore")  # Python 2 deprecations
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(wstest), "-m", "fuzzingserver", "-s", str(spec_path), "-u", "0"],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def category(case_id: str) -> str:
    """``"9"`` for ``"9.1.6"``: the report's top-level sections."""
    return case_id.split(".", 1)[0]


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def summarise(
    results: dict[str, dict[str, Any]],
    outdir: Path,
    agent: str,
    runs: Sequence[client.CaseResult] = (),
) -> tuple[str, list[str]]:
    """The summary table, and one line for each case that did not pass."""
    lines = []
    failures = []
    by_behavior: Counter[str] = Counter()
    by_close: Counter[str] = Counter()
    per_category: dict[str, Counter[str]] = {}
    ends = {run.case: run.end for run in runs}
    for case_id in sorted(results, key=case_key):
        entry = results[case_id]
        behavior, close = entry["behavior"], entry["behaviorClose"]
        by_behavior[behavior] += 1
        by_close[close] += 1
        per_category.setdefault(category(case_id), Counter())[behavior] += 1
        if behavior not in PASSING or close not in PASSING:
            detail: dict[str, Any] = {}
            with contextlib.suppress(OSError, ValueError):
                detail = json.loads((outdir / entry["reportfile"]).read_text())
            seen = ends.get(detail.get("case", 0), "?")
            failures.append(
                f"{case_id}: behavior {behavior}, behaviorClose {close}\n"
                f"    case: {detail.get('description', '?')}\n"
                f"    server: {detail.get('result', '?')}; "
                f"close: {detail.get('resultClose', '?')}\n"
                f"    client: {seen}"
            )
    lines.append(f"agent {agent}: {len(results)} cases")
    lines.append("behavior: " + ", ".join(f"{k} {v}" for k, v in by_behavior.items()))
    lines.append("behaviorClose: " + ", ".join(f"{k} {v}" for k, v in by_close.items()))
    names = sorted({name for counts in per_category.values() for name in counts})
    lines.append("category  " + "  ".join(f"{name:>13}" for name in names))
    for cat in sorted(per_category, key=int):
        counts = per_category[cat]
        lines.append(f"{cat:>8}  " + "  ".join(f"{counts[n]:>13}" for n in names))
    return "\n".join(lines), failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["full", "quick"], default="full")
    parser.add_argument(
        "--cases",
        nargs="+",
        help="case patterns to run, as in the spec's cases (instead of the profile's)",
    )
    parser.add_argument(
        "--exclude-cases", nargs="+", default=[], help="case patterns to leave out"
    )
    parser.add_argument("--report-dir", type=Path, default=DEFAULT_REPORT_DIR)
    parser.add_argument(
        "--wstest",
        type=Path,
        default=Path(os.environ["AUTOBAHN_VENV"]) / "bin" / "wstest"
        if os.environ.get("AUTOBAHN_VENV")
        else DEFAULT_WSTEST,
    )
    parser.add_argument("--agent", default=client.AGENT)
    parser.add_argument("--case-timeout", type=float, default=300.0)
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-case lines")
    args = parser.parse_args(argv)

    if not args.wstest.exists():
        print(
            f"{args.wstest} not found: run 'bash .ci/install-autobahn.sh' first",
            file=sys.stderr,
        )
        return 2
    if args.cases:  # given patterns replace the profile's
        cases = list(args.cases)
    elif args.profile == "quick":
        cases = [*QUICK_SECTIONS, *QUICK_SAMPLE]
    else:
        cases = ["*"]
    exclude = list(args.exclude_cases)
    outdir = (args.report_dir / "clients").resolve()
    shutil.rmtree(outdir, ignore_errors=True)  # no report of an earlier run
    outdir.mkdir(parents=True)
    index = outdir / "index.json"
    port = free_port()
    spec = {
        "url": f"ws://127.0.0.1:{port}",
        "outdir": str(outdir),
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    }
    base = f"ws://127.0.0.1:{port}"
    print(f"autobahn: profile {args.profile}, cases {cases}, exclude {exclude}")

    def show(result: client.CaseResult, count: int) -> None:
        if not args.quiet or result.duration > 5 or "timeout" in result.end:
            print(f"[{result.case}/{count}] {result}", flush=True)

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autobahn-") as tmp:
        log = args.report_dir.resolve() / "fuzzingserver.log"
        with fuzzingserver(args.wstest, spec, Path(tmp), log) as proc:
            try:
                wait_listening(port, proc, 60)
            except RuntimeError:
                print(log.read_text(errors="replace"), file=sys.stderr)
                raise
            runs = trio.run(
                partial(
                    client.run_cases,
                    base,
                    args.agent,
                    case_timeout=args.case_timeout,
                    progress=show,
                )
            )
    duration = time.monotonic() - start

    results: dict[str, dict[str, Any]] = json.loads(index.read_text()).get(
        args.agent, {}
    )
    table, failures = summarise(results, outdir, args.agent, runs)
    print(table)
    print(f"duration {duration:.0f} s; report {outdir / 'index.html'}")
    failing = failed = len(failures)
    missing = len(runs) - len(results)
    if missing or not runs:
        failed += max(missing, 0)
        failures.append(f"{len(runs)} cases run, but {len(results)} in the report")
    for run in runs:
        if "timeout" in run.end:
            failures.append(f"case number {run.case}: {run.end}")
    if failures:
        print(f"{len(failures)} problem(s):")
        for line in failures:
            print(f"  {line}")
    else:
        print(f"all {len(results)} cases OK, NON-STRICT or INFORMATIONAL")
    # A plain closing line that CI logs can be read by.
    failed = failed or len(failures)  # client timeouts the report missed
    print(f"autobahn: {len(results) - failing} passed, {failed} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
