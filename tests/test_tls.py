"""https:// and wss:// URLs: TLS with verification, ALPN http/1.1 only."""

from __future__ import annotations

import ssl
from functools import partial

import pytest
import trio
import trustme

import trio_upgrade
from trio_upgrade import ConnectError

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


async def test_https_upgrade_offers_only_http11(
    nursery: trio.Nursery, ca: trustme.CA
) -> None:
    alpn: list[str | None] = []
    port = await tls_server(nursery, ca, alpn)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    client_context.set_alpn_protocols(["http/1.1"])
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(
            f"https://localhost:{port}/", "echo", ssl_context=client_context
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
    from trio_upgrade._transport._connect import default_ssl_context

    context = default_ssl_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
