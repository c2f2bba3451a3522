"""A ``ping_interval`` given for a connection that cannot run keepalive warns.

Keepalive pings are a background task: without a nursery (``upgrade()``
alone) or on a WebSocket over HTTP/2 they do not run. A ``ping_interval``
given explicitly there would silently do nothing, so the first such
connection of a ``WebSocket`` object emits a ``RuntimeWarning``; the
default, ``None`` and connections with a nursery do not.
"""

from __future__ import annotations

import warnings

import pytest
import trio
from h2_helpers import h2c_server
from ws_support import serve_ws

import trio_upgrade
from trio_upgrade import WebSocket
from trio_upgrade.testing._http2 import H2CServerProtocol, websocket_over_h2
from trio_upgrade.testing._websocket import WebSocketServerProtocol

pytestmark = pytest.mark.timeout(30)


async def test_explicit_ping_interval_without_a_nursery_warns_once() -> None:
    offer = WebSocket(ping_interval=5)
    async with serve_ws() as (server, _):
        with trio.fail_after(10):
            with pytest.warns(RuntimeWarning, match=r"ping_interval=5\) sends no"):
                async with await trio_upgrade.upgrade(server.url(), offer):
                    pass
            # Once per WebSocket object: the next connection is quiet.
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                async with await trio_upgrade.upgrade(server.url(), offer):
                    pass


@pytest.mark.parametrize(
    "offer",
    [
        pytest.param(WebSocket(), id="default"),
        pytest.param(WebSocket(ping_interval=None), id="none"),
        pytest.param("websocket", id="string"),
    ],
)
async def test_no_warning_without_an_explicit_interval(
    offer: WebSocket | str,
) -> None:
    async with serve_ws() as (server, _):
        with trio.fail_after(10), warnings.catch_warnings():
            warnings.simplefilter("error")
            async with await trio_upgrade.upgrade(server.url(), offer):
                pass


async def test_no_warning_with_a_nursery() -> None:
    offer = WebSocket(ping_interval=5)
    async with serve_ws() as (server, _):
        with trio.fail_after(10), warnings.catch_warnings():
            warnings.simplefilter("error")
            async with trio_upgrade.open_upgrade(server.url(), offer):
                pass


async def test_websocket_over_http2_warns() -> None:
    h2 = H2CServerProtocol(
        connect={"websocket": websocket_over_h2(WebSocketServerProtocol())}
    )
    async with h2c_server(h2) as (server, _):
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(server.url(), "h2c") as conn:
                with pytest.warns(RuntimeWarning, match="over HTTP/2"):
                    ws = await conn.websocket(
                        "/", protocol=WebSocket(compression=None, ping_interval=1)
                    )
                async with ws:
                    await ws.send("hi")
                    assert await ws.receive() == "hi"
