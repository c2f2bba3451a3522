"""Hosts of every form, end to end over real loopback sockets: IPv6 literals
(with and without a zone id), IDNA names and default ports (through a CONNECT
proxy, so that no name needs to resolve and no privileged port is bound),
request targets kept byte for byte; over HTTP/1.1 upgrades and HTTP/2.

The rules are in docs/explanation/hosts.rst; the sans-I/O side (every form
parsed, the request bytes) is in test_url.py and test_handshake.py."""

from __future__ import annotations

import socket
from functools import partial

import pytest
import trio
from h2_helpers import h2c_server
from proxy_support import pipe, read_head

import trio_upgrade
from trio_upgrade import InvalidURL
from trio_upgrade.testing import (
    H2Request,
    WebSocketServerProtocol,
    open_upgrade_server,
)
from trio_upgrade.testing._http2 import H2CServerProtocol, H2Reply

pytestmark = pytest.mark.timeout(30)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def _loopback_interface() -> str | None:
    """The name of the interface ``::1`` is on, for a zone id (Linux: lo)."""
    for index, name in socket.if_nameindex():
        if name.startswith("lo"):
            assert index > 0
            return name
    return None


needs_ipv6 = pytest.mark.skipif(
    not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)"
)
LOOPBACK_INTERFACE = _loopback_interface()


# -- IPv6 literals -------------------------------------------------------


@needs_ipv6
@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/p?a=1&b=%20", "/p?a=1&b=%20"),
        ("/p?", "/p?"),
        ("/p?q#fragment", "/p?q"),
        ("/ü?é=1", "/%C3%BC?%C3%A9=1"),
    ],
)
async def test_raw_over_ipv6(path: str, target: str) -> None:
    async with open_upgrade_server(["echo"], host="::1") as server:
        url = server.url(path)
        assert url.startswith("http://[::1]:")
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(url, "echo") as conn:
                await conn.send_all(b"ping")
                assert await conn.receive_some() == b"ping"
        (request,) = server.requests
        assert request.target == target
        assert request.headers.get_all("host") == [f"[::1]:{server.port}"]


@needs_ipv6
async def test_websocket_over_ipv6() -> None:
    async with open_upgrade_server([WebSocketServerProtocol()], host="::1") as server:
        url = server.url("/chat?room=1&x=%2F", scheme="ws")
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(url, "websocket") as ws:
                await ws.send("hello")
                assert await ws.receive() == "hello"
        (request,) = server.requests
        assert request.target == "/chat?room=1&x=%2F"
        assert request.headers.get_all("host") == [f"[::1]:{server.port}"]


@needs_ipv6
@pytest.mark.skipif(
    LOOPBACK_INTERFACE is None, reason="no loopback interface name for a zone id"
)
@pytest.mark.parametrize("form", ["%25{name}", "%{name}", "%25{index}"])
async def test_zone_id_used_to_connect_never_sent(form: str) -> None:
    assert LOOPBACK_INTERFACE is not None
    zone = form.format(
        name=LOOPBACK_INTERFACE, index=socket.if_nametoindex(LOOPBACK_INTERFACE)
    )
    async with open_upgrade_server(["echo"], host="::1") as server:
        url = f"http://[::1{zone}]:{server.port}/z?"
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(url, "echo") as conn:
                await conn.send_all(b"ping")
                assert await conn.receive_some() == b"ping"
        (request,) = server.requests
        assert request.target == "/z?"
        assert request.headers.get_all("host") == [f"[::1]:{server.port}"]


@needs_ipv6
async def test_unknown_zone_id_is_a_connect_error() -> None:
    async with open_upgrade_server(["echo"], host="::1") as server:
        url = f"http://[::1%25no-such-if9]:{server.port}/"
        with trio.fail_after(10), pytest.raises(trio_upgrade.ConnectError) as info:
            await trio_upgrade.upgrade(url, "echo")
        assert "no network interface named 'no-such-if9'" in str(info.value)
        assert server.requests == []


@needs_ipv6
async def test_h2c_authority_over_ipv6() -> None:
    seen: list[H2Request] = []

    async def record(request: H2Request) -> H2Reply:
        seen.append(request)
        return H2Reply(200, b"ok")

    protocol = H2CServerProtocol({("GET", "/x"): record})
    async with h2c_server(protocol, host="::1") as (server, _):
        url = server.url("/first?a=%20&")
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(url, "h2c") as conn:
                response = await conn.request("GET", "/x?b=1")
                assert response.content == b"ok"
        (request,) = server.requests
        assert request.target == "/first?a=%20&"
        assert request.headers.get_all("host") == [f"[::1]:{server.port}"]
        (later,) = seen
        assert later.authority == f"[::1]:{server.port}"
        assert later.target == "/x?b=1"


@needs_ipv6
async def test_connect_http2_authority_over_ipv6() -> None:
    seen: list[H2Request] = []

    async def record(request: H2Request) -> H2Reply:
        seen.append(request)
        return H2Reply(200, b"ok")

    protocol = H2CServerProtocol({("GET", "/x"): record})
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, host="::1"), protocol.serve_prior_knowledge, 0
        )
        port = listeners[0].socket.getsockname()[1]
        with trio.fail_after(10):
            async with await trio_upgrade.connect_http2(
                f"http://[::1]:{port}/"
            ) as conn:
                assert (await conn.request("GET", "/x")).content == b"ok"
        nursery.cancel_scope.cancel()
    (later,) = seen
    assert later.authority == f"[::1]:{port}"


# -- names and ports, through a proxy that maps every name to one server --


async def _mapping_proxy(
    nursery: trio.Nursery, upstream_port: int, heads: list[bytes]
) -> str:
    """A CONNECT proxy that tunnels to ``127.0.0.1:upstream_port`` whatever
    the authority asked for, recording each request head."""

    async def handler(client: trio.SocketStream) -> None:
        heads.append(await read_head(client))
        upstream = await trio.open_tcp_stream("127.0.0.1", upstream_port)
        await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        async with trio.open_nursery() as inner:
            inner.start_soon(pipe, client, upstream)
            inner.start_soon(pipe, upstream, client)

    listeners = await nursery.start(
        partial(trio.serve_tcp, handler, 0, host="127.0.0.1")
    )
    return f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"


@pytest.mark.parametrize(
    ("url", "connect", "host"),
    [
        ("ws://bücher.example/", "xn--bcher-kva.example:80", "xn--bcher-kva.example"),
        (
            "ws://BÜCHER.example:8080/",
            "xn--bcher-kva.example:8080",
            "xn--bcher-kva.example:8080",
        ),
        ("http://faß.de/", "xn--fa-hia.de:80", "xn--fa-hia.de"),
        ("ws://h/", "h:80", "h"),
        ("ws://h:80/", "h:80", "h"),
        ("http://h:8080/", "h:8080", "h:8080"),
        ("ws://h:443/", "h:443", "h:443"),
        ("ws://[fe80::1%25eth0]:80/", "[fe80::1]:80", "[fe80::1]"),
    ],
)
async def test_names_and_ports_on_the_wire(
    nursery: trio.Nursery, url: str, connect: str, host: str
) -> None:
    heads: list[bytes] = []
    async with open_upgrade_server(["echo"]) as server:
        proxy = await _mapping_proxy(nursery, server.port, heads)
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(url, "echo", proxy=proxy) as conn:
                await conn.send_all(b"ping")
                assert await conn.receive_some() == b"ping"
        (request,) = server.requests
        assert request.headers.get_all("host") == [host]
    (head,) = heads
    assert head.split(b"\r\n")[0] == f"CONNECT {connect} HTTP/1.1".encode()
    assert f"\r\nHost: {connect}\r\n".encode() in head


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ws:///", "no host"),
        ("ws://a b/", "whitespace"),
        ("ws://☃.example/", "not a valid internationalised domain name"),
        ("ws://h:65536/", "out of range 1-65535"),
        ("ws://::1:80/", "must be in brackets"),
    ],
)
async def test_bad_hosts_fail_before_connecting(url: str, message: str) -> None:
    with pytest.raises(InvalidURL, match=message):
        await trio_upgrade.upgrade(url, "echo")
    with pytest.raises(InvalidURL, match=message):
        await trio_upgrade.connect_http2(url.replace("ws://", "http://"))
