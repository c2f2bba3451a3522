"""https:// and wss:// URLs: TLS with verification, ALPN http/1.1 only."""

from __future__ import annotations

import pathlib
import ssl
from collections.abc import Iterator
from functools import partial

import pytest
import trio
import trustme
from alpn_support import trust_by_default

import trio_upgrade
from trio_upgrade import ConnectError
from trio_upgrade._transport._tls import HTTP11_ALPN, client_context

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def tls_server(
    nursery: trio.Nursery, ca: trustme.CA, seen_alpn: list[str | None]
) -> int:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    context.set_alpn_protocols(["h2", "http/1.1"])

    async def handler(stream: trio.SSLStream[trio.SocketStream]) -> None:
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(65536)
            seen_alpn.append(stream.selected_alpn_protocol())
            await stream.send_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"
                b"Connection: Upgrade\r\n\r\nsecret"
            )
            while chunk := await stream.receive_some(65536):
                await stream.send_all(chunk)
        except trio.BrokenResourceError:
            pass

    listeners = await nursery.start(
        partial(trio.serve_ssl_over_tcp, handler, 0, context, host="127.0.0.1")
    )
    port: int = listeners[0].transport_listener.socket.getsockname()[1]
    return port


def trusting(ca: trustme.CA, alpn: list[str]) -> ssl.SSLContext:
    """A client context of the test's own that trusts ``ca`` and offers ``alpn``."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(alpn)
    return context


async def test_https_upgrade_offers_only_http11(
    nursery: trio.Nursery, ca: trustme.CA
) -> None:
    alpn: list[str | None] = []
    port = await tls_server(nursery, ca, alpn)
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(
            f"https://localhost:{port}/",
            "echo",
            ssl_context=trusting(ca, ["http/1.1"]),
        )
        async with conn:
            assert await conn.receive_some() == b"secret"
            await conn.send_all(b"over tls")
            assert await conn.receive_some() == b"over tls"
            # TLS cannot half-close: a clear error, not a silent no-op.
            with pytest.raises(trio.BrokenResourceError, match="half-close"):
                await conn.send_eof()
    # A server preferring h2 still had to pick http/1.1: the upgrade happened.
    assert alpn == ["http/1.1"]


async def test_default_context_verifies_certificates(
    nursery: trio.Nursery, ca: trustme.CA
) -> None:
    port = await tls_server(nursery, ca, [])
    with trio.fail_after(10), pytest.raises(ConnectError, match="localhost"):
        await trio_upgrade.upgrade(f"wss://localhost:{port}/", "echo")


def test_default_context_requires_verified_certificates() -> None:
    context = client_context(HTTP11_ALPN)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


@pytest.fixture
def trusted_by_default(
    ca: trustme.CA, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Default contexts made during the test trust ``ca`` (SSL_CERT_FILE)."""
    yield from trust_by_default(ca, tmp_path, monkeypatch)


def _tls_context(conn: trio_upgrade.RawStream) -> ssl.SSLContext:
    tls = conn.transport
    assert isinstance(tls, trio.SSLStream)
    return tls.context


@pytest.mark.usefixtures("trusted_by_default")
async def test_default_context_is_made_once_per_configuration(
    nursery: trio.Nursery, ca: trustme.CA
) -> None:
    alpn: list[str | None] = []
    port = await tls_server(nursery, ca, alpn)
    url = f"https://localhost:{port}/"
    with trio.fail_after(10):
        first = await trio_upgrade.upgrade(url, "echo")
        async with first, await trio_upgrade.upgrade(url, "echo") as second:
            shared = _tls_context(first)
            assert _tls_context(second) is shared
        # HTTP/2 with prior knowledge is another configuration (ALPN h2),
        # so another context: the server picks h2 and, since it answers
        # in HTTP/1.1, the connection then fails.
        with pytest.raises(trio_upgrade.ProtocolError):
            await trio_upgrade.connect_http2(url)
    assert alpn == ["http/1.1", "http/1.1", "h2"]
    assert client_context(("h2",)) is not shared
    assert client_context(HTTP11_ALPN) is shared
    assert client_context.cache_info().currsize == 2


async def test_given_context_is_used_as_given(
    nursery: trio.Nursery, ca: trustme.CA
) -> None:
    alpn: list[str | None] = []
    port = await tls_server(nursery, ca, alpn)
    mine = trusting(ca, ["h2", "http/1.1"])
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(
            f"https://localhost:{port}/", "echo", ssl_context=mine
        )
        async with conn:
            assert _tls_context(conn) is mine
    # Its ALPN list too, though that lets the server choose h2 here.
    assert alpn == ["h2"]
