"""Instruction counts per operation, compared with the committed baseline.

Usage (from the repository root; ``nox -s callgrind`` runs it in a venv
with the baseline's versions of trio, h11, wsproto and h2)::

    python -m benchmarks.callgrind                  # compare; exit 1 on +5 %
    python -m benchmarks.callgrind --update         # rewrite baseline.json
    python -m benchmarks.callgrind --only ws_send_16 --keep /tmp/cg
    python -m benchmarks.callgrind --json counts.json

One ``valgrind --tool=callgrind`` process runs every operation of
``benchmarks/callgrind/operations.py``; callgrind writes a profile at each
mark of that script, and each operation's count is (count of its 2N
segment - count of its N segment) / N. ``--keep DIR`` keeps the profiles
(``callgrind_annotate DIR/callgrind.out.K``; the table says which K is
which segment) to see where an increase went.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..harness import report
from . import operations

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BASELINE = HERE / "baseline.json"
#: An operation may cost this much more than its baseline (a fraction).
TOLERANCE = 0.05
#: The distributions whose code is on the measured paths; their versions
#: are kept with the baseline (``websockets`` for its compiled masker).
DISTS = ["trio", "h11", "wsproto", "h2", "hpack", "hyperframe", "websockets"]
#: The ones ``nox -s callgrind`` pins to the baseline's versions.
PINNED = ["trio", "h11", "wsproto", "h2", "hpack", "hyperframe"]
TOTALS = re.compile(rb"^(?:totals|summary):\s*(\d+)", re.MULTILINE)


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for dist in DISTS:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = None
    return found


def environment() -> dict[str, Any]:
    """What the counts depend on besides the code: kept with the baseline."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "arch": platform.machine(),
        "versions": versions(),
        "speedups": os.environ.get("TRIO_UPGRADE_NO_SPEEDUPS", "") in ("", "0"),
    }


def commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "trio_upgrade"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return out + ("+changes" if dirty else "")


def read_total(path: Path) -> int:
    found = TOTALS.search(path.read_bytes())
    if found is None:
        raise RuntimeError(f"{path}: no totals line")
    return int(found.group(1))


def run_callgrind(names: list[str], directory: Path) -> dict[str, dict[str, Any]]:
    """Run the operations under callgrind; the count of each, per operation."""
    out = directory / "callgrind.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--dump-before={operations.MARK_SYMBOL}",
        f"--callgrind-out-file={out}",
        sys.executable,
        str(HERE / "operations.py"),
        *names,
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    # The library of this checkout (or of PYTHONPATH, to measure another).
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])
    )
    print("$ PYTHONHASHSEED=0 " + " ".join(command), flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0 or done.stderr.count("\nok ") + (
        done.stderr.startswith("ok ")
    ) != len(names):
        sys.stderr.write(done.stderr[-4000:])
        raise RuntimeError(f"the workload failed under callgrind ({done.returncode})")
    dumps = sorted(
        directory.glob("callgrind.out.*"), key=lambda p: int(p.suffix.lstrip("."))
    )
    per_op = operations.DUMPS_PER_OPERATION
    if len(dumps) != per_op * len(names):
        raise RuntimeError(
            f"{len(dumps)} callgrind dumps where {per_op * len(names)} were expected"
            f" (is '{operations.MARK_SYMBOL}' called by something else now?)"
        )
    counts: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        n = operations.OPERATIONS[name].n
        first = dumps[per_op * i + 1]
        second = dumps[per_op * i + 3]
        once, twice = read_total(first), read_total(second)
        unit = n * operations.PER_UNIT.get(name, 1)
        counts[name] = {
            "instructions": round((twice - once) / unit),
            "n": unit,
            "segments": [once, twice],
            "dumps": [first.name, second.name],
        }
    return counts


def load_baseline() -> dict[str, Any] | None:
    if not BASELINE.exists():
        return None
    data: dict[str, Any] = json.loads(BASELINE.read_text())
    return data


def differences(baseline: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """How the environment differs from the baseline's, in words."""
    found = []
    if baseline.get("python") != now["python"]:
        found.append(f"Python {now['python']} (baseline: {baseline.get('python')})")
    for dist, version in now["versions"].items():
        before = baseline.get("versions", {}).get(dist)
        if before != version:
            found.append(f"{dist} {version} (baseline: {before})")
    if baseline.get("speedups") != now["speedups"]:
        state = "on" if now["speedups"] else "off"
        found.append(f"fast paths {state} (TRIO_UPGRADE_NO_SPEEDUPS)")
    return found


def fmt_count(value: float) -> str:
    return f"{value:,.0f}"


def table(
    counts: dict[str, dict[str, Any]], baseline: dict[str, Any] | None
) -> tuple[list[list[str]], list[str]]:
    """Rows of the comparison, and the operations over the tolerance."""
    rows = [["operation", "instructions", "baseline", "change", "dumps"]]
    worse = []
    for name, found in counts.items():
        base = (baseline or {}).get("operations", {}).get(name, {}).get("instructions")
        now = found["instructions"]
        if base:
            change = now / base - 1
            shown = f"{change:+.1%}"
            if round(change, 9) > TOLERANCE:  # 1050 / 1000 - 1 is 0.05000...04
                worse.append(name)
                shown += "  <-- over +5 %"
        else:
            shown = "(new)"
        rows.append(
            [
                name,
                fmt_count(now),
                fmt_count(base) if base else "-",
                shown,
                ",".join(d.rsplit(".", 1)[1] for d in found["dumps"]),
            ]
        )
    return rows, worse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.callgrind",
        description="Instruction counts per operation (callgrind) against the"
        " committed baseline; fails on an increase over 5 %.",
    )
    parser.add_argument(
        "--update", action="store_true", help=f"rewrite {BASELINE.name} instead"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(operations.OPERATIONS),
        metavar="OP",
        help="measure this operation (repeatable): " + ", ".join(operations.OPERATIONS),
    )
    parser.add_argument("--json", metavar="PATH", help="also write the counts here")
    parser.add_argument(
        "--keep", metavar="DIR", help="keep callgrind's profiles in DIR"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    names = args.only or list(operations.OPERATIONS)
    if args.update and args.only:
        print("--update measures every operation: drop --only", file=sys.stderr)
        return 2
    now = environment()
    baseline = load_baseline()
    changed = differences(baseline, now) if baseline else []
    for line in changed:
        print(f"WARNING: not the baseline's environment: {line}", file=sys.stderr)
    if changed and not args.update:
        print(
            "WARNING: counts are comparable only in the baseline's environment;"
            " run `nox -s callgrind` (it pins those versions) or regenerate the"
            " baseline with --update",
            file=sys.stderr,
        )

    began = time.monotonic()
    if args.keep:
        directory = Path(args.keep)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        counts = run_callgrind(names, directory)
    else:
        with tempfile.TemporaryDirectory(prefix="callgrind-") as tmp:
            counts = run_callgrind(names, Path(tmp))
    elapsed = time.monotonic() - began

    rows, worse = table(counts, None if args.update else baseline)
    print()
    print("Instructions per operation (client only; callgrind):")
    print(report.text_table(rows))
    print(f"({elapsed:.0f} s under callgrind; tolerance +{TOLERANCE:.0%})")
    document = {
        **now,
        "commit": commit(),
        "date": datetime.date.today().isoformat(),
        "command": "PYTHONHASHSEED=0 valgrind --tool=callgrind "
        f"--dump-before={operations.MARK_SYMBOL} python "
        "benchmarks/callgrind/operations.py",
        "operations": {
            name: {
                "title": operations.OPERATIONS[name].title,
                "instructions": found["instructions"],
                "n": found["n"],
            }
            for name, found in counts.items()
        },
    }
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    if args.update:
        BASELINE.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {BASELINE.relative_to(ROOT)}: commit it")
        return 0
    if baseline is None:
        print(f"no {BASELINE.name}: run with --update first", file=sys.stderr)
        return 1
    if worse:
        print(
            f"FAILED: more than +{TOLERANCE:.0%} over the baseline: {', '.join(worse)}",
            file=sys.stderr,
        )
        return 1
    return 0
