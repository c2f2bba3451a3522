"""The receive fast paths beside wsproto, as a mixin of ``Engine``.

While no extension is in force and wsproto is idle, a complete plain frame
(see ``_frames``) is exactly one message for wsproto, so :class:`FastPath`
takes such frames itself, and a server's valid close frame too, leaving
wsproto's state as its own parsing would; every other byte goes to wsproto
(``Engine._pump``). These paths look at wsproto internals, so they are only
used when :func:`_wsproto_fits` finds the internals they assume (wsproto
1.2-1.3). They live apart from ``_engine`` because they are the one part of
the connection that depends on wsproto's private layout.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, cast

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import CloseConnection
from wsproto.frame_protocol import LOCAL_ONLY_CLOSE_REASONS, CloseReason, Frame, Opcode

from .._sansio._ws_frames import MORE, plain_header

if TYPE_CHECKING:
    from ._engine import ConnectionSettings

__all__ = ["FastPath"]


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


def _wsproto_header_fits() -> bool:
    """Whether wsproto keeps a frame's header as _announced_past assumes.

    Once a data frame's header is parsed, and while its payload arrives,
    the frame decoder holds it (``header.payload_len``, ``header.opcode``)
    and counts the payload bytes it has passed on (``payload_consumed``).
    """
    ws = Connection(ConnectionType.CLIENT)
    ws.receive_data(b"\x02\x7e\x01\x00" + b"x" * 10)
    events = list(ws.events())
    decoder = ws._proto._frame_decoder
    header = decoder.header
    return (
        len(events) == 1
        and header is not None
        and header.opcode is Opcode.BINARY
        and header.payload_len == 256
        and decoder.payload_consumed == 10
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
            and _wsproto_header_fits()
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


class FastPath:
    """The receive fast paths; ``Engine`` holds the state they use."""

    if not TYPE_CHECKING:  # mypy checks assignments against slots
        __slots__ = ()  # Engine declares the slots

    if TYPE_CHECKING:
        _ws: Connection
        _settings: ConnectionSettings
        _queue: list[str | bytes]
        _head: int
        _parts: list[str | bytes] | None
        _size: int
        _backlog: bool
        _local_close: bool
        _long: _LongFrame | None

        def _pump(self) -> None: ...

        def _got_close(
            self, event: CloseConnection, payload: bytes | None = None
        ) -> None: ...

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

    def _announced_past(self, max_size: int) -> bool:
        """Whether the data frame wsproto is reading takes its message past
        ``max_size`` by the length its header announces.

        RFC 6455 §5.2 puts the length first, so a message too big is known
        before its payload comes (a header may announce 2**63 - 1 bytes and
        nothing follow). Only without an extension: with permessage-deflate
        the length is the compressed size, which ``BoundedDeflate`` checks
        itself. With another wsproto, the size is checked as data arrives.
        """
        if not _WSPROTO_FITS:
            return False
        proto = self._ws._proto
        decoder = proto._frame_decoder
        header = decoder.header
        if header is None or proto.extensions or header.opcode.iscontrol():
            return False
        # _size counts the message's bytes so far, this frame's included.
        return self._size + header.payload_len - decoder.payload_consumed > max_size

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
                    break  # wsproto parses the header; _pump fails it (1009)
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
