"""Adapters for the clients that run under asyncio (the default event loop)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from types import SimpleNamespace, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from .base import MAX_MESSAGE, Client, Conn, Loop, Skip

if TYPE_CHECKING:
    import aiohttp
    import picows
    from websockets.asyncio.client import ClientConnection


class AsyncioClient(Client):
    loop: ClassVar[Loop] = "asyncio"

    async def gather(self, *jobs: Callable[[], Awaitable[None]]) -> None:
        await asyncio.gather(*(job() for job in jobs))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def within(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        try:
            await asyncio.wait_for(job(), seconds)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no answer within {seconds} s") from None


# ----------------------------------------------------- websockets (asyncio) --


class _WebsocketsConn:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def send(self, data: bytes) -> None:
        await self._ws.send(data)

    async def receive(self) -> bytes:
        message = await self._ws.recv()
        assert isinstance(message, bytes)
        return message

    async def close(self) -> None:
        await self._ws.close()


class WebsocketsAsyncio(AsyncioClient):
    """``websockets.asyncio.client.connect``: the library's main client."""

    name = "websockets-asyncio"
    dist = "websockets"

    async def __aenter__(self) -> WebsocketsAsyncio:
        try:
            from websockets.asyncio.client import connect
        except ImportError as exc:
            raise Skip(f"websockets.asyncio is not available: {exc}") from exc
        self._connect = connect
        self._url = self.target.url("ws")
        return self

    async def connect(self) -> Conn:
        ws = await self._connect(
            self._url,
            compression=None,
            ping_interval=None,
            max_size=MAX_MESSAGE,
            proxy=None,
        )
        return _WebsocketsConn(ws)


# ----------------------------------------------------------------- aiohttp --


class _AiohttpConn:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        self._ws = ws

    async def send(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def receive(self) -> bytes:
        return await self._ws.receive_bytes()

    async def close(self) -> None:
        await self._ws.close()


class Aiohttp(AsyncioClient):
    """``ClientSession.ws_connect`` with an unlimited connector."""

    name = "aiohttp"
    dist = "aiohttp"

    async def __aenter__(self) -> Aiohttp:
        try:
            import aiohttp
        except ImportError as exc:
            raise Skip(f"aiohttp is not installed: {exc}") from exc
        self._url = self.target.url("http")
        # limit=0: no cap on open connections (the default is 100).
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), trust_env=False
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._session.close()

    async def connect(self) -> Conn:
        ws = await self._session.ws_connect(
            self._url,
            compress=0,
            max_msg_size=MAX_MESSAGE,
            heartbeat=None,
        )
        return _AiohttpConn(ws)


# ------------------------------------------------------------------ picows --


class _PicowsConn:
    """A message interface over picows' frame callbacks.

    picows hands each frame to a listener (``on_ws_frame``, called from the
    protocol's ``data_received``); the listener (made by :func:`_listener`)
    passes them here, which queues whole messages (a fragmented one is
    joined) and wakes the task waiting in ``receive()``, as the other
    clients' own receive queues do. ``send()`` is picows' synchronous
    ``WSTransport.send``, which writes to the asyncio transport at once.
    """

    def __init__(self, types: Any) -> None:
        self.types = types
        self.transport: picows.WSTransport | None = None
        self._messages: deque[bytes] = deque()
        self._fragments: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        kind, types = frame.msg_type, self.types
        if kind == types.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if kind == types.PING:
            transport.send_pong(frame.get_payload_as_bytes())
            return
        if kind == types.PONG:
            return
        payload = frame.get_payload_as_bytes()
        if not frame.fin or self._fragments:
            self._fragments.append(payload)
            if not frame.fin:
                return
            payload = b"".join(self._fragments)
            self._fragments.clear()
        self._messages.append(payload)
        self._wake()

    def disconnected(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.send(self.types.BINARY, data)

    async def receive(self) -> bytes:
        while not self._messages:
            if self._closed:
                raise ConnectionError("picows: the connection closed")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._messages.popleft()

    async def close(self) -> None:
        assert self.transport is not None
        self.transport.send_close(self.types.CLOSE_OK)
        await self.transport.wait_disconnected()


def _listener(picows: Any, types: Any) -> Callable[[], Any]:
    """A ``WSListener`` subclass (picows is imported only by its worker)."""

    class Listener(picows.WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.conn = _PicowsConn(types)

        def on_ws_connected(self, transport: picows.WSTransport) -> None:
            self.conn.transport = transport

        def on_ws_frame(
            self, transport: picows.WSTransport, frame: picows.WSFrame
        ) -> None:
            self.conn.frame(transport, frame)

        def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
            self.conn.disconnected()

    return Listener


class Picows(AsyncioClient):
    """``picows.ws_connect`` (Cython), a listener queueing whole messages."""

    name = "picows"
    dist = "picows"

    async def __aenter__(self) -> Picows:
        try:
            import picows
        except ImportError as exc:
            raise Skip(f"picows is not installed: {exc}") from exc
        types = SimpleNamespace(
            BINARY=picows.WSMsgType.BINARY,
            CLOSE=picows.WSMsgType.CLOSE,
            PING=picows.WSMsgType.PING,
            PONG=picows.WSMsgType.PONG,
            CLOSE_OK=picows.WSCloseCode.OK,
        )
        self._connect = picows.ws_connect
        self._factory = _listener(picows, types)
        self._url = self.target.url("ws")
        return self

    async def connect(self) -> Conn:
        # Auto-ping is off by default; frames up to the common limit.
        _, listener = await self._connect(
            self._factory, self._url, max_frame_size=MAX_MESSAGE
        )
        # The listener is ours (made by _listener), typed as picows' base.
        conn: _PicowsConn = getattr(listener, "conn")  # noqa: B009
        return conn
