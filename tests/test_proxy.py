"""Upgrades through an HTTP CONNECT proxy (a small real one, on loopback)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
from h2_helpers import prior_knowledge_server
from proxy_support import pipe, read_head

import trio_upgrade
from trio_upgrade import InvalidURL, ProxyError
from trio_upgrade._transport._proxy import parse_proxy
from trio_upgrade.testing import open_upgrade_server

pytestmark = pytest.mark.timeout(30)

ProxyHandler = Callable[[trio.SocketStream], Awaitable[None]]


def tunnelling_proxy(
    heads: list[bytes], require_auth: str | None = None
) -> ProxyHandler:
    """A CONNECT proxy: checks credentials, dials the target, pipes bytes."""

    async def handler(client: trio.SocketStream) -> None:
        head = await read_head(client)
        heads.append(head)
        request_line = head.split(b"\r\n")[0].decode()
        method, authority, _ = request_line.split(" ")
        assert method == "CONNECT"
        if require_auth and f"Proxy-Authorization: {require_auth}" not in head.decode():
            await client.send_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="t"\r\nContent-Length: 0\r\n\r\n'
            )
            await client.aclose()
            return
        host, _, port = authority.rpartition(":")
        upstream = await trio.open_tcp_stream(host.strip("[]"), int(port))
        await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pipe, client, upstream)
            nursery.start_soon(pipe, upstream, client)

    return handler


#: Every entry point that connects, by the same options: the URL and options
#: in, the connection (to close) out.
Connect = Callable[..., Awaitable[trio.abc.AsyncResource]]
ENTRY_POINTS = [
    pytest.param(partial(trio_upgrade.upgrade, protocols="echo"), id="upgrade"),
    pytest.param(trio_upgrade.connect_http2, id="connect_http2"),
]


async def start(nursery: trio.Nursery, handler: ProxyHandler) -> str:
    listeners = await nursery.start(
        partial(trio.serve_tcp, handler, 0, host="127.0.0.1")
    )
    return f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"


async def test_upgrade_through_a_connect_tunnel(nursery: trio.Nursery) -> None:
    heads: list[bytes] = []
    proxy = await start(nursery, tunnelling_proxy(heads))
    async with open_upgrade_server(["echo"]) as server:
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url("/p"), "echo", proxy=proxy)
            async with conn:
                await conn.send_all(b"through the tunnel")
                assert await conn.receive_some() == b"through the tunnel"
        # The server got an ordinary upgrade request for its own URL.
        assert server.requests[0].target == "/p"
        port = server.port
    assert heads[0].startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n".encode())


async def test_credentials_go_to_the_proxy_only(nursery: trio.Nursery) -> None:
    heads: list[bytes] = []
    proxy = await start(nursery, tunnelling_proxy(heads, require_auth="Basic dTpwIHc="))
    async with open_upgrade_server(["echo"]) as server:
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(
                server.url(), "echo", proxy=proxy.replace("://", "://u:p%20w@")
            )
            await conn.aclose()
        assert "proxy-authorization" not in server.requests[0].headers


@pytest.mark.parametrize("connect", ENTRY_POINTS)
async def test_refused_tunnel_is_a_proxy_error(
    nursery: trio.Nursery, connect: Connect
) -> None:
    proxy = await start(nursery, tunnelling_proxy([], require_auth="Basic nope"))
    with trio.fail_after(10), pytest.raises(ProxyError) as info:
        await connect("http://127.0.0.1:9/", proxy=proxy)
    assert info.value.response is not None
    assert info.value.response.status_code == 407
    assert "407" in str(info.value)
    assert isinstance(info.value, trio_upgrade.ConnectError)


@pytest.mark.parametrize(
    "reply", [b"garbage\r\n\r\n", b"", b"HTTP/1.1 200 OK\r\nContent-Le"]
)
async def test_broken_proxy_replies_are_proxy_errors(
    nursery: trio.Nursery, reply: bytes
) -> None:
    async def handler(client: trio.SocketStream) -> None:
        await read_head(client)
        await client.send_all(reply)
        await client.aclose()

    proxy = await start(nursery, handler)
    with trio.fail_after(10), pytest.raises(trio_upgrade.ConnectError):
        await trio_upgrade.upgrade("http://127.0.0.1:9/", "echo", proxy=proxy)


@pytest.mark.parametrize("connect", ENTRY_POINTS)
async def test_silent_proxy_hits_the_connect_deadline(
    nursery: trio.Nursery, connect: Connect
) -> None:
    async def handler(client: trio.SocketStream) -> None:
        await read_head(client)
        await trio.sleep_forever()

    proxy = await start(nursery, handler)
    limits = trio_upgrade.Limits(connect_timeout=0.2)
    with trio.fail_after(10), pytest.raises(trio_upgrade.UpgradeTimeout) as info:
        await connect("http://127.0.0.1:9/", proxy=proxy, limits=limits)
    assert info.value.phase == "connect"


def test_proxy_url_parsing() -> None:
    proxy = parse_proxy("http://user:secret@127.0.0.1:3128")
    assert (proxy.target.host, proxy.target.port) == ("127.0.0.1", 3128)
    assert proxy.headers == [("Proxy-Authorization", "Basic dXNlcjpzZWNyZXQ=")]
    assert parse_proxy("http://proxy.test").target.port == 80
    with pytest.raises(InvalidURL, match="proxy URL"):
        parse_proxy("socks5://127.0.0.1:1080")


# -- HTTP/2 with prior knowledge takes the same proxy option -----------------


async def test_connect_http2_through_a_connect_tunnel(nursery: trio.Nursery) -> None:
    heads: list[bytes] = []
    proxy = await start(nursery, tunnelling_proxy(heads))
    async with prior_knowledge_server() as (url, protocol):
        with trio.fail_after(10):
            async with trio_upgrade.open_http2(url, proxy=proxy) as conn:
                response = await conn.request("POST", "/echo", body=b"tunnelled")
                assert response.content == b"tunnelled"
            conn2 = await trio_upgrade.connect_http2(url, proxy=proxy)
            async with conn2:
                assert (await conn2.request("POST", "/echo", body=b"2")).content == b"2"
    assert len(protocol.connections) == 2
    authority = url.removeprefix("http://").rstrip("/")
    assert [h.split(b"\r\n")[0] for h in heads] == [
        f"CONNECT {authority} HTTP/1.1".encode()
    ] * 2


@pytest.mark.parametrize(
    "url",
    [
        "socks5://user:s3cr3t@127.0.0.1:1080",
        "http://user:s3cr3t@127.0.0.1:99999",
        "http://user:s3cr3t@[::1/",
    ],
)
def test_a_bad_proxy_url_error_does_not_show_its_password(url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        parse_proxy(url)
    assert "s3cr3t" not in str(info.value)
    assert "user" not in str(info.value)
