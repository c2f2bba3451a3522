"""The moving parts of a WebSocket connection, on wsproto's frame layer.

How bytes move (the design in one place):

* **Reading.** At most one task reads the transport at a time: the one that
  holds the *reader role*. Any task that needs incoming data (``receive()``,
  ``ping()`` waiting for its pong, ``aclose()`` waiting for the peer's close)
  takes the role if it is free, reads 64 KiB, lets wsproto parse it, and
  wakes the others; if the role is taken, it waits for that reader to finish.
  So without a nursery nothing reads unless the application does, and with
  one the application still reads inline, without a task switch per message.
* **The background reader** (only with a nursery) takes the role when no
  application task has read for :data:`HANDOVER_DELAY`, so the server's pings
  are answered and its close is seen while the application is busy elsewhere;
  it gives the role back as soon as an application task wants to read.
* **Backpressure.** Complete messages wait in a queue of ``max_queue``;
  while it is full nobody parses or reads, so a slow consumer stops reading
  the socket and TCP flow control pushes back on the server.
* **Writing.** Writers take turns (FIFO), so frames of concurrent messages
  never interleave. Control frames the reader must send (pongs, the close
  answer) are appended to an outbox that the current writer flushes after its
  own frames, or that the reader flushes itself when nobody is writing: one
  ``send_all`` carries as many frames as are ready.
* **Ending.** Whatever ends the connection (a close frame, a protocol error,
  end of stream, a keepalive timeout, ``aclose()``) is recorded once; every
  later call raises from that record, and the transport is closed.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import cast

import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import CloseConnection, Message, Ping, Pong
from wsproto.frame_protocol import LOCAL_ONLY_CLOSE_REASONS, CloseReason, Frame

from .._errors import ConnectionClosed, ProtocolError
from .._messages import Request, Response
from .._timeout import UpgradeTimeout
from ._frames import MORE, build_frame, plain_header

__all__ = [
    "HANDOVER_DELAY",
    "NORMAL_CODES",
    "RECEIVE_SIZE",
    "ConnectionSettings",
    "Engine",
    "PingWaiter",
]

#: One read's size. 64 KiB: the most a loopback or LAN read usually yields,
#: and wsproto parses big messages several times faster in big chunks.
RECEIVE_SIZE = 65536

#: The most one read asks for while the rest of a long frame is awaited.
BIG_RECEIVE_SIZE = 2**20

#: Seconds without an application read before the background reader takes
#: over. Long enough that an application reading in a loop (with short
#: pauses to send or compute) keeps reading inline, short enough that pings
#: are answered well within any keepalive timeout in use (seconds).
HANDOVER_DELAY = 0.1

#: Close codes that end a connection normally (RFC 6455 §7.4.1): normal,
#: going away, and a close frame without a code (1005), which ``websockets``
#: also counts as orderly.
NORMAL_CODES = frozenset({1000, 1001, 1005})

_TRANSPORT_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
_FG = 1  # an application task holds the reader role
_BG = 2  # the background reader holds it


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Per-connection bounds, shared by every connection of a ``WebSocket``."""

    max_size: int | None
    max_queue: int | None
    max_fragment_size: int | None
    ping_interval: float | None
    ping_timeout: float | None


class _Closure:
    """How the connection ended (the first cause wins)."""

    __slots__ = ("cause", "code", "error", "reason")

    def __init__(
        self, code: int, reason: str, error: bool, cause: BaseException | None
    ) -> None:
        self.code = code
        self.reason = reason
        self.error = error  # the peer broke the protocol: ProtocolError
        self.cause = cause


def _no_frames() -> Generator[Frame | None, None, None]:
    """What wsproto's frame parser is once it has parsed a close frame."""
    yield from ()


#: The close codes wsproto accepts from the peer below 3000, as the objects
#: its CloseConnection event carries (RFC 6455 §7.4: not the local-only
#: 1005, 1006, 1015; not a reserved code it does not know). Codes 3000-4999
#: it accepts as plain ints; everything else fails the connection (1002).
_REMOTE_CODES: dict[int, int] = {
    int(code): code
    for code in CloseReason
    if code not in LOCAL_ONLY_CLOSE_REASONS and 1000 <= code <= 2999
}


def _wsproto_close_fits() -> bool:
    """Whether wsproto takes a server's close frame as _take_close assumes.

    Parsing a valid close frame moves OPEN to REMOTE_CLOSING and
    LOCAL_CLOSING to CLOSED, yields one CloseConnection, leaves the frame
    decoder idle with ``payload_required`` and ``payload_consumed`` set to
    the payload length, and ends the parser generator (``_parse_more``).
    """
    for state, after in (
        (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING),
        (ConnectionState.LOCAL_CLOSING, ConnectionState.CLOSED),
    ):
        ws = Connection(ConnectionType.CLIENT)
        ws._state = state
        ws.receive_data(b"\x88\x04\x0f\xa0ok" + b"\x81\x01x")
        events = list(ws.events())
        proto = ws._proto
        decoder = proto._frame_decoder
        if not (
            len(events) == 1
            and isinstance(events[0], CloseConnection)
            and type(events[0].code) is int
            and events[0].code == 4000
            and events[0].reason == "ok"
            and ws._state is after
            and decoder.header is None
            and decoder.effective_opcode is None
            and decoder.masker is None
            and decoder.payload_required == 4
            and decoder.payload_consumed == 4
            and next(proto._parse_more, None) is None
            and not ws._events
        ):
            return False
    ws = Connection(ConnectionType.CLIENT)
    ws.receive_data(b"\x88\x00")
    events = list(ws.events())
    return (
        len(events) == 1
        and isinstance(events[0], CloseConnection)
        and events[0].code is CloseReason.NO_STATUS_RCVD
        and events[0].reason == ""
    )


def _wsproto_fits() -> bool:
    """Whether wsproto has the internals the fast paths look at (1.2-1.3)."""
    try:
        ws = Connection(ConnectionType.CLIENT)
        proto = ws._proto
        decoder = proto._frame_decoder
        return (
            proto._outbound_opcode is None
            and ws._state is ConnectionState.OPEN
            and decoder.header is None
            and isinstance(decoder.buffer.buffer, bytearray)
            and proto._message_decoder.opcode is None
            and not ws._events
            and decoder.payload_required == 0
            and decoder.payload_consumed == 0
            and hasattr(proto, "_parse_more")
            and _wsproto_close_fits()
        )
    except Exception:  # pragma: no cover - another wsproto
        return False


_WSPROTO_FITS = _wsproto_fits()


class _LongFrame:
    """A plain frame (see ``_frames``) that is still arriving.

    Its bytes were read but not given to wsproto, which is idle meanwhile.
    With ``opcode`` 0, ``head`` holds bytes not parsed yet: the start of a
    header (the next read continues it), or, with ``Engine._backlog`` set,
    what came after a message that filled the queue.
    """

    __slots__ = ("head", "need", "opcode", "parts")

    def __init__(self, opcode: int, head: bytes, first: bytes, need: int) -> None:
        self.opcode = opcode
        self.head = head  # the header, for wsproto should it get the frame
        self.parts: list[bytes | bytearray] = [first]
        self.need = need  # payload bytes still to come


class PingWaiter:
    __slots__ = ("latency", "sent_at")

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at
        self.latency: float | None = None


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _join(parts: list[str | bytes]) -> str | bytes:
    if isinstance(parts[0], str):
        return "".join(parts)  # type: ignore[arg-type]
    return b"".join(parts)  # type: ignore[arg-type]


class Engine:
    """The moving parts of a WebSocket connection; see the module docstring.

    :class:`~trio_upgrade.WebSocketConnection` adds the public methods.
    """

    __slots__ = (
        "_background",
        "_backlog",
        "_bg_event",
        "_close_timeout",
        "_closure",
        "_eof",
        "_extensions",
        "_fg_read_at",
        "_fg_waiting",
        "_head",
        "_ka_event",
        "_last_recv",
        "_local_close",
        "_long",
        "_must_close",
        "_outbox",
        "_parts",
        "_pings",
        "_plain",
        "_queue",
        "_reader",
        "_receiving",
        "_request",
        "_response",
        "_send_lot",
        "_sending",
        "_settings",
        "_size",
        "_stream",
        "_subprotocol",
        "_traffic",
        "_transport_closed",
        "_waiter",
        "_ws",
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
        subprotocol: str | None = None,
        extensions: Sequence[str] = (),
        buffered: bool = False,
    ) -> None:
        """Wrap an upgraded ``stream``; built by ``WebSocket``'s offer.

        ``ws`` is a client-side wsproto connection already holding any bytes
        that came after the 101 (``buffered`` says whether there are some).
        """
        now = trio.current_time()
        self._stream = stream
        self._ws = ws
        self._settings = settings
        self._close_timeout = close_timeout
        self._request = request
        self._response = response
        self._subprotocol = subprotocol
        self._extensions = tuple(extensions)
        self._queue: list[str | bytes] = []
        self._head = 0
        self._parts: list[str | bytes] | None = None
        self._size = 0
        self._backlog = buffered
        self._reader = 0
        self._receiving = False
        self._waiter: trio.Event | None = None
        self._fg_waiting = 0
        self._fg_read_at = now
        self._background = False
        self._bg_event: trio.Event | None = None
        self._ka_event: trio.Event | None = None
        self._last_recv = now
        self._traffic: trio.Event | None = None
        self._outbox = bytearray()
        self._sending = False
        self._send_lot: trio.lowlevel.ParkingLot | None = None
        self._pings: dict[bytes, PingWaiter] | None = None
        self._closure: _Closure | None = None
        self._local_close = False
        self._eof = False
        self._must_close = False
        self._transport_closed = False
        # No extension in force: plain frames may skip wsproto (_frames).
        self._plain = _WSPROTO_FITS and not ws._proto.extensions
        self._long: _LongFrame | None = None

    # -- receiving -----------------------------------------------------

    def _queue_full(self) -> bool:
        limit = self._settings.max_queue
        return limit is not None and len(self._queue) - self._head >= limit

    def _pop_front(self, head: int, queue: list[str | bytes]) -> None:
        # A list and a head index: no deque (760 bytes) per idle connection,
        # and still O(1) per message however long the queue grows.
        limit = self._settings.max_queue
        was_full = limit is not None and len(queue) - head >= limit
        head += 1
        if head == len(queue):
            queue.clear()
            head = 0
        elif head >= 64 and head * 2 >= len(queue):
            del queue[:head]
            head = 0
        self._head = head
        if was_full:
            # Room again: whoever waits to read (the background reader, a
            # ping() awaiting its pong) may go on.
            self._wake_bg()
            self._notify()

    async def _progress(self, role: int = _FG) -> None:
        """Move incoming data along once, or wait for the task that does."""
        if self._backlog and not self._queue_full():
            await trio.lowlevel.checkpoint()
            long = self._long
            if long is not None and not long.opcode:
                # Bytes that _take() held back while the queue was full.
                self._backlog = False
                self._long = None
                self._take(long.head)
            else:
                self._pump()
            self._notify()
            await self._settle()
        elif self._reader or self._eof or self._must_close or self._queue_full():
            # Someone else reads, or nothing more will be read (the task that
            # ended the connection closes it and wakes us), or no room.
            await self._wait()
        else:
            await self._read(role)

    async def _read(self, role: int) -> None:
        """Read once from the transport and process what came.

        The caller checked that the reader role is free and there is room.
        """
        self._reader = role
        long = self._long
        size = RECEIVE_SIZE
        if long is not None and long.need > RECEIVE_SIZE:
            # The rest of a long frame: fewer, larger reads.
            size = min(long.need, BIG_RECEIVE_SIZE)
        try:
            data = await self._stream.receive_some(size)
        except _TRANSPORT_ERRORS as exc:
            self._release_reader(role)
            self._lost(exc)
        except BaseException:
            self._release_reader(role)
            raise
        else:
            self._release_reader(role)
            # No checkpoint from here to _pump(): bytes are parsed in the
            # order they were read even if another task reads next.
            if not data:
                self._lost(None)
            elif not self._must_close and self._ws.state is not ConnectionState.CLOSED:
                if long is not None:
                    self._take_long(long, data)
                elif self._plain:
                    self._take(data)
                else:
                    # wsproto takes bytearray too (TLS reads give one).
                    self._ws.receive_data(cast(bytes, data))
                    self._pump()
        self._notify()
        if self._outbox or self._must_close:
            await self._settle()

    def _release_reader(self, role: int) -> None:
        self._reader = 0
        if not self._background:
            return  # the times below are read by the background tasks only
        now = trio.current_time()
        self._last_recv = now
        traffic = self._traffic
        if traffic is not None:  # the keepalive awaits a sign of life
            self._traffic = None
            traffic.set()
        if role == _FG:
            self._fg_read_at = now
            self._wake_bg()

    def _pump(self) -> None:
        """Turn buffered bytes into queued messages and replies.

        Stops early when the queue is full (the rest stays in wsproto's
        buffer: ``_backlog``) or the connection ended.
        """
        ws = self._ws
        queue = self._queue
        limit = self._settings.max_queue
        max_size = self._settings.max_size
        self._backlog = False
        for event in ws.events():
            if isinstance(event, Message):
                data = event.data
                size = self._size + (
                    _utf8_size(data) if isinstance(data, str) else len(data)
                )
                if max_size is not None and size > max_size:
                    self._fail(1009, f"message larger than max_size ({max_size} bytes)")
                    return
                if not event.message_finished:
                    if self._parts is None:
                        self._parts = []
                    self._parts.append(data)
                    self._size = size
                    continue
                if self._parts is not None:
                    self._parts.append(data)
                    data = _join(self._parts)
                    self._parts = None
                self._size = 0
                if self._local_close:
                    continue  # after aclose() messages are dropped
                queue.append(data)
                if limit is not None and len(queue) - self._head >= limit:
                    self._backlog = True
                    return
            elif isinstance(event, Ping):
                if ws.state is ConnectionState.OPEN:
                    self._outbox += ws.send(event.response())
            elif isinstance(event, Pong):
                self._got_pong(event.payload)
            elif isinstance(event, CloseConnection):
                self._got_close(event)
                return

    def _idle(self) -> bool:
        """Whether wsproto holds no partial frame, message or event."""
        ws = self._ws
        proto = ws._proto
        decoder = proto._frame_decoder
        return (
            self._parts is None
            and decoder.header is None
            and not decoder.buffer.buffer
            and proto._message_decoder.opcode is None
            and not ws._events
        )

    def _take(self, data: bytes | bytearray) -> None:
        """Process a read: plain frames here, the rest through wsproto.

        While wsproto is idle, a complete plain frame is exactly one message
        for it, after which it is idle again; so such frames are taken here
        (the fast path), and from the first other frame on the bytes go to
        wsproto. A plain frame cut short by the end of the read becomes the
        :class:`_LongFrame` that the next reads complete.
        """
        pos = 0
        end = len(data)
        full = False
        if self._idle():
            queue = self._queue
            limit = self._settings.max_queue
            max_size = self._settings.max_size
            while pos < end:
                opcode, head, size = plain_header(data, pos)
                if opcode == MORE:
                    self._long = _LongFrame(0, bytes(data[pos:]), b"", 0)
                    return
                if not opcode:
                    if data[pos] == 0x88 and self._take_close(data, pos):
                        return
                    break
                if max_size is not None and size > max_size:
                    break
                start = pos + head
                stop = start + size
                if stop > end:
                    self._long = _LongFrame(
                        opcode, bytes(data[pos:start]), bytes(data[start:]), stop - end
                    )
                    return
                payload = bytes(data[start:stop])
                message: str | bytes = payload
                if opcode == 1:
                    try:
                        message = payload.decode("utf-8")
                    except UnicodeDecodeError:
                        break  # wsproto fails the connection (1007)
                pos = stop
                if self._local_close:
                    continue  # after aclose() messages are dropped
                queue.append(message)
                if limit is not None and len(queue) - self._head >= limit:
                    full = True
                    break
        if pos < end:
            if full:
                self._hold(data[pos:])
            else:
                self._feed(data[pos:] if pos else data)

    def _take_close(self, data: bytes | bytearray, pos: int) -> bool:
        """Take the server's close frame at ``pos`` as wsproto would.

        Only a whole, valid close frame (FIN, no RSV bits, unmasked, payload
        of at most 125 bytes) that ends the read, while wsproto is idle and
        OPEN or LOCAL_CLOSING; ``False`` leaves the bytes to wsproto (which
        also fails the connection for an invalid one). wsproto's state is
        then what its own parsing leaves (see ``_wsproto_close_fits``).
        """
        size = len(data) - pos - 2
        if size < 0 or data[pos + 1] != size or size > 125 or size == 1:
            return False  # unmasked length byte must match the rest exactly
        ws = self._ws
        state = ws._state
        if state is ConnectionState.OPEN:
            after = ConnectionState.REMOTE_CLOSING
        elif state is ConnectionState.LOCAL_CLOSING:
            after = ConnectionState.CLOSED
        else:
            return False
        payload = bytes(data[pos + 2 :])
        code: int
        if not size:
            code = CloseReason.NO_STATUS_RCVD
            reason = ""
        else:
            number = (payload[0] << 8) | payload[1]
            known = _REMOTE_CODES.get(number)
            if known is not None:
                code = known
            elif 3000 <= number <= 4999:
                code = number
            else:
                return False  # wsproto: 1002
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                return False  # wsproto: 1007
        proto = ws._proto
        decoder = proto._frame_decoder
        decoder.payload_required = size
        decoder.payload_consumed = size
        proto._parse_more = _no_frames()
        ws._state = after
        self._got_close(CloseConnection(code=code, reason=reason), payload)
        return True

    def _hold(self, data: bytes | bytearray) -> None:
        """Keep unparsed bytes (wsproto is idle) until the queue has room."""
        self._long = _LongFrame(0, bytes(data), b"", 0)
        self._backlog = True

    def _feed(self, data: bytes | bytearray) -> None:
        """Give ``data`` to wsproto and parse it."""
        # wsproto takes bytearray too (TLS reads give one).
        self._ws.receive_data(cast(bytes, data))
        self._pump()

    def _take_long(self, long: _LongFrame, data: bytes | bytearray) -> None:
        """Continue the frame that the last read cut short."""
        if not long.opcode:  # only the start of its header came
            self._long = None
            self._take(long.head + data)
            return
        need = long.need
        if len(data) < need:
            long.parts.append(data)
            long.need = need - len(data)
            return
        self._long = None
        rest = data[need:] if len(data) > need else b""
        long.parts.append(data[:need] if rest else data)
        payload = b"".join(long.parts)
        message: str | bytes = payload
        if long.opcode == 1:
            try:
                message = payload.decode("utf-8")
            except UnicodeDecodeError:
                # wsproto gets the whole frame and fails the connection.
                self._feed(long.head + payload + rest)
                return
        if self._local_close:
            pass  # after aclose() messages are dropped
        else:
            queue = self._queue
            queue.append(message)
            limit = self._settings.max_queue
            if limit is not None and len(queue) - self._head >= limit:
                if rest:
                    self._hold(rest)
                return
        if rest:
            self._take(rest)

    def _got_pong(self, payload: bytes) -> None:
        pings = self._pings
        if not pings or payload not in pings:
            return
        # A pong answers its ping and every earlier one (RFC 6455 §5.5.3
        # lets a peer answer only the latest).
        now = trio.current_time()
        for key in list(pings):
            waiter = pings.pop(key)
            waiter.latency = now - waiter.sent_at
            if key == payload:
                break

    def _got_close(self, event: CloseConnection, payload: bytes | None = None) -> None:
        """Act on the server's close frame (``payload``: from _take_close)."""
        state = self._ws.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The server closes: answer with the same code (RFC 6455 §5.5.1),
            # then close the transport.
            self._set_closure(event.code, event.reason or "")
            if payload is not None:
                # wsproto's answer echoes the code and the (valid, at most
                # 123 bytes) reason: the payload as received, or none for
                # 1005. Its send moves REMOTE_CLOSING to CLOSED.
                self._outbox += build_frame(8, payload)
                self._ws._state = ConnectionState.CLOSED
            else:
                self._outbox += self._ws.send(event.response())
            self._must_close = True
        elif state is ConnectionState.CLOSED:
            # The answer to our close frame; the transport closes at EOF.
            self._set_closure(event.code, event.reason or "")
            if not self._local_close:
                self._must_close = True
        else:
            # wsproto reports a frame it could not parse as a close event
            # without changing state: fail the connection (RFC 6455 §7.1.7).
            code = int(event.code)
            reason = event.reason or ""
            if code == 1009:
                reason = (
                    f"message larger than max_size ({self._settings.max_size} bytes)"
                )
            elif code == 1007:
                reason = f"invalid data: {reason}"
            self._fail(code, reason)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection because of the peer: send ``code``, then close."""
        self._set_closure(code, reason, error=True)
        self._parts = None
        if self._ws.state is ConnectionState.OPEN:
            short = {
                1002: "protocol error",
                1007: "invalid data",
                1009: "message too big",
            }
            self._outbox += self._ws.send(CloseConnection(code, short.get(code, "")))
        self._must_close = True

    def _lost(self, cause: BaseException | None) -> None:
        """The transport ended (EOF or error): no more reading."""
        self._eof = True
        self._set_closure(1006, "", cause=cause)
        self._must_close = True

    # -- sending -------------------------------------------------------

    async def _acquire_send(self) -> None:
        """Take the writer's turn (FIFO); not a checkpoint when uncontended."""
        if not self._sending:
            self._sending = True
            return
        lot = self._send_lot
        if lot is None:
            lot = self._send_lot = trio.lowlevel.ParkingLot()
        await lot.park()  # the releasing writer hands the turn over

    def _release_send(self) -> None:
        lot = self._send_lot
        if lot:
            lot.unpark()
        else:
            self._sending = False

    async def _write(self, data: bytes | bytearray) -> bool:
        """Write frames; ``False`` when the transport failed (recorded).

        The caller has checked for cancellation with nothing awaited since
        (``checkpoint_if_cancelled``), so ``send_all`` cannot be cancelled
        before its first byte and a cancelled call never loses the frames.
        """
        try:
            await self._stream.send_all(data)
        except _TRANSPORT_ERRORS as exc:
            self._lost(exc)
            await self._close_transport(drain=False)
            return False
        except BaseException:
            # Interrupted midway (cancelled): a frame may be cut short and
            # nothing can follow it. The connection is over.
            self._set_closure(1006, "a write was interrupted")
            await self._close_transport(drain=False)
            raise
        return True

    async def _flush_outbox(self) -> bool:
        """Write the outbox until empty; the caller holds the turn."""
        while self._outbox:
            # Cancelled here, the frames stay in the outbox for the next
            # writer (or aclose()); once taken, they are written or the
            # connection is aborted.
            await trio.lowlevel.checkpoint_if_cancelled()
            data = bytes(self._outbox)
            self._outbox.clear()
            if not await self._write(data):
                return False
        return True

    async def _flush_control(self) -> None:
        """Write pending control frames now, unless a writer will."""
        if self._sending or not self._outbox:
            return
        self._sending = True
        try:
            await self._flush_outbox()
        finally:
            self._release_send()

    async def _drain(self) -> None:
        """Wait for our turn, so everything queued before is written."""
        await self._acquire_send()
        try:
            await self._flush_outbox()
        finally:
            self._release_send()

    # -- closing -------------------------------------------------------

    async def _settle(self) -> None:
        """After a read: send the replies it produced, close if it ended.

        Every caller has just passed a checkpoint (the read), so closing the
        transport needs none of its own.
        """
        if self._outbox:
            await self._flush_control()
        if self._must_close and not self._transport_closed:
            await self._close_transport(drain=True, checkpoint=False)

    async def _close_transport(self, *, drain: bool, checkpoint: bool = True) -> None:
        if self._transport_closed:
            return
        try:
            closure = self._closure
            if drain and (
                self._outbox
                or self._sending
                or (closure is not None and closure.error and not self._reader)
            ):
                with trio.move_on_after(self._close_timeout):
                    if self._outbox or self._sending:
                        # Our last frames (a close answer) go first.
                        await self._drain()
                    closure = self._closure
                    if closure is not None and closure.error and not self._reader:
                        await self._linger()
        finally:
            if not self._transport_closed:
                self._transport_closed = True
                self._eof = True
                self._set_closure(1006, "")
                # Wake everything that waits, background tasks included,
                # so that they see the end and return.
                self._notify()
                self._wake_bg()
                for event in (self._ka_event, self._traffic):
                    if event is not None:
                        event.set()
                # aclose() of a Trio stream closes even when cancelled; the
                # timeout bounds a TLS close_notify to a silent peer. A
                # socket closes at once: no cancel scope needed for it, and
                # SocketStream.aclose() is close() plus a checkpoint, which
                # a caller that just passed one can skip (a scheduler pass).
                stream = self._stream
                if type(stream) is trio.SocketStream:
                    stream.socket.close()
                    if checkpoint:
                        await trio.lowlevel.checkpoint()
                else:
                    with trio.move_on_after(self._close_timeout):
                        await stream.aclose()

    async def _linger(self) -> None:
        """After failing the connection, let the server read our close frame.

        Closing a socket with unread input sends a reset, which can destroy
        the close frame before the server reads it; so half-close and drop
        what still comes until the server closes (RFC 6455 §7.1.1: the
        server closes first), within the caller's time bound.
        """
        if self._eof:
            return
        stream = self._stream
        self._reader = _FG  # nobody else reads meanwhile
        try:
            if isinstance(stream, trio.abc.HalfCloseableStream):
                await stream.send_eof()
            while await stream.receive_some(RECEIVE_SIZE):
                pass
        except _TRANSPORT_ERRORS:
            pass
        finally:
            self._reader = 0
            self._eof = True

    def _set_closure(
        self,
        code: int,
        reason: str,
        *,
        error: bool = False,
        cause: BaseException | None = None,
    ) -> None:
        if self._closure is None:
            self._closure = _Closure(code, reason, error, cause)

    def _closed_error(self) -> Exception:
        if self._local_close:
            return trio.ClosedResourceError(
                "the WebSocket connection was closed (aclose)"
            )
        closure = self._closure
        assert closure is not None
        exc: Exception
        if closure.error:
            exc = ProtocolError(
                f"the server broke the WebSocket protocol: {closure.reason} "
                f"(closed with code {closure.code})",
                code=closure.code,
            )
        else:
            exc = ConnectionClosed(
                closure.code, closure.reason, normal=closure.code in NORMAL_CODES
            )
        exc.__cause__ = closure.cause
        return exc

    # -- waking --------------------------------------------------------

    def _notify(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    async def _wait(self) -> None:
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = trio.Event()
        self._fg_waiting += 1
        try:
            await waiter.wait()
        finally:
            self._fg_waiting -= 1

    def _wake_bg(self) -> None:
        event = self._bg_event
        if event is not None:
            self._bg_event = None
            event.set()

    async def _bg_wait(self) -> None:
        event = self._bg_event
        if event is None:
            event = self._bg_event = trio.Event()
        await event.wait()

    # -- background tasks (with a nursery only) ------------------------

    def _start_background(self, nursery: trio.Nursery) -> None:
        """Run the background reader, and keepalive pings, in ``nursery``.

        The tasks end when the connection closes; errors they meet end the
        connection and reach the application through its next call.
        """
        self._background = True
        self._last_recv = self._fg_read_at = trio.current_time()
        nursery.start_soon(self._background_reader)
        if self._settings.ping_interval is not None:
            nursery.start_soon(self._keepalive)

    # They hold no cancel scope of their own (a scope per task costs more
    # memory than the rest of an idle connection's state): closing the
    # connection wakes them and they return.

    async def _background_reader(self) -> None:
        while not self._eof:
            if self._reader or self._queue_full() or self._local_close:
                await self._bg_wait()
                continue
            resume = self._fg_read_at + HANDOVER_DELAY
            if trio.current_time() < resume:
                await trio.sleep_until(resume)
                continue
            await self._progress(_BG)
            if self._fg_waiting:
                # An application task wants data: let it read itself.
                self._fg_read_at = trio.current_time()

    async def _keepalive(self) -> None:
        interval = self._settings.ping_interval
        timeout = self._settings.ping_timeout
        assert interval is not None
        while not self._eof:
            due = self._last_recv + interval
            if trio.current_time() < due:
                wake = self._ka_event = trio.Event()
                with trio.move_on_at(due):
                    await wake.wait()
                continue
            if self._ws.state is not ConnectionState.OPEN or self._local_close:
                return
            traffic = self._traffic = trio.Event()
            self._outbox += self._ws.send(Ping(payload=b"keepalive"))
            await self._flush_control()
            # Any incoming data, not only the pong, proves the peer alive.
            with trio.move_on_after(timeout if timeout is not None else interval):
                await traffic.wait()
            if timeout is not None and not traffic.is_set() and not self._eof:
                self._keepalive_failed(timeout)
                await self._settle()
                return

    def _keepalive_failed(self, timeout: float) -> None:
        reason = "keepalive ping timeout"
        self._set_closure(1011, reason, cause=UpgradeTimeout("keepalive", timeout))
        if self._ws.state is ConnectionState.OPEN:
            self._outbox += self._ws.send(CloseConnection(1011, reason))
        self._must_close = True
        self._notify()
