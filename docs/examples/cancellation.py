"""Timeouts around WebSocket and HTTP/2 calls, and what each leaves.

Run it: ``python docs/examples/cancellation.py`` (it starts its own server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

import trio_upgrade
from trio_upgrade.testing import (
    H2CServerProtocol,
    WebSocketServerProtocol,
    open_upgrade_server,
)


async def websocket(url: str) -> list[str]:
    seen = []
    async with trio_upgrade.open_upgrade(url, "websocket") as ws:
        # Wait a while for a message: none comes, and nothing is lost.
        with trio.move_on_after(0.1):
            await ws.receive()
            seen.append("unexpected message")
        seen.append("no message within 0.1 s")

        # A send whose deadline has already passed writes nothing.
        with trio.move_on_after(0):
            await ws.send("too late")
        # Cut short midway, a send closes the connection: close_code says
        # which happened (None: still open).
        if ws.close_code is None:
            await ws.send("still usable")
            seen.append(str(await ws.receive()))
    return seen


async def http2(url: str) -> list[str]:
    seen = []

    async def slow_body() -> AsyncIterator[bytes]:
        try:
            while True:
                await trio.sleep(0.01)
                yield b"x" * 1000
        finally:
            seen.append("body generator closed")

    async with trio_upgrade.open_upgrade(url, "h2c") as conn:

        async def other_request() -> None:
            response = await conn.request("GET", "/bytes/100000")
            seen.append(f"other stream: {len(response.content)} bytes")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(other_request)
            with trio.move_on_after(0.2):
                await conn.request("POST", "/echo", body=slow_body())
            seen.append("upload abandoned")
        # The connection takes new requests.
        response = await conn.request("GET", "/")
        seen.append(f"then: {response.content.decode()}")
    return seen


async def main() -> list[str]:
    protocols = [WebSocketServerProtocol(), H2CServerProtocol()]
    async with open_upgrade_server(protocols) as server:
        lines = await websocket(server.url()) + await http2(server.url())
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    trio.run(main)
