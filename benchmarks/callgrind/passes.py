"""Scheduler passes per handshake: how often Trio's run loop turns.

Each turn of Trio's run loop (a task step, after an epoll call) costs about
33,000 instructions on CPython 3.11 (docs/perf/handshake-overhead.rst), so
the number of turns a handshake takes is a figure of its own. This counts
them with an instrument (``before_task_step``, ``before_io_wait``) over N
handshakes of ``benchmarks/callgrind/handshakes.py`` (``ws`` or ``raw``)
and prints the turns per handshake, less those of a run with none::

    python -m benchmarks.callgrind.passes ws 200 [URL]

Without a URL, Node's ``ws`` echo server is started (and ended) here.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack

import trio

from .handshakes import raw, websocket


class _Turns(trio.abc.Instrument):
    def __init__(self) -> None:
        self.steps = 0
        self.io_waits = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1

    def before_io_wait(self, timeout: float) -> None:
        self.io_waits += 1


def main() -> None:
    kind, n = sys.argv[1], int(sys.argv[2])
    run = {"ws": websocket, "raw": raw}[kind]
    with ExitStack() as stack:
        if len(sys.argv) > 3:
            url = sys.argv[3]
        else:
            from benchmarks import servers

            url = stack.enter_context(servers.node_ws_server()).url("/", "ws")
        trio.run(run, url, 1)  # imports and first-call caches
        counts = []
        for count in (0, n):
            turns = _Turns()
            trio.run(run, url, count, instruments=[turns])
            counts.append(turns)
        none, some = counts
        steps = (some.steps - none.steps) / n
        waits = (some.io_waits - none.io_waits) / n
        print(f"{kind}: {steps:.2f} task steps, {waits:.2f} I/O waits per handshake")


if __name__ == "__main__":
    main()
