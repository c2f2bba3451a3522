"""The buffered byte stream of an upgraded (or tunnelled) connection.

When a response head is parsed, the bytes read with it that belong to what
follows (the first frames of the new protocol, or of the tunnelled TLS) must
be served before the socket is read again; :class:`RawStream` does that, and
is what :class:`~trio_upgrade.Raw` returns and what proxies and the test
server build on.
"""

from __future__ import annotations

import trio

from .._sansio._errors import Attempt
from .._sansio._messages import Request, Response

__all__ = ["RawStream", "check_max_bytes"]


class RawStream(trio.abc.HalfCloseableStream):
    """The byte stream of an upgraded connection, for any protocol.

    Bytes that arrived together with the 101 head are served first, then
    reads go to the transport. Every call is a checkpoint, including those
    answered from that buffer, and two tasks receiving at once is an error
    (:class:`trio.BusyResourceError`), as for every Trio stream.

    Attributes:
        protocol: the protocol token the server chose (as offered).
        handshake_request: the upgrade request that was sent (``None`` on
            the server side of :mod:`trio_upgrade.testing`).
        handshake_response: the 101 response.
    """

    def __init__(
        self,
        transport: trio.abc.Stream,
        leftover: bytes = b"",
        *,
        protocol: str = "",
        request: Request | None = None,
        response: Response | None = None,
        attempts: tuple[Attempt, ...] = (),
    ) -> None:
        self._transport = transport
        self._buffer = bytearray(leftover)
        self._receiving = False
        self._closed = False
        self.protocol = protocol
        self.handshake_request = request
        self.handshake_response = response
        self._attempts = attempts

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every upgrade request the call made, in order, redirects included.

        The last one is the request that switched (status 101). Empty on the
        server side and for a stream not made by an upgrade.
        """
        return self._attempts

    @property
    def transport(self) -> trio.abc.Stream:
        """The stream underneath (a :class:`trio.SocketStream`, or TLS)."""
        return self._transport

    def unwrap(self) -> tuple[trio.abc.Stream, bytes]:
        """Hand over the transport and the bytes not yet received.

        Like :meth:`trio.SSLStream.unwrap`: for layering another protocol
        implementation on the connection. This object must not be used
        afterwards.
        """
        data = bytes(self._buffer)
        self._buffer.clear()
        self._closed = True
        return self._transport, data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` on the transport."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("the stream was closed")
        await self._transport.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the transport might accept more data at once."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("the stream was closed")
        await self._transport.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """Close the sending direction (TCP half-close).

        Raises:
            trio.ClosedResourceError: the stream was closed.
            trio.BrokenResourceError: the transport cannot half-close (TLS:
                a TLS close_notify ends both directions).
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("the stream was closed")
        if not isinstance(self._transport, trio.abc.HalfCloseableStream):
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError(
                f"{type(self._transport).__name__} cannot half-close"
            )
        await self._transport.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """The bytes that came with the 101 first, then the transport's;
        ``b""`` at end of stream."""
        check_max_bytes(max_bytes)
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving")
        self._receiving = True
        try:
            if self._closed:
                await trio.lowlevel.checkpoint()
                raise trio.ClosedResourceError("the stream was closed")
            if not self._buffer:
                return await self._transport.receive_some(max_bytes)
            await trio.lowlevel.checkpoint()
            if self._closed:
                raise trio.ClosedResourceError("the stream was closed")
            if max_bytes is None or max_bytes >= len(self._buffer):
                data = bytes(self._buffer)
                self._buffer.clear()
            else:
                data = bytes(self._buffer[:max_bytes])
                del self._buffer[:max_bytes]
            return data
        finally:
            self._receiving = False

    async def aclose(self) -> None:
        """Close the transport; bytes not received yet are dropped."""
        self._closed = True
        self._buffer.clear()
        await self._transport.aclose()

    def __repr__(self) -> str:
        return f"<RawStream protocol={self.protocol!r} buffered={len(self._buffer)}>"


def check_max_bytes(max_bytes: int | None) -> None:
    """The argument check of every ``receive_some`` (trio's stream contract).

    Raises:
        TypeError: ``max_bytes`` is neither an int nor None.
        ValueError: ``max_bytes`` is below 1.
    """
    if max_bytes is not None:
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool):
            raise TypeError("max_bytes must be an int or None")
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
