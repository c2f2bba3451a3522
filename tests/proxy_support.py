"""Loopback proxies for the tests: HTTP CONNECT (plain or over TLS), SOCKS.

Small, but real: they listen on loopback, speak the protocol on the wire,
dial the target they are asked for and copy bytes both ways, recording what
they were sent so that tests can check what reached the proxy.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import trio

ProxyHandler = Callable[[trio.abc.Stream], Awaitable[None]]


async def read_head(stream: trio.abc.Stream) -> bytes:
    """Read until the end of an HTTP head (the bytes after it included)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise EOFError
        data += chunk
    return data


async def pipe(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
    """Copy ``source`` to ``sink`` until either ends, then close ``sink``."""
    try:
        async for data in source:
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await sink.aclose()


async def splice(client: trio.abc.Stream, upstream: trio.abc.Stream) -> None:
    """Copy bytes both ways until both directions are over."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pipe, client, upstream)
        nursery.start_soon(pipe, upstream, client)


def tunnelling_proxy(
    heads: list[bytes], require_auth: str | None = None
) -> ProxyHandler:
    """A CONNECT proxy: checks credentials, dials the target, pipes bytes.

    ``heads`` gets every request head received; ``require_auth`` is the
    ``Proxy-Authorization`` value to demand (else a 407).
    """

    async def handler(client: trio.abc.Stream) -> None:
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
        await splice(client, upstream)

    return handler


async def start_proxy(
    nursery: trio.Nursery,
    handler: ProxyHandler,
    *,
    ssl_context: ssl.SSLContext | None = None,
    scheme: str = "http",
    host: str = "127.0.0.1",
) -> str:
    """Serve ``handler`` on a free loopback port; return the proxy's URL.

    With ``ssl_context``, connections are TLS (an ``https://`` proxy). A
    client that goes away (or fails TLS) ends its connection quietly; any
    other error of the handler fails the test.
    """

    async def quiet(stream: trio.abc.Stream) -> None:
        try:
            await handler(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, EOFError):
            await trio.aclose_forcefully(stream)

    if ssl_context is None:
        listeners = await nursery.start(partial(trio.serve_tcp, quiet, 0, host=host))
        port = listeners[0].socket.getsockname()[1]
    else:
        listeners = await nursery.start(
            partial(trio.serve_ssl_over_tcp, quiet, 0, ssl_context, host=host)
        )
        port = listeners[0].transport_listener.socket.getsockname()[1]
        scheme = "https"
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


# -- SOCKS5 (RFC 1928) with username/password (RFC 1929) ---------------------


@dataclass
class SocksLog:
    """What a :func:`socks_proxy` was asked.

    Attributes:
        methods: the authentication methods each greeting offered.
        credentials: each ``(username, password)`` received.
        destinations: each ``(address type, host, port)`` asked for:
            type 1 IPv4, 3 a name (resolved by the proxy), 4 IPv6.
    """

    methods: list[bytes] = field(default_factory=list)
    credentials: list[tuple[str, str]] = field(default_factory=list)
    destinations: list[tuple[int, str, int]] = field(default_factory=list)


class _Reader:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    async def string(self) -> bytes:
        """Bytes up to a NUL (SOCKS4), the NUL dropped."""
        while b"\0" not in self.buffer:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        data, _, self.buffer = self.buffer.partition(b"\0")
        return data


async def _dial(host: str, port: int) -> trio.abc.Stream | None:
    try:
        return await trio.open_tcp_stream(host, port)
    except OSError:
        return None


async def _socks4(reader: _Reader, log: SocksLog) -> None:
    """SOCKS4 and 4a, after the version byte: CONNECT, no credential check."""
    client = reader.stream
    command, *_ = await reader.exactly(1)
    assert command == 1  # CONNECT
    port = int.from_bytes(await reader.exactly(2), "big")
    address = await reader.exactly(4)
    user = (await reader.string()).decode()
    if user:
        log.credentials.append((user, ""))
    if address[:3] == b"\0\0\0" and address[3]:  # 4a: a name follows
        kind, host = 3, (await reader.string()).decode("ascii")
    else:
        kind, host = 1, str(ipaddress.IPv4Address(address))
    log.destinations.append((kind, host, port))
    upstream = await _dial(host, port)
    if upstream is None:
        await client.send_all(b"\0\x5b" + bytes(6))  # rejected or failed
        await client.aclose()
        return
    await client.send_all(b"\0\x5a" + bytes(6))  # granted
    await splice(client, upstream)


def socks_proxy(log: SocksLog, credentials: tuple[str, str] | None) -> ProxyHandler:
    """A SOCKS5 proxy for CONNECT, demanding ``credentials`` when given; it
    also answers SOCKS4 and 4a (whose user id it records, not checks)."""

    async def handler(client: trio.abc.Stream) -> None:
        reader = _Reader(client)
        (version,) = await reader.exactly(1)
        if version == 4:
            return await _socks4(reader, log)
        assert version == 5
        (count,) = await reader.exactly(1)
        methods = await reader.exactly(count)
        log.methods.append(methods)
        method = 0x02 if credentials else 0x00
        if method not in methods:
            await client.send_all(b"\x05\xff")
            return await client.aclose()
        await client.send_all(bytes([5, method]))
        if credentials:
            version, size = await reader.exactly(2)
            user = (await reader.exactly(size)).decode()
            (size,) = await reader.exactly(1)
            password = (await reader.exactly(size)).decode()
            log.credentials.append((user, password))
            if (user, password) != credentials:
                await client.send_all(b"\x01\x01")
                return await client.aclose()
            await client.send_all(b"\x01\x00")
        version, command, _, kind = await reader.exactly(4)
        assert (version, command) == (5, 1)  # CONNECT
        if kind == 1:
            host = str(ipaddress.IPv4Address(await reader.exactly(4)))
        elif kind == 4:
            host = str(ipaddress.IPv6Address(await reader.exactly(16)))
        else:
            (size,) = await reader.exactly(1)
            host = (await reader.exactly(size)).decode("ascii")
        port = int.from_bytes(await reader.exactly(2), "big")
        log.destinations.append((kind, host, port))
        upstream = await _dial(host, port)
        if upstream is None:
            await client.send_all(b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00")
            return await client.aclose()
        await client.send_all(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x00")
        await splice(client, upstream)
        return None

    return handler
