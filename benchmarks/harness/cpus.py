"""Where the server and the clients run, and who else used those CPUs.

Placement (``--cpus``): ``shared`` puts the server (every thread of every
process in its group) and the clients on one CPU, ``split`` the server on
that CPU and the clients on the next, ``free`` leaves it to the kernel. On
the 2-vCPU machines these benchmarks were written on, ``shared`` is the
steady one: a cross-CPU wake-up costs tens of microseconds, so ``split``
mostly measures the machine (each suite's README section has the numbers),
and ``free`` depends on where the scheduler happens to put each process.
On one shared CPU a round trip costs the client's CPU time plus the
server's, and the server's part is the same for every client.

Pinning uses ``os.sched_setaffinity`` (Linux); where it does not exist,
every mode is ``free``.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

from ..servers import group_pids

CPU_MODES = ("shared", "split", "free")
#: A round whose CPUs were busier than this with other processes counts as
#: disturbed (:class:`LoadMeter`).
FOREIGN_LIMIT = 0.10

CpuSet = set[int] | None


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity")


def allowed() -> set[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def placement(mode: str, cpu: int) -> tuple[CpuSet, CpuSet]:
    """The (server, clients) CPU sets of a ``--cpus`` mode around ``cpu``."""
    count = os.cpu_count() or 1
    if mode == "free" or count < 2 or not can_pin():
        return None, None
    if mode == "shared":
        return {cpu}, {cpu}
    return {cpu}, {(cpu + 1) % count}


def pinner(cpus: CpuSet) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins a child to ``cpus`` before it runs."""
    if cpus is None or not can_pin():
        return None

    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def pin_group(pgid: int, cpus: CpuSet) -> None:
    """Pin every thread of every process in a process group (a server's:
    Node's libuv pool and GC helpers, h2o's and nginx's workers)."""
    if cpus is None or not can_pin():
        return
    for pid in group_pids(pgid) or [pgid]:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task.name), cpus)


def _stat_ticks() -> dict[int, list[int]]:
    """``/proc/stat``'s first 8 counters of each CPU (empty without /proc)."""
    out: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("cpu") and line[3:4].isdigit():
                name, *values = line.split()
                out[int(name[3:])] = [int(v) for v in values[:8]]
    return out


def cpu_busy(seconds: float = 0.5) -> dict[int, float]:
    """How busy each CPU is (share of non-idle time) while we sleep."""
    before = _stat_ticks()
    time.sleep(seconds)
    busy = {}
    for cpu, ticks in _stat_ticks().items():
        ticks0 = before.get(cpu, ticks)
        total = sum(ticks) - sum(ticks0)
        idle = (ticks[3] + ticks[4]) - (ticks0[3] + ticks0[4])  # idle + iowait
        if total > 0:
            busy[cpu] = 1.0 - idle / total
    return busy


def least_busy(busy: dict[int, float]) -> int:
    """The CPU of ``busy`` that was the least busy (0 when unknown)."""
    mine = allowed()
    candidates = {cpu: share for cpu, share in busy.items() if cpu in mine}
    return min(candidates, key=lambda n: candidates[n]) if candidates else 0


def format_busy(busy: dict[int, float]) -> str:
    return ", ".join(f"cpu{cpu} {share * 100:.0f}%" for cpu, share in busy.items())


def wait_quiet(cpus: CpuSet, deadline: float, limit: float = FOREIGN_LIMIT) -> None:
    """Wait (until ``deadline``) for our CPUs to be idle for half a second."""
    while time.monotonic() < deadline:
        busy = cpu_busy(0.5)
        if all(
            share < limit / 2 for cpu, share in busy.items() if not cpus or cpu in cpus
        ):
            return


Reading = tuple[float, float, float, int]


class LoadMeter:
    """How much of our CPUs' time other processes took, between two reads.

    Busy time of the CPUs we use (``/proc/stat``, steal included) minus what
    we spent there ourselves: this process and its children (the workers,
    started pinned) and the server's process group. Per round, so that a
    round that shared its CPU with someone else is seen and can be re-run.
    """

    def __init__(self, cpus: CpuSet, server_pgid: int) -> None:
        self.cpus = cpus
        self.pgid = server_pgid
        self.tick = os.sysconf("SC_CLK_TCK")

    def _busy(self) -> tuple[float, int]:
        busy = 0
        used = 0
        for cpu, ticks in _stat_ticks().items():
            if self.cpus is not None and cpu not in self.cpus:
                continue
            busy += sum(ticks) - ticks[3] - ticks[4]  # minus idle, iowait
            used += 1
        return busy / self.tick, used

    def _own(self) -> float:
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        for pid in group_pids(self.pgid) or []:
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{pid}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / self.tick
        return total

    def read(self) -> Reading:
        busy, used = self._busy()
        return time.perf_counter(), busy, self._own(), used

    @staticmethod
    def foreign(before: Reading, after: Reading) -> float:
        """The share of our CPUs' time that went to other processes."""
        wall = (after[0] - before[0]) * max(1, after[3])
        other = (after[1] - before[1]) - (after[2] - before[2])
        return max(0.0, other / wall) if wall > 0 else 0.0
