"""16-byte messages over a real socket, for instruction counts (callgrind).

What the ``echo16`` and ``pipelined16`` figures of ``benchmarks/websocket``
do, N times, against Node's ``ws`` echo server in a process of its own (so
under valgrind only the client is counted): ``echo`` sends a message and
waits for its echo, N times; ``pipelined`` has one task send N messages
while another receives the N echoes. ``benchmarks/callgrind/operations.py``
counts the same calls against a peer in memory, which is not a socket: this
script is for what only a socket shows (system calls, the schedule points
of ``trio_upgrade/_transport/_fastio.py``). Take the difference of a run
with 2N and one with N and divide by N::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/m.out \\
        python -m benchmarks.callgrind.messages ws pipelined 2000 ws://127.0.0.1:PORT/

Arguments: ``ws`` (trio_upgrade) or ``raw`` (the figures' floor,
``raw-trio``); ``echo`` or ``pipelined``; N; optionally the server's URL.

Under valgrind the client runs about fifty times slower, so what depends on
the clock (a send or receive that need not wait is a schedule point once a
millisecond, ``SLICE``) happens about fifty times more often per message
than at full speed. ``TRIO_UPGRADE_BENCH_SLICE=0.05`` sets ``SLICE`` to
50 ms for the run, which gives under valgrind about the native number of
schedule points per message; without it, the counts are an upper bound.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import Protocol
from urllib.parse import urlsplit

import trio

import trio_upgrade

MESSAGE = b"x" * 16


class _Conn(Protocol):
    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> bytes: ...


@asynccontextmanager
async def _connect(kind: str, url: str) -> AsyncIterator[_Conn]:
    if kind == "ws":
        protocol = trio_upgrade.WebSocket(
            compression=None, max_size=64 * 1024 * 1024, ping_interval=None
        )
        conn = await trio_upgrade.upgrade(url, [protocol])
        try:
            yield conn  # type: ignore[misc]  # receive() is str | bytes
        finally:
            await conn.aclose()
        return
    from benchmarks.websocket.base import Target
    from benchmarks.websocket.trio_clients import RawTrio

    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    async with RawTrio(Target(parts.hostname, parts.port, parts.path)) as client:
        raw = await client.connect()
        try:
            yield raw
        finally:
            await raw.close()


async def run(kind: str, mode: str, url: str, n: int) -> None:
    async with _connect(kind, url) as conn:
        # One exchange outside the count: first-call caches.
        await conn.send(MESSAGE)
        await conn.receive()
        if mode == "echo":
            for _ in range(n):
                await conn.send(MESSAGE)
                await conn.receive()
            return

        async def sender() -> None:
            for _ in range(n):
                await conn.send(MESSAGE)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            for _ in range(n):
                await conn.receive()


def main() -> None:
    kind, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    slice_ = os.environ.get("TRIO_UPGRADE_BENCH_SLICE")
    if slice_:
        from trio_upgrade._transport import _fastio

        _fastio.SLICE = float(slice_)
    if kind not in ("ws", "raw") or mode not in ("echo", "pipelined"):
        raise SystemExit(__doc__)
    with ExitStack() as stack:
        if len(sys.argv) > 4:
            url = sys.argv[4]
        else:
            from benchmarks import servers

            url = stack.enter_context(servers.node_ws_server()).url("/", "ws")
        trio.run(run, kind, mode, url, n)
    print("ok", file=sys.stderr)


if __name__ == "__main__":
    main()
