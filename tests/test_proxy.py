"""Upgrades through an HTTP CONNECT proxy (a small real one, on loopback)."""

from __future__ import annotations

import ssl
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

import pytest
import trio
import trustme
from h2_helpers import prior_knowledge_server
from proxy_support import (
    ProxyHandler,
    SocksLog,
    read_head,
    socks_proxy,
    start_proxy,
    tunnelling_proxy,
)
from test_upgrade_hosts import needs_ipv6

import trio_upgrade
from trio_upgrade import InvalidURL, ProxyError
from trio_upgrade._transport._proxy import parse_proxy
from trio_upgrade.testing import (
    H2CServerProtocol,
    Reply,
    UpgradeServer,
    WebSocketServerProtocol,
    open_upgrade_server,
)

pytestmark = pytest.mark.timeout(30)

#: Every entry point that connects, by the same options: the URL and options
#: in, the connection (to close) out.
Connect = Callable[..., Awaitable[trio.abc.AsyncResource]]
ENTRY_POINTS = [
    pytest.param(partial(trio_upgrade.upgrade, protocols="echo"), id="upgrade"),
    pytest.param(trio_upgrade.connect_http2, id="connect_http2"),
]


async def start(nursery: trio.Nursery, handler: ProxyHandler) -> str:
    return await start_proxy(nursery, handler)


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
    assert info.value.proxy == proxy  # both entry points name it


def test_proxy_url_parsing() -> None:
    proxy = parse_proxy("http://user:secret@127.0.0.1:3128")
    assert (proxy.target.host, proxy.target.port) == ("127.0.0.1", 3128)
    assert proxy.headers == (("Proxy-Authorization", "Basic dXNlcjpzZWNyZXQ="),)
    assert parse_proxy("http://proxy.test").target.port == 80
    with pytest.raises(InvalidURL, match="proxy URL"):
        parse_proxy("ftp://127.0.0.1:1080")


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
        "ftp://user:s3cr3t@127.0.0.1:1080",
        "http://user:s3cr3t@127.0.0.1:99999",
        "socks5://user:s3cr3t@:1080",
        "http://user:s3cr3t@[::1/",
    ],
)
def test_a_bad_proxy_url_error_does_not_show_its_password(url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        parse_proxy(url)
    assert "s3cr3t" not in str(info.value)
    assert "user" not in str(info.value)


def test_a_proxy_repr_does_not_show_its_credentials() -> None:
    proxy = parse_proxy("http://user:s3cr3t@127.0.0.1:3128")
    token = proxy.headers[0][1]
    for text in (repr(proxy), str(proxy)):
        assert "s3cr3t" not in text
        assert token not in text
        assert token.split()[1] not in text


# -- Proxies from the environment (the default, proxy=True) ------------------


def servers_of_both_kinds() -> AbstractAsyncContextManager[UpgradeServer]:
    return open_upgrade_server([WebSocketServerProtocol(), H2CServerProtocol()])


async def echo_h2(conn: trio_upgrade.HTTP2Connection) -> None:
    async with conn:
        assert (await conn.request("POST", "/echo", body=b"h2")).content == b"h2"


async def test_the_environment_names_the_proxy_by_default(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    heads: list[bytes] = []
    proxy = await start(nursery, tunnelling_proxy(heads))
    monkeypatch.setenv("ws_proxy", proxy)
    # Nothing listens there: http:// URLs (which read http_proxy, not
    # ws_proxy) fail, naming that proxy.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    async with servers_of_both_kinds() as server:
        with trio.fail_after(10):
            url = server.url("/ws", scheme="ws")
            async with trio_upgrade.open_upgrade(url, ["websocket"]) as ws:
                await ws.send("through the environment's proxy")
                assert await ws.receive() == "through the environment's proxy"
            with pytest.raises(ProxyError, match=r"proxy http://127\.0\.0\.1:9\b"):
                await trio_upgrade.upgrade(server.url("/h2"), ["h2c"])
            # None: direct, the environment not read; a URL: that proxy.
            await echo_h2(await trio_upgrade.upgrade(server.url(), ["h2c"], proxy=None))
            await echo_h2(
                await trio_upgrade.upgrade(server.url(), ["h2c"], proxy=proxy)
            )
            # Read at each call: no_proxy set now is obeyed now.
            monkeypatch.setenv("no_proxy", "localhost, 127.0.0.1")
            async with trio_upgrade.open_upgrade(url, ["websocket"]) as ws:
                await ws.send("direct")
                assert await ws.receive() == "direct"
        assert [r.target for r in server.requests] == ["/ws", "/", "/", "/ws"]
        port = server.port
    assert [h.split(b"\r\n")[0] for h in heads] == [
        f"CONNECT 127.0.0.1:{port} HTTP/1.1".encode()
    ] * 2


async def test_connect_http2_reads_the_environment(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    heads: list[bytes] = []
    proxy = await start(nursery, tunnelling_proxy(heads))
    monkeypatch.setenv("ALL_PROXY", proxy)
    async with prior_knowledge_server() as (url, _):
        with trio.fail_after(10):
            await echo_h2(await trio_upgrade.connect_http2(url))
            await echo_h2(await trio_upgrade.connect_http2(url, proxy=False))
    assert len(heads) == 1


async def test_a_bad_proxy_url_in_the_environment_is_an_invalid_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("http_proxy", "ftp://user:s3cr3t@127.0.0.1:21")
    with trio.fail_after(10), pytest.raises(InvalidURL) as info:
        await trio_upgrade.upgrade("http://127.0.0.1:9/", "echo")
    assert "from the environment" in str(info.value)
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize("source", ["argument", "environment"])
async def test_credentials_reach_the_proxy_only(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    heads: list[bytes] = []
    proxy = await start(nursery, tunnelling_proxy(heads, require_auth="Basic dTpwIHc="))
    proxy = proxy.replace("://", "://u:p%20w@")
    options: dict[str, Any] = {"proxy": proxy}
    if source == "environment":
        monkeypatch.setenv("http_proxy", proxy)
        options = {}
    async with servers_of_both_kinds() as server:
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), ["h2c"], **options)
            async with conn:
                response = await conn.request("GET", "/", headers=[("x-a", "1")])
                assert response.status_code == 200
        assert len(heads) == 1
        for request in server.requests:
            assert "proxy-authorization" not in request.headers
            assert "dTpwIHc=" not in repr(request)


# -- https:// proxies: TLS to the proxy, the tunnel inside ------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_wss_through_an_https_proxy_is_tls_in_tls(
    nursery: trio.Nursery, ca: trustme.CA
) -> None:
    heads: list[bytes] = []
    proxy = await start_proxy(
        nursery,
        tunnelling_proxy(heads, require_auth="Basic dTpzM2NyM3Q="),
        ssl_context=server_context(ca),
    )
    assert proxy.startswith("https://")
    server = UpgradeServer([WebSocketServerProtocol()])
    listeners = await nursery.start(
        partial(
            trio.serve_ssl_over_tcp,
            server.serve_stream,
            0,
            server_context(ca),
            host="127.0.0.1",
        )
    )
    port = listeners[0].transport_listener.socket.getsockname()[1]
    with trio.fail_after(10):
        ws = await trio_upgrade.upgrade(
            f"wss://localhost:{port}/tls-in-tls",
            ["websocket"],
            proxy=proxy.replace("://", "://u:s3cr3t@"),
            ssl_context=trusting(ca),
            proxy_ssl_context=trusting(ca),
        )
        async with ws:
            # The server's TLS runs in the tunnel, itself in TLS to the proxy.
            outer = ws.transport
            assert isinstance(outer, trio.SSLStream)
            tunnel = outer.transport_stream
            assert isinstance(tunnel, trio_upgrade.RawStream)
            message = bytes(range(256)) * 512
            await ws.send(message)
            assert await ws.receive() == message
    assert heads[0].startswith(f"CONNECT localhost:{port} HTTP/1.1\r\n".encode())
    assert "proxy-authorization" not in server.requests[0].headers


async def test_h2c_through_an_https_proxy(
    nursery: trio.Nursery, ca: trustme.CA
) -> None:
    heads: list[bytes] = []
    proxy = await start_proxy(
        nursery, tunnelling_proxy(heads), ssl_context=server_context(ca)
    )
    async with servers_of_both_kinds() as server:
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(
                server.url(), ["h2c"], proxy=proxy, proxy_ssl_context=trusting(ca)
            )
            await echo_h2(conn)
    assert len(heads) == 1


async def test_the_https_proxy_certificate_is_verified(
    nursery: trio.Nursery, ca: trustme.CA
) -> None:
    heads: list[bytes] = []
    proxy = await start_proxy(
        nursery, tunnelling_proxy(heads), ssl_context=server_context(ca)
    )
    # The default context trusts the system's CAs, not the test's own.
    with trio.fail_after(10), pytest.raises(ProxyError) as info:
        await trio_upgrade.upgrade("http://127.0.0.1:9/", "echo", proxy=proxy)
    assert f"proxy {proxy}: " in str(info.value)
    assert "certificate verify failed" in str(info.value)
    assert isinstance(info.value.__cause__, trio.BrokenResourceError)
    assert isinstance(info.value.__cause__.__cause__, ssl.SSLCertVerificationError)
    assert heads == []


# -- SOCKS (python-socks) ---------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "host", "destination"),
    [
        ("socks5", "127.0.0.1", (1, "127.0.0.1")),
        # socks5h: the proxy resolves the name.
        ("socks5h", "localhost", (3, "localhost")),
    ],
)
async def test_websocket_and_h2c_through_socks5(
    nursery: trio.Nursery, scheme: str, host: str, destination: tuple[int, str]
) -> None:
    log = SocksLog()
    proxy = await start_proxy(
        nursery, socks_proxy(log, ("user", "p@ss w")), scheme=scheme
    )
    proxy = proxy.replace("://", "://user:p%40ss%20w@")
    async with servers_of_both_kinds() as server:
        port = server.port
        base = f"{host}:{port}"
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(
                f"ws://{base}/", ["websocket"], proxy=proxy
            ) as ws:
                await ws.send(b"socks")
                assert await ws.receive() == b"socks"
            await echo_h2(
                await trio_upgrade.upgrade(f"http://{base}/", ["h2c"], proxy=proxy)
            )
        assert "proxy-authorization" not in server.requests[0].headers
    assert log.credentials == [("user", "p@ss w")] * 2
    assert log.destinations == [(*destination, port)] * 2
    assert b"\x02" in log.methods[0]  # username/password offered


@pytest.mark.parametrize(
    ("scheme", "host", "destination"),
    [
        ("socks4", "127.0.0.1", (1, "127.0.0.1")),
        ("socks4a", "localhost", (3, "localhost")),
    ],
)
async def test_raw_through_socks4(
    nursery: trio.Nursery, scheme: str, host: str, destination: tuple[int, str]
) -> None:
    log = SocksLog()
    proxy = await start_proxy(nursery, socks_proxy(log, None), scheme=scheme)
    async with open_upgrade_server(["echo"]) as server:
        port = server.port
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(
                f"http://{host}:{port}/", "echo", proxy=proxy.replace("://", "://me@")
            )
            async with conn:
                await conn.send_all(b"socks4")
                assert await conn.receive_some() == b"socks4"
    assert log.destinations == [(*destination, port)]
    assert log.credentials == [("me", "")]  # SOCKS4's user id


async def test_socks5_refused_credentials_name_the_proxy(
    nursery: trio.Nursery,
) -> None:
    log = SocksLog()
    proxy = await start_proxy(
        nursery, socks_proxy(log, ("user", "right")), scheme="socks5"
    )
    wrong = proxy.replace("://", "://user:s3cr3t@")
    with trio.fail_after(10), pytest.raises(ProxyError) as info:
        await trio_upgrade.upgrade("http://127.0.0.1:9/", "echo", proxy=wrong)
    assert info.value.proxy == proxy.replace("://", "://***@")
    assert info.value.proxy in str(info.value)
    assert "refused the credentials" in str(info.value)
    assert "s3cr3t" not in str(info.value)
    assert log.credentials == [("user", "s3cr3t")]
    assert log.destinations == []  # never got as far as the server's address
    # Without credentials: it needs some.
    with trio.fail_after(10), pytest.raises(ProxyError, match="needs credentials"):
        await trio_upgrade.upgrade("http://127.0.0.1:9/", "echo", proxy=proxy)


async def test_socks5_cannot_reach_the_server(nursery: trio.Nursery) -> None:
    log = SocksLog()
    proxy = await start_proxy(nursery, socks_proxy(log, None), scheme="socks5")
    with trio.fail_after(10), pytest.raises(ProxyError) as info:
        await trio_upgrade.upgrade("http://127.0.0.1:9/", "echo", proxy=proxy)
    assert f"SOCKS proxy {proxy} did not connect to 127.0.0.1:9" in str(info.value)
    assert log.destinations == [(1, "127.0.0.1", 9)]


async def test_socks_without_python_socks_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "python_socks", None)
    with trio.fail_after(10), pytest.raises(ProxyError, match=r"trio-upgrade\[socks\]"):
        await trio_upgrade.upgrade(
            "http://127.0.0.1:9/", "echo", proxy="socks5://127.0.0.1:9"
        )


# -- Every failure names the proxy -------------------------------------------


def replying(reply: bytes) -> ProxyHandler:
    async def handler(client: trio.abc.Stream) -> None:
        await read_head(client)
        await client.send_all(reply)
        await client.aclose()

    return handler


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "403 Forbidden"),
        (
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
            "it refused the credentials",
        ),
        (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", "502 Bad Gateway"),
        (b"HTTP/1.1 200 Connec", "in the middle of its reply"),
        (b"", "closed the connection instead of answering"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "invalid reply"),
    ],
)
async def test_proxy_failures_name_the_proxy(
    nursery: trio.Nursery, reply: bytes, expected: str
) -> None:
    proxy = await start(nursery, replying(reply))
    with_credentials = proxy.replace("://", "://user:s3cr3t@")
    with trio.fail_after(10), pytest.raises(ProxyError) as info:
        await trio_upgrade.upgrade(
            "http://127.0.0.1:9/", "echo", proxy=with_credentials
        )
    message = str(info.value)
    assert message.startswith(f"the proxy {proxy.replace('://', '://***@')} ")
    assert expected in message
    assert "s3cr3t" not in message
    assert "dXNlcjpzM2NyM3Q=" not in message


async def test_a_407_without_credentials_says_they_are_needed(
    nursery: trio.Nursery,
) -> None:
    proxy = await start(nursery, tunnelling_proxy([], require_auth="Basic x"))
    with trio.fail_after(10), pytest.raises(ProxyError, match="needs credentials"):
        await trio_upgrade.upgrade("http://127.0.0.1:9/", "echo", proxy=proxy)


@pytest.mark.parametrize("scheme", ["http", "https", "socks5", "socks4a"])
async def test_an_unreachable_proxy_is_named(scheme: str) -> None:
    # Bound, not listening: connecting is refused.
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        proxy = f"{scheme}://user:s3cr3t@127.0.0.1:{port}"
        with trio.fail_after(10), pytest.raises(ProxyError) as info:
            await trio_upgrade.upgrade("http://127.0.0.1:9/", "echo", proxy=proxy)
    assert f"proxy {scheme}://***@127.0.0.1:{port}" in str(info.value)
    assert "s3cr3t" not in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize("scheme", ["http", "https", "socks5"])
async def test_a_stalled_proxy_hits_the_connect_deadline(
    nursery: trio.Nursery, scheme: str
) -> None:
    closed = trio.Event()

    async def silent(client: trio.abc.Stream) -> None:
        # Reads what the client sends (a CONNECT, a TLS hello, a SOCKS
        # greeting), never answers, and sees the client close.
        async for _ in client:
            pass
        closed.set()

    # The proxy listens without TLS: for https://, the TLS handshake stalls.
    proxy = await start_proxy(nursery, silent, scheme=scheme)
    limits = trio_upgrade.Limits(connect_timeout=0.2)
    with trio.fail_after(10), pytest.raises(trio_upgrade.UpgradeTimeout) as info:
        await trio_upgrade.upgrade(
            "http://127.0.0.1:9/", "echo", proxy=proxy, limits=limits
        )
    assert info.value.phase == "connect"
    assert info.value.proxy == proxy
    assert str(info.value).endswith(f"(through the proxy {proxy})")
    with trio.fail_after(5):
        await closed.wait()  # the connection to the proxy was not leaked


async def test_endless_1xx_from_the_proxy_is_bounded(nursery: trio.Nursery) -> None:
    async def stalling(client: trio.abc.Stream) -> None:
        await read_head(client)
        while True:
            await client.send_all(b"HTTP/1.1 100 Continue\r\n\r\n" * 64)

    proxy = await start(nursery, stalling)
    limits = trio_upgrade.Limits(connect_timeout=5, max_informational=16)
    with trio.fail_after(10), pytest.raises(ProxyError, match="more than 16 1xx"):
        await trio_upgrade.upgrade(
            "http://127.0.0.1:9/", "echo", proxy=proxy, limits=limits
        )


@pytest.mark.parametrize("proxy", [3128, b"http://p:1", ["http://p:1"]])
async def test_a_proxy_of_the_wrong_type_is_a_type_error(proxy: object) -> None:
    # Not silently a direct connection.
    with pytest.raises(TypeError, match="proxy must be"):
        await trio_upgrade.upgrade("http://127.0.0.1:9/", "echo", proxy=proxy)  # type: ignore[call-overload]


@needs_ipv6
@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_ipv6_proxy_and_server(nursery: trio.Nursery, scheme: str) -> None:
    log = SocksLog()
    heads: list[bytes] = []
    handler = socks_proxy(log, None) if scheme == "socks5" else tunnelling_proxy(heads)
    proxy = await start_proxy(nursery, handler, scheme=scheme, host="::1")
    assert proxy.startswith(f"{scheme}://[::1]:")
    async with open_upgrade_server(["echo"], host="::1") as server:
        port = server.port
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), "echo", proxy=proxy)
            async with conn:
                await conn.send_all(b"v6")
                assert await conn.receive_some() == b"v6"
    if scheme == "socks5":
        assert log.destinations == [(4, "::1", port)]  # an IPv6 address
    else:
        assert heads[0].startswith(f"CONNECT [::1]:{port} HTTP/1.1\r\n".encode())


@pytest.mark.parametrize(
    "url",
    [
        "socks5://%C3%BCzr:s3cr3t@127.0.0.1",  # python-socks sends ASCII only
        "socks5://uzr:s%C3%A9cr3t@127.0.0.1",
        "socks5://uzr@127.0.0.1",  # no password: python-socks would not log in
        "socks5://:s3cr3t@127.0.0.1",
        f"socks5://{'uzr' * 86}:s3cr3t@127.0.0.1",  # RFC 1929: 255 at most
        f"socks5h://uzr:{'s3cr3t' * 43}@127.0.0.1",
        "socks4://%C3%BCzr@127.0.0.1",
        "socks4a://uzr%00@127.0.0.1",  # SOCKS4's user id ends at a NUL
    ],
)
def test_socks_credentials_that_cannot_be_sent_are_invalid(url: str) -> None:
    with pytest.raises(InvalidURL, match="SOCKS credentials") as info:
        parse_proxy(url)
    assert "s3cr3t" not in str(info.value)
    assert "zr" not in str(info.value)
    assert "***@127.0.0.1" in str(info.value)


async def test_a_socks5h_name_that_cannot_be_sent_is_a_proxy_error(
    nursery: trio.Nursery,
) -> None:
    log = SocksLog()
    proxy = await start_proxy(nursery, socks_proxy(log, None), scheme="socks5h")
    long_label = "a" * 64  # DNS labels have 63 octets at most
    with trio.fail_after(10), pytest.raises(ProxyError) as info:
        await trio_upgrade.upgrade(f"http://{long_label}.test/", "echo", proxy=proxy)
    assert proxy in str(info.value)
    assert log.destinations == []


@pytest.mark.parametrize("proxied_hop", [0, 1])
async def test_each_redirect_hop_gets_its_own_proxy(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, proxied_hop: int
) -> None:
    heads: list[bytes] = []
    monkeypatch.setenv("http_proxy", await start(nursery, tunnelling_proxy(heads)))
    async with open_upgrade_server(["echo"]) as final:
        moved = Reply(302, headers=[("Location", final.url("/here"))])
        async with open_upgrade_server(["other"], fallback=moved) as first:
            ports = [first.port, final.port]
            # no_proxy names the hop that goes directly, by host:port.
            monkeypatch.setenv("no_proxy", f"127.0.0.1:{ports[1 - proxied_hop]}")
            with trio.fail_after(10):
                conn = await trio_upgrade.upgrade(first.url("/start"), "echo")
                async with conn:
                    await conn.send_all(b"moved")
                    assert await conn.receive_some() == b"moved"
        assert [r.target for r in final.requests] == ["/here"]
    assert [h.split(b"\r\n")[0] for h in heads] == [
        f"CONNECT 127.0.0.1:{ports[proxied_hop]} HTTP/1.1".encode()
    ]
