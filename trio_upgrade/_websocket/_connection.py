"""WebSocketConnection: the public face of a WebSocket connection.

The moving parts (who reads, who writes, how it ends) are in ``_engine``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import trio
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from .._errors import ConnectionClosed
from .._sansio._messages import Request, Response
from .._sansio._ws_frames import build_frame

# ConnectionSettings is re-exported: _h2_websocket builds connections too.
from ._engine import ConnectionSettings, Engine, PingWaiter

__all__ = ["ConnectionSettings", "WebSocketConnection"]

_pack_code = struct.Struct("!H").pack


def _split(message: str | bytes, size: int) -> Sequence[str | bytes]:
    """Cut a message into fragments of at most ``size`` bytes of payload."""
    if isinstance(message, bytes):
        return [message[i : i + size] for i in range(0, len(message), size)]
    if message.isascii():
        return [message[i : i + size] for i in range(0, len(message), size)]
    data = message.encode("utf-8")
    parts: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + size, len(data))
        # Cut between code points: text frames carry whole characters here.
        while end < len(data) and end > start and data[end] & 0xC0 == 0x80:
            end -= 1
        if end == start:  # size smaller than one character: take it whole
            end = start + 1
            while end < len(data) and data[end] & 0xC0 == 0x80:
                end += 1
        parts.append(data[start:end].decode("utf-8"))
        start = end
    return parts


class WebSocketConnection(Engine, trio.abc.Channel[str | bytes]):
    """A WebSocket connection (RFC 6455): a channel of text and binary messages.

    Returned by :func:`trio_upgrade.upgrade` when the server switched to
    WebSocket. ``send(str)`` sends a text message, ``send(bytes)`` a binary
    one; ``receive()`` returns ``str`` or ``bytes`` accordingly. ``async for``
    iterates until the server closes normally. Use it as an async context
    manager, or call :meth:`aclose`, to close it.

    Concurrency: one task may send while another receives; concurrent
    senders take turns (their messages never interleave); two tasks
    receiving at once is an error (:class:`trio.BusyResourceError`).

    Who reads the socket: incoming data is read by whichever call needs it
    (``receive()``, ``ping()``, ``aclose()``). Without a background task, the
    server's pings are answered and its close frame is seen only while one of
    those calls runs. With a nursery (:func:`trio_upgrade.open_upgrade`, or
    ``upgrade(..., nursery=)``), a background task also reads when the
    application has not for 0.1 s, and keepalive pings run. Either way, at
    most ``max_queue`` messages wait for :meth:`receive`; then reading stops
    (backpressure) until the application catches up, and pings wait too.
    Answering a ping never holds up reading: a pong the transport cannot
    take at once is written when it can (by the next call that reads or
    sends, or the background task), and while pongs cannot be written only
    the latest ping is answered (RFC 6455 §5.5.3), so a server that sends
    pings without reading costs a bounded 2 KiB.

    Cancellation: a cancelled ``receive()`` loses nothing. A ``send()``
    cancelled while its frames were being written may have sent part of a
    frame; the connection is then unusable and is aborted (code 1006).

    Attributes:
        protocol: ``"websocket"``.
    """

    protocol = "websocket"

    __slots__ = ()

    # -- what it is ----------------------------------------------------

    @property
    def handshake_request(self) -> Request:
        """The upgrade request that was sent."""
        return self._request

    @property
    def handshake_response(self) -> Response:
        """The ``101 Switching Protocols`` response."""
        return self._response

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose, or ``None``."""
        return self._subprotocol

    @property
    def extensions(self) -> tuple[str, ...]:
        """The extensions in force, as the server accepted them.

        For example ``("permessage-deflate; server_max_window_bits=12",)``;
        empty without compression.
        """
        return self._extensions

    @property
    def transport(self) -> trio.abc.Stream:
        """The byte stream underneath (a socket, or TLS)."""
        return self._stream

    @property
    def close_code(self) -> int | None:
        """The close code, once the connection is closed or closing.

        The code of the peer's close frame (1005 if it had none), else the
        one this side failed the connection with (1002 protocol error, 1007
        invalid data, 1009 message too big, 1011 keepalive timeout), else
        1006 (the transport ended without a closing handshake). ``None``
        while the connection is open.
        """
        return self._closure.code if self._closure else None

    @property
    def close_reason(self) -> str | None:
        """The close reason that goes with :attr:`close_code`, or ``None``."""
        return self._closure.reason if self._closure else None

    def __repr__(self) -> str:
        state = "open" if self._closure is None else f"closed {self._closure.code}"
        return f"<WebSocketConnection {state} subprotocol={self._subprotocol!r}>"

    # -- messages ------------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Messages that arrived before the server closed are returned first.

        Raises:
            ConnectionClosed: the connection ended: ``normal`` is true when
                the server closed with 1000, 1001 or no code.
            ProtocolError: the server broke the protocol; the connection was
                failed with ``code`` 1002 (invalid frame), 1007 (invalid
                UTF-8) or 1009 (message over ``max_size``).
            trio.ClosedResourceError: :meth:`aclose` was called.
            trio.BusyResourceError: another task is already receiving.
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving")
        self._receiving = True
        try:
            checkpointed = False
            while True:
                if self._local_close:
                    break
                queue = self._queue
                head = self._head
                if head < len(queue):
                    if not checkpointed:
                        await trio.lowlevel.checkpoint()
                        checkpointed = True
                        continue  # aclose() may have run meanwhile
                    message = queue[head]
                    self._pop_front(head, queue)
                    return message
                if self._closure is not None:
                    break
                await self._progress()
                checkpointed = True
            if not checkpointed:
                await trio.lowlevel.checkpoint()
            raise self._closed_error()
        finally:
            self._receiving = False

    async def __anext__(self) -> str | bytes:
        """The next message; iteration stops when the server closes normally.

        Raises:
            ConnectionClosed: the connection ended abnormally.
            ProtocolError: as for :meth:`receive`.
        """
        try:
            return await self.receive()
        except ConnectionClosed as exc:
            if exc.normal:
                raise StopAsyncIteration from None
            raise

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary (``bytes``-like) message.

        Returns once the frames were handed to the transport. With
        ``max_fragment_size`` set, a larger message goes out as several
        frames, still in one write.

        Raises:
            TypeError: ``message`` is neither ``str`` nor bytes-like.
            ConnectionClosed: the connection is closed or closing.
            ProtocolError: the connection was failed because of the server.
            trio.ClosedResourceError: :meth:`aclose` was called.
        """
        if isinstance(message, (bytearray, memoryview)):
            message = bytes(message)
        elif not isinstance(message, (str, bytes)):
            raise TypeError(f"expected str or bytes, got {type(message).__name__}")
        if self._sending:
            await self._acquire_send()
        else:  # uncontended: take the turn without a coroutine call
            self._sending = True
        try:
            if self._closure is not None or self._local_close:
                await trio.lowlevel.checkpoint()
                raise self._closed_error()
            # Cancelled, the message must not touch the compressor's context
            # (permessage-deflate) nor take frames from the outbox: check
            # now, since nothing yields between here and the write.
            await trio.lowlevel.checkpoint_if_cancelled()
            data = self._encode(message)
            if self._outbox:  # control frames that were waiting for a turn
                data = self._take_outbox() + data
            if not await self._write(data) or (
                # Control frames the reader queued while we wrote.
                self._outbox and not await self._flush_outbox()
            ):
                raise self._closed_error()
        finally:
            self._release_send()

    def _encode(self, message: str | bytes) -> bytes | bytearray:
        ws = self._ws
        size = self._settings.max_fragment_size
        if (
            size is None
            or len(message) <= size // 4
            or (isinstance(message, bytes) and len(message) <= size)
        ):
            if (
                self._plain
                and ws._proto._outbound_opcode is None
                and ws.state is ConnectionState.OPEN
            ):
                # What wsproto would send, and its state stays as it is.
                if isinstance(message, str):
                    return build_frame(1, message.encode("utf-8"))
                return build_frame(2, message)
            if isinstance(message, str):
                return ws.send(TextMessage(data=message))
            return ws.send(BytesMessage(data=message))
        parts = _split(message, size)
        out = bytearray()
        last = len(parts) - 1
        for index, part in enumerate(parts):
            event: TextMessage | BytesMessage
            if isinstance(part, str):
                event = TextMessage(data=part, message_finished=index == last)
            else:
                event = BytesMessage(data=part, message_finished=index == last)
            out += ws.send(event)
        return bytes(out)

    # -- ping and close ------------------------------------------------

    async def ping(self, payload: bytes | None = None) -> float:
        """Send a ping and wait for its pong.

        The pong is read like any incoming data: by this call if no other
        task is reading, and only once the messages that arrived before it
        fit in the queue (a full queue waits for :meth:`receive`).

        Args:
            payload: up to 125 bytes; by default 4 random bytes.

        Returns:
            The round-trip time in seconds.

        Raises:
            ValueError: ``payload`` is too long or already awaits a pong.
            ConnectionClosed, ProtocolError, trio.ClosedResourceError: as
                for :meth:`receive`.
        """
        pings = self._pings
        if pings is None:
            pings = self._pings = {}
        if payload is None:
            payload = os.urandom(4)
            while payload in pings:
                payload = os.urandom(4)
        else:
            payload = bytes(payload)
            if len(payload) > 125:
                raise ValueError("a ping payload has at most 125 bytes")
            if payload in pings:
                raise ValueError(
                    "a ping with this payload is already awaiting its pong"
                )
        if self._closure is not None or self._local_close:
            await trio.lowlevel.checkpoint()
            raise self._closed_error()
        waiter = pings[payload] = PingWaiter(trio.current_time())
        try:
            self._outbox += self._ws.send(Ping(payload=payload))
            await trio.lowlevel.checkpoint()
            await self._flush_control()
            while waiter.latency is None:
                if self._closure is not None or self._local_close:
                    raise self._closed_error()
                await self._progress()
            return waiter.latency
        finally:
            pings.pop(payload, None)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with the closing handshake, then close the transport.

        Sends a close frame with ``code`` and ``reason``, waits for the
        server's close frame and for it to close TCP, all within
        ``Limits.close_timeout``; then (or on timeout or cancellation) closes
        the transport. Messages not yet received are discarded. Calling it
        again, or after the server closed, does nothing more.

        Args:
            code: 1000 (normal), 1001 (going away), another code valid to
                send (RFC 6455 §7.4), or 3000-4999 for applications.
            reason: at most 123 bytes of UTF-8.

        Raises:
            ValueError: ``code`` may not be sent, or ``reason`` is too long.
        """
        _check_close(code, reason)
        self._local_close = True
        self._queue.clear()
        self._head = 0
        self._parts = None
        self._notify()
        self._wake_bg()
        if self._transport_closed:
            await trio.lowlevel.checkpoint()
            return
        try:
            with trio.move_on_after(self._close_timeout):
                if self._ws.state is ConnectionState.OPEN:
                    self._outbox += _send_close(self._ws, self._plain, code, reason)
                if self._outbox:  # also a close answer a cancelled read left
                    await self._drain()
                while not self._eof and not self._must_close:
                    await self._progress()
        finally:
            if self._closure is None:
                self._set_closure(1006, "no closing handshake within close_timeout")
            await self._close_transport(drain=False)


# RFC 6455 §7.4.1-2: codes an endpoint may put in a close frame.
_SENDABLE = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


def _send_close(ws: Connection, plain: bool, code: int, reason: str) -> bytes:
    """The close frame for ``code`` and ``reason`` (checked by _check_close).

    With no extension in force (``plain``), the frame is built here as
    _encode() builds data frames, and wsproto is moved to the state its own
    send would leave it in: wsproto's path costs about as much again, on
    every connection's close. Otherwise wsproto builds it.
    """
    if plain:
        # wsproto would map local-only codes (1005, 1006, 1015) to 1000 and
        # truncate the reason at 123 bytes: neither can reach here.
        frame = build_frame(8, _pack_code(code) + reason.encode("utf-8"))
        ws._state = ConnectionState.LOCAL_CLOSING
        return bytes(frame)
    return ws.send(CloseConnection(code, reason))


def _check_close(code: int, reason: str) -> None:
    if not (code in _SENDABLE or 3000 <= code <= 4999):
        raise ValueError(f"close code {code} may not be sent (RFC 6455 §7.4)")
    if len(reason.encode("utf-8")) > 123:
        raise ValueError("a close reason has at most 123 bytes of UTF-8")
