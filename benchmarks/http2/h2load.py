"""h2load (nghttp2, C): the native ceiling, with the same one connection and
100 requests in flight."""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import time
from typing import Any

from ..harness.cpus import pinner
from ..harness.processes import BenchFailure
from ..servers import RunningServer
from .plan import CONCURRENCY, PATH

_H2LOAD_RATE = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_H2LOAD_DONE = re.compile(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succ")


def h2load_round(
    binary: str, url: str, n: int, cpus: set[int] | None
) -> dict[str, float]:
    """``h2load -n N -c 1 -m 100``: its req/s, and its CPU time (rusage).

    h2load is a child of this (parent) process, pinned like a worker.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    argv = [binary, "-n", str(n), "-c", "1", "-m", str(CONCURRENCY), "-t", "1", url]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, preexec_fn=pinner(cpus)
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rate = _H2LOAD_RATE.search(proc.stdout)
    done = _H2LOAD_DONE.search(proc.stdout)
    if proc.returncode or rate is None or done is None:
        raise BenchFailure(f"h2load failed: {proc.stdout[-300:]}{proc.stderr[-300:]}")
    if done.group(1) != done.group(2):
        raise BenchFailure(f"h2load: {done.group(0)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"count": n, "wall": wall, "cpu": cpu, "rate": float(rate.group(1))}


class H2Load:
    """h2load rounds, sized from a first (warm-up) run to about ``duration``."""

    def __init__(
        self, server: RunningServer, duration: float, cpus: set[int] | None
    ) -> None:
        self.binary = shutil.which("h2load")
        self.url = server.url(PATH)
        self.duration = duration
        self.cpus = cpus
        self.n = 0

    def round(self) -> dict[str, Any]:
        if self.binary is None:
            return {"ok": False, "error": "h2load is not installed (nghttp2-client)"}
        try:
            if not self.n:
                first = h2load_round(self.binary, self.url, 20_000, self.cpus)
                self.n = max(20_000, int(first["rate"] * self.duration))
            return {
                "ok": True,
                "rounds": [h2load_round(self.binary, self.url, self.n, self.cpus)],
            }
        except (BenchFailure, subprocess.TimeoutExpired, OSError) as exc:
            return {"ok": False, "error": str(exc)}
