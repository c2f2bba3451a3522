"""Offer two protocols to a server and use whichever it chose.

Run it: ``python docs/examples/quickstart.py`` (it starts its own server).
"""

from __future__ import annotations

import trio

import trio_upgrade
from trio_upgrade.testing import WebSocketServerProtocol, open_upgrade_server


async def talk(url: str) -> str:
    # Most preferred first: this server has no "chat/2", so we get WebSocket.
    # The block owns a nursery: the connection is looked after (pings
    # answered, keepalive) while we are busy, and closed when the block ends.
    async with trio_upgrade.open_upgrade(url, ["chat/2", "websocket"]) as conn:
        match conn:
            case trio_upgrade.WebSocketConnection():
                await conn.send("hello")
                reply = await conn.receive()
                return f"websocket said {reply!r}"
            case trio_upgrade.RawStream():
                await conn.send_all(b"hello")
                return f"{conn.protocol} said {await conn.receive_some()!r}"
            case _:
                return f"unexpected {conn.protocol}"


async def main() -> str:
    async with open_upgrade_server([WebSocketServerProtocol()]) as server:
        result = await talk(server.url("/chat"))
        print(result)
        return result


if __name__ == "__main__":
    trio.run(main)
