"""Where a worker's CPU time goes: a sampling profiler, or cProfile.

``sample`` (the default) takes a ``SIGPROF`` every 0.5 ms of CPU time (the
kernel rounds the interval to its tick) and charges each sample to the
running function (self time, including the C calls it makes) and to every
function on the stack (inclusive time). It adds no cost per call, so the
shares are those of the unprofiled code; but Python runs the handler at the
next bytecode boundary, so time in a long C call can be charged to the
Python function that runs right after it. ``cprofile`` gives exact call
counts, but its per-call cost inflates call-heavy code (h2's, say).
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import pstats
import signal
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

PROFILERS = ("sample", "cprofile")


class Profiler(Protocol):
    def enable(self) -> None: ...

    def disable(self) -> None: ...


def package_of(filename: str) -> str:
    """Which package a code object belongs to, for the profile breakdown."""
    path = filename.replace(os.sep, "/")
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/trio_upgrade/" in path:
        return "trio_upgrade"
    if "/benchmarks/" in path:
        return "benchmark"
    if path.startswith("<"):
        return "builtins"
    name = path.rsplit("/", 1)[-1].removesuffix(".py")
    parent = path.rsplit("/", 2)[-2] if path.count("/") >= 2 else ""
    return f"stdlib {parent if not parent.startswith(('lib', 'python3')) else name}"


Key = tuple[str, int, str]


class Sampler:
    """A statistical CPU profiler: SIGPROF every ``interval`` s of CPU time."""

    def __init__(self, interval: float = 0.0005) -> None:
        self.interval = interval
        self.total = 0
        self.self_counts: dict[Key, int] = {}
        self.inclusive: dict[Key, int] = {}

    def _sample(self, signum: int, frame: types.FrameType | None) -> None:
        self.total += 1
        if frame is None:
            return
        code = frame.f_code
        key = (code.co_filename, code.co_firstlineno, code.co_name)
        self.self_counts[key] = self.self_counts.get(key, 0) + 1
        seen = set()
        walk: types.FrameType | None = frame
        while walk is not None:
            code = walk.f_code
            key = (code.co_filename, code.co_firstlineno, code.co_name)
            if key not in seen:
                seen.add(key)
                self.inclusive[key] = self.inclusive.get(key, 0) + 1
            walk = walk.f_back

    def enable(self) -> None:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def disable(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)

    def report(self) -> dict[str, Any]:
        def label(key: Key) -> str:
            filename, line, name = key
            return f"{package_of(filename)}: {name} ({Path(filename).name}:{line})"

        packages: dict[str, int] = {}
        for key, count in self.self_counts.items():
            package = package_of(key[0])
            packages[package] = packages.get(package, 0) + count
        ranked = sorted(self.self_counts.items(), key=lambda kv: -kv[1])
        ours = [
            (key, count)
            for key, count in self.inclusive.items()
            if package_of(key[0]) == "trio_upgrade"
        ]
        ours.sort(key=lambda kv: -kv[1])
        own = [
            (key, count)
            for key, count in ranked
            if package_of(key[0]) == "trio_upgrade"
        ]
        return {
            "samples": self.total,
            "packages": sorted(packages.items(), key=lambda kv: -kv[1]),
            "self": [(label(k), c) for k, c in ranked[:40]],
            "trio_upgrade_inclusive": [(label(k), c) for k, c in ours[:25]],
            "trio_upgrade_self": [(label(k), c) for k, c in own[:25]],
        }


def start(mode: str | None) -> Profiler | None:
    """The profiler of a worker: ``sample``, a ``.pstats`` path, or None."""
    if mode is None:
        return None
    if mode == "sample":
        return Sampler()
    return cProfile.Profile()


@contextlib.contextmanager
def active(profiler: Profiler | None) -> Iterator[None]:
    """Profile the body of the ``with`` block (nothing when ``profiler`` is None)."""
    if profiler is None:
        yield
        return
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()


def finish(profiler: Profiler | None, mode: str | None) -> dict[str, Any] | None:
    """The sampler's report (for the result line), or write cProfile's stats."""
    if isinstance(profiler, Sampler):
        return profiler.report()
    if isinstance(profiler, cProfile.Profile) and mode is not None:
        profiler.dump_stats(mode)
    return None


def print_cprofile(path: str, limit: int = 30) -> None:
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(r"trio_upgrade|_http2|_websocket", limit)
    print(out.getvalue())


def print_samples(report: dict[str, Any], cpu_us: float, unit: str = "req") -> None:
    """The sampler's report; shares also as µs per operation (share x CPU)."""
    total = max(1, sum(count for _, count in report["packages"]))

    def line(name: str, count: int) -> str:
        share = count / total
        return f"  {share * 100:5.1f}%  {share * cpu_us:6.1f} us/{unit}  {name}"

    print(f"\nCPU by package (self time; {report['samples']} samples):")
    for name, count in report["packages"]:
        print(line(name, count))
    print("\nTop functions (self time, including the C calls they make):")
    for name, count in report["self"][:30]:
        print(line(name, count))
    if report["trio_upgrade_inclusive"]:
        print("\ntrio_upgrade functions (inclusive time):")
        for name, count in report["trio_upgrade_inclusive"]:
            print(line(name, count))
        print("\ntrio_upgrade functions (self time):")
        for name, count in report["trio_upgrade_self"]:
            print(line(name, count))
