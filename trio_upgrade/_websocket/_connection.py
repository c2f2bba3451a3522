"""WebSocketConnection: the public face of a WebSocket connection.

It holds its engine (``_engine``: who reads, who writes, how it ends) and
exposes only the public methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

import trio
from wsproto.connection import Connection, ConnectionState
from wsproto.events import Ping

from .._ending import cancelled, goodbye_scope
from .._sansio._errors import Attempt, ConnectionClosed
from .._sansio._messages import Request, Response
from ._engine import WebSocketEngine
from ._pings import PingTracker
from ._shared import ConnectionSettings, SharedState

__all__ = ["WebSocketConnection"]


class WebSocketConnection(trio.abc.Channel[str | bytes]):
    """A WebSocket connection (RFC 6455): a channel of text and binary messages.

    Returned by :func:`trio_upgrade.upgrade` when the server switched to
    WebSocket. ``send(str)`` sends a text message, ``send(bytes)`` a binary
    one; ``receive()`` returns ``str`` or ``bytes`` accordingly. ``async for``
    iterates until the server closes normally. Use it as an async context
    manager, or call :meth:`aclose`, to close it.

    Concurrency: one task may send while another receives; concurrent
    senders' messages never interleave, and those that find a write in
    progress go out together in the next write (see :meth:`send`); two
    tasks receiving at once is an error (:class:`trio.BusyResourceError`).

    Who reads the socket: incoming data is read by whichever call needs it
    (``receive()``, ``ping()``, ``aclose()``). Without a background task, the
    server's pings are answered and its close frame is seen only while one of
    those calls runs. With a nursery (:func:`trio_upgrade.open_upgrade`, or
    ``upgrade(..., nursery=)``), a background task also reads when the
    application has not for 0.1 s, and keepalive pings run. Either way, at
    most ``max_queue`` messages wait for :meth:`receive`; then reading stops
    (backpressure) until the application catches up, except that a
    :meth:`ping` reads a bounded look-ahead further for its pong.
    Answering a ping never holds up reading: a pong the transport cannot
    take at once is written when it can (by the next call that reads or
    sends, or the background task), and while pongs cannot be written only
    the latest ping is answered (RFC 6455 §5.5.3), so a server that sends
    pings without reading costs a bounded 2 KiB.

    Cancellation: a cancelled ``receive()`` loses nothing. A ``send()``
    cancelled while its frames were being written may have sent part of a
    frame; the connection is then unusable and is aborted (code 1006). A
    ``send()`` queued behind another task's write is sent even if it is
    then cancelled (see :meth:`send`).
    When the ``async with`` block that owns the connection (or
    :func:`~trio_upgrade.open_upgrade`'s) ends with an exception, a
    cancellation or ``KeyboardInterrupt`` included, the server is told
    with close code 1001 ("going away"), within a short shielded deadline,
    before the socket closes; the exception then goes on (see
    :meth:`going_away`).

    Attributes:
        protocol: ``"websocket"``.
    """

    protocol = "websocket"

    __slots__ = (
        "_attempts",
        "_closing",
        "_engine",
        "_extensions",
        "_receiving",
        "_request",
        "_response",
        "_shared",
        "_subprotocol",
        "_writer",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        ws: Connection,
        settings: ConnectionSettings,
        *,
        close_timeout: float,
        request: Request,
        response: Response,
        attempts: tuple[Attempt, ...] = (),
        subprotocol: str | None = None,
        extensions: Sequence[str] = (),
        buffered: bool = False,
    ) -> None:
        """Wrap an upgraded ``stream``; built by ``WebSocket``'s offer.

        ``ws`` is a client-side wsproto connection already holding any bytes
        that came after the 101 (``buffered`` says whether there are some).
        """
        shared = SharedState(stream, ws, settings, close_timeout)
        engine = self._engine = WebSocketEngine(shared, buffered=buffered)
        # Bound once: the parts receive() and send() use on every call.
        self._shared = shared
        self._writer = engine.writer
        self._closing = engine.closing
        self._request = request
        self._response = response
        self._attempts = attempts
        self._subprotocol = subprotocol
        self._extensions = tuple(extensions)
        self._receiving = False

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
    def attempts(self) -> tuple[Attempt, ...]:
        """Every upgrade request the call made, in order, redirects included.

        The last one is the request that switched (status 101).
        """
        return self._attempts

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
        return self._shared.stream

    @property
    def close_code(self) -> int | None:
        """The close code, once the connection is closed or closing.

        The code of the peer's close frame (1005 if it had none), else the
        one this side failed the connection with (1002 protocol error, 1007
        invalid data, 1009 message too big, 1011 keepalive timeout), else
        1006 (the transport ended without a closing handshake). ``None``
        while the connection is open.
        """
        closure = self._shared.closure
        return closure.code if closure else None

    @property
    def close_reason(self) -> str | None:
        """The close reason that goes with :attr:`close_code`, or ``None``."""
        closure = self._shared.closure
        return closure.reason if closure else None

    def __repr__(self) -> str:
        closure = self._shared.closure
        state = "open" if closure is None else f"closed {closure.code}"
        return f"<WebSocketConnection {state} subprotocol={self._subprotocol!r}>"

    # -- messages ------------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Messages that arrived before the server closed are returned first.

        Every call is a cancel point. A call that finds its message
        already read is a schedule point only if the connection made none
        in the last millisecond (:doc:`/explanation/design-decisions`).

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
        state = self._shared
        try:
            checkpointed = False
            while True:
                if state.local_close:
                    break
                queue = state.queue
                head = state.head
                if head < len(queue):
                    if not checkpointed:
                        # A cancel point always; a schedule point unless
                        # this connection made one within a millisecond.
                        await trio.lowlevel.checkpoint_if_cancelled()
                        checkpointed = True
                        io = state.io
                        if io.due():
                            await io.schedule_point()
                            continue  # aclose() may have run meanwhile
                    message = queue[head]
                    state.pop_front(head, queue)
                    return message
                if state.closure is not None:
                    break
                await self._engine.progress()
                checkpointed = True
            if not checkpointed:
                await trio.lowlevel.checkpoint()
            raise self._closing.closed_error()
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

        Concurrent sends are coalesced: a call that finds another task's
        write in progress queues its frames, and the task writing sends
        everything queued meanwhile in one more write as soon as its own
        returns; each queued call returns once the write that carried its
        frames did. Messages go out in the order the calls queued them, with
        pings and the close frame in their order too. A call alone adds no
        wait. Queued frames are bounded (``WebSocket(write_buffer_limit=)``,
        64 KiB by default): past the bound a call waits, queueing nothing,
        until the writer has taken what waits. A call whose frames the
        socket takes at once is a schedule point only if the connection made
        none in the last millisecond (:doc:`/explanation/design-decisions`);
        it is always a cancel point.

        Cancellation: a call cancelled before its frames were queued or
        written sent nothing, and the connection is as it was. Once queued,
        the frames *will* be written, in their place: a call cancelled while
        it waits for the write that carries them raises
        :exc:`trio.Cancelled` at once all the same (it does not wait for a
        write it does not control); its message goes out with that write
        or, if the writer was cancelled too, with the next call that writes
        or reads. A call cancelled while a write it made was under way (its
        own frames, and any queued behind them), the transport taking only
        part of it, aborts the connection (code 1006): a frame may have been
        cut short. Between two writes, a call whose message was written
        stops writing for others and returns; a waiting call takes over.

        Raises:
            TypeError: ``message`` is neither ``str`` nor bytes-like.
            ConnectionClosed: the connection is closed or closing, or the
                transport failed before the frames were written (also when
                another task's write that carried them failed).
            ProtocolError: the connection was failed because of the server.
            trio.ClosedResourceError: :meth:`aclose` was called.
        """
        if isinstance(message, (bytearray, memoryview)):
            message = bytes(message)
        elif not isinstance(message, (str, bytes)):
            raise TypeError(f"expected str or bytes, got {type(message).__name__}")
        writer = self._writer
        if writer.sending and await writer.queue(message, self._closing.closed_error):
            return  # queued behind the write in progress, and written
        # Uncontended: take the turn without a coroutine call.
        writer.sending = True
        try:
            state = self._shared
            if state.closure is not None or state.local_close:
                await trio.lowlevel.checkpoint()
                raise self._closing.closed_error()
            # Cancelled, the message must not touch the compressor's context
            # (permessage-deflate) nor take frames from the outbox: check
            # now, since nothing yields between here and the write.
            await trio.lowlevel.checkpoint_if_cancelled()
            data = writer.encode(message)
            if writer.outbox:  # frames that were waiting for a turn
                data = writer.take_outbox() + data
            if not await writer.write(data) or (
                # Messages and control frames queued while we wrote: all
                # of them in the next write.
                writer.outbox and not await writer.flush_queued()
            ):
                raise self._closing.closed_error()
        finally:
            writer.release()

    # -- ping and close ------------------------------------------------

    async def ping(self, payload: bytes | None = None) -> float:
        """Send a ping and wait for its pong.

        The pong is read like any incoming data: by this call if no other
        task is reading (with a nursery, the background reader may read it
        first). It comes after the messages the server sent before it,
        which are queued for :meth:`receive`, in order: while this call
        waits, reading goes on past a full queue (``max_queue``) for up to
        ``max_size`` more bytes of messages (1 MiB without ``max_size``),
        so that a pong behind a burst the application has not read yet is
        found. Behind more than that, the call waits for :meth:`receive` to
        make room, as reading does; memory stays bounded either way.

        Args:
            payload: up to 125 bytes; by default 4 random bytes.

        Returns:
            The round-trip time in seconds.

        Raises:
            ValueError: ``payload`` is too long or already awaits a pong.
            ConnectionClosed, ProtocolError, trio.ClosedResourceError: as
                for :meth:`receive`.
        """
        reader = self._engine.reader
        pings = reader.pings
        if pings is None:
            pings = reader.pings = PingTracker()
        payload = pings.payload(payload)
        state = self._shared
        if state.closure is not None or state.local_close:
            await trio.lowlevel.checkpoint()
            raise self._closing.closed_error()
        waiter = pings.add(payload)
        # Reading may go past a full queue to find the pong (look-ahead).
        state.pinging += 1
        state.wake_bg()
        try:
            self._writer.outbox += state.ws.send(Ping(payload=payload))
            await trio.lowlevel.checkpoint()
            await self._writer.flush_control()
            while waiter.latency is None:
                if state.closure is not None or state.local_close:
                    raise self._closing.closed_error()
                await self._engine.progress()
            return waiter.latency
        finally:
            state.pinging -= 1
            pings.discard(payload)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close at the end of ``async with``: :meth:`aclose` (code 1000)
        when the block ends normally, :meth:`going_away` (code 1001) when
        it ends with an exception, which is not suppressed, or in a scope
        that is already cancelled (where :meth:`aclose` could only close
        the socket)."""
        if exc_value is None and not cancelled():
            await self.aclose()
        else:
            await self.going_away()

    async def going_away(self) -> None:
        """Close with 1001 "going away" under a short shielded deadline.

        What the ``async with`` block does when it ends with an exception
        (an error, ``trio.Cancelled`` from a timeout or a cancelled nursery,
        ``KeyboardInterrupt``): the close frame is sent and the server's
        answer awaited (messages that come meanwhile are dropped) under a
        shield, for at most the smaller of ``Limits.close_timeout`` and
        1 s; then, or at once if the frame cannot be written, the transport
        is closed. Without it, a cancelled block would close the socket at
        once and the server would see 1006 (no close frame). The block's
        exception is not suppressed.

        Call it yourself from cleanup code that runs in a cancelled scope
        (a ``finally`` after a timeout), where :meth:`aclose` would be
        cancelled at once and only close the socket.
        It is not a checkpoint for cancellation: it always finishes, within
        the smaller of ``Limits.close_timeout`` and 1 s.
        """
        with goodbye_scope(self._shared.close_timeout):
            await self.aclose(1001, "going away")

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with the closing handshake, then close the transport.

        Sends a close frame with ``code`` and ``reason``, waits for the
        server's close frame and for it to close TCP, all within
        ``Limits.close_timeout``; then (or on timeout or cancellation) closes
        the transport. Messages not yet received are discarded. Calling it
        again, or after the server closed, does nothing more. Called in a
        scope that is already cancelled, it only closes the transport, as
        Trio's ``aclose()`` methods do; :meth:`going_away` is the goodbye
        for that case.

        Args:
            code: 1000 (normal), 1001 (going away), another code valid to
                send (RFC 6455 §7.4), or 3000-4999 for applications.
            reason: at most 123 bytes of UTF-8.

        Raises:
            ValueError: ``code`` may not be sent, or ``reason`` is too long.
        """
        _check_close(code, reason)
        state = self._shared
        writer = self._writer
        state.local_close = True
        state.queue.clear()
        state.head = 0
        self._engine.reader.parts = None
        state.notify()
        state.wake_bg()
        if state.transport_closed:
            await trio.lowlevel.checkpoint()
            return
        try:
            with trio.move_on_after(state.close_timeout):
                if state.ws.state is ConnectionState.OPEN:
                    writer.outbox += writer.close_frame(code, reason)
                if writer.outbox:  # also a close answer a cancelled read left
                    await writer.drain()
                while not state.eof and not state.must_close:
                    await self._engine.progress()
        finally:
            if state.closure is None:
                state.set_closure(1006, "no closing handshake within close_timeout")
            await self._closing.close_transport(drain=False)


# RFC 6455 §7.4.1-2: codes an endpoint may put in a close frame.
_SENDABLE = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


def _check_close(code: int, reason: str) -> None:
    if not (code in _SENDABLE or 3000 <= code <= 4999):
        raise ValueError(f"close code {code} may not be sent (RFC 6455 §7.4)")
    if len(reason.encode("utf-8")) > 123:
        raise ValueError("a close reason has at most 123 bytes of UTF-8")
