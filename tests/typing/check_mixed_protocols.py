"""Type tests: a list or tuple mixing protocol objects and strings gives the
union of what each one builds (mypy --strict; not collected by pytest).

mypy infers a list display from its elements by a join, so without an
overload for each mix, ``[WebSocket(), H2C()]`` would be typed ``object``.
"""

from __future__ import annotations

from typing_extensions import assert_type

import trio_upgrade
from trio_upgrade import (
    H2C,
    HTTP2Connection,
    Offer,
    Raw,
    RawStream,
    UpgradeProtocol,
    WebSocket,
    WebSocketConnection,
)

WS_OR_H2 = WebSocketConnection | HTTP2Connection
ANY_BUILTIN = WebSocketConnection | HTTP2Connection | RawStream


class Custom:
    """What a custom protocol builds."""


class CustomProtocol(UpgradeProtocol[Custom]):
    @property
    def token(self) -> str:
        return "custom"

    def offer(self, target: object) -> Offer[Custom]:
        raise NotImplementedError


async def check_lists() -> None:
    a = await trio_upgrade.upgrade("http://h/", [WebSocket(subprotocols=["x"]), H2C()])
    assert_type(a, WS_OR_H2)
    b = await trio_upgrade.upgrade("http://h/", ["websocket", H2C()])
    assert_type(b, WS_OR_H2)
    c = await trio_upgrade.upgrade("http://h/", [WebSocket(), "h2c"])
    assert_type(c, WS_OR_H2)
    d = await trio_upgrade.upgrade("http://h/", ["websocket", "h2c"])
    assert_type(d, WS_OR_H2)
    e = await trio_upgrade.upgrade("http://h/", [WebSocket(), Raw("x")])
    assert_type(e, WebSocketConnection | RawStream)
    f = await trio_upgrade.upgrade("http://h/", [H2C(), Raw("x")])
    assert_type(f, HTTP2Connection | RawStream)
    g = await trio_upgrade.upgrade("http://h/", [WebSocket(), H2C(), Raw("x")])
    assert_type(g, ANY_BUILTIN)
    # Any other token is raw: a plain str may be anything.
    h = await trio_upgrade.upgrade("http://h/", [WebSocket(), "my-proto"])
    assert_type(h, ANY_BUILTIN)
    offers: list[WebSocket | H2C] = [WebSocket(), H2C()]
    i = await trio_upgrade.upgrade("http://h/", offers)
    assert_type(i, WS_OR_H2)


async def check_tuples() -> None:
    a = await trio_upgrade.upgrade("http://h/", (WebSocket(), H2C()))
    assert_type(a, WS_OR_H2)
    b = await trio_upgrade.upgrade("http://h/", (WebSocket(), "h2c"))
    assert_type(b, WS_OR_H2)
    c = await trio_upgrade.upgrade("http://h/", ("websocket", "h2c"))
    assert_type(c, WS_OR_H2)
    d = await trio_upgrade.upgrade("http://h/", (Raw("x"), WebSocket()))
    assert_type(d, WebSocketConnection | RawStream)
    e = await trio_upgrade.upgrade("http://h/", (H2C(), Raw("x"), "websocket"))
    assert_type(e, ANY_BUILTIN)


async def check_single_kinds_stay_precise() -> None:
    a = await trio_upgrade.upgrade("http://h/", [Raw("x"), Raw("y")])
    assert_type(a, RawStream)
    b = await trio_upgrade.upgrade("http://h/", (WebSocket(), "websocket"))
    assert_type(b, WebSocketConnection)
    c = await trio_upgrade.upgrade("http://h/", CustomProtocol())
    assert_type(c, Custom)
    d = await trio_upgrade.upgrade("http://h/", [CustomProtocol()])
    assert_type(d, Custom)


async def check_open_upgrade() -> None:
    async with trio_upgrade.open_upgrade("http://h/", [WebSocket(), H2C()]) as a:
        assert_type(a, WS_OR_H2)
    async with trio_upgrade.open_upgrade("http://h/", (WebSocket(), "h2c")) as b:
        assert_type(b, WS_OR_H2)
    async with trio_upgrade.open_upgrade("http://h/", [WebSocket(), Raw("x")]) as c:
        assert_type(c, WebSocketConnection | RawStream)
    async with trio_upgrade.open_upgrade("http://h/", [H2C(), Raw("x")]) as d:
        assert_type(d, HTTP2Connection | RawStream)
    async with trio_upgrade.open_upgrade("http://h/", [Raw("x")]) as e:
        assert_type(e, RawStream)
    async with trio_upgrade.open_upgrade("http://h/", [H2C(), "x", WebSocket()]) as f:
        assert_type(f, ANY_BUILTIN)
