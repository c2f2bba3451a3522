"""Type tests: mypy --strict checks that the return types follow the offer.

Not collected by pytest (the file name does not start with ``test_``); run by
``nox -s typecheck``.
"""

from __future__ import annotations

import ssl

from typing_extensions import assert_type

import trio_upgrade
from trio_upgrade import (
    H2C,
    TLS,
    HTTP2Connection,
    Raw,
    RawStream,
    WebSocket,
    WebSocketConnection,
)


async def check() -> None:
    ws = await trio_upgrade.upgrade("ws://h/", ["websocket"])
    assert_type(ws, WebSocketConnection)
    ws2 = await trio_upgrade.upgrade("ws://h/", WebSocket())
    assert_type(ws2, WebSocketConnection)
    h2 = await trio_upgrade.upgrade("http://h/", ["h2c"])
    assert_type(h2, HTTP2Connection)
    h2b = await trio_upgrade.upgrade("http://h/", [H2C()])
    assert_type(h2b, HTTP2Connection)
    raw = await trio_upgrade.upgrade("http://h/", Raw("x"))
    assert_type(raw, RawStream)
    raw2 = await trio_upgrade.upgrade("http://h/", [Raw("x"), Raw("y")])
    assert_type(raw2, RawStream)
    tls = await trio_upgrade.upgrade("http://h/", TLS("TLS/1.2"))
    assert_type(tls, RawStream)
    # The built-in tokens resolve to exactly their protocols; any other
    # string may be anything raw (more mixes in check_mixed_protocols.py).
    any_of = await trio_upgrade.upgrade("http://h/", ["websocket", "h2c"])
    assert_type(any_of, WebSocketConnection | HTTP2Connection)
    mixed = await trio_upgrade.upgrade("http://h/", [WebSocket(), "h2c"])
    assert_type(mixed, WebSocketConnection | HTTP2Connection)
    tokens = await trio_upgrade.upgrade("http://h/", ["websocket", "my-proto"])
    assert_type(tokens, WebSocketConnection | HTTP2Connection | RawStream)
    async with trio_upgrade.open_upgrade("ws://h/", ["websocket"]) as ws3:
        assert_type(ws3, WebSocketConnection)
    async with trio_upgrade.open_upgrade("http://h/", [Raw("x")]) as raw3:
        assert_type(raw3, RawStream)


async def check_options() -> None:
    # One TypedDict of options: built ahead, passed through, still typed.
    options: trio_upgrade.UpgradeOptions = {
        "headers": {"Origin": "http://o"},
        "strategy": "combined",
        "proxy": "http://proxy.test:3128",
    }
    ws = await trio_upgrade.upgrade("ws://h/", "websocket", **options)
    assert_type(ws, WebSocketConnection)
    async with trio_upgrade.open_upgrade("http://h/", ["h2c"], **options) as h2:
        assert_type(h2, HTTP2Connection)
    await trio_upgrade.upgrade("ws://h/", "websocket", bogus=1)  # type: ignore[call-overload]
    await trio_upgrade.upgrade("ws://h/", "websocket", strategy="x")  # type: ignore[call-overload]
    trio_upgrade.open_upgrade("ws://h/", "websocket", nursery=None)  # type: ignore[call-overload]
    bad: trio_upgrade.UpgradeOptions = {"strategy": "x"}  # type: ignore[typeddict-item]
    # proxy: a URL, True (the environment's) or None/False (direct).
    for proxy in ("socks5h://p:1080", True, False, None):
        ws = await trio_upgrade.upgrade("ws://h/", "websocket", proxy=proxy)
        assert_type(ws, WebSocketConnection)
    ssl_options: trio_upgrade.ConnectOptions = {
        "proxy": "https://p:3129",
        "proxy_ssl_context": ssl.create_default_context(),
    }
    await trio_upgrade.connect_http2("http://h/", **ssl_options)
    await trio_upgrade.upgrade("ws://h/", "websocket", proxy_ssl_context="x")  # type: ignore[call-overload]
    await trio_upgrade.upgrade("ws://h/", "websocket", **bad)


async def check_redirects_and_auth() -> None:
    ws = await trio_upgrade.upgrade(
        "ws://h/",
        "websocket",
        follow_redirects=False,
        auth=trio_upgrade.BasicAuth("alice", "s3cret"),
    )
    assert_type(ws.attempts, tuple[trio_upgrade.Attempt, ...])
    assert_type(ws.attempts[-1].url, str)
    h2 = await trio_upgrade.upgrade("http://h/", "h2c", auth=("alice", "s3cret"))
    assert_type(h2.attempts, tuple[trio_upgrade.Attempt, ...])
    raw = await trio_upgrade.upgrade("http://h/", Raw("x"))
    assert_type(raw.attempts, tuple[trio_upgrade.Attempt, ...])
    try:
        await trio_upgrade.upgrade("ws://h/", "websocket")
    except trio_upgrade.RedirectError as exc:
        assert_type(exc.reason, trio_upgrade.RedirectReason)
        assert_type(exc.chain, tuple[str, ...])
        assert_type(exc.location, str)
    except trio_upgrade.UpgradeRefused as exc:
        assert_type(exc.location, str | None)
    # "user:password" as one string is not credentials: a type error.
    await trio_upgrade.upgrade("ws://h/", "websocket", auth="alice:s3cret")  # type: ignore[call-overload]
