"""Opening the byte stream that the upgrade request travels on."""

from __future__ import annotations

import logging
import math
import socket
import ssl

import trio

from .._sansio._errors import ConnectError
from .._sansio._url import Target
from .._timeout import UpgradeTimeout
from ._observed import CONNECT_LOG, Trace, emit
from ._proxy import Proxy, ProxyError, open_socks, open_tunnel
from ._tls import HTTP11_ALPN, client_context

__all__ = [
    "HAS_UNIX",
    "connect_transport",
    "describe_unix_socket",
    "open_transport",
]


def _scope_id(zone: str) -> int:
    """The interface index of an IPv6 zone id (a name or a number); 0: none.

    The index goes in the socket address rather than ``%zone`` in the host
    string, which getaddrinfo resolves only for link-local addresses.

    Raises:
        OSError: no interface has that name.
    """
    if not zone:
        return 0
    if zone.isascii() and zone.isdigit():
        return int(zone)
    try:
        return socket.if_nametoindex(zone)
    except OSError:
        raise OSError(
            f"no network interface named {zone!r} (the URL's zone id)"
        ) from None


async def _connect_tcp(target: Target) -> trio.SocketStream:
    if not target.is_ip_literal:
        return await trio.open_tcp_stream(target.host, target.port)
    # A literal address needs no resolution nor happy eyeballs: one socket,
    # one connect. This saves the nursery and getaddrinfo thread round trip
    # that open_tcp_stream pays even for literals.
    address: tuple[str, int] | tuple[str, int, int, int]
    if ":" in target.host:
        # The scope id first: an unknown interface raises before a socket
        # exists to be closed.
        address = (target.host, target.port, 0, _scope_id(target.zone))
        family = socket.AF_INET6
    else:
        address = (target.host, target.port)
        family = socket.AF_INET
    return await _connect_socket(family, address)


async def _connect_socket(family: int, address: object) -> trio.SocketStream:
    """One socket of ``family``, connected to ``address``, as a stream."""
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        await sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


#: Whether this platform has Unix domain sockets (Linux, macOS, the BSDs).
HAS_UNIX = hasattr(socket, "AF_UNIX")


def describe_unix_socket(path: str) -> str:
    """How errors name a Unix socket: its path, or ``@name`` for a Linux
    abstract-namespace one (whose name starts with a NUL byte), as ``ss``
    and ``netstat`` show it."""
    if path.startswith("\0"):
        return f"Unix socket @{path[1:]!r}"
    return f"Unix socket {path!r}"


async def open_transport(
    target: Target,
    *,
    connect_timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    proxy: Proxy | None = None,
    proxy_ssl_context: ssl.SSLContext | None = None,
    unix_socket: str | None = None,
    max_head_size: int = 65536,
    max_informational: int = 16,
    alpn: tuple[str, ...] = HTTP11_ALPN,
    trace: Trace | None = None,
) -> trio.abc.Stream:
    """Connect to ``target``: TCP (through a proxy) or the Unix socket
    ``unix_socket``, then TLS.

    Without ``ssl_context``, TLS uses the shared context that offers ``alpn``;
    without ``proxy_ssl_context``, TLS to an ``https://`` proxy uses the
    shared context that offers ``http/1.1``.

    Raises:
        ConnectError: the connection could not be made (``ProxyError`` when
            the proxy could not be reached or would not open the tunnel).
        UpgradeTimeout: ``connect_timeout`` passed first (phase ``"connect"``).
    """
    stream: trio.abc.Stream | None = None
    with trio.move_on_after(connect_timeout) as scope:
        stream = await connect_transport(
            target,
            ssl_context=ssl_context,
            proxy=proxy,
            proxy_ssl_context=proxy_ssl_context,
            unix_socket=unix_socket,
            max_head_size=max_head_size,
            max_informational=max_informational,
            alpn=alpn,
            trace=trace,
        )
    if scope.cancelled_caught:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        through = proxy.url if proxy is not None else ""
        raise UpgradeTimeout("connect", connect_timeout, proxy=through)
    assert stream is not None
    return stream


async def connect_transport(
    target: Target,
    *,
    ssl_context: ssl.SSLContext | None = None,
    proxy: Proxy | None = None,
    proxy_ssl_context: ssl.SSLContext | None = None,
    unix_socket: str | None = None,
    max_head_size: int = 65536,
    max_informational: int = 16,
    alpn: tuple[str, ...] = HTTP11_ALPN,
    trace: Trace | None = None,
) -> trio.abc.Stream:
    """:func:`open_transport` without its time limit: the caller's scope
    bounds it (``upgrade()`` runs connect and handshake in one scope).

    Whatever happens, including cancellation, a stream that is not returned
    is closed. The steps are logged (``trio_upgrade.connect``, DEBUG) and
    told to ``trace``.

    Raises:
        ConnectError: as for :func:`open_transport`.
    """
    stream: trio.abc.Stream | None = None
    debug = CONNECT_LOG.isEnabledFor(logging.DEBUG)
    observed = debug or trace is not None
    if observed:
        start = trio.current_time()
        via = _via(proxy, unix_socket)
        if debug:
            CONNECT_LOG.debug("connecting to %s%s", target.authority, via)
        if trace is not None:
            emit(
                trace,
                "connect.started",
                {"host": target.host, "port": target.port, "via": via.strip()},
            )
    try:
        if unix_socket is not None:
            # The options check refuses a proxy URL with a Unix socket.
            try:
                stream = await _connect_socket(socket.AF_UNIX, unix_socket)
            except OSError as exc:
                where = describe_unix_socket(unix_socket)
                raise ConnectError(f"could not connect to {where}: {exc}") from exc
        elif proxy is None:
            try:
                stream = await _connect_tcp(target)
            except OSError as exc:
                raise ConnectError(
                    f"could not connect to {target.authority}: {exc}"
                ) from exc
        else:
            stream = await _through_proxy(
                proxy,
                target,
                proxy_ssl_context,
                max_head_size=max_head_size,
                max_informational=max_informational,
            )
        if observed:
            _connected(stream, target, start, debug, trace)
        if target.secure:
            context = ssl_context if ssl_context is not None else client_context(alpn)
            tls = trio.SSLStream(
                stream, context, server_hostname=target.host, https_compatible=True
            )
            stream = tls
            try:
                await tls.do_handshake()
            except (OSError, trio.BrokenResourceError) as exc:
                where = target.authority
                if unix_socket is not None:
                    where = describe_unix_socket(unix_socket)
                raise ConnectError(
                    f"could not connect to {where}: {_reason(exc)}"
                ) from exc
            if observed:
                _tls_done(tls, target, start, debug, trace)
    except BaseException:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        raise
    return stream


def _via(proxy: Proxy | None, unix_socket: str | None) -> str:
    if unix_socket is not None:
        return f" over {describe_unix_socket(unix_socket)}"
    if proxy is not None:
        return f" through {proxy.url}"
    return ""


def _peer(stream: trio.abc.Stream) -> str:
    """The address a socket stream (under its tunnels) is connected to."""
    while not isinstance(stream, trio.SocketStream):
        inner = getattr(stream, "transport_stream", None)
        if inner is None:
            return "?"
        stream = inner
    try:
        address = stream.socket.getpeername()
    except OSError:
        return "?"
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(address) or "?"  # a Unix socket's path


def _connected(
    stream: trio.abc.Stream,
    target: Target,
    start: float,
    debug: bool,
    trace: Trace | None,
) -> None:
    elapsed = trio.current_time() - start
    peer = _peer(stream)
    if debug:
        CONNECT_LOG.debug(
            "connected to %s (%s) in %.1f ms", target.authority, peer, elapsed * 1e3
        )
    if trace is not None:
        emit(trace, "connect.complete", {"peer": peer, "elapsed": elapsed})


def _tls_done(
    tls: trio.SSLStream[trio.abc.Stream],
    target: Target,
    start: float,
    debug: bool,
    trace: Trace | None,
) -> None:
    elapsed = trio.current_time() - start
    version, alpn = tls.version(), tls.selected_alpn_protocol()
    if debug:
        CONNECT_LOG.debug(
            "TLS with %s: %s, ALPN %r, in %.1f ms",
            target.host,
            version,
            alpn,
            elapsed * 1e3,
        )
    if trace is not None:
        emit(
            trace,
            "tls.complete",
            {"version": version, "alpn": alpn, "elapsed": elapsed},
        )


async def _through_proxy(
    proxy: Proxy,
    target: Target,
    context: ssl.SSLContext | None,
    *,
    max_head_size: int,
    max_informational: int,
) -> trio.abc.Stream:
    """A stream to ``target`` through ``proxy``; closed unless returned.

    Raises:
        ProxyError: every failure, naming the proxy.
    """
    if proxy.is_socks:
        local = proxy.scheme in ("socks5", "socks4")
        return await open_socks(proxy, target, local_resolve=local)
    stream: trio.abc.Stream | None = None
    try:
        stream = await _connect_tcp(proxy.target)
        if proxy.target.secure:
            # TLS to the proxy; the server's own TLS then runs inside it.
            tls = trio.SSLStream(
                stream,
                context if context is not None else client_context(HTTP11_ALPN),
                server_hostname=proxy.target.host,
                https_compatible=True,
            )
            stream = tls
            await tls.do_handshake()
        return await open_tunnel(
            stream,
            target,
            max_head_size=max_head_size,
            max_informational=max_informational,
            proxy=proxy,
        )
    except BaseException as exc:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        if isinstance(exc, (OSError, trio.BrokenResourceError)) and not isinstance(
            exc, ConnectError
        ):
            raise ProxyError(
                f"could not connect to the proxy {proxy.url}: {_reason(exc)}",
                proxy=proxy.url,
            ) from exc
        raise


def _reason(exc: BaseException) -> BaseException:
    """What to show of ``exc``: trio wraps TLS failures, empty, around the
    ``ssl`` module's own error."""
    if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def deadline_from(timeout: float) -> float:
    """An absolute trio deadline ``timeout`` seconds from now (inf allowed)."""
    return math.inf if math.isinf(timeout) else trio.current_time() + timeout
