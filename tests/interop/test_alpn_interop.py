"""HTTP/2 selected by ALPN in upgrade(), against nginx over TLS.

nginx (Debian's package) with a trustme certificate: with ``http2`` its
ALPN selects ``h2``; without, ``http/1.1``, and the WebSocket upgrade to
``/ws`` (proxied to the ``websockets`` echo server) goes on on the same
TLS connection.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
import servers
import trio
import trustme

import trio_upgrade
from tests.alpn_support import trust_by_default
from trio_upgrade import HTTP2Connection, HTTP2NotSelected, WebSocketConnection

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

RunningServer = servers.RunningServer


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pem_files(
    ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> tuple[pathlib.Path, pathlib.Path]:
    directory = tmp_path_factory.mktemp("nginx-tls")
    cert = ca.issue_cert("localhost")
    chain, key = directory / "chain.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(chain))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(chain), append=True)
    cert.private_key_pem.write_to_path(str(key))
    return chain, key


@pytest.fixture(scope="module")
def websockets() -> Iterator[RunningServer]:
    yield from servers.started(servers.websockets_server)


@pytest.fixture(scope="module")
def nginx_h2(
    pem_files: tuple[pathlib.Path, pathlib.Path], websockets: RunningServer
) -> Iterator[RunningServer]:
    backend = (servers.HOST, websockets.port)
    yield from servers.started(servers.nginx_tls, *pem_files, backend=backend)


@pytest.fixture(scope="module")
def nginx_http1(
    pem_files: tuple[pathlib.Path, pathlib.Path], websockets: RunningServer
) -> Iterator[RunningServer]:
    backend = (servers.HOST, websockets.port)
    yield from servers.started(
        servers.nginx_tls, *pem_files, http2=False, backend=backend
    )


@pytest.fixture(autouse=True)
def trusted_by_default(
    ca: trustme.CA, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The library's own TLS contexts trust ``ca``."""
    yield from trust_by_default(ca, tmp_path, monkeypatch)


def url(server: RunningServer, path: str, scheme: str = "https") -> str:
    return f"{scheme}://localhost:{server.port}{path}"


async def test_nginx_selects_h2(nginx_h2: RunningServer) -> None:
    with trio.fail_after(20):
        conn = await trio_upgrade.upgrade(url(nginx_h2, "/"), ["h2", "websocket"])
        async with conn:
            assert isinstance(conn, HTTP2Connection)
            index = await conn.request("GET", "/index.html")
            big = await conn.request("GET", f"/{servers.BIG_FILE_NAME}")
    assert index.status_code == 200
    assert index.content == servers.INDEX_HTML
    assert big.content == servers.payload(servers.BIG_FILE_SIZE)


async def test_websocket_first_keeps_http11_with_an_h2_server(
    nginx_h2: RunningServer,
) -> None:
    # websocket preferred: the connection offers http/1.1 only by ALPN, so
    # nginx, which would pick h2, upgrades to WebSocket.
    with trio.fail_after(20):
        conn = await trio_upgrade.upgrade(
            url(nginx_h2, "/ws", "wss"), ["websocket", "h2"]
        )
        async with conn:
            assert isinstance(conn, WebSocketConnection)
            await conn.send("hello")
            assert await conn.receive() == "hello"


async def test_nginx_without_h2_goes_on_with_websocket(
    nginx_http1: RunningServer,
) -> None:
    with trio.fail_after(20):
        conn = await trio_upgrade.upgrade(
            url(nginx_http1, "/ws", "wss"), ["h2", "websocket"]
        )
        async with conn:
            assert isinstance(conn, WebSocketConnection)
            tls = conn.transport
            assert isinstance(tls, trio.SSLStream)
            assert tls.selected_alpn_protocol() == "http/1.1"
            await conn.send("over http/1.1")
            assert await conn.receive() == "over http/1.1"


async def test_nginx_without_h2_and_nothing_else(nginx_http1: RunningServer) -> None:
    with trio.fail_after(20), pytest.raises(HTTP2NotSelected) as info:
        await trio_upgrade.upgrade(url(nginx_http1, "/"), ["h2"])
    assert info.value.selected == "http/1.1"
