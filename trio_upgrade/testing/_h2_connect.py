"""Extended CONNECT (RFC 8441) on the test server's HTTP/2 connections.

A CONNECT request with a ``:protocol`` the server has a handler for gets an
:class:`H2ServerStream`: the stream as a byte stream both ways, so that any
protocol written for a :class:`trio.abc.Stream` runs over it
(``websocket_over_h2`` in ``_h2_routes`` runs the test server's own
WebSocket protocol so).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Protocol

import h2.connection
import h2.exceptions
import trio
from h2.errors import ErrorCodes

from .._transport._stream import check_max_bytes

__all__ = ["H2ServerStream", "StreamSender"]

#: Seconds a cancelled close may still take to send END_STREAM/RST_STREAM.
CLOSE_GRACE = 1.0


class StreamSender(Protocol):
    """What a stream needs of its connection (an ``H2ServerConnection``)."""

    h2: h2.connection.H2Connection

    async def send_body(self, sid: int, data: bytes, *, end: bool) -> None: ...

    async def flush(self) -> None: ...


class H2ServerStream(trio.abc.HalfCloseableStream):
    """The server's end of an extended CONNECT stream.

    Call :meth:`respond` first (a 2xx accepts the tunnel); then what the
    client sends is :meth:`receive_some`'s, and :meth:`send_all` sends DATA.
    Closing behaves like a socket's: END_STREAM, then RST_STREAM ``CANCEL``
    if the client had not ended its side.

    The client's RST_STREAM (or the end of the connection) shows here as a
    socket's reset would: :meth:`receive_some` returns what was buffered,
    then ``b""`` if the client had ended its side, else raises
    :class:`trio.BrokenResourceError`. A handler that reads the stream from
    its own task is therefore left to finish; one that never does is
    cancelled, since it would not notice.
    """

    def __init__(self, connection: StreamSender, stream_id: int) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self._chunks: deque[bytes] = deque()
        self._ended = False
        self._reset = False
        self._sent_eof = False
        self._closed = False
        self._sending = False
        self._receiving = False
        self._changed = trio.Event()
        # The task running the stream's handler, and whether it has read:
        # a handler that reads sees a reset on the stream and is not
        # cancelled by it (see H2ServerConnection._stream_over).
        self._handler_task: trio.lowlevel.Task | None = None
        self._read_by_handler = False

    # Called by the connection's reader.
    def _feed(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
        self._wake()

    def _end(self) -> None:
        self._ended = True
        self._wake()

    def _abort(self) -> None:
        self._reset = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _check(self, flag: str, what: str) -> None:
        if getattr(self, flag):
            raise trio.BusyResourceError(f"another task is already {what}")
        if self._closed:
            raise trio.ClosedResourceError("the stream was closed")

    async def respond(
        self, status: int = 200, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Send the response head (without ending the stream)."""
        fields = [(b":status", str(status).encode())]
        fields += [(n.encode(), v.encode()) for n, v in headers]
        self._connection.h2.send_headers(self.stream_id, fields)
        await self._connection.flush()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The next piece of the client's DATA, or ``b""`` once it ended."""
        check_max_bytes(max_bytes)
        self._check("_receiving", "receiving")
        self._receiving = True
        if trio.lowlevel.current_task() is self._handler_task:
            self._read_by_handler = True
        try:
            while not (self._chunks or self._ended or self._reset or self._closed):
                await self._changed.wait()
            await trio.lowlevel.checkpoint()
            if self._closed:
                raise trio.ClosedResourceError("the stream was closed")
            if self._chunks:
                chunk = self._chunks.popleft()
                if max_bytes is not None and len(chunk) > max_bytes:
                    self._chunks.appendleft(chunk[max_bytes:])
                    chunk = chunk[:max_bytes]
                return chunk
            if self._ended:
                return b""
            raise trio.BrokenResourceError(f"stream {self.stream_id} was reset")
        finally:
            self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` in DATA frames, as flow control allows."""
        self._check("_sending", "sending")
        self._sending = True
        try:
            if self._sent_eof:
                raise trio.ClosedResourceError("send_eof() was called")
            if self._reset:
                raise trio.BrokenResourceError(f"stream {self.stream_id} was reset")
            if not data:
                await trio.lowlevel.checkpoint()
                return
            try:
                await self._connection.send_body(self.stream_id, bytes(data), end=False)
            except h2.exceptions.ProtocolError as exc:  # reset meanwhile
                raise trio.BrokenResourceError(str(exc)) from exc
            if self._closed:
                raise trio.ClosedResourceError("the stream was closed")
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        self._check("_sending", "sending")
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        self._check("_sending", "sending")
        self._sending = True
        try:
            if self._sent_eof or self._reset:
                await trio.lowlevel.checkpoint()
                return
            self._sent_eof = True
            await self._connection.send_body(self.stream_id, b"", end=True)
        finally:
            self._sending = False

    async def aclose(self) -> None:
        """END_STREAM, then RST_STREAM ``CANCEL`` unless the client ended."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        self._wake()
        h2_state = self._connection.h2
        with contextlib.suppress(h2.exceptions.ProtocolError):
            if not self._sent_eof and not self._reset:
                self._sent_eof = True
                h2_state.end_stream(self.stream_id)
            if not self._ended and not self._reset:
                h2_state.reset_stream(self.stream_id, ErrorCodes.CANCEL)
        # Shielded (briefly), so that a cancelled close still tells the
        # client, as closing a socket always does.
        with (
            trio.CancelScope(shield=True) as shield,
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            shield.deadline = trio.current_time() + CLOSE_GRACE
            await self._connection.flush()
        await trio.lowlevel.checkpoint()
