"""Opening the byte stream that the upgrade request travels on."""

from __future__ import annotations

import math
import socket
import ssl

import trio

from ._errors import ConnectError
from ._timeout import UpgradeTimeout
from ._url import Target

__all__ = ["default_ssl_context", "open_transport"]


def default_ssl_context() -> ssl.SSLContext:
    """A verifying client context that offers only ``http/1.1`` by ALPN.

    Offering ``h2`` would let the server pick HTTP/2 during TLS and the
    HTTP/1.1 upgrade would never happen (measured on real servers; see
    docs/interop.md), so the upgrade path offers ``http/1.1`` alone.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.set_alpn_protocols(["http/1.1"])
    return context


async def _connect_tcp(target: Target) -> trio.SocketStream:
    if not target.is_ip_literal:
        return await trio.open_tcp_stream(target.host, target.port)
    # A literal address needs no resolution nor happy eyeballs: one socket,
    # one connect. This saves the nursery and getaddrinfo thread round trip
    # that open_tcp_stream pays even for literals.
    family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        await sock.connect((target.host, target.port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


async def open_transport(
    target: Target,
    *,
    connect_timeout: float,
    ssl_context: ssl.SSLContext | None = None,
) -> trio.abc.Stream:
    """Connect to ``target`` (TCP, then TLS for https/wss).

    Raises:
        ConnectError: the connection could not be made.
        UpgradeTimeout: ``connect_timeout`` passed first (phase ``"connect"``).
    """
    stream: trio.abc.Stream | None = None
    with trio.move_on_after(connect_timeout) as scope:
        try:
            tcp = await _connect_tcp(target)
            stream = tcp
            if target.secure:
                context = (
                    ssl_context if ssl_context is not None else default_ssl_context()
                )
                tls = trio.SSLStream(
                    tcp, context, server_hostname=target.host, https_compatible=True
                )
                stream = tls
                await tls.do_handshake()
        except (OSError, trio.BrokenResourceError) as exc:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise ConnectError(
                f"could not connect to {target.authority}: {exc}"
            ) from exc
        except BaseException:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise
    if scope.cancelled_caught:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        raise UpgradeTimeout("connect", connect_timeout)
    assert stream is not None
    return stream


def deadline_from(timeout: float) -> float:
    """An absolute trio deadline ``timeout`` seconds from now (inf allowed)."""
    return math.inf if math.isinf(timeout) else trio.current_time() + timeout
