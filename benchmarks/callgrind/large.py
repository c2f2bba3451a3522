"""Instruction counts of the 1 MiB WebSocket echo: the client's work only.

The client talks over a socket pair to a stub server in the same process
that does the least work possible: it answers the handshake, reads each
client frame into one reused buffer without unmasking it, and answers with
one pre-built unmasked 1 MiB frame. So nearly every instruction counted is
the client's; callgrind counts user space only, so the kernel's copies
(the same for every client) are not in the figure.

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m benchmarks.callgrind.large trio_upgrade 20

Each run starts with one echo that is not counted (first-use costs: the
floor masks its frame then); run it with a count of 0 and of N and divide
the difference by N: the instructions of one 1 MiB round trip (send,
masked; receive). ``floor`` in
place of ``trio_upgrade`` measures the raw floor client of
``benchmarks/websocket`` (``raw-trio``: pre-masked frames, no checks,
``recv_into`` the message's buffer) for the ratio. With
``text`` as a third argument the message is text (UTF-8 checked on
receipt). docs/perf/large-messages.rst has the figures.
"""

from __future__ import annotations

import base64
import hashlib
import random
import sys

import trio

import trio_upgrade
from benchmarks.websocket.raw import handshake_request
from benchmarks.websocket.trio_clients import _RawSocketConn, _read_101

SIZE = 1 << 20
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _server_frame(payload: bytes, text: bool) -> bytes:
    return bytes((0x81 if text else 0x82, 127)) + SIZE.to_bytes(8, "big") + payload


async def _stub_server(stream: trio.SocketStream, reply: bytes, count: int) -> None:
    """Answer the handshake, then ``count`` times: read a client frame of
    SIZE bytes (14-byte header), send ``reply``."""
    request = b""
    while b"\r\n\r\n" not in request:
        request += await stream.receive_some(65536)
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    await stream.send_all(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    sock = stream.socket
    sink = bytearray(SIZE + 14)
    view = memoryview(sink)
    for _ in range(count):
        have = 0
        while have < len(sink):
            got = await sock.recv_into(view[have:])
            if not got:
                raise EOFError("client went away mid-frame")
            have += got
        await stream.send_all(reply)


async def main(client: str, count: int, text: bool) -> None:
    payload = random.Random(1).randbytes(SIZE)
    message: str | bytes = payload
    if text:
        message = "a\u00e9\u20ac" * (SIZE // 6) + "x" * (SIZE % 6)  # 1, 2, 3 bytes
        payload = message.encode()
    reply = _server_frame(payload, text)
    a, b = trio.socket.socketpair()
    client_stream, server_stream = trio.SocketStream(a), trio.SocketStream(b)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stub_server, server_stream, reply, count + 1)
        if client == "floor":
            # The floor of the benchmark (raw-trio): the trio socket itself.
            await client_stream.send_all(handshake_request("test", 80))
            leftover = await _read_101(lambda: a.recv(65536))
            raw = _RawSocketConn(a, leftover)
            for _ in range(count + 1):
                await raw.send(payload)  # pre-masked once, then replayed
                await raw.receive()
            await client_stream.aclose()
        else:
            offer = trio_upgrade.WebSocket(compression=None, max_size=2 * SIZE)
            ws = await trio_upgrade.upgrade(
                "http://test/", [offer], transport=client_stream
            )
            for _ in range(count + 1):
                await ws.send(message)
                if await ws.receive() != message:
                    raise AssertionError("bad echo")
            await client_stream.aclose()
        await server_stream.aclose()
    print("ok", file=sys.stderr)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]), sys.argv[3:4] == ["text"])
