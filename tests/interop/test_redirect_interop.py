"""Redirects made by a real server: nginx ``return`` in front of ``websockets``.

nginx answers some paths with a redirect itself (a ``301`` with its HTML
body, keep-alive, the ``Location`` made absolute as nginx does) and
reverse-proxies the rest, upgrades included, to the ``websockets`` echo
server. Each test checks that ``upgrade()`` reaches the WebSocket or
raises the documented error, and that credentials do not leave the origin.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest
import servers
import trio
from redirect_support import start_routes

import trio_upgrade
from trio_upgrade import RedirectError, WebSocketConnection

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def websockets_echo() -> Iterator[servers.RunningServer]:
    yield from servers.started(servers.websockets_server)


@pytest.fixture(scope="module")
def nginx(websockets_echo: servers.RunningServer) -> Iterator[servers.RunningServer]:
    backend = (websockets_echo.host, websockets_echo.port)
    returns = [
        ("/old", 301, "/new"),
        ("/a", 302, "/b"),
        ("/b", 307, "/a"),
        ("/away", 308, f"http://{backend[0]}:{backend[1]}/there"),
    ]
    yield from servers.started(servers.nginx_proxy, backend, returns)


async def test_nginx_redirect_to_the_websocket(nginx: servers.RunningServer) -> None:
    url = f"ws://{nginx.host}:{nginx.port}/old"
    with trio.fail_after(20):
        ws = await trio_upgrade.upgrade(url, "websocket", auth=("alice", "s3cret"))
        async with ws:
            await ws.send("hello")
            assert await ws.receive() == "hello"
    assert isinstance(ws, WebSocketConnection)
    assert [(a.status_code, a.url) for a in ws.attempts] == [
        (301, url),
        (101, f"ws://{nginx.host}:{nginx.port}/new"),
    ]
    # Same origin: the credentials went on to the second request.
    assert ws.handshake_request.headers.get("authorization", "").startswith("Basic ")


async def test_nginx_redirect_loop(nginx: servers.RunningServer) -> None:
    with trio.fail_after(20), pytest.raises(RedirectError) as info:
        await trio_upgrade.upgrade(f"ws://{nginx.host}:{nginx.port}/a", "websocket")
    assert info.value.reason == "loop"
    assert [a.status_code for a in info.value.attempts] == [302, 307]


async def test_nginx_redirect_to_another_origin_drops_credentials(
    nginx: servers.RunningServer, websockets_echo: servers.RunningServer
) -> None:
    url = f"ws://{nginx.host}:{nginx.port}/away"
    with trio.fail_after(20):
        ws = await trio_upgrade.upgrade(
            url, "websocket", auth=("alice", "s3cret"), headers={"Cookie": "s=1"}
        )
        async with ws:
            await ws.send("hi")
            assert await ws.receive() == "hi"
    sent = ws.handshake_request.headers
    assert "authorization" not in sent and "cookie" not in sent
    assert ws.attempts[-1].url == (
        f"ws://{websockets_echo.host}:{websockets_echo.port}/there"
    )


async def test_what_the_other_origin_received(nursery: trio.Nursery) -> None:
    # The second origin is a recording loopback server: nginx redirects to
    # it, and it must see no credentials.
    other = await start_routes(nursery, lambda target: None)
    returns = [("/go", 302, other.url("/landed"))]
    running = await trio.to_thread.run_sync(
        partial(servers.nginx_proxy, (other.host, other.port), returns)
    )
    try:
        with trio.fail_after(20):
            conn = await trio_upgrade.upgrade(
                f"http://alice:s3cret@{running.host}:{running.port}/go",
                "echo",
                headers=[("Proxy-Authorization", "Basic eA=="), ("X-Keep", "1")],
            )
            await conn.aclose()
    finally:
        await trio.to_thread.run_sync(running.stop)
    [seen] = other.requests
    assert seen.target == "/landed"
    assert seen.get("authorization") is None
    assert seen.get("proxy-authorization") is None
    assert seen.get("x-keep") == "1"
