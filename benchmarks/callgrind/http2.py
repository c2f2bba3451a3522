"""Instruction counts (callgrind) of trio_upgrade's HTTP/2 client alone.

The server is a real one in its own process (h2o by default, or nghttpd),
outside valgrind, so the counts are the client's only, with real loopback
reads. Two workloads on one prior-knowledge connection:

* ``big``: N sequential GETs of a 64 KiB body (``/64k.bin``);
* ``many``: N rounds of 100 concurrent GETs of ``/index.html`` (60 B).

Each is run under ``valgrind --tool=callgrind`` (``PYTHONHASHSEED=0``) once
with the work and once without (connect, one GET of each kind, close), and
the difference, divided by the number of requests, is printed: the cost of
one request, everything around it excluded. Usage, from the repository root::

    python -m benchmarks.callgrind.http2                 # h2o, 200 and 20
    python -m benchmarks.callgrind.http2 --big 500 --many 50 --server nghttpd

Loopback reads depend a little on timing (how much a read finds), so counts
repeat to about 1 %, not exactly; under valgrind the client is the slow
side, so reads find full buffers and the spread is small.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = "benchmarks.callgrind.http2"
BIG_PATH = "/64k.bin"
SMALL_PATH = "/index.html"
IN_FLIGHT = 100


async def _client(url: str, workload: str, count: int) -> None:
    import trio

    import trio_upgrade

    from ..servers import INDEX_HTML, MEDIUM_FILE_SIZE

    async with await trio_upgrade.connect_http2(url) as conn:

        async def small() -> None:
            response = await conn.request("GET", SMALL_PATH)
            if response.content != INDEX_HTML:
                raise SystemExit(f"wrong body: {response.content[:40]!r}")

        async def big() -> None:
            response = await conn.request("GET", BIG_PATH)
            if len(response.content) != MEDIUM_FILE_SIZE:
                raise SystemExit(f"wrong size: {len(response.content)}")

        # One of each first, in every run: imports and first-use costs fall
        # in the baseline.
        await small()
        await big()
        if workload == "big":
            for _ in range(count):
                await big()
        elif workload == "many":
            for _ in range(count):
                async with trio.open_nursery() as nursery:
                    for _ in range(IN_FLIGHT):
                        nursery.start_soon(small)


def _instructions(out: Path) -> int:
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if match is None:
        raise SystemExit(f"no totals in {out}")
    return int(match.group(1))


def _measure(url: str, workload: str, count: int, workdir: Path) -> int:
    out = workdir / f"callgrind.{workload}.{count}"
    argv = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        MODULE,
        "--client",
        url,
        workload,
        str(count),
    ]
    env = dict(os.environ, PYTHONHASHSEED="0")
    run = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"{workload} {count} failed:\n{run.stderr[-3000:]}")
    return _instructions(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--big", type=int, default=200, metavar="N")
    parser.add_argument("--many", type=int, default=20, metavar="N")
    parser.add_argument("--server", choices=("h2o", "nghttpd"), default="h2o")
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        import trio

        url, workload, count = args.client
        trio.run(_client, url, workload, int(count))
        return 0

    from .. import servers

    launch = servers.h2o_server if args.server == "h2o" else servers.nghttpd_server
    with launch() as server, tempfile.TemporaryDirectory() as tmp:
        url = server.url()
        workdir = Path(tmp)
        base = _measure(url, "none", 0, workdir)
        print(f"server {args.server}; baseline {base / 1e6:,.1f} M instructions")
        for workload, count, requests in (
            ("big", args.big, args.big),
            ("many", args.many, args.many * IN_FLIGHT),
        ):
            if not count:
                continue
            total = _measure(url, workload, count, workdir)
            per = (total - base) / requests
            print(
                f"{workload:5} {count:5} x: {(total - base) / 1e6:10,.1f} M "
                f"instructions, {per / 1e3:8,.1f} k per request"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
