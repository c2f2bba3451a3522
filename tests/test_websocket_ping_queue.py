"""``ping()`` without a nursery does not wait behind a full incoming queue.

The server floods messages, then answers the ping; the application calls
``ping()`` without reading them. The pong comes after the messages, so the
ping reads past ``max_queue``, within a bounded look-ahead; no message is
lost or reordered. Each test runs on both receive paths (the fast one and
wsproto's) and with permessage-deflate.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio
from ws_support import serve_ws

import trio_upgrade
from trio_upgrade import WebSocket
from trio_upgrade._sansio import _speedups
from trio_upgrade.testing import ServerWebSocket

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["fast", "plain", "deflate"])
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    enabled = _speedups.ENABLED
    _speedups.ENABLED = request.param == "fast"
    try:
        yield request.param
    finally:
        _speedups.ENABLED = enabled


def flood(count: int, size: int) -> tuple[list[str], object]:
    messages = [f"{i:06d}".ljust(size, "x") for i in range(count)]

    async def handler(ws: ServerWebSocket) -> None:
        for message in messages:
            await ws.send(message)
        async for _ in ws:  # reads the client's pings, and answers them
            pass

    return messages, handler


def queued(ws: trio_upgrade.WebSocketConnection) -> list[str | bytes]:
    state = ws._shared
    return state.queue[state.head :]


async def test_ping_reads_past_a_full_queue(path: str) -> None:
    messages, handler = flood(300, 500)
    offer = WebSocket(max_queue=4, compression="deflate" if path == "deflate" else None)
    async with serve_ws(handler=handler) as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), offer) as ws:
                # Let the flood arrive; nobody reads.
                await trio.testing.wait_all_tasks_blocked(cushion=0.1)
                # Before: ping() waited for receive() to make room, forever.
                with trio.fail_after(3):
                    rtt = await ws.ping()
                assert rtt >= 0
                assert len(queued(ws)) > 4  # read past the queue's bound
                received = [await ws.receive() for _ in messages]
                assert received == messages  # none lost, none reordered
                # Back to the bound: reading pauses at max_queue again.
                await ws.ping()


async def test_the_look_ahead_is_bounded(path: str) -> None:
    """A pong behind more than ``max_size`` bytes of messages is not reached:
    the queue holds at most max_queue messages plus max_size bytes more,
    and ping() waits for receive() as before."""
    max_size = 64 * 1024
    messages, handler = flood(1000, 1024)  # 1 MiB before the pong
    offer = WebSocket(
        max_queue=4,
        max_size=max_size,
        compression="deflate" if path == "deflate" else None,
    )
    async with serve_ws(handler=handler) as (server, _):
        with trio.fail_after(20):
            async with await trio_upgrade.upgrade(server.url(), offer) as ws:
                with trio.move_on_after(0.3) as waited:
                    await ws.ping()
                assert waited.cancelled_caught
                held = sum(len(m) for m in queued(ws))
                assert max_size <= held <= 4 * 1024 + max_size + 1024
                received = [await ws.receive() for _ in messages]
                assert received == messages
                assert await ws.ping() >= 0
