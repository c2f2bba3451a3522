"""Type tests for Client: its methods type like upgrade() and open_upgrade().

Not collected by pytest; run by ``nox -s typecheck`` (mypy --strict).
"""

from __future__ import annotations

from typing_extensions import assert_type

import trio_upgrade
from trio_upgrade import (
    H2C,
    Client,
    HTTP2Connection,
    Limits,
    Raw,
    RawStream,
    Remembered,
    WebSocketConnection,
)


async def check() -> None:
    client = Client(headers={"Origin": "http://o"}, limits=Limits(), ttl=60)
    assert_type(await client.upgrade("ws://h/", "websocket"), WebSocketConnection)
    assert_type(await client.upgrade("http://h/", [H2C()]), HTTP2Connection)
    assert_type(await client.upgrade("https://h/", ["h2"]), HTTP2Connection)
    assert_type(await client.upgrade("http://h/", Raw("x")), RawStream)
    both = await client.upgrade("wss://h/", ["h2", "websocket"], strategy="combined")
    assert_type(both, WebSocketConnection | HTTP2Connection)
    async with client.open_upgrade("ws://h/", ["websocket"], headers={}) as ws:
        assert_type(ws, WebSocketConnection)
    assert_type(client.remembered("ws://h/"), Remembered | None)
    options: trio_upgrade.UpgradeOptions = {"proxy": "http://p:1"}
    assert_type(client.options(**options), trio_upgrade.UpgradeOptions)
    Client(proxy=3128)  # type: ignore[arg-type]
    Client(bogus=1)  # type: ignore[call-arg]
    await client.upgrade("ws://h/", "websocket", bogus=1)  # type: ignore[call-overload]
