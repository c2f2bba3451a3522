"""The reader role's parsing: bytes read in, messages and replies out.

Two variants, chosen when the connection is built (``_engine``):

* :class:`Reader` gives every byte to wsproto through its public API
  (``receive_data``, ``events()``). It is what runs when
  ``TRIO_UPGRADE_NO_SPEEDUPS`` is set, when an extension is in force, and
  when wsproto's private layout is not the one ``_sansio._wsproto_compat``
  expects.
* :class:`FastReader` takes plain frames itself while wsproto is idle: a
  complete plain frame (see ``_sansio._ws_frames``) is exactly one message
  for wsproto, after which it is idle again. A server's valid close frame
  is taken too, leaving wsproto's state as its own parsing would. Every
  other byte goes to wsproto.

Complete messages go to the shared queue (``max_queue``: once full, parsing
stops and the rest waits, ``backlog``); pongs to the writer's outbox; the
server's close and protocol errors to the closing handshake.
"""

from __future__ import annotations

import codecs
from codecs import getincrementaldecoder
from typing import cast

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import CloseConnection, Message, Ping, Pong
from wsproto.extensions import Extension
from wsproto.frame_protocol import LOCAL_ONLY_CLOSE_REASONS, CloseReason

from .._sansio import _speedups
from .._sansio._ws_deflate import SizeGuard
from .._sansio._ws_frames import MORE, plain_header
from .._sansio._wsproto_compat import (
    FITS,
    UNBUILT_FITS,
    announced_rest,
    compact,
    is_idle,
    new_client,
    take_close,
)
from ._closing import ClosingHandshake
from ._pings import PingTracker
from ._shared import SharedState
from ._writer import Writer

__all__ = [
    "FastReader",
    "LongFrame",
    "Reader",
    "GuardedConnection",
    "client_wsproto",
    "fast_paths_on",
]

#: The close codes wsproto accepts from the peer below 3000, as the objects
#: its CloseConnection event carries (RFC 6455 §7.4: not the local-only
#: 1005, 1006, 1015; not a reserved code it does not know). Codes 3000-4999
#: it accepts as plain ints; everything else fails the connection (1002).
_REMOTE_CODES: dict[int, int] = {
    int(code): code
    for code in CloseReason
    if code not in LOCAL_ONLY_CLOSE_REASONS and 1000 <= code <= 2999
}


def fast_paths_on() -> bool:
    """Whether a connection built now may use the fast paths: the switch
    (read now, so a test may turn it off) and the import-time probes."""
    return _speedups.ENABLED and FITS


class GuardedConnection(Connection):
    """wsproto's client connection with a :class:`SizeGuard` among its
    extensions, which the reader of the public path reads."""

    def __init__(self, guard: SizeGuard, trailing_data: bytes) -> None:
        super().__init__(
            ConnectionType.CLIENT, extensions=[guard], trailing_data=trailing_data
        )
        self.size_guard = guard


def client_wsproto(
    extensions: list[Extension] | None = None, trailing_data: bytes = b""
) -> Connection:
    """wsproto's client connection for a new WebSocket connection.

    On the public path without extensions it is a :class:`GuardedConnection`,
    so that a frame header announcing more than ``max_size`` fails the
    connection at once there too (the fast path reads the header itself).
    Where the fast paths may run it is compacted (``compact``: about 1 KiB
    less per idle connection) and, with no extension and nothing received
    yet, its frame protocol is built only when wsproto first needs it
    (``new_client``: about 350 bytes more); the public path leaves it as
    wsproto built it.
    """
    if not fast_paths_on():
        if not extensions:
            return GuardedConnection(SizeGuard(), trailing_data)
        return Connection(
            ConnectionType.CLIENT, extensions=extensions, trailing_data=trailing_data
        )
    if UNBUILT_FITS and not extensions and not trailing_data:
        return new_client()
    conn = Connection(
        ConnectionType.CLIENT, extensions=extensions, trailing_data=trailing_data
    )
    compact(conn)
    return conn


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _join(parts: list[str | bytes]) -> str | bytes:
    if isinstance(parts[0], str):
        return "".join(parts)  # type: ignore[arg-type]
    return b"".join(parts)  # type: ignore[arg-type]


_Utf8Decoder = getincrementaldecoder("utf-8")


class LongFrame:
    """A plain frame that is still arriving (:class:`FastReader`).

    Its bytes were read but not given to wsproto, which is idle meanwhile.
    With ``opcode`` 0, ``head`` holds bytes not parsed yet: the start of a
    header (the next read continues it), or, with ``backlog`` set, what came
    after a message that filled the queue.

    A text frame (``opcode`` 1) is decoded as it arrives, each read's part
    of the payload on its own, by the incremental UTF-8 decoder wsproto
    uses, so that invalid UTF-8 fails at the read that brings it, with
    wsproto's reason ("in position N" counts from the start of that read's
    part, plus the bytes of a character the decoder held back); ``parts``
    then holds the decoded text, ``text`` the decoder.
    """

    __slots__ = ("head", "need", "opcode", "parts", "text")

    def __init__(
        self,
        opcode: int,
        head: bytes,
        first: bytes | str,
        need: int,
        text: codecs.IncrementalDecoder | None = None,
    ) -> None:
        self.opcode = opcode
        self.head = head  # the header, for wsproto should it get the frame
        self.parts: list[bytes | bytearray | str] = [first]
        self.need = need  # payload bytes still to come
        self.text = text

    def raw(self) -> bytes:
        """The payload read so far, as read (text is encoded again: a strict
        UTF-8 decoding round-trips), for wsproto should it get the frame."""
        if self.text is None:
            return b"".join(cast("list[bytes]", self.parts))
        held: bytes = self.text.getstate()[0]
        return "".join(cast("list[str]", self.parts)).encode() + held


class Reader:
    """Parsing through wsproto's public API."""

    __slots__ = (
        "_closing",
        "_shared",
        "_writer",
        "backlog",
        "long",
        "parts",
        "pings",
        "size",
    )

    def __init__(
        self,
        state: SharedState,
        writer: Writer,
        closing: ClosingHandshake,
        *,
        buffered: bool,
    ) -> None:
        self._shared = state
        self._writer = writer
        self._closing = closing
        self.backlog = buffered  # wsproto (or ``long``) holds unparsed bytes
        self.parts: list[str | bytes] | None = None  # a fragmented message
        self.size = 0  # its bytes so far
        self.long: LongFrame | None = None  # FastReader only
        self.pings: PingTracker | None = None  # made by the first ping()

    def take(self, data: bytes | bytearray) -> None:
        """Process one read's bytes."""
        # wsproto takes bytearray too (TLS reads give one).
        self._shared.ws.receive_data(cast(bytes, data))
        self.pump()

    def take_long(self, long: LongFrame, data: bytes | bytearray) -> None:
        """Continue the frame that the last read cut short (never here)."""
        raise AssertionError("only the fast reader holds long frames")

    def resume(self) -> None:
        """Go on parsing what waited while the queue was full."""
        self.pump()

    def pump(self) -> None:
        """Turn wsproto's buffered bytes into queued messages and replies.

        Stops early when the queue is full (the rest stays in wsproto's
        buffer: ``backlog``) or the connection ended.
        """
        state = self._shared
        ws = state.ws
        queue = state.queue
        settings = state.settings
        limit = settings.max_queue
        max_size = settings.max_size
        self.backlog = False
        for event in ws.events():
            if isinstance(event, Message):
                data = event.data
                size = self.size + (
                    _utf8_size(data) if isinstance(data, str) else len(data)
                )
                if max_size is not None and size > max_size:
                    self._fail_too_big()
                    return
                if not event.message_finished:
                    if self.parts is None:
                        self.parts = []
                    self.parts.append(data)
                    self.size = size
                    continue
                if self.parts is not None:
                    self.parts.append(data)
                    data = _join(self.parts)
                    self.parts = None
                self.size = 0
                if state.local_close:
                    continue  # after aclose() messages are dropped
                queue.append(data)
                if (
                    limit is not None
                    and len(queue) - state.head >= limit
                    and state.past_limit(data)
                ):
                    self.backlog = True
                    return
            elif isinstance(event, Ping):
                if ws.state is ConnectionState.OPEN:
                    self._writer.queue_pong(ws.send(event.response()))
            elif isinstance(event, Pong):
                if self.pings is not None:
                    # wsproto 1.2 gives a bytearray (unhashable: the pings
                    # are keyed by payload); later releases give bytes.
                    self.pings.got_pong(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                self._got_close(event)
                return
        if max_size is not None:
            self._check_announced(max_size)

    def _check_announced(self, max_size: int) -> None:
        """Fail at once (1009) when the frame headers of the message wsproto
        is reading announce more than ``max_size`` (see :class:`SizeGuard`;
        without one, the size is checked as the payload comes)."""
        ws = self._shared.ws
        if type(ws) is GuardedConnection and ws.size_guard.announced > max_size:
            self._fail_too_big()

    def _fail_too_big(self) -> None:
        self._closing.fail(1009, self._closing.too_big())
        self.parts = None

    def _got_close(self, event: CloseConnection, payload: bytes | None = None) -> None:
        self._closing.got_close(event, payload)
        self.parts = None  # a close ends any fragmented message


class FastReader(Reader):
    """:class:`Reader` that takes plain frames and the close frame itself."""

    __slots__ = ()

    def resume(self) -> None:
        long = self.long
        if long is not None and not long.opcode:
            # Bytes that _take() held back while the queue was full.
            self.backlog = False
            self.long = None
            self.take(long.head)
        else:
            self.pump()

    def _check_announced(self, max_size: int) -> None:
        """Fail at once (1009) when the data frame wsproto is reading takes
        its message past ``max_size`` by the length its header announces.

        RFC 6455 §5.2 puts the length first, so a message too big is known
        before its payload comes (a header may announce 2**63 - 1 bytes and
        nothing follow). Only without an extension: with permessage-deflate
        the length is the compressed size, which ``BoundedDeflate`` checks.
        """
        # self.size counts the message's bytes so far, this frame's included.
        if self.size + announced_rest(self._shared.ws) > max_size:
            self._fail_too_big()

    def take(self, data: bytes | bytearray) -> None:
        """Process a read: plain frames here, the rest through wsproto.

        While wsproto is idle, a complete plain frame is exactly one message
        for it, after which it is idle again; so such frames are taken here,
        and from the first other frame on the bytes go to wsproto. A plain
        frame cut short by the end of the read becomes the :class:`LongFrame`
        that the next reads complete (:meth:`take_long`).
        """
        pos = 0
        end = len(data)
        full = False
        state = self._shared
        if self.parts is None and is_idle(state.ws):
            queue = state.queue
            settings = state.settings
            limit = settings.max_queue
            max_size = settings.max_size
            while pos < end:
                opcode, head, size = plain_header(data, pos)
                if opcode == MORE:
                    self.long = LongFrame(0, bytes(data[pos:]), b"", 0)
                    return
                if not opcode:
                    if data[pos] == 0x88 and self._take_close(data, pos):
                        return
                    break
                if max_size is not None and size > max_size:
                    break  # wsproto parses the header; pump() fails it (1009)
                start = pos + head
                stop = start + size
                if stop > end:
                    head_bytes = bytes(data[pos:start])
                    if opcode == 1:
                        # As wsproto: each read's part decoded as it comes.
                        decoder = _Utf8Decoder()
                        try:
                            text = decoder.decode(data[start:])
                        except UnicodeDecodeError:
                            break  # wsproto fails the connection (1007)
                        self.long = LongFrame(1, head_bytes, text, stop - end, decoder)
                        return
                    self.long = LongFrame(
                        opcode, head_bytes, bytes(data[start:]), stop - end
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
                if state.local_close:
                    continue  # after aclose() messages are dropped
                queue.append(message)
                if (
                    limit is not None
                    and len(queue) - state.head >= limit
                    and state.past_limit(message)
                ):
                    full = True
                    break
        if pos < end:
            if full:
                self._hold(data[pos:])
            else:
                Reader.take(self, data[pos:] if pos else data)

    def _take_close(self, data: bytes | bytearray, pos: int) -> bool:
        """Take the server's close frame at ``pos`` as wsproto would.

        Only a whole, valid close frame (FIN, no RSV bits, unmasked, payload
        of at most 125 bytes) that ends the read, while wsproto is idle and
        OPEN or LOCAL_CLOSING; ``False`` leaves the bytes to wsproto (which
        also fails the connection for an invalid one).
        """
        size = len(data) - pos - 2
        if size < 0 or data[pos + 1] != size or size > 125 or size == 1:
            return False  # unmasked length byte must match the rest exactly
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
        if not take_close(self._shared.ws, size):
            return False
        self._got_close(CloseConnection(code=code, reason=reason), payload)
        return True

    def _hold(self, data: bytes | bytearray) -> None:
        """Keep unparsed bytes (wsproto is idle) until the queue has room."""
        self.long = LongFrame(0, bytes(data), b"", 0)
        self.backlog = True

    def take_long(self, long: LongFrame, data: bytes | bytearray) -> None:
        """Continue the frame that the last read cut short."""
        if not long.opcode:  # only the start of its header came
            self.long = None
            self.take(long.head + data)
            return
        need = long.need
        text = long.text
        if len(data) < need:
            if text is None:
                long.parts.append(data)
            else:
                try:
                    long.parts.append(text.decode(data))
                except UnicodeDecodeError:
                    self._fail_text(long, data)
                    return
            long.need = need - len(data)
            return
        self.long = None
        rest = data[need:] if len(data) > need else b""
        last = data[:need] if rest else data
        message: str | bytes
        if text is None:
            long.parts.append(last)
            message = b"".join(cast("list[bytes]", long.parts))
        else:
            try:
                long.parts.append(text.decode(last, True))
            except UnicodeDecodeError:
                self._fail_text(long, data)
                return
            message = "".join(cast("list[str]", long.parts))
        state = self._shared
        if state.local_close:
            pass  # after aclose() messages are dropped
        else:
            queue = state.queue
            queue.append(message)
            limit = state.settings.max_queue
            if (
                limit is not None
                and len(queue) - state.head >= limit
                and state.past_limit(message)
            ):
                if rest:
                    self._hold(rest)
                return
        if rest:
            self.take(rest)

    def _fail_text(self, long: LongFrame, data: bytes | bytearray) -> None:
        """The read ``data`` brings invalid UTF-8 into the text frame
        ``long``: wsproto gets the frame as read so far (valid, so it only
        starts a message), then ``data``, and fails the connection (1007)
        on the same bytes, with the same reason, as on the public path."""
        self.long = None
        Reader.take(self, long.head + long.raw())
        Reader.take(self, data)
