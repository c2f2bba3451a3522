"""Upgrades through real proxies from Debian's packages: tinyproxy (HTTP
CONNECT) and Dante (SOCKS 4 and 5)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from functools import partial

import pytest
import servers
import trio
import trustme

import trio_upgrade
from trio_upgrade.testing import (
    H2CServerProtocol,
    UpgradeServer,
    WebSocketServerProtocol,
    open_upgrade_server,
)

HOST = servers.HOST

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def tinyproxy() -> Iterator[servers.RunningServer]:
    yield from servers.started(servers.tinyproxy_server)


async def test_raw_upgrade_through_tinyproxy(tinyproxy: servers.RunningServer) -> None:
    async with open_upgrade_server(["echo"]) as server:
        with trio.fail_after(20):
            conn = await trio_upgrade.upgrade(
                server.url("/via-proxy"), "echo", proxy=tinyproxy.url()
            )
            async with conn:
                payload = bytes(range(256)) * 1024
                await conn.send_all(payload)
                received = b""
                while len(received) < len(payload):
                    received += await conn.receive_some()
                assert received == payload
        assert server.requests[0].target == "/via-proxy"


# -- SOCKS: Dante (Debian's dante-server) -----------------------------------


@pytest.fixture(scope="module")
def dante() -> Iterator[servers.RunningServer]:
    yield from servers.started(servers.dante_server)


@pytest.mark.parametrize(
    ("scheme", "host"),
    [
        ("socks5", "127.0.0.1"),
        ("socks5h", "localhost"),  # Dante resolves the name
        ("socks4", "127.0.0.1"),
    ],
)
async def test_websocket_and_h2c_through_dante(
    dante: servers.RunningServer, scheme: str, host: str
) -> None:
    proxy = dante.url(scheme=scheme).rstrip("/")
    protocols = [WebSocketServerProtocol(), H2CServerProtocol()]
    async with open_upgrade_server(protocols) as server:
        base = f"{host}:{server.port}"
        with trio.fail_after(20):
            async with trio_upgrade.open_upgrade(
                f"ws://{base}/ws", ["websocket"], proxy=proxy
            ) as ws:
                message = bytes(range(256)) * 1024
                await ws.send(message)
                assert await ws.receive() == message
            conn = await trio_upgrade.upgrade(f"http://{base}/h2", ["h2c"], proxy=proxy)
            async with conn:
                response = await conn.request("POST", "/echo", body=b"via dante")
                assert response.content == b"via dante"
        assert [r.target for r in server.requests] == ["/ws", "/h2"]
    assert "tcp/connect" in dante.log_text()


async def test_wss_through_dante(
    nursery: trio.Nursery, dante: servers.RunningServer
) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    server = UpgradeServer([WebSocketServerProtocol()])
    listeners = await nursery.start(
        partial(trio.serve_ssl_over_tcp, server.serve_stream, 0, context, host=HOST)
    )
    port = listeners[0].transport_listener.socket.getsockname()[1]
    client = ssl.create_default_context()
    ca.configure_trust(client)
    with trio.fail_after(20):
        async with trio_upgrade.open_upgrade(
            f"wss://localhost:{port}/",
            ["websocket"],
            proxy=dante.url(scheme="socks5h").rstrip("/"),
            ssl_context=client,
        ) as ws:
            await ws.send("over TLS, through SOCKS")
            assert await ws.receive() == "over TLS, through SOCKS"


async def test_dante_refuses_a_destination_it_does_not_allow(
    dante: servers.RunningServer,
) -> None:
    # The config allows loopback only: 192.0.2.1 (TEST-NET-1) is refused
    # by Dante's rules before it dials anything.
    with trio.fail_after(20), pytest.raises(trio_upgrade.ProxyError) as info:
        await trio_upgrade.upgrade(
            "http://192.0.2.1:80/", "echo", proxy=dante.url(scheme="socks5")
        )
    assert f"SOCKS proxy socks5://{HOST}:{dante.port}" in str(info.value)


@pytest.mark.parametrize(
    ("name", "scheme"), [("tinyproxy", "http"), ("dante", "socks5")]
)
async def test_the_proxy_reports_an_unreachable_server(
    request: pytest.FixtureRequest, name: str, scheme: str
) -> None:
    proxy: servers.RunningServer = request.getfixturevalue(name)
    port = servers.free_port()  # nothing listens there
    with trio.fail_after(20), pytest.raises(trio_upgrade.ProxyError) as info:
        await trio_upgrade.upgrade(
            f"http://127.0.0.1:{port}/", "echo", proxy=proxy.url(scheme=scheme)
        )
    assert info.value.proxy == proxy.url(scheme=scheme)
    if scheme == "http":  # tinyproxy says why, in a 5xx
        assert info.value.response is not None
        assert info.value.response.status_code >= 500
    else:  # the SOCKS reply code says "connection refused"
        assert "did not connect to" in str(info.value)
