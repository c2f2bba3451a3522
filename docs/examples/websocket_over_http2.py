"""WebSockets over HTTP/2 (RFC 8441): several on one connection.

Run it: ``python docs/examples/websocket_over_http2.py`` (it starts its own
servers).
"""

from __future__ import annotations

import trio

import trio_upgrade
from trio_upgrade.testing import (
    H2CServerProtocol,
    WebSocketServerProtocol,
    open_upgrade_server,
    websocket_over_h2,
)


async def rooms(url: str) -> list[str]:
    lines = []
    async with trio_upgrade.open_upgrade(url, "h2c") as conn:
        await conn.upgrade_response.aclose()  # stream 1 is not needed
        # The server's SETTINGS say whether it takes WebSockets (RFC 8441 §3).
        lines.append(f"extended CONNECT allowed: {conn.extended_connect}")
        chat = trio_upgrade.WebSocket(subprotocols=["chat.v2"])
        answers: dict[str, str] = {}

        async def talk(room: str) -> None:
            # One stream of the connection each: an extended CONNECT.
            async with await conn.websocket(f"/{room}", protocol=chat) as ws:
                await ws.send(f"hello {room}")
                answers[room] = f"{room} ({ws.subprotocol}): {await ws.receive()!r}"

        async with trio.open_nursery() as nursery:
            nursery.start_soon(talk, "kitchen")
            nursery.start_soon(talk, "garden")
        lines += [answers["kitchen"], answers["garden"]]
        # Ordinary requests share the connection with them.
        response = await conn.request("GET", "/")
        lines.append(f"GET / on the same connection: {response.status_code}")
    return lines


async def without_rfc8441(url: str) -> str:
    async with trio_upgrade.open_upgrade(url, "h2c") as conn:
        await conn.upgrade_response.aclose()
        try:
            await conn.websocket("/kitchen")
        except trio_upgrade.UpgradeError as exc:
            return f"refused before sending: {exc}"
        return "unexpected: a WebSocket"


async def main() -> list[str]:
    # The test server allows extended CONNECT for the protocols it is given.
    echo = WebSocketServerProtocol(subprotocols=["chat.v2"], compression=False)
    protocol = H2CServerProtocol(connect={"websocket": websocket_over_h2(echo)})
    async with open_upgrade_server([protocol]) as server:
        lines = await rooms(server.url())
    async with open_upgrade_server([H2CServerProtocol()]) as server:
        lines.append(await without_rfc8441(server.url()))
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    trio.run(main)
