"""A light walk over the frame headers the server sends, ahead of h2.

h2 parses the frames; this only reads their 9-byte headers (RFC 9113 §4.1)
for two things h2 does not do:

* check that the server's first frame is a SETTINGS frame, its connection
  preface (RFC 9113 §3.4), so that a server that answered the 101 with
  something else (an HTTP/1.1 response, garbage) gets a clear error instead
  of a confusing one about frame sizes;
* find where each GOAWAY frame ends. After a GOAWAY h2 refuses every further
  frame, but RFC 9113 §6.8 lets the server finish the streams up to its
  ``last_stream_id``: the connection feeds h2 up to the end of the GOAWAY,
  reopens h2's state machine, then feeds the rest.

Sans-I/O: nothing here imports trio.
"""

from __future__ import annotations

__all__ = ["FRAME_NAMES", "FrameScanner", "PrefaceError"]

_HEADER = 9
_SETTINGS = 0x4
_GOAWAY = 0x7
_ACK = 0x1

#: The name of each frame type of RFC 9113 §6, by its number.
FRAME_NAMES = {
    0x0: "DATA",
    0x1: "HEADERS",
    0x2: "PRIORITY",
    0x3: "RST_STREAM",
    0x4: "SETTINGS",
    0x5: "PUSH_PROMISE",
    0x6: "PING",
    0x7: "GOAWAY",
    0x8: "WINDOW_UPDATE",
    0x9: "CONTINUATION",
}


class PrefaceError(ValueError):
    """The server's first bytes are not an HTTP/2 SETTINGS frame."""


def _describe(head: bytes | bytearray) -> str:
    if head.startswith(b"HTTP/"):
        return "an HTTP/1.x message"
    ftype = head[3]
    name = FRAME_NAMES.get(ftype, f"unknown type 0x{ftype:02x}")
    if ftype == _SETTINGS:
        name = "SETTINGS with ACK" if head[4] & _ACK else "SETTINGS on a stream"
    return f"a {name} frame"


class FrameScanner:
    """Follows frame boundaries across reads; see the module docstring."""

    __slots__ = ("_goaway", "_head", "_preface_seen", "_skip")

    def __init__(self) -> None:
        self._head = bytearray()  # a frame header split across reads
        self._skip = 0  # payload bytes of the current frame still to come
        self._goaway = False  # the current frame is a GOAWAY
        self._preface_seen = False

    @property
    def preface_seen(self) -> bool:
        """Whether the server's SETTINGS preface has arrived (its header)."""
        return self._preface_seen

    def feed(self, data: bytes | bytearray | memoryview) -> list[int]:
        """Walk ``data``; return the offsets just after each GOAWAY in it.

        Raises:
            PrefaceError: the first frame is not a SETTINGS frame.
        """
        cuts: list[int] = []
        pos = 0
        end = len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                pos += step
                self._skip -= step
                if not self._skip and self._goaway:
                    self._goaway = False
                    cuts.append(pos)
                continue
            if self._head or end - pos < _HEADER:
                take = min(_HEADER - len(self._head), end - pos)
                self._head += data[pos : pos + take]
                pos += take
                if len(self._head) < _HEADER:
                    break
                head: bytes | bytearray | memoryview = self._head
                self._start(head)
                self._head = bytearray()
            else:
                self._start(data[pos : pos + _HEADER])
                pos += _HEADER
            if not self._skip and self._goaway:
                self._goaway = False
                cuts.append(pos)
        return cuts

    def _start(self, head: bytes | bytearray | memoryview) -> None:
        length = (head[0] << 16) | (head[1] << 8) | head[2]
        ftype = head[3]
        if not self._preface_seen:
            stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
            if ftype != _SETTINGS or head[4] & _ACK or stream:
                raw = bytes(head)
                raise PrefaceError(
                    "expected the server's HTTP/2 connection preface, a SETTINGS "
                    f"frame (RFC 9113 §3.4), but its first bytes are "
                    f"{_describe(raw)}: {raw!r}"
                )
            self._preface_seen = True
        self._skip = length
        self._goaway = ftype == _GOAWAY
