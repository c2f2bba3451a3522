"""Adapters for the clients that run under asyncio (the default event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar

from .base import MAX_MESSAGE, Client, Conn, Loop, Skip

if TYPE_CHECKING:
    import aiohttp
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
