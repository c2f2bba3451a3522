"""One line per frame: what the DEBUG log shows of the bytes after the switch.

Incremental summarisers of one direction of a connection, fed the bytes as
they are sent or received: :class:`WebSocketFrames` (RFC 6455 §5.2) and
:class:`HTTP2Frames` (RFC 9113 §4.1). They keep a frame's header and at most
:data:`PREVIEW` bytes of its payload, whatever the frame's size, so a log of
a 1 GiB message costs what one of a small message does. They never fail:
bytes that are not a valid frame end the summary with one line saying so
(the connection's own parser reports the error).

Sans-I/O: nothing here imports trio.
"""

from __future__ import annotations

import abc
import struct

from ._h2_frames import FRAME_NAMES

__all__ = ["PREVIEW", "HTTP2Frames", "RawChunks", "WebSocketFrames"]

#: Payload bytes kept for a summary (text shown, a close reason, settings).
PREVIEW = 64

_WS_OPCODES = {
    0x0: "CONTINUATION",
    0x1: "TEXT",
    0x2: "BINARY",
    0x8: "CLOSE",
    0x9: "PING",
    0xA: "PONG",
}

# The frame types' names (RFC 9113 §6), as the preface check names them.
_H2_TYPES = FRAME_NAMES

_H2_SETTINGS = {
    0x1: "HEADER_TABLE_SIZE",
    0x2: "ENABLE_PUSH",
    0x3: "MAX_CONCURRENT_STREAMS",
    0x4: "INITIAL_WINDOW_SIZE",
    0x5: "MAX_FRAME_SIZE",
    0x6: "MAX_HEADER_LIST_SIZE",
    0x8: "ENABLE_CONNECT_PROTOCOL",
}

_H2_ERRORS = (
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
)

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _preview_text(data: bytes, total: int) -> str:
    text = data.decode("utf-8", "replace")
    return repr(text) if total <= len(data) else repr(text) + "..."


def _error_name(code: int) -> str:
    return _H2_ERRORS[code] if code < len(_H2_ERRORS) else f"0x{code:x}"


class _Frames(abc.ABC):
    """Header, then a payload of which the first :data:`PREVIEW` bytes are kept."""

    #: The longest header of the protocol.
    HEADER_MAX = 9

    def __init__(self) -> None:
        self._buffer = bytearray()  # the header being read, or the preview
        self._payload_left = 0  # payload bytes still to come
        self._in_payload = False
        self._broken = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[str]:
        """The summary of every frame that ``data`` completes."""
        lines: list[str] = []
        view = memoryview(data)
        while view and not self._broken:
            if not self._in_payload:
                # At most a header's worth is copied: a read of many frames
                # costs time in proportion to its frames, not to their
                # number times its size.
                chunk = view[: self.HEADER_MAX - len(self._buffer)]
                self._buffer += chunk
                consumed = self._parse_header(lines)
                if consumed is None:
                    break  # the header is not whole yet: all of view taken
                view = view[len(chunk) - (len(self._buffer) - consumed) :]
                self._buffer.clear()
                if self._payload_left == 0:
                    lines.append(self._summary(b""))
                else:
                    self._in_payload = True
                continue
            take = min(len(view), self._payload_left)
            room = PREVIEW - len(self._buffer)
            if room > 0:
                self._buffer += view[: min(take, room)]
            self._payload_left -= take
            view = view[take:]
            if self._payload_left == 0:
                self._in_payload = False
                lines.append(self._summary(bytes(self._buffer)))
                self._buffer.clear()
        return lines

    @abc.abstractmethod
    def _parse_header(self, lines: list[str]) -> int | None:
        """The header's size once it is whole in the buffer, else ``None``."""

    @abc.abstractmethod
    def _summary(self, preview: bytes) -> str:
        """The line of the frame whose payload began with ``preview``."""


class WebSocketFrames(_Frames):
    """Summaries of WebSocket frames, unmasked (the client's are masked)."""

    HEADER_MAX = 14

    def __init__(self) -> None:
        super().__init__()
        self._head = ""
        self._opcode = 0
        self._length = 0
        self._mask: bytes | None = None
        self._compressed = False
        self._in_compressed_message = False

    def _parse_header(self, lines: list[str]) -> int | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        size = 2
        length = second & 0x7F
        if length == 126:
            size = 4
        elif length == 127:
            size = 10
        masked = bool(second & 0x80)
        if len(buffer) < size + 4 * masked:
            return None
        if length == 126:
            length = struct.unpack_from("!H", buffer, 2)[0]
        elif length == 127:
            length = struct.unpack_from("!Q", buffer, 2)[0]
        self._mask = bytes(buffer[size : size + 4]) if masked else None
        opcode = first & 0x0F
        self._opcode, self._length = opcode, length
        self._payload_left = length
        name = _WS_OPCODES.get(opcode, f"opcode 0x{opcode:x}")
        flags = []
        if not first & 0x80:
            flags.append("fragment")
        if opcode in (0x1, 0x2):
            self._in_compressed_message = bool(first & 0x40)
        self._compressed = opcode < 0x8 and self._in_compressed_message
        if self._compressed:
            flags.append("compressed")
        if first & 0x30 or (first & 0x40 and opcode not in (0x1, 0x2)):
            flags.append(f"rsv=0x{(first >> 4) & 0x7:x}")
        self._head = name + (f" ({', '.join(flags)})" if flags else "")
        return size + 4 * masked

    def _summary(self, preview: bytes) -> str:
        if self._mask is not None and preview:
            mask = self._mask
            preview = bytes(b ^ mask[i % 4] for i, b in enumerate(preview))
        length, opcode = self._length, self._opcode
        detail = ""
        if opcode == 0x8 and len(preview) >= 2:
            code = int.from_bytes(preview[:2], "big")
            reason = preview[2:]
            detail = f" {code}" + (
                f" {_preview_text(reason, length - 2)}" if reason else ""
            )
        elif preview and not self._compressed and opcode in (0x0, 0x1):
            detail = " " + _preview_text(preview, length)
        return f"{self._head}{detail} [{length} bytes]"


class HTTP2Frames(_Frames):
    """Summaries of HTTP/2 frames; a leading client preface is named once."""

    def __init__(self, *, client_preface: bool = False) -> None:
        super().__init__()
        self._preface_left = len(_PREFACE) if client_preface else 0
        self._type = 0
        self._flags = 0
        self._stream = 0
        self._length = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[str]:
        lines: list[str] = []
        if self._preface_left:
            view = memoryview(data)
            take = min(self._preface_left, len(view))
            self._preface_left -= take
            if not self._preface_left:
                lines.append("client preface")
            data = view[take:]
        return lines + super().feed(data)

    def _parse_header(self, lines: list[str]) -> int | None:
        buffer = self._buffer
        if len(buffer) < 9:
            return None
        length = int.from_bytes(buffer[0:3], "big")
        self._type, self._flags = buffer[3], buffer[4]
        self._stream = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
        self._length = self._payload_left = length
        return 9

    def _summary(self, preview: bytes) -> str:
        kind, flags, length = self._type, self._flags, self._length
        name = _H2_TYPES.get(kind, f"type 0x{kind:x}")
        names = []
        if kind in (0x4, 0x6) and flags & 0x1:
            names.append("ACK")
        if kind in (0x0, 0x1) and flags & 0x1:
            names.append("END_STREAM")
        if kind in (0x1, 0x5, 0x9) and flags & 0x4:
            names.append("END_HEADERS")
        text = name + (f" [{', '.join(names)}]" if names else "")
        if self._stream:
            text += f" stream {self._stream}"
        detail = self._detail(preview)
        return f"{text}{detail} ({length} bytes)"

    def _detail(self, payload: bytes) -> str:
        kind = self._type
        if kind == 0x4 and payload:
            pairs = []
            for i in range(0, len(payload) - 5, 6):
                key, value = struct.unpack_from("!HI", payload, i)
                pairs.append(f"{_H2_SETTINGS.get(key, hex(key))}={value}")
            return " " + " ".join(pairs)
        if kind == 0x8 and len(payload) >= 4:
            increment = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            return f" +{increment}"
        if kind == 0x3 and len(payload) >= 4:
            return " " + _error_name(int.from_bytes(payload[:4], "big"))
        if kind == 0x7 and len(payload) >= 8:
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            code = int.from_bytes(payload[4:8], "big")
            debug = payload[8:]
            extra = f" {_preview_text(debug, self._length - 8)}" if debug else ""
            return f" last stream {last} {_error_name(code)}{extra}"
        if kind == 0x6 and len(payload) >= 8:
            return f" {payload[:8].hex()}"
        return ""


class RawChunks:
    """A raw protocol has no frames: one line per chunk, with its size."""

    def feed(self, data: bytes | bytearray | memoryview) -> list[str]:
        return [f"{len(data)} bytes"] if len(data) else []
