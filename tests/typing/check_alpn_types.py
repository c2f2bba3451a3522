"""Type tests for HTTP/2 by ALPN: ``"h2"`` and ``H2`` give HTTP2Connection.

Not collected by pytest; run by ``nox -s typecheck`` (mypy --strict).
"""

from __future__ import annotations

from typing_extensions import assert_type

import trio_upgrade
from trio_upgrade import (
    H2,
    H2C,
    HTTP2Connection,
    HTTP2Options,
    RawStream,
    WebSocket,
    WebSocketConnection,
)


async def check() -> None:
    h2 = await trio_upgrade.upgrade("https://h/", ["h2"])
    assert_type(h2, HTTP2Connection)
    lone = await trio_upgrade.upgrade("https://h/", "h2")
    assert_type(lone, HTTP2Connection)
    bounded = await trio_upgrade.upgrade("https://h/", H2(HTTP2Options()))
    assert_type(bounded, HTTP2Connection)
    either = await trio_upgrade.upgrade("https://h/", ["h2", H2C()])
    assert_type(either, HTTP2Connection)
    with_ws = await trio_upgrade.upgrade("wss://h/", ["h2", "websocket"])
    assert_type(with_ws, WebSocketConnection | HTTP2Connection)
    objects = await trio_upgrade.upgrade("wss://h/", [WebSocket(), H2()])
    assert_type(objects, WebSocketConnection | HTTP2Connection)
    raw = await trio_upgrade.upgrade("https://h/", ["h2", "my-proto"])
    assert_type(raw, WebSocketConnection | HTTP2Connection | RawStream)
    async with trio_upgrade.open_upgrade("https://h/", ["h2"]) as conn:
        assert_type(conn, HTTP2Connection)
    async with trio_upgrade.open_upgrade("wss://h/", ["websocket", "h2"]) as both:
        assert_type(both, WebSocketConnection | HTTP2Connection)
