"""Instruction counts of pipelined WebSocket sends (callgrind), not timing.

In memory, client and ``trio_upgrade.testing`` echo server in one process,
as in ``workload.py``: after one handshake, ``T`` tasks send ``N`` messages
of 16 bytes between them (``N // T`` each, all started at once) while one
task receives the ``N`` echoes. ``T = 1`` is the benchmark's pipelined
figure (one sender, one receiver: ``benchmarks/websocket/figures.py``);
``T > 1`` is concurrent senders, whose frames write coalescing puts in
fewer writes. It also prints how many ``send_all`` calls the client's
transport got, which does not depend on the machine.

Run it under ``valgrind --tool=callgrind`` with ``PYTHONHASHSEED=0``
once with ``0 1`` (the same start, no messages) and once with the work,
and take the difference (docs/perf/write-coalescing.rst)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind \\
        python benchmarks/callgrind/pipelined.py 2000 1

It uses only public names, so an older checkout can be measured through
``PYTHONPATH``.
"""

from __future__ import annotations

import math
import sys

import trio

import trio_upgrade
from trio_upgrade.testing import WebSocketServerProtocol, open_upgrade_server

N, TASKS = (int(a) for a in sys.argv[1:3])
MESSAGE = b"0123456789abcdef"


class Counting(trio.abc.Stream):
    """A stream that counts the ``send_all`` calls it passes on."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.writes = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def main() -> None:
    # No connection_timeout: under valgrind the run is 50 times slower.
    async with open_upgrade_server(
        [WebSocketServerProtocol()], tcp=False, connection_timeout=math.inf
    ) as server:
        transport = Counting(await server.connect_in_memory())
        ws = await trio_upgrade.upgrade(
            "http://test/", "websocket", transport=transport
        )
        async with ws:
            before = transport.writes

            async def sender(count: int) -> None:
                for _ in range(count):
                    await ws.send(MESSAGE)

            async def receiver() -> None:
                for _ in range(N):
                    await ws.receive()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receiver)
                for _ in range(TASKS):
                    nursery.start_soon(sender, N // TASKS)
            print(f"{N} messages, {transport.writes - before} writes", file=sys.stderr)


trio.run(main)
