"""The WebSocket fast paths against the plain wsproto path: a differential test.

The fast paths beside wsproto (plain frames parsed and built without it,
the server's close frame taken by hand) read and write wsproto's private
state. DESIGN principle 8 asks that they be held to the public path by a
property test: hypothesis draws a stream of server frames (text with valid
and invalid UTF-8, also split across fragments; binary; fragmented messages
with control frames between the fragments; pings and pongs; close frames
with and without code and reason, invalid codes, bad reasons; reserved bits
and opcodes; masked frames; oversized control frames; lengths in 7, 16 and
64 bits around the 125/126/65535/65536 boundaries, in a longer form than
needed, or announcing more than ``max_size``; optionally permessage-deflate),
cuts it into reads at arbitrary points, puts the client's own messages
between the reads, calls ``receive()`` all the time or only now and then
(so that reads run together and the ``max_queue`` backpressure holds bytes
back), ends with the server's EOF or the client's ``aclose()``, and runs
it twice over an in-memory transport, built by the public
``WebSocket().offer(...).build(...)`` as ``upgrade()`` builds it: once with
the fast paths and once with ``trio_upgrade._sansio._speedups.ENABLED``
false (what ``TRIO_UPGRADE_NO_SPEEDUPS=1`` selects). Both runs must observe
the same thing, step by step:

* the messages ``receive()`` returns (type and payload), and the step at
  which each is returned;
* the error that ends the connection (type, close code, reason), and when;
* what ``send()`` does with each client message;
* every byte the client writes (pongs, close frames, data frames), compared
  after unmasking, frame by frame, with the step at which it was written;
* ``close_code`` and ``close_reason`` after each step.

A third reference is wsproto alone (``wsproto.Connection`` fed the same
reads, no trio_upgrade code): the messages the library delivered must be
the ones wsproto parses, and a protocol error or close code the library
reports must be the one wsproto reports, except where the library rightly
differs (``max_size``: 1009, and anything after ``aclose()``).

Each plain run also proves it was plain: every byte read reached
``wsproto.Connection.receive_data`` in order, and every message sent went
through ``wsproto.Connection.send`` (recorded by wrapping those two public
methods on the class, so the check does not depend on the library's module
layout); :func:`test_the_two_runs_use_different_code` checks that the fast
run really skips wsproto on plain frames.

Running more examples: the default run draws ``DEFAULT_EXAMPLES`` streams
(well under 20 s). ``HYPOTHESIS_PROFILE=ci-long`` selects a profile of
``LONG_EXAMPLES`` (without pytest's per-test timeout), for CI or a
night's run::

    HYPOTHESIS_PROFILE=ci-long .venv/bin/python -m pytest -q \\
        tests/test_websocket_differential.py

A failure prints the shrunk stream (the frames, the reads, the client's
actions) and both observations; ``_run_both(case)`` replays one by hand.

There is no known divergence: the runs must agree everywhere, error
reasons included (a text frame with invalid UTF-8 read in pieces used to be
one, until the fast path decoded each read's part as it came, as wsproto
does; ``Case.bad_text`` still marks such streams in the statistics).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import os
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import (
    HealthCheck,
    Phase,
    currently_in_test_context,
    example,
    given,
    settings,
)
from hypothesis import event as note_event
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Message, Ping
from wsproto.extensions import Extension, PerMessageDeflate

import trio_upgrade
import trio_upgrade._sansio._speedups
from trio_upgrade import (
    BuildContext,
    ConnectionClosed,
    Deflate,
    Limits,
    ProtocolError,
    Request,
    Response,
    WebSocket,
    WebSocketConnection,
)
from trio_upgrade._sansio._url import parse_url
from trio_upgrade._sansio._ws_handshake import accept_key

DEFAULT_EXAMPLES = 200
LONG_EXAMPLES = 5000

#: Every phase but "explain": on Python < 3.12 it traces each line, which
#: costs minutes on these payloads and adds little to a shrunk example.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]

settings.register_profile(
    "ci-long",
    max_examples=LONG_EXAMPLES,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_LONG = os.environ.get("HYPOTHESIS_PROFILE") == "ci-long"
_SETTINGS = settings(
    settings.get_profile("ci-long") if _LONG else settings.default,
    max_examples=LONG_EXAMPLES if _LONG else DEFAULT_EXAMPLES,
    # Each run is bounded by trio.fail_after instead: a shared, loaded
    # machine makes wall-clock deadlines flaky.
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# pytest's 60 s per test would cut the long profile short.
pytestmark = pytest.mark.timeout(0 if _LONG else 120)

#: Seconds one run (one connection, one stream) may take.
RUN_TIMEOUT = 10

# -- server frames -------------------------------------------------------------

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

#: Payload sizes on either side of each length encoding's edge (RFC 6455
#: §5.2: 7 bits up to 125, 16 bits up to 65535, then 64 bits).
EDGE_SIZES = (0, 1, 2, 124, 125, 126, 127, 65535, 65536, 65537)

#: Byte sequences that are not UTF-8 (RFC 3629): a stray byte, an overlong
#: form, a surrogate, a code point past U+10FFFF, a lead byte followed by
#: ASCII, and a lead byte alone (invalid only once the message ends).
BAD_UTF8 = (
    b"\xff",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2(",
    b"\xc3",
)

#: Close codes a server may send (RFC 6455 §7.4.1-2) and codes it may not.
GOOD_CODES = (
    *(1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014),
    *(3000, 4000, 4999),
)
BAD_CODES = (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)

#: Lengths a header may announce without the payload ever coming.
HUGE_LENGTHS = (126, 65536, 2**20 + 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1)


@dataclass(frozen=True)
class Frame:
    """One server frame, valid or not."""

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0  # RSV1 RSV2 RSV3 as the bits 4 2 1
    mask: bytes | None = None  # a masked server frame is a protocol error
    wide: bool = False  # the length in a longer form than needed
    length: int | None = None  # the length announced, if not the payload's

    def encode(self) -> bytes:
        head = bytes([(0x80 if self.fin else 0) | self.rsv << 4 | self.opcode])
        size = len(self.payload) if self.length is None else self.length
        bit = 0x80 if self.mask is not None else 0
        if size < 126 and not self.wide:
            head += bytes([bit | size])
        elif size < 65536 and not (self.wide and size >= 126):
            head += bytes([bit | 126]) + size.to_bytes(2, "big")
        else:
            head += bytes([bit | 127]) + size.to_bytes(8, "big")
        if self.mask is None:
            return head + self.payload
        return head + self.mask + _xor(self.mask, self.payload)


@dataclass(frozen=True)
class Compressed:
    """A message compressed with the server's permessage-deflate context.

    ``splits`` cut the compressed payload into fragments (RSV1 on the first
    only, RFC 7692 §6.1); ``garbage`` sends bytes that do not inflate;
    ``rsv1_everywhere`` sets RSV1 on continuation frames too (an error).
    """

    opcode: int
    data: bytes
    splits: tuple[int, ...] = ()
    garbage: bool = False
    rsv1_everywhere: bool = False


Piece = Frame | Compressed


def _xor(key: bytes, data: bytes) -> bytes:
    """``data`` masked (or unmasked) with ``key`` (RFC 6455 §5.3)."""
    size = len(data)
    stream = _fill(key, size)
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(
        size, "big"
    )


def _fill(pattern: bytes, size: int) -> bytes:
    return (pattern * (size // len(pattern) + 1))[:size]


def _fragments(
    opcode: int, payload: bytes, splits: Sequence[int], rsv_first: int = 0
) -> list[Frame]:
    points = sorted({s % (len(payload) + 1) for s in splits})
    bounds = [0, *points, len(payload)]
    frames = []
    for index in range(len(bounds) - 1):
        frames.append(
            Frame(
                opcode if index == 0 else CONTINUATION,
                payload[bounds[index] : bounds[index + 1]],
                fin=index == len(bounds) - 2,
                rsv=rsv_first if index == 0 else 0,
            )
        )
    return frames


class _ServerDeflate:
    """The server's compressor: one context for the whole stream."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(6, zlib.DEFLATED, -12)

    def frames(self, piece: Compressed) -> list[Frame]:
        if piece.garbage:
            body = b"\xff\xfe" + piece.data
        else:
            body = self._zlib.compress(piece.data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
            body = body[:-4]  # RFC 7692 §7.2.1: drop 00 00 ff ff
        frames = _fragments(piece.opcode, body, piece.splits, rsv_first=4)
        if piece.rsv1_everywhere:
            frames = [Frame(f.opcode, f.payload, f.fin, rsv=4) for f in frames]
        return frames


@dataclass
class Encoded:
    """The server's byte stream and where its frames are."""

    data: bytes
    starts: list[int]  # where each frame starts
    # A frame the fast path may take holds invalid UTF-8 (statistics).
    bad_text: bool = False


def _bad_text(frame: Frame) -> bool:
    """Whether ``frame`` is a text frame the fast path may take (unmasked,
    FIN, no RSV bit, any length) with a payload that is not UTF-8."""
    if frame.opcode != TEXT or not frame.fin or frame.rsv or frame.mask:
        return False
    try:
        frame.payload.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def encode_stream(pieces: Sequence[Piece], tail: Frame | None) -> Encoded:
    deflate = _ServerDeflate()
    out = bytearray()
    starts: list[int] = []
    bad_text = False
    for piece in pieces:
        frames = deflate.frames(piece) if isinstance(piece, Compressed) else [piece]
        for frame in frames:
            data = frame.encode()
            starts.append(len(out))
            bad_text = bad_text or _bad_text(frame)
            out += data
    if tail is not None:
        starts.append(len(out))
        out += tail.encode()
        bad_text = bad_text or _bad_text(tail)
    return Encoded(bytes(out), starts, bad_text)


# -- strategies -----------------------------------------------------------------

sizes = st.one_of(
    st.integers(0, 40), st.sampled_from(EDGE_SIZES), st.integers(100, 300)
)
binaries = st.one_of(
    st.binary(max_size=40),
    st.builds(_fill, st.binary(min_size=1, max_size=5), sizes),
)


def _text_of(pattern: str, size: int) -> bytes:
    # Whole characters, about ``size`` bytes (exactly, for ASCII patterns).
    return _fill(pattern.encode(), size).decode("utf-8", "ignore").encode()


def _spoil(text: bytes, bad: bytes, at: int) -> bytes:
    at %= len(text) + 1
    return text[:at] + bad + text[at:]


valid_texts = st.one_of(
    st.text(max_size=30).map(str.encode),
    st.builds(_text_of, st.sampled_from(["a", "xyz", "é", "€", "😀", "aé€😀"]), sizes),
)
texts = st.one_of(
    valid_texts,
    valid_texts,
    valid_texts,
    valid_texts,
    st.builds(_spoil, valid_texts, st.sampled_from(BAD_UTF8), st.integers(0, 2**16)),
)
splits = st.lists(st.integers(0, 2**17), max_size=4)
#: Most messages come whole, which the fast path takes.
maybe_splits: st.SearchStrategy[list[int]] = st.one_of(
    st.just([]), st.just([]), st.just([]), splits
)

#: Small changes that break one frame (most frames stay valid).
MUTATIONS = (
    *([None] * 60),
    "rsv1",
    "rsv2",
    "rsv3",
    "mask",
    "wide",
    "opcode",
    "nofin",
)


def _mutate(frame: Frame, how: str | None, key: bytes, opcode: int) -> Frame:
    if how == "rsv1":
        return Frame(frame.opcode, frame.payload, frame.fin, 4)
    if how == "rsv2":
        return Frame(frame.opcode, frame.payload, frame.fin, 2)
    if how == "rsv3":
        return Frame(frame.opcode, frame.payload, frame.fin, 1)
    if how == "mask":
        return Frame(frame.opcode, frame.payload, frame.fin, mask=key)
    if how == "wide":
        return Frame(frame.opcode, frame.payload, frame.fin, wide=True)
    if how == "opcode":  # reserved: 3-7 data, 0xB-0xF control
        return Frame(opcode, frame.payload, frame.fin)
    if how == "nofin":
        return Frame(frame.opcode, frame.payload, False)
    return frame


reserved_opcodes = st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
mutations = st.sampled_from(MUTATIONS)
keys = st.binary(min_size=4, max_size=4)


@st.composite
def controls(draw: st.DrawFn) -> Frame:
    """A ping or pong; now and then too long (126-127 bytes) or mutated."""
    opcode = draw(st.sampled_from([PING, PING, PONG]))
    size = draw(st.one_of(st.integers(0, 8), st.sampled_from([124, 125, 126, 127])))
    payload = draw(st.binary(min_size=size, max_size=size))
    frame = Frame(opcode, payload)
    return _mutate(frame, draw(mutations), draw(keys), draw(reserved_opcodes))


@st.composite
def closes(draw: st.DrawFn) -> Frame:
    kind = draw(
        st.sampled_from(
            ["reason", "code", "reason", "empty", "bad-code", "bad-reason", "odd"]
        )
    )
    if kind == "empty":
        payload = b""
    elif kind == "odd":  # one byte, or more than 125
        payload = draw(st.sampled_from([b"\x03", _fill(b"\x03\xe8x", 126)]))
    else:
        codes = BAD_CODES if kind == "bad-code" else GOOD_CODES
        payload = draw(st.sampled_from(codes)).to_bytes(2, "big")
        if kind == "reason":
            reason = draw(st.text(min_size=1, max_size=10)).encode()
            payload += draw(st.sampled_from([reason, _fill(b"r", 123)]))
        elif kind == "bad-reason":
            payload += draw(st.sampled_from(BAD_UTF8)) + b"x"
    frame = Frame(CLOSE, payload)
    return _mutate(frame, draw(mutations), draw(keys), draw(reserved_opcodes))


@st.composite
def messages(draw: st.DrawFn, deflate: bool) -> list[Piece]:
    """A text or binary message: one frame or fragments with control frames
    between them, one frame perhaps broken; compressed or not."""
    opcode = draw(st.sampled_from([TEXT, BINARY]))
    payload = draw(texts if opcode == TEXT else binaries)
    cuts = draw(maybe_splits)
    if deflate and draw(st.booleans()):
        return [
            Compressed(
                opcode,
                payload,
                tuple(cuts),
                garbage=draw(st.sampled_from([False] * 6 + [True])),
                rsv1_everywhere=draw(st.sampled_from([False] * 6 + [True])),
            )
        ]
    frames: list[Piece] = []
    fragments = _fragments(opcode, payload, cuts)
    between = draw(st.lists(controls(), max_size=len(fragments) - 1))
    for index, fragment in enumerate(fragments):
        frames.append(fragment)
        if index < len(between):
            frames.append(between[index])
    at = draw(st.integers(0, len(frames) - 1))
    broken = frames[at]
    assert isinstance(broken, Frame)
    frames[at] = _mutate(broken, draw(mutations), draw(keys), draw(reserved_opcodes))
    return frames


@st.composite
def bombs(draw: st.DrawFn) -> list[Piece]:
    """A compressed message that inflates far beyond its size."""
    size = draw(st.sampled_from([1000, 65537, 2**20 + 1]))
    return [Compressed(BINARY, bytes(size), tuple(draw(splits)))]


@st.composite
def piece(draw: st.DrawFn, deflate: bool) -> list[Piece]:
    """Mostly messages; now and then a control frame, a close frame, a
    fragment left open, a lone continuation, a reserved data opcode."""
    kinds = ["message"] * 8 + ["control", "close", "odd"]
    kind = draw(st.sampled_from([*kinds, "bomb"] if deflate else kinds))
    if kind == "message":
        return draw(messages(deflate))
    if kind == "control":
        return [draw(controls())]
    if kind == "close":
        return [draw(closes())]
    if kind == "bomb":
        return draw(bombs())
    opcode = draw(st.sampled_from([TEXT, BINARY, CONTINUATION, 3]))
    return [Frame(opcode, draw(st.binary(max_size=10)), draw(st.booleans()))]


def pieces(deflate: bool) -> st.SearchStrategy[list[Piece]]:
    return st.lists(piece(deflate), max_size=10).map(
        lambda ps: [p for part in ps for p in part]
    )


@st.composite
def tails(draw: st.DrawFn) -> Frame | None:
    """What ends the stream: nothing more, a close frame, or a frame that
    never ends (announcing a length past any ``max_size``)."""
    kind = draw(st.sampled_from(["close", "none", "close", "huge"]))
    if kind == "close":
        return draw(closes())
    if kind == "huge":
        opcode = draw(st.sampled_from([TEXT, BINARY, CONTINUATION]))
        length = draw(st.sampled_from(HUGE_LENGTHS))
        partial = draw(st.binary(max_size=6))
        return Frame(opcode, partial, length=length)
    return None


@dataclass(frozen=True)
class Case:
    """One run's input: the settings, the reads and the client's actions."""

    compression: bool
    max_size: int | None
    max_queue: int | None
    max_fragment_size: int | None
    leftover: bytes  # arrived with the 101 (trailing data)
    # ("read", bytes), ("send", message), or ("receive", n) when paced.
    steps: tuple[tuple[str, Any], ...]
    ending: tuple[str, int, str]  # ("eof" | "aclose", code, reason)
    # Whether receive() is called only as the "receive" steps allow (data
    # then waits in the transport, and reads come in other sizes than the
    # server's writes), rather than all the time.
    paced: bool = False
    # The stream holds a text frame the fast path may take, with invalid
    # UTF-8 (it used to be a known divergence when read in pieces).
    bad_text: bool = False

    def reads(self) -> list[bytes]:
        return [value for kind, value in self.steps if kind == "read"]

    def __repr__(self) -> str:
        # Short: hypothesis prints it, and payloads run to 64 KiB and more.
        steps = ",\n        ".join(f"({k!r}, {_short(v)})" for k, v in self.steps)
        return (
            f"Case(compression={self.compression}, max_size={self.max_size}, "
            f"max_queue={self.max_queue}, "
            f"max_fragment_size={self.max_fragment_size}, paced={self.paced},\n"
            f"    leftover={_short(self.leftover)},\n"
            f"    steps=(\n        {steps},\n    ),\n"
            f"    ending={self.ending!r},\n)"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # hypothesis's printer: the same short form


def _short(value: Any) -> str:
    if isinstance(value, (bytes, str)) and len(value) > 80:
        return f"{value[:40]!r} + ... + {value[-20:]!r} ({len(value)} in all)"
    return repr(value)


client_messages = st.one_of(
    st.text(max_size=20),
    st.binary(max_size=20),
    st.builds(_fill, st.binary(min_size=1, max_size=3), st.sampled_from(EDGE_SIZES)),
    st.builds(
        lambda p, n: _text_of(p, n).decode(),
        st.sampled_from(["a", "é€"]),
        st.sampled_from(EDGE_SIZES),
    ),
)


def _cut(encoded: Encoded, points: set[int]) -> list[bytes]:
    data = encoded.data
    good = sorted(p for p in points if 0 < p < len(data))
    bounds = [0, *good, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    compression = draw(st.sampled_from([False, False, False, True]))
    frames = draw(pieces(compression))
    encoded = encode_stream(frames, draw(tails()))
    size = len(encoded.data)
    # Reads end anywhere, and often inside a frame's header.
    points = set(draw(st.lists(st.integers(0, size), max_size=12)))
    if encoded.starts:
        for frame, offset in draw(
            st.lists(
                st.tuples(st.integers(0, len(encoded.starts) - 1), st.integers(0, 14)),
                max_size=8,
            )
        ):
            points.add(encoded.starts[frame] + offset)
    reads = _cut(encoded, points)
    leftover = b""
    if reads and draw(st.sampled_from([False, False, False, True])):
        leftover = reads.pop(0)
    steps: list[tuple[str, Any]] = [("read", r) for r in reads]
    for position, message in draw(
        st.lists(st.tuples(st.integers(0, 2**10), client_messages), max_size=4)
    ):
        steps.insert(position % (len(steps) + 1), ("send", message))
    paced = draw(st.sampled_from([False, False, True]))
    if paced:
        for position, count in draw(
            st.lists(st.tuples(st.integers(0, 2**10), st.integers(1, 4)), max_size=6)
        ):
            steps.insert(position % (len(steps) + 1), ("receive", count))
    ending = draw(
        st.one_of(
            st.just(("eof", 0, "")),
            st.tuples(
                st.just("aclose"),
                st.sampled_from([1000, 1001, 1011, 4000]),
                st.text(max_size=5),
            ),
        )
    )
    return Case(
        compression=compression,
        max_size=draw(st.sampled_from([None, 2**20, 65536, 65535, 1000, 126, 125, 1])),
        max_queue=draw(st.sampled_from([None, 1, 2, 16])),
        max_fragment_size=draw(st.sampled_from([None, None, None, 101, 4096])),
        leftover=leftover,
        steps=tuple(steps),
        ending=ending,
        paced=paced,
        bad_text=encoded.bad_text,
    )


# -- running a case ---------------------------------------------------------------


class _WsprotoLog:
    """What the client's wsproto was given: read bytes, sent events."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.sent_messages = 0


@contextmanager
def _watch_wsproto() -> Iterator[_WsprotoLog]:
    """Record what reaches ``wsproto.Connection`` (its public methods)."""
    log = _WsprotoLog()
    original_receive = Connection.receive_data
    original_send = Connection.send

    def receive_data(self: Connection, data: bytes | None) -> None:
        if data is not None:
            log.received += data
        original_receive(self, data)

    def send(self: Connection, event: Any) -> bytes:
        if isinstance(event, Message):
            log.sent_messages += 1
        return original_send(self, event)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Connection, "receive_data", receive_data)
        patch.setattr(Connection, "send", send)
        yield log


#: The server's answer to the permessage-deflate offer (it must honour our
#: server_max_window_bits=12).
DEFLATE_ANSWER = "permessage-deflate; server_max_window_bits=12"


async def _connect(
    stream: trio.abc.Stream, case: Case, fast: bool
) -> WebSocketConnection:
    """Build the client connection as ``upgrade()`` does, minus the I/O:
    the public protocol object's offer, a 101 that accepts it, ``build``."""
    protocol = WebSocket(
        compression=Deflate() if case.compression else None,
        max_size=case.max_size,
        max_queue=case.max_queue,
        max_fragment_size=case.max_fragment_size,
        ping_interval=None,
        ping_timeout=None,
    )
    target = parse_url("http://test.invalid/")
    offer = protocol.offer(target)
    key = dict(offer.headers())["Sec-WebSocket-Key"]
    fields = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if case.compression:
        fields.append(("Sec-WebSocket-Extensions", DEFLATE_ANSWER))
    response = Response(101, "Switching Protocols", trio_upgrade.Headers(fields))
    offer.validate(response)
    context = BuildContext(
        target=target,
        request=Request("GET", "/", trio_upgrade.Headers(offer.headers())),
        response=response,
        limits=Limits(),
        nursery=None,
    )
    with pytest.MonkeyPatch.context() as patch:
        if not fast:
            patch.setattr(trio_upgrade._sansio._speedups, "ENABLED", False)
        return await offer.build(stream, case.leftover, context)


def _digest(data: str | bytes) -> Any:
    kind = "text" if isinstance(data, str) else "bytes"
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) <= 48:
        return (kind, data)
    return (kind, len(raw), hashlib.blake2b(raw, digest_size=8).hexdigest())


def _error(exc: BaseException) -> tuple[Any, ...]:
    if isinstance(exc, ConnectionClosed):
        return ("ConnectionClosed", exc.code, exc.reason, exc.normal)
    if isinstance(exc, ProtocolError):
        return ("ProtocolError", exc.code, str(exc))
    return (type(exc).__name__,)


def _client_frames(wire: list[tuple[int, bytes]]) -> list[tuple[Any, ...]]:
    """The client's frames, each as (step, first byte, length form,
    unmasked payload, masked?), plus any bytes left over at the end."""
    data = b"".join(chunk for _, chunk in wire)
    ends: list[int] = []  # where each write ends
    for _, chunk in wire:
        ends.append((ends[-1] if ends else 0) + len(chunk))
    frames: list[tuple[Any, ...]] = []
    pos = 0
    while pos + 2 <= len(data):
        first, second = data[pos], data[pos + 1]
        size, head = second & 0x7F, 2
        if size == 126 and pos + 4 <= len(data):
            size, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
        elif size == 127 and pos + 10 <= len(data):
            size, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
        elif size >= 126:
            break
        masked = bool(second & 0x80)
        key_size = 4 if masked else 0
        end = pos + head + key_size + size
        if end > len(data):
            break
        key = data[pos + head : pos + head + key_size] or b"\0\0\0\0"
        payload = _xor(key, data[pos + head + key_size : end])
        step = wire[bisect.bisect_left(ends, end)][0]  # the write it ended in
        frames.append((step, first, head, _digest(payload), masked))
        pos = end
    if pos < len(data):
        frames.append((wire[-1][0], "partial", data[pos:]))
    return frames


#: Which task records each kind of event.
_TASK_OF = {
    "received": 0,
    "receive raised": 0,
    "sent": 1,
    "send raised": 1,
    "client closed its end": 1,
    "close code": 1,
    "transport closed": 2,
}


@dataclass
class Observed:
    events: list[tuple[Any, ...]]  # (step, what happened)
    wire: list[tuple[Any, ...]]  # the client's frames (see _client_frames)
    received: bytes  # what wsproto was given to parse
    sent_through_wsproto: int  # client messages wsproto.Connection.send built
    sends_done: int  # client messages send() accepted


async def _run(case: Case, fast: bool) -> Observed:
    client, server = trio.testing.memory_stream_pair()
    events: list[tuple[Any, ...]] = []
    wire: list[tuple[int, bytes]] = []
    step = 0
    sends_done = sends_through_wsproto = 0
    with _watch_wsproto() as log:
        conn = await _connect(client, case, fast)

        allowed = [0 if case.paced else -1]  # receive() calls left; -1: any
        more = [trio.Event()]

        def allow(count: int) -> None:
            allowed[0] = -1 if count < 0 else allowed[0] + count
            more[0].set()
            more[0] = trio.Event()

        async def receiver() -> None:
            while True:
                while not allowed[0]:
                    await more[0].wait()
                if allowed[0] > 0:
                    allowed[0] -= 1
                try:
                    message = await conn.receive()
                except (
                    ConnectionClosed,
                    ProtocolError,
                    trio.ClosedResourceError,
                ) as exc:
                    events.append((step, "receive raised", *_error(exc)))
                    return
                events.append((step, "received", _digest(message)))

        async def wire_reader() -> None:
            while data := await server.receive_some(2**20):
                wire.append((step, bytes(data)))
            events.append((step, "transport closed"))

        shown: list[tuple[int | None, str | None]] = [(None, None)]

        def snapshot() -> None:
            state = (conn.close_code, conn.close_reason)
            if state != shown[-1]:
                shown.append(state)
                events.append((step, "close code", *state))

        with trio.fail_after(RUN_TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receiver)
                nursery.start_soon(wire_reader)
                await trio.testing.wait_all_tasks_blocked()
                snapshot()
                for step, (kind, value) in enumerate(case.steps, start=1):
                    if kind == "read":
                        try:
                            await server.send_all(value)
                        except trio.BrokenResourceError:
                            events.append((step, "client closed its end"))
                    elif kind == "receive":
                        allow(value)
                    else:
                        before = log.sent_messages
                        try:
                            await conn.send(value)
                        except (
                            ConnectionClosed,
                            ProtocolError,
                            trio.ClosedResourceError,
                        ) as exc:
                            events.append((step, "send raised", *_error(exc)))
                        else:
                            events.append((step, "sent"))
                            sends_done += 1
                            if log.sent_messages > before:
                                sends_through_wsproto += 1
                    await trio.testing.wait_all_tasks_blocked()
                    snapshot()
                step = len(case.steps) + 1
                if case.paced:
                    # receive() resumes in a step of its own: started beside
                    # aclose(), which of the two runs first is Trio's choice.
                    allow(-1)
                    await trio.testing.wait_all_tasks_blocked()
                    snapshot()
                    step += 1
                how, code, reason = case.ending
                if how == "aclose":
                    nursery.start_soon(conn.aclose, code, reason)
                    await trio.testing.wait_all_tasks_blocked()
                    snapshot()
                    step += 1
                await server.send_stream.aclose()  # the server's EOF
                await trio.testing.wait_all_tasks_blocked()
                snapshot()
                step += 1
                await conn.aclose()
                await trio.testing.wait_all_tasks_blocked()
                snapshot()
    # Tasks woken together run in an order Trio varies on purpose: within a
    # step, compare each task's events in its own order.
    events.sort(key=lambda e: (e[0], _TASK_OF[e[1]]))
    return Observed(
        events,
        _client_frames(wire),
        bytes(log.received),
        sends_through_wsproto,
        sends_done,
    )


@dataclass
class Reference:
    """What wsproto alone makes of the server's bytes."""

    messages: list[Any]
    verdict: int | None  # the code of the first CloseConnection event


def _reference(case: Case) -> Reference:
    extensions: list[Extension] = []
    if case.compression:
        deflate = PerMessageDeflate()
        deflate.finalize(DEFLATE_ANSWER)
        extensions.append(deflate)
    ws = Connection(ConnectionType.CLIENT, extensions=extensions)
    messages: list[Any] = []
    parts: list[str | bytes | bytearray] = []
    for data in [case.leftover, *case.reads()]:
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, Message):
                parts.append(event.data)
                if event.message_finished:
                    if isinstance(parts[0], str):
                        text = "".join(p for p in parts if isinstance(p, str))
                        messages.append(_digest(text))
                    else:
                        # wsproto 1.2 gives bytearray chunks, later bytes.
                        whole = b"".join(
                            p for p in parts if isinstance(p, (bytes, bytearray))
                        )
                        messages.append(_digest(whole))
                    parts = []
            elif isinstance(event, CloseConnection):
                return Reference(messages, int(event.code))
            elif isinstance(event, Ping):
                ws.send(event.response())
    return Reference(messages, None)


def _run_both(case: Case) -> tuple[Observed, Observed]:
    async def both() -> tuple[Observed, Observed]:
        return await _run(case, fast=True), await _run(case, fast=False)

    return trio.run(both)


def check(case: Case) -> None:
    """Run ``case`` both ways and compare."""
    fast, plain = _run_both(case)

    # The plain run is plain: every byte read went to wsproto, in order,
    # and every message sent was built by wsproto.
    stream = case.leftover + b"".join(case.reads())
    assert stream.startswith(plain.received)
    assert plain.sent_through_wsproto == plain.sends_done

    if currently_in_test_context():  # statistics, for --hypothesis-show-statistics
        skipped = len(fast.received) < len(plain.received)
        note_event(f"fast path: {'skipped wsproto' if skipped else 'unused'}")
        ended = next(e[2:4] for e in plain.events if e[1] == "receive raised")
        note_event(f"ended by: {ended}")
        if case.bad_text:
            note_event("a text frame the fast path may take is not UTF-8")

    # The fast path changes nothing anyone can see.
    assert fast.events == plain.events
    assert fast.wire == plain.wire

    # And both agree with wsproto alone.
    reference = _reference(case)
    got = [e[2] for e in plain.events if e[1] == "received"]
    assert got == reference.messages[: len(got)]
    ends = [e for e in plain.events if e[1] == "receive raised"]
    assert len(ends) == 1
    end = ends[0][2:]
    if case.ending[0] == "aclose" and end[0] == "ClosedResourceError":
        return  # after aclose() the messages still coming are dropped
    if end[0] == "ProtocolError" and end[1] == 1009 and case.max_size is not None:
        return  # max_size is the library's own bound
    assert got == reference.messages
    if end[0] == "ProtocolError" or end[1] != 1006:
        assert end[1] == reference.verdict
    else:
        assert end[:2] == ("ConnectionClosed", 1006)
        assert reference.verdict is None


# -- the tests ----------------------------------------------------------------------


@_SETTINGS
@given(cases())
# A compressed message after one whose deflate stream ended (BFINAL): its
# data cannot be inflated, and was delivered empty (found by this test).
@example(
    Case(
        compression=True,
        max_size=None,
        max_queue=None,
        max_fragment_size=None,
        paced=False,
        leftover=b"",
        steps=(("read", b"\x81\x00\xc2\x01\x01\xc1\x01\x00\x88\x03\x03\xe80"),),
        ending=("eof", 0, ""),
    )
)
@example(
    Case(
        compression=False,
        max_size=None,
        max_queue=None,
        max_fragment_size=None,
        leftover=b"",
        steps=(
            ("read", Frame(BINARY, b"x" * 70000).encode()[:5]),
            ("read", Frame(BINARY, b"x" * 70000).encode()[5:] + Frame(PING).encode()),
            ("send", "é" * 100),
            ("read", Frame(TEXT, "é".encode()).encode()[:3]),
            ("read", Frame(TEXT, "é".encode()).encode()[3:]),
        ),
        ending=("eof", 0, ""),
    )
)
def test_fast_path_is_invisible(case: Case) -> None:
    check(case)


def _plain_case(reads: Sequence[bytes], sends: Sequence[str | bytes] = ()) -> Case:
    steps: list[tuple[str, Any]] = [("read", r) for r in reads]
    steps += [("send", m) for m in sends]
    return Case(False, 2**20, None, None, b"", tuple(steps), ("eof", 0, ""))


@pytest.mark.skipif(
    not trio_upgrade._sansio._speedups.ENABLED,
    reason="TRIO_UPGRADE_NO_SPEEDUPS is set: both runs are plain (nox -s tests_plain)",
)
def test_the_two_runs_use_different_code() -> None:
    """Plain frames skip wsproto with the fast paths on, and go through it
    with them off; so the differential test compares two different paths."""
    data = Frame(BINARY, b"one").encode() + Frame(TEXT, b"two").encode()
    case = _plain_case([data], ["out", b"out"])
    fast, plain = _run_both(case)
    assert fast.received == b""  # parsed without wsproto
    assert fast.sent_through_wsproto == 0  # built without wsproto
    assert plain.received == data
    assert plain.sent_through_wsproto == 2
    assert fast.events == plain.events
    assert fast.wire == plain.wire


_BAD = Frame(TEXT, b"ok\xff" + b"x" * 100).encode()
_BAD_LONG = Frame(TEXT, b"\xe2(" + b"x" * 70000).encode()
# Valid text, then a character cut by the read, then one invalid byte.
_BAD_LATE = Frame(TEXT, "é".encode() * 60 + b"\xc3" + b"\xff" + b"y" * 40).encode()
# The frame's last character is cut short by its end (decoded as final).
_BAD_END = Frame(TEXT, b"x" * 200 + "€".encode()[:2]).encode()


@pytest.mark.parametrize(
    "reads",
    [
        # The invalid byte arrives in the first read, the frame's end later.
        [_BAD[:10]],
        [_BAD[:10], _BAD[10:]],
        [_BAD_LONG[:100], _BAD_LONG[100:]],
        # The header alone first, then the payload with the invalid byte.
        [_BAD[:2], _BAD[2:20], _BAD[20:]],
        # The invalid byte in a later read, after a character that the
        # decoder holds back: the reason's position counts that byte too.
        [_BAD_LATE[:50], _BAD_LATE[50:125], _BAD_LATE[125:], b"\x81\x01z"],
        [_BAD_LATE[:50], _BAD_LATE[50:125], _BAD_LATE[125:126]],
        [_BAD_END[:100], _BAD_END[100:]],
        [_BAD_END[:100], _BAD_END[100:] + Frame(TEXT, b"next").encode()],
    ],
    ids=[
        "stream-ends",
        "frame-ends-later",
        "long-frame",
        "header-alone",
        "later-read",
        "later-read-stream-ends",
        "cut-at-the-end",
        "cut-at-the-end-more-follows",
    ],
)
def test_invalid_utf8_fails_at_the_same_read(reads: list[bytes]) -> None:
    # Was a known divergence: the fast path checked UTF-8 once a text frame
    # was whole, wsproto as it arrives. Now the same read fails, with the
    # same code and reason (positions included), on both paths.
    check(_plain_case(reads))
    fast, _ = _run_both(_plain_case(reads))
    assert ("ProtocolError", 1007) in [e[2:4] for e in fast.events]


# Found by test_fast_path_is_invisible once the plain path got a SizeGuard
# (wsproto extension failing a message from its headers, issue 9).


def test_a_stray_continuation_is_not_counted_with_the_message_before() -> None:
    # A finished 1-byte message, then a continuation frame (nothing to
    # continue) announcing exactly max_size: no message is over max_size;
    # wsproto waits for the payload, and the stream ends (1006).
    case = _plain_case([Frame(TEXT, b"0").encode() + b"\x80\x7e\x00\x7e"])
    check(replace(case, max_size=126))


def test_a_stray_continuation_is_not_counted_with_the_message_before_deflate() -> None:
    # The same with permessage-deflate (BoundedDeflate adds up the headers
    # there): the finished message must not count, so no 1009; wsproto
    # waits for the continuation's payload and the stream ends (1006).
    case = _plain_case([Frame(TEXT, b"0").encode() + b"\x80\x7e\x00\x7e"])
    case = replace(case, max_size=126, compression=True)
    check(case)
    fast, plain = _run_both(case)
    for run in (fast, plain):
        [end] = [e[2:4] for e in run.events if e[1] == "receive raised"]
        assert end == ("ConnectionClosed", 1006)


@pytest.mark.parametrize(
    "frame",
    [b"\xc1\x02\xff\xfe", b"\x81\x02\xff\xfe"],
    ids=["rsv1", "plain"],
)
def test_a_data_frame_inside_a_message_fails_as_in_wsproto_with_deflate(
    frame: bytes,
) -> None:
    # Found under wsproto 1.2 (the same on 1.3): with permessage-deflate, a
    # text frame inside a fragmented uncompressed message, its payload not
    # deflate data. wsproto's own extension keeps the message's
    # (un)compressed state for it, so its parser says 1002 (expected a
    # continuation); BoundedDeflate took it for a new compressed message and
    # failed inflating it (1007).
    reads = [b"\x81\x00\x01\x00" + frame + b"\x88\x03\x03\xe80"]
    check(replace(_plain_case(reads), compression=True, max_size=None))


def test_a_header_over_max_size_fails_alike_whatever_follows() -> None:
    # A text frame announcing max_size + 1 bytes, its first byte not UTF-8.
    header = b"\x81\x7f" + (2**20 + 1).to_bytes(8, "big")
    check(replace(_plain_case([header + b"\x80"]), max_size=2**20))


@pytest.mark.parametrize(
    "header",
    [b"\xc1\x7e\x03\xe9", b"\x82\xfe\x03\xe9"],
    ids=["rsv1", "masked"],
)
def test_a_header_both_invalid_and_over_max_size_fails_alike(header: bytes) -> None:
    # 1001 bytes announced, max_size 1000: which error wins must not depend
    # on the path.
    check(replace(_plain_case([header]), max_size=1000))


def test_a_text_header_over_max_size_fails_at_once_with_a_character_cut() -> None:
    # 126 bytes of text announced, max_size 125, and the read ends inside
    # the payload's first character: the header alone is over max_size, so
    # both paths fail (1009) at this read, whatever the UTF-8 decoder holds.
    payload = "é".encode() * 63
    frame = Frame(TEXT, payload).encode()
    check(replace(_plain_case([frame[:5], frame[5:]]), max_size=125))
