"""Many tasks sending on one WebSocket connection: writes are coalesced.

Run it: ``python docs/examples/concurrent_sends.py`` (it starts its own
server).
"""

from __future__ import annotations

import trio

import trio_upgrade
from trio_upgrade.testing import WebSocketServerProtocol, open_upgrade_server

TASKS = 10
EACH = 100


async def session(url: str) -> list[str]:
    seen = []
    # At most 16 KiB of messages wait behind a write in progress.
    websocket = trio_upgrade.WebSocket(write_buffer_limit=16 * 1024)
    async with trio_upgrade.open_upgrade(url, websocket) as ws:
        echoes: dict[str, list[int]] = {}

        async def producer(name: str) -> None:
            for i in range(EACH):
                # Returns once the frames were written: by this task, or by
                # the task whose write was in progress, with others' frames.
                await ws.send(f"{name} {i}")

        async def consumer() -> None:
            for _ in range(TASKS * EACH):
                name, i = str(await ws.receive()).split()
                echoes.setdefault(name, []).append(int(i))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            for t in range(TASKS):
                nursery.start_soon(producer, f"task{t}")
        seen.append(f"{sum(map(len, echoes.values()))} echoes from {len(echoes)} tasks")
        # Each task's messages arrive in the order it sent them.
        in_order = all(got == list(range(EACH)) for got in echoes.values())
        seen.append(f"each task's messages in order: {in_order}")

    return seen


async def main() -> list[str]:
    async with open_upgrade_server([WebSocketServerProtocol()]) as server:
        lines = await session(server.url())
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    trio.run(main)
