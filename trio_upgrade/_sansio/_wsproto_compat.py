"""Every access to wsproto's private state, in one place (DESIGN principle 8).

The WebSocket fast paths (``_websocket._reader``, ``_websocket._writer``)
take plain frames and the server's close frame without wsproto, and build
our frames themselves; to stay exact they must see, and sometimes move,
wsproto's state. They do that only through the named operations below. At
import, :data:`FITS` runs the real wsproto on sample input and checks that
its private layout is the one these operations assume (wsproto 1.2-1.3);
when it is not, or ``TRIO_UPGRADE_NO_SPEEDUPS`` is set
(:mod:`._speedups`), connections use only wsproto's public API
(``Connection.receive_data``, ``events()``, ``send``), and the speed is all
that is lost. ``tests/test_websocket_differential.py`` holds the two paths
to the same events, errors and bytes.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Generator, Iterator
from typing import Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import CloseConnection, TextMessage
from wsproto.frame_protocol import CloseReason, Frame, FrameProtocol, Opcode

__all__ = [
    "FITS",
    "UNBUILT_FITS",
    "announced_rest",
    "can_build_frames",
    "compact",
    "has_extensions",
    "internals",
    "is_idle",
    "mark_close_answered",
    "mark_closing",
    "new_client",
    "take_close",
    "xor_tables",
]


def has_extensions(conn: Connection) -> bool:
    """Whether an extension (permessage-deflate) is in force."""
    return bool(conn._proto.extensions)


def is_idle(conn: Connection) -> bool:
    """Whether wsproto holds no partial frame, message, buffered byte or
    undelivered event: the next bytes may be parsed without it."""
    proto = conn._proto
    decoder = proto._frame_decoder
    return (
        decoder.header is None
        and not decoder.buffer.buffer
        and proto._message_decoder.opcode is None
        and not conn._events
    )


def announced_rest(conn: Connection) -> int:
    """The bytes of the message wsproto is reading that it has not handed
    out yet: the payload still to come of the data frame it is reading, as
    its header announced it, plus the start of a character its UTF-8
    decoder holds back; 0 when it is reading no data frame. Only meaningful
    without an extension (:func:`has_extensions`)."""
    proto = conn._proto
    decoder = proto._frame_decoder
    header = decoder.header
    if header is None or header.opcode.iscontrol():
        return 0
    rest: int = header.payload_len - decoder.payload_consumed
    text = proto._message_decoder.decoder
    if text is not None:
        held: bytes = text.getstate()[0]
        rest += len(held)
    return rest


def _no_frames() -> Generator[Frame | None, None, None]:
    """What wsproto's frame parser is once it has parsed a close frame."""
    yield from ()


def take_close(conn: Connection, size: int) -> bool:
    """Leave wsproto as its parsing of a valid close frame with a ``size``
    byte payload would: OPEN becomes REMOTE_CLOSING, LOCAL_CLOSING becomes
    CLOSED, and its parser ends. ``False`` (nothing changed) in any other
    state. The caller checked the frame and wsproto being idle."""
    state = conn._state
    if state is ConnectionState.OPEN:
        after = ConnectionState.REMOTE_CLOSING
    elif state is ConnectionState.LOCAL_CLOSING:
        after = ConnectionState.CLOSED
    else:
        return False
    proto = _built(conn)
    decoder = proto._frame_decoder
    decoder.payload_required = size
    decoder.payload_consumed = size
    proto._parse_more = _no_frames()
    conn._state = after
    return True


def mark_close_answered(conn: Connection) -> None:
    """We sent the answer to the server's close frame ourselves: CLOSED, as
    wsproto's ``send`` of the answer leaves it."""
    conn._state = ConnectionState.CLOSED


def mark_closing(conn: Connection) -> None:
    """We sent our close frame ourselves: LOCAL_CLOSING, as wsproto's
    ``send`` of it leaves it."""
    conn._state = ConnectionState.LOCAL_CLOSING


def can_build_frames(conn: Connection) -> bool:
    """Whether an unfragmented data frame built by us is what wsproto's
    ``send`` would build, leaving its state as it is: OPEN, and no
    fragmented message of ours under way."""
    return conn._proto._outbound_opcode is None and conn.state is ConnectionState.OPEN


class _Events(list[Any]):
    """wsproto's queue of pending events, as a list: what it does with it
    (``append``, ``popleft``, a truth test) a list does too, in 56 bytes
    where an empty ``deque`` takes 760. It holds at most a few events (one
    pending close), so ``pop(0)`` costs nothing."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


class _LazyParser:
    """Stands for wsproto's frame parser (a generator, 216 bytes) until
    something parses: the first iteration builds the generator, puts it in
    its place and goes on with it. On the fast paths wsproto parses only
    what they leave it, so most connections never build one."""

    __slots__ = ("_proto",)

    def __init__(self, proto: Any) -> None:
        self._proto = proto

    def __iter__(self) -> Iterator[Frame | None]:
        proto = self._proto
        parser: Generator[Frame | None, None, None] = proto._parse_more_gen()
        proto._parse_more = parser
        return parser

    def __next__(self) -> Frame | None:
        return next(iter(self))


#: What an extension list without extensions is replaced with: one object
#: shared by every connection (wsproto only iterates it and tests it).
_NO_EXTENSIONS: tuple[Any, ...] = ()


def compact(conn: Connection) -> None:
    """Shrink a connection wsproto has just built (nothing parsed yet) to
    what an idle connection needs, without changing what it does: its event
    queue becomes a list (:class:`_Events`), its parser is built when first
    used (:class:`_LazyParser`), and empty extension lists are one shared
    empty tuple. About 1 KiB less per connection."""
    # Typed Any: wsproto's annotations name the types replaced here; the
    # stand-ins do all that wsproto does with them (checked by the probe).
    ws: Any = conn
    proto = ws._proto
    ws._events = _Events(ws._events)
    proto._parse_more = _LazyParser(proto)
    if not proto.extensions:
        proto.extensions = _NO_EXTENSIONS
    decoder = proto._frame_decoder
    if not decoder.extensions:
        decoder.extensions = _NO_EXTENSIONS


class _IdleBuffer:
    """The buffer of a frame decoder that has received nothing."""

    __slots__ = ()
    buffer = b""


class _IdleDecoder:
    """What :func:`is_idle` and :func:`announced_rest` read of a frame
    decoder and a message decoder that have seen nothing: no header, no
    buffered byte, no message under way. Shared, never written."""

    __slots__ = ()
    header = None
    opcode = None
    buffer = _IdleBuffer()


_IDLE_DECODER = _IdleDecoder()


def _build(proto: Any) -> None:
    """Make an :class:`_Unbuilt` protocol the one wsproto would have built."""
    proto.__class__ = FrameProtocol
    FrameProtocol.__init__(proto, True, [])
    proto._parse_more = _LazyParser(proto)
    proto.extensions = _NO_EXTENSIONS
    proto._frame_decoder.extensions = _NO_EXTENSIONS


def _building(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        _build(self)
        return getattr(self, name)(*args, **kwargs)

    method.__name__ = name
    return method


class _Unbuilt(FrameProtocol):
    """wsproto's frame protocol of a client connection before anything used
    it: an instance with nothing in it (its decoders, buffer and parser not
    built). The first call of any of its methods (wsproto calls nothing
    else of it) builds it as ``FrameProtocol(True, [])`` would, in place,
    and makes it a plain ``FrameProtocol``: from then on it is wsproto's.
    Until then the class answers what the operations above read (no
    extension, no message of ours under way, decoders idle); the ones that
    write (:func:`take_close`) build it first. An idle connection on the
    fast paths never builds one: about 400 bytes and the building of four
    objects saved per connection."""

    # Typed Any: stand-ins for wsproto's types, as in compact().
    extensions: Any = _NO_EXTENSIONS
    _outbound_opcode = None
    _frame_decoder: Any = _IDLE_DECODER
    _message_decoder: Any = _IDLE_DECODER

    def __init__(self) -> None:  # built by _build, not here
        pass


for _name, _value in vars(FrameProtocol).items():
    if callable(_value) and not _name.startswith("__"):
        setattr(_Unbuilt, _name, _building(_name))


def _built(conn: Connection) -> Any:
    """``conn``'s frame protocol, built if it was not yet."""
    proto: Any = conn._proto
    if type(proto) is _Unbuilt:
        _build(proto)
    return proto


def new_client() -> Connection:
    """What ``Connection(ConnectionType.CLIENT)`` builds (no extension,
    nothing received), compacted as :func:`compact` does, with its frame
    protocol built only when wsproto first uses it (:class:`_Unbuilt`)."""
    ws: Any = Connection.__new__(Connection)
    ws.client = True
    ws._events = _Events()
    ws._proto = _Unbuilt()
    ws._state = ConnectionState.OPEN
    return ws  # type: ignore[no-any-return]


def xor_tables() -> list[bytes]:
    """The 256 translate() tables of ``byte ^ key``, wsproto's if it has
    them (built at its import: shared, not built again)."""
    try:
        from wsproto.frame_protocol import _XOR_TABLE
    except ImportError:  # pragma: no cover - a wsproto without it
        return [bytes(a ^ b for a in range(256)) for b in range(256)]
    return _XOR_TABLE


def internals(conn: Connection) -> dict[str, Any]:
    """The private state the operations above read and write, as plain
    values: for tests that compare the fast and the public path."""
    proto = _built(conn)
    decoder = proto._frame_decoder
    return {
        "state": conn._state,
        "events": list(conn._events),
        "header": decoder.header,
        "effective_opcode": decoder.effective_opcode,
        "masker": decoder.masker,
        "payload_required": decoder.payload_required,
        "payload_consumed": decoder.payload_consumed,
        "buffer": bytes(decoder.buffer.buffer),
        "message_opcode": proto._message_decoder.opcode,
        "outbound_opcode": proto._outbound_opcode,
        "parser_left": list(proto._parse_more),
    }


# -- the probes: run the real wsproto on sample input ---------------------------


def _close_fits() -> bool:
    """Whether wsproto takes a server's close frame as :func:`take_close`
    leaves it: OPEN to REMOTE_CLOSING and LOCAL_CLOSING to CLOSED, one
    CloseConnection, the frame decoder idle with ``payload_required`` and
    ``payload_consumed`` set to the payload length, the parser ended."""
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


def _header_fits() -> bool:
    """Whether wsproto keeps a data frame's header, and the UTF-8 decoder's
    pending bytes, as :func:`announced_rest` reads them while the payload
    arrives."""
    ws = Connection(ConnectionType.CLIENT)
    ws.receive_data(b"\x02\x7e\x01\x00" + b"x" * 10)
    events = list(ws.events())
    if not (len(events) == 1 and announced_rest(ws) == 256 - 10 and not is_idle(ws)):
        return False
    ws = Connection(ConnectionType.CLIENT)
    ws.receive_data(b"\x01\x7e\x01\x00" + b"x" * 9 + "é".encode()[:1])
    events = list(ws.events())
    # 9 characters handed out, the first byte of "é" held: 247 to come.
    return (
        len(events) == 1
        and isinstance(events[0], TextMessage)
        and events[0].data == "x" * 9
        and announced_rest(ws) == 256 - 9
    )


def _layout_fits() -> bool:
    """Whether a fresh connection has the fields the operations use."""
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
        and is_idle(ws)
        and can_build_frames(ws)
        and not has_extensions(ws)
        and Opcode.BINARY.value == 2
    )


def _compact_fits() -> bool:
    """Whether a new connection is what :func:`compact` expects (a deque of
    events, a parser not started, lists of extensions), and a compacted one
    parses as wsproto does: a message, and the end of a lost connection."""
    ws = Connection(ConnectionType.CLIENT, trailing_data=b"\x82\x01a")
    proto = ws._proto
    if not (
        type(ws._events) is deque
        and inspect.getgeneratorstate(proto._parse_more) == inspect.GEN_CREATED
        and type(proto.extensions) is list
        and type(proto._frame_decoder.extensions) is list
    ):
        return False
    compact(ws)
    ws.receive_data(b"\x81\x01b\x8a\x00")
    events = [type(e).__name__ for e in ws.events()]
    ws.receive_data(None)
    events += [type(e).__name__ for e in ws.events()]
    return (
        events == ["BytesMessage", "TextMessage", "Pong", "CloseConnection"]
        and inspect.isgenerator(proto._parse_more)
        and not ws._events
    )


def _unbuilt_fits() -> bool:
    """Whether wsproto builds a client connection as :func:`new_client`
    does (these four fields, its frame protocol with the fields
    :class:`_Unbuilt` answers for), and an unbuilt connection reads, parses
    and sends as one wsproto built: the same answers while idle, the same
    events, the same private state after a message, a ping and a close."""
    plain = Connection(ConnectionType.CLIENT)
    proto: Any = plain._proto
    if not (
        set(vars(plain)) == {"client", "_events", "_proto", "_state"}
        and plain.client is True
        and type(proto) is FrameProtocol
        and {"extensions", "_outbound_opcode", "_frame_decoder", "_message_decoder"}
        <= set(vars(proto))
    ):
        return False
    ws = new_client()
    if not (
        is_idle(ws)
        and can_build_frames(ws)
        and not has_extensions(ws)
        and announced_rest(ws) == 0
        and ws.state is ConnectionState.OPEN
        and type(ws._proto) is _Unbuilt
    ):
        return False
    results = []
    for conn in (new_client(), Connection(ConnectionType.CLIENT)):
        sent = len(conn.send(TextMessage("ab")))
        conn.receive_data(b"\x81\x01b\x89\x00\x88\x02\x03\xe8")
        events = [repr(e) for e in conn.events()]
        results.append((sent, events, conn.state, internals(conn)))
    return results[0] == results[1] and type(ws._proto) is _Unbuilt


def _fits() -> bool:
    try:
        return _layout_fits() and _close_fits() and _header_fits() and _compact_fits()
    except Exception:  # pragma: no cover - another wsproto
        return False


#: Whether this wsproto has the private layout the fast paths rely on. When
#: ``False`` every connection uses wsproto's public API only.
FITS: bool = _fits()


def _unbuilt_ok() -> bool:
    try:
        return FITS and _unbuilt_fits()
    except Exception:  # pragma: no cover - another wsproto
        return False


#: Whether :func:`new_client` may be used: on its own, so that a wsproto
#: that builds its connections otherwise keeps the other fast paths.
UNBUILT_FITS: bool = _unbuilt_ok()
