"""The byte-level pieces of the raw floor client: nothing but what RFC 6455
needs for binary echo over an already-known server.

The handshake request is built once (fixed ``Sec-WebSocket-Key``, the 101 is
recognised by its status line only), client frames are masked once per
distinct payload and cached, and the parser reads unmasked, unfragmented
server frames. This is the least work any client can do on the wire, so
whatever a real client costs on top of it is the library's own overhead
(key generation, header validation, per-message masking, UTF-8 checks,
events, queues, tasks).
"""

from __future__ import annotations

#: A fixed masking key. A real client draws a fresh one per frame (RFC 6455
#: 5.3); the floor masks each distinct payload once and replays the frame.
MASK_KEY = b"\x37\xfa\x21\x3d"

OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


def handshake_request(host: str, port: int, path: str = "/") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode("ascii")


def mask(payload: bytes, key: bytes = MASK_KEY) -> bytes:
    """XOR ``payload`` with the repeated 4-byte ``key`` (one big-int XOR)."""
    n = len(payload)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")
    return value.to_bytes(n, "little")


def client_frame(opcode: int, payload: bytes, key: bytes = MASK_KEY) -> bytes:
    """One masked frame with FIN set."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + key + mask(payload, key)


#: Close frame, status 1000 (normal closure).
CLOSE_FRAME = client_frame(OP_CLOSE, (1000).to_bytes(2, "big"))


def parse_header(buf: bytearray, pos: int) -> tuple[int, int, int] | None:
    """``(opcode, header_length, payload_length)`` of the server frame at
    ``pos``, or ``None`` when its header is not complete yet."""
    have = len(buf) - pos
    if have < 2:
        return None
    b0 = buf[pos]
    b1 = buf[pos + 1]
    if not b0 & 0x80 or b1 & 0x80:
        raise ValueError("the floor client reads only unfragmented, unmasked frames")
    n = b1 & 0x7F
    if n < 126:
        return b0 & 0x0F, 2, n
    if n == 126:
        if have < 4:
            return None
        return b0 & 0x0F, 4, int.from_bytes(buf[pos + 2 : pos + 4], "big")
    if have < 10:
        return None
    return b0 & 0x0F, 10, int.from_bytes(buf[pos + 2 : pos + 10], "big")
