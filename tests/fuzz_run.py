"""Run the fuzz targets of fuzz_targets.py under atheris (libFuzzer).

Usage::

    python tests/fuzz_run.py [--seconds N] [--corpus DIR] [TARGET ...]

Each target (all by default: handshake, websocket, http2) runs in its own
process for ``N`` seconds (default 30), coverage-guided over trio_upgrade,
h11, wsproto and h2, starting from the seeds of
:func:`fuzz_targets.seeds` plus whatever ``DIR/TARGET`` holds from
earlier runs (kept when ``--corpus`` is given, else a temporary
directory). A crash leaves its input as ``crash-TARGET-*`` in the current
directory, and the exit status is non-zero: add the input to the target's
hypothesis test (``tests/test_fuzz.py``) as an ``@example``, then fix.
atheris (``pip install -e '.[fuzz]'``) has Linux wheels (3.0 for CPython
3.11 to 3.13); where it is missing the runner says so and exits with 2,
and the same targets still run under hypothesis in the test suite.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES = ("handshake", "websocket", "http2")


def _fuzz_one(name: str, seconds: int, corpus: Path) -> None:
    """In this process: fuzz ``name`` (never returns)."""
    import atheris

    with atheris.instrument_imports(include=["trio_upgrade", "h11", "wsproto", "h2"]):
        import fuzz_targets

    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(fuzz_targets.seeds(name)):
        (corpus / f"seed-{i}").write_bytes(seed)
    target = fuzz_targets.TARGETS[name]
    argv = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        "-timeout=20",  # seconds for one input: a hang is a crash
        "-rss_limit_mb=1024",
        "-max_len=4096",
        f"-artifact_prefix={Path.cwd()}/crash-{name}-",
        str(corpus),
    ]
    atheris.Setup(argv, target)
    atheris.Fuzz()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET", default=[])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.targets) - set(NAMES)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}: choose from {NAMES}")
    if args.child:
        sys.path.insert(0, str(HERE))
        _fuzz_one(args.child, args.seconds, args.corpus)
        return 0
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    failed = []
    with tempfile.TemporaryDirectory(prefix="trio-upgrade-fuzz-") as tmp:
        root = args.corpus or Path(tmp)
        for name in args.targets or NAMES:
            print(f"== fuzz {name} for {args.seconds} s", flush=True)
            command = [
                sys.executable,
                __file__,
                "--child",
                name,
                "--seconds",
                str(args.seconds),
                "--corpus",
                str(root / name),
            ]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent)])}
            if subprocess.run(command, env=env, check=False).returncode:
                failed.append(name)
    if failed:
        print(f"crashed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
