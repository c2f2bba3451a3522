"""Adapters for the clients that run under Trio.

Each third-party library is imported in ``__aenter__``, so a missing one
turns into :class:`Skip` with the reason rather than an import error, and a
worker process imports only the library it measures.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import trio

from .base import MAX_MESSAGE, Client, Conn, Loop, Skip
from .raw import (
    CLOSE_FRAME,
    OP_BINARY,
    OP_CLOSE,
    client_frame,
    handshake_request,
    parse_header,
)

if TYPE_CHECKING:
    import httpx
    import trio_websocket
    from httpx_ws import AsyncWebSocketSession

RECEIVE_SIZE = 65536


class TrioClient(Client):
    loop: ClassVar[Loop] = "trio"

    async def gather(self, *jobs: Callable[[], Awaitable[None]]) -> None:
        async with trio.open_nursery() as nursery:
            for job in jobs:
                nursery.start_soon(job)

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def within(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        try:
            with trio.fail_after(seconds):
                await job()
        except trio.TooSlowError:
            raise TimeoutError(f"no answer within {seconds} s") from None


# --------------------------------------------------------------- raw floor --


class _ServerClosed(Exception):
    pass


class _RawConn:
    """Hand-rolled framing; subclasses move the bytes."""

    # Masked frames by payload: the benchmark sends two distinct payloads.
    _frames: ClassVar[dict[bytes, bytes]] = {}

    def __init__(self, leftover: bytes) -> None:
        self._buf = bytearray(leftover)
        self._pos = 0

    async def _send_all(self, data: bytes) -> None:
        raise NotImplementedError

    async def _recv(self) -> bytes:
        raise NotImplementedError

    async def _recv_into(self, view: memoryview) -> int:
        raise NotImplementedError

    def _close_transport(self) -> None:
        raise NotImplementedError

    async def send(self, data: bytes) -> None:
        frame = self._frames.get(data)
        if frame is None:
            frame = self._frames[data] = client_frame(OP_BINARY, data)
        await self._send_all(frame)

    async def receive(self) -> bytes:
        buf = self._buf
        while True:
            header = parse_header(buf, self._pos)
            if header is not None:
                opcode, head, n = header
                start = self._pos + head
                end = start + n
                if len(buf) >= end:
                    payload = bytes(buf[start:end])
                    if end == len(buf):
                        buf.clear()
                        self._pos = 0
                    else:
                        self._pos = end
                    if opcode == OP_CLOSE:
                        raise _ServerClosed
                    if opcode == OP_BINARY:
                        return payload
                    continue  # ping/pong: Node's ws sends none unasked
                if n > RECEIVE_SIZE:
                    # A large message: read the rest straight into its buffer.
                    big = bytearray(n)
                    have = len(buf) - start
                    big[:have] = buf[start:]
                    buf.clear()
                    self._pos = 0
                    view = memoryview(big)
                    while have < n:
                        got = await self._recv_into(view[have:])
                        if not got:
                            raise EOFError("connection lost mid-frame")
                        have += got
                    if opcode == OP_CLOSE:
                        raise _ServerClosed
                    return bytes(big)
            if self._pos:
                del buf[: self._pos]
                self._pos = 0
            data = await self._recv()
            if not data:
                raise EOFError("connection lost")
            buf += data

    async def close(self) -> None:
        try:
            await self._send_all(CLOSE_FRAME)
            with contextlib.suppress(_ServerClosed, EOFError):
                while True:
                    await self.receive()
        finally:
            self._close_transport()


class _RawSocketConn(_RawConn):
    def __init__(self, sock: trio.socket.SocketType, leftover: bytes) -> None:
        super().__init__(leftover)
        self._sock = sock

    async def _send_all(self, data: bytes) -> None:
        sent = await self._sock.send(data)
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while view:
            sent = await self._sock.send(view)
            view = view[sent:]

    async def _recv(self) -> bytes:
        return await self._sock.recv(RECEIVE_SIZE)

    async def _recv_into(self, view: memoryview) -> int:
        return await self._sock.recv_into(view)

    def _close_transport(self) -> None:
        self._sock.close()


class _RawStreamConn(_RawConn):
    def __init__(self, stream: trio.SocketStream, leftover: bytes) -> None:
        super().__init__(leftover)
        self._stream = stream

    async def _send_all(self, data: bytes) -> None:
        await self._stream.send_all(data)

    async def _recv(self) -> bytes:
        return await self._stream.receive_some(RECEIVE_SIZE)

    async def _recv_into(self, view: memoryview) -> int:
        data = await self._stream.receive_some(len(view))
        view[: len(data)] = data
        return len(data)

    def _close_transport(self) -> None:
        self._stream.socket.close()


async def _read_101(receive: Callable[[], Awaitable[bytes]]) -> bytes:
    """Read up to the end of the 101's head; return the bytes after it."""
    buf = b""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        data = await receive()
        if not data:
            raise EOFError("connection closed during the handshake")
        buf += data
    if not buf.startswith(b"HTTP/1.1 101 "):
        raise ConnectionError(f"not upgraded: {buf[:40]!r}")
    return buf[end + 4 :]


class RawTrio(TrioClient):
    """The floor: pre-built handshake and frames on a bare ``trio.socket``."""

    name = "raw-trio"
    dist = "trio"

    async def __aenter__(self) -> RawTrio:
        self._address = (self.target.host, self.target.port)
        self._request = handshake_request(
            self.target.host, self.target.port, self.target.path
        )
        return self

    async def connect(self) -> Conn:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await sock.connect(self._address)
            await sock.send(self._request)  # 160 bytes: never a partial send
            leftover = await _read_101(lambda: sock.recv(RECEIVE_SIZE))
        except BaseException:
            sock.close()
            raise
        return _RawSocketConn(sock, leftover)


class RawTrioStream(RawTrio):
    """The floor's framing on what real Trio clients use for transport:
    ``trio.open_tcp_stream`` and a ``trio.SocketStream``.

    Not a client to compare, a reference point: the distance from
    ``raw-trio`` is the cost of Trio's stream layer (happy-eyeballs connect
    in a nursery, ``ConflictDetector``, ``send_all``'s loop); the distance
    from here to a library is the library's own.
    """

    name = "raw-trio-stream"

    async def connect(self) -> Conn:
        stream = await trio.open_tcp_stream(self.target.host, self.target.port)
        try:
            await stream.send_all(self._request)
            leftover = await _read_101(lambda: stream.receive_some(RECEIVE_SIZE))
        except BaseException:
            stream.socket.close()
            raise
        return _RawStreamConn(stream, leftover)


# ----------------------------------------------------------- trio_upgrade --


class _UpgradeConnection(Protocol):
    """The part of ``trio_upgrade.WebSocketConnection`` the benchmark uses."""

    async def send(self, message: str | bytes) -> None: ...

    async def receive(self) -> str | bytes: ...

    async def aclose(self) -> None: ...


class _TrioUpgradeConn:
    def __init__(self, conn: _UpgradeConnection) -> None:
        self._conn = conn

    async def send(self, data: bytes) -> None:
        await self._conn.send(data)

    async def receive(self) -> bytes:
        message = await self._conn.receive()
        if not isinstance(message, bytes):
            raise TypeError(f"expected bytes, got {type(message).__name__}")
        return message

    async def close(self) -> None:
        await self._conn.aclose()


class TrioUpgrade(TrioClient):
    """``trio_upgrade.upgrade(url, [WebSocket(compression=None)])``."""

    name = "trio_upgrade"
    dist = "trio_upgrade"

    async def __aenter__(self) -> TrioUpgrade:
        try:
            import trio_upgrade
        except ImportError as exc:
            raise Skip(f"trio_upgrade is not importable: {exc}") from exc
        self._upgrade: Callable[..., Awaitable[Any]] = trio_upgrade.upgrade
        # Typed loosely: the WebSocket options are being written now, and
        # this harness must run against the stub as well as the real thing.
        websocket: Callable[..., Any] = trio_upgrade.WebSocket
        # The same limits as the other clients where the options exist.
        try:
            self._protocol = websocket(
                compression=None, max_size=MAX_MESSAGE, ping_interval=None
            )
        except TypeError:
            try:
                self._protocol = websocket(compression=None)
            except TypeError as exc:
                raise Skip(f"trio_upgrade.WebSocket(compression=None): {exc}") from exc
        self._url = self.target.url("ws")
        return self

    async def connect(self) -> Conn:
        conn: _UpgradeConnection = await self._upgrade(self._url, [self._protocol])
        return _TrioUpgradeConn(conn)


# --------------------------------------------------------- trio-websocket --


class _TrioWebsocketConn:
    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws

    async def send(self, data: bytes) -> None:
        await self._ws.send_message(data)

    async def receive(self) -> bytes:
        message = await self._ws.get_message()
        assert isinstance(message, bytes)
        return message

    async def close(self) -> None:
        await self._ws.aclose()


class TrioWebsocket(TrioClient):
    """trio-websocket's ``connect_websocket_url`` in one long-lived nursery.

    It has no compression support and sends no pings of its own; defaults
    kept (4 KiB reads, a message queue of one) apart from the message size.
    """

    name = "trio-websocket"
    dist = "trio-websocket"

    async def __aenter__(self) -> TrioWebsocket:
        try:
            import trio_websocket
        except ImportError as exc:
            raise Skip(f"trio-websocket is not installed: {exc}") from exc
        self._connect = trio_websocket.connect_websocket_url
        self._url = self.target.url("ws")
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._nursery.cancel_scope.cancel()
        await self._nursery_manager.__aexit__(exc_type, exc, tb)

    async def connect(self) -> Conn:
        ws = await self._connect(self._nursery, self._url, max_message_size=MAX_MESSAGE)
        return _TrioWebsocketConn(ws)


# ---------------------------------------------------------- websockets.trio --


class _StackConn:
    """A connection that a context manager opened; closing leaves it.

    Used for APIs that only offer ``async with`` (each connection then owns a
    nursery); the measurements close connections in reverse order of
    opening, as nested nurseries require.
    """

    def __init__(
        self,
        stack: contextlib.AsyncExitStack,
        send: Callable[[bytes], Awaitable[None]],
        receive: Callable[[], Awaitable[bytes]],
    ) -> None:
        self._stack = stack
        self._send = send
        self._receive = receive

    async def send(self, data: bytes) -> None:
        await self._send(data)

    async def receive(self) -> bytes:
        return await self._receive()

    async def close(self) -> None:
        await self._stack.aclose()


class WebsocketsTrio(TrioClient):
    """``websockets.trio.client.connect`` (new in websockets 16, experimental)."""

    name = "websockets-trio"
    dist = "websockets"

    async def __aenter__(self) -> WebsocketsTrio:
        try:
            from websockets.trio.client import connect
        except ImportError as exc:
            raise Skip(f"websockets.trio is not available: {exc}") from exc
        self._connect = connect
        self._url = self.target.url("ws")
        return self

    async def connect(self) -> Conn:
        async with contextlib.AsyncExitStack() as stack:
            ws = await stack.enter_async_context(
                self._connect(
                    self._url,
                    compression=None,
                    ping_interval=None,
                    max_size=MAX_MESSAGE,
                    proxy=None,
                )
            )

            async def receive() -> bytes:
                message = await ws.recv()
                assert isinstance(message, bytes)
                return message

            return _StackConn(stack.pop_all(), ws.send, receive)
        raise AssertionError("unreachable")


# ---------------------------------------------------------------- httpx-ws --


class HttpxWs(TrioClient):
    """httpx-ws's ``aconnect_ws`` on an ``httpx.AsyncClient``, under Trio."""

    name = "httpx-ws"
    dist = "httpx-ws"

    async def __aenter__(self) -> HttpxWs:
        try:
            import httpx
            from httpx_ws import aconnect_ws
        except ImportError as exc:
            raise Skip(f"httpx-ws is not installed: {exc}") from exc
        self._aconnect_ws = aconnect_ws
        self._url = self.target.url("http")
        # Unlimited pool: the memory figure holds 1,000 connections open.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        self._http: httpx.AsyncClient = httpx.AsyncClient(
            limits=limits, trust_env=False, timeout=60.0
        )
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.__aexit__(exc_type, exc, tb)

    async def connect(self) -> Conn:
        async with contextlib.AsyncExitStack() as stack:
            ws: AsyncWebSocketSession = await stack.enter_async_context(
                self._aconnect_ws(
                    self._url,
                    self._http,
                    max_message_size_bytes=MAX_MESSAGE,
                    keepalive_ping_interval_seconds=None,
                )
            )
            return _StackConn(stack.pop_all(), ws.send_bytes, ws.receive_bytes)
        raise AssertionError("unreachable")
