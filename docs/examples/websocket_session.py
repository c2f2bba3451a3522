"""A long-lived WebSocket session: keepalive pings, clean close, errors.

Run it: ``python docs/examples/websocket_session.py``.
"""

from __future__ import annotations

import trio

import trio_upgrade
from trio_upgrade.testing import WebSocketServerProtocol, open_upgrade_server


async def session(url: str) -> list[str | bytes]:
    ws = trio_upgrade.WebSocket(
        subprotocols=["chat.v1"],
        ping_interval=0.05,  # keepalive: ping after 50 ms of silence
        ping_timeout=1.0,
        max_size=4 * 1024 * 1024,
    )
    received: list[str | bytes] = []
    # open_upgrade owns a nursery: the connection can answer the server's
    # pings and send keepalives even while we are not reading.
    async with trio_upgrade.open_upgrade(url, ws) as conn:
        assert conn.subprotocol == "chat.v1"
        await conn.send("text")
        await conn.send(b"\x00binary")
        await trio.sleep(0.2)  # idle: keepalive pings keep it alive
        received.append(await conn.receive())
        received.append(await conn.receive())
        rtt = await conn.ping()
        assert rtt >= 0
        await conn.aclose(1000, "done")
        assert conn.close_code == 1000
    return received


async def main() -> list[str | bytes]:
    server_side = WebSocketServerProtocol(subprotocols=["chat.v1"])
    async with open_upgrade_server([server_side]) as server:
        try:
            messages = await session(server.url())
        except trio_upgrade.ConnectionClosed as exc:
            print("closed:", exc.code, exc.reason)
            raise
        print(messages)
        return messages


if __name__ == "__main__":
    trio.run(main)
