"""Type tests: open_reconnecting()'s connections have the offer's type, and
the new options are typed.

Not collected by pytest; run by ``nox -s typecheck``.
"""

from __future__ import annotations

import pathlib

from typing_extensions import assert_type

import trio_upgrade
from trio_upgrade import (
    HTTP2Connection,
    Raw,
    RawStream,
    Reconnecting,
    WebSocketConnection,
)


async def check() -> None:
    async with trio_upgrade.open_reconnecting("ws://h/", ["websocket"]) as ws_all:
        assert_type(ws_all, Reconnecting[WebSocketConnection])
        async for ws in ws_all:
            assert_type(ws, WebSocketConnection)
        assert_type(ws_all.connection, WebSocketConnection | None)
    async with trio_upgrade.open_reconnecting("http://h/", "h2c") as h2_all:
        async for h2 in h2_all:
            assert_type(h2, HTTP2Connection)
    backoff = trio_upgrade.Backoff(initial=0.5, jitter=lambda: 1.0)
    async with trio_upgrade.open_reconnecting(
        "http://h/",
        Raw("tcp"),
        backoff=backoff,
        retry_on=trio_upgrade.retryable,
        max_failures=5,
        unix_socket=pathlib.Path("/run/docker.sock"),
    ) as raw_all:
        async for raw in raw_all:
            assert_type(raw, RawStream)
    conn = await trio_upgrade.connect_http2("http://h/", unix_socket="/run/h2.sock")
    assert_type(conn, HTTP2Connection)
    trio_upgrade.open_reconnecting(
        "http://h/",
        "echo",
        backoff=3,  # type: ignore[call-overload]
    )
