"""Type tests for the HTTP/2 API (mypy --strict; not collected by pytest).

Imports from the private modules until the names are exported from
``trio_upgrade``.
"""

from __future__ import annotations

import trio
from typing_extensions import assert_type

import trio_upgrade
from trio_upgrade import WebSocketConnection
from trio_upgrade._http2._protocol import HTTP2Connection, connect_http2, open_http2
from trio_upgrade._http2._stream import HTTP2Response, HTTP2Stream


async def check() -> None:
    conn = await trio_upgrade.upgrade("http://h/", "h2c")
    assert_type(conn.upgrade_response, HTTP2Response)
    response = await conn.request("POST", "/", body=[b"a", b"b"])
    assert_type(response, HTTP2Response)
    assert_type(response.status_code, int)
    assert_type(await response.read(), bytes)
    async with conn.stream("GET", "/") as streamed:
        assert_type(streamed, HTTP2Response)
        async for chunk in streamed:
            assert_type(chunk, bytes)
    tunnel = await conn.open_stream("CONNECT", "/", protocol="x")
    assert_type(tunnel, HTTP2Stream)
    assert_type(await conn.websocket("/chat"), WebSocketConnection)
    assert_type(await conn.ping(), float)
    prior = await connect_http2("http://h/")
    assert_type(prior, HTTP2Connection)
    async with open_http2("http://h/") as other:
        assert_type(other, HTTP2Connection)


async def check_shared_options(transport: trio.abc.Stream) -> None:
    # The HTTP/2 entry points take the connection options of upgrade().
    proxied = await connect_http2("http://h/", proxy="http://proxy.test:3128")
    assert_type(proxied, HTTP2Connection)
    given = await trio_upgrade.connect_http2(
        "https://h/", transport=transport, limits=trio_upgrade.Limits()
    )
    assert_type(given, HTTP2Connection)
    async with open_http2("http://h/", proxy="http://p:1", transport=None) as other:
        assert_type(other, HTTP2Connection)
    shared: trio_upgrade.ConnectOptions = {"proxy": "http://p:1"}
    assert_type(await connect_http2("http://h/", **shared), HTTP2Connection)
    # Options that only an upgrade request carries, or none at all, are errors.
    await connect_http2("http://h/", headers={"a": "b"})  # type: ignore[call-arg]
    await connect_http2("http://h/", bogus=1)  # type: ignore[call-arg]
    open_http2("http://h/", strategy="combined")  # type: ignore[call-arg]
    await connect_http2("http://h/", proxy=3128)  # type: ignore[arg-type]
