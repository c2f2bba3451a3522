"""What the soak samples in its own process: RSS, peak RSS, open descriptors.

Linux ``/proc`` only (the soak refuses to run elsewhere). Plain functions
and one Trio task (:class:`Sampler`) that records a sample every interval.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") / 1024
#: Seconds between the progress lines a sampler prints.
PROGRESS = 30.0


def available() -> bool:
    """Whether this system has the ``/proc`` files the probes read."""
    return Path("/proc/self/statm").exists() and Path("/proc/self/fd").is_dir()


def rss_kib() -> float:
    """Resident set size of this process now, in KiB."""
    resident = Path("/proc/self/statm").read_text().split()[1]
    return int(resident) * PAGE_KIB


def peak_rss_kib() -> float:
    """The highest RSS this process has had (``VmHWM``), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def fd_count() -> int:
    """Open file descriptors of this process (not counting the listing's own)."""
    return len(os.listdir("/proc/self/fd")) - 1


def task_count() -> int:
    """Trio tasks alive in this run, the root task included."""

    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(
            walk(child)
            for nursery in task.child_nurseries
            for child in nursery.child_tasks
        )

    return walk(trio.lowlevel.current_root_task())


def settled_rss_kib() -> float:
    """RSS after a full garbage collection: what the live objects hold."""
    gc.collect()
    return rss_kib()


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points: y per unit of x."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var


@dataclass
class Sample:
    """One sample: seconds since the sampler started, RSS, descriptors."""

    t: float
    rss_kib: float
    fds: int
    counters: dict[str, int]


@dataclass
class Sampler:
    """Samples RSS and descriptors every ``interval`` seconds until cancelled.

    ``counters`` is read (copied) at each sample, so the workloads' progress
    is on the same time axis as the memory.
    """

    interval: float
    counters: dict[str, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    start: float = field(default_factory=time.monotonic)

    def sample(self) -> Sample:
        taken = Sample(
            round(time.monotonic() - self.start, 3),
            rss_kib(),
            fd_count(),
            dict(self.counters),
        )
        self.samples.append(taken)
        return taken

    async def run(self) -> None:
        shown = 0.0
        while True:
            taken = self.sample()
            if taken.t - shown >= PROGRESS:
                shown = taken.t
                counts = " ".join(f"{k}={v:,}" for k, v in taken.counters.items())
                print(
                    f"   {taken.t:6.0f} s  RSS {taken.rss_kib / 1024:6.1f} MiB  "
                    f"fds {taken.fds:5}  {counts}",
                    flush=True,
                )
            await trio.sleep(self.interval)

    def fds_range(self) -> tuple[int, int]:
        fds = [s.fds for s in self.samples]
        return (min(fds), max(fds)) if fds else (0, 0)

    def peak_kib(self) -> float:
        return max((s.rss_kib for s in self.samples), default=0.0)

    def slope_after(self, warmup: float) -> float:
        """RSS slope in KiB per minute over the samples after ``warmup`` s."""
        return 60 * slope([(s.t, s.rss_kib) for s in self.samples if s.t >= warmup])

    def series(self) -> list[dict[str, object]]:
        return [
            {"t": s.t, "rss_kib": round(s.rss_kib), "fds": s.fds, **s.counters}
            for s in self.samples
        ]
