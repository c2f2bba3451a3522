"""Each CPU-bound operation alone, for instruction counts per operation.

Run under ``valgrind --tool=callgrind --dump-before=getpgrp`` by
``python -m benchmarks.callgrind`` (``nox -s callgrind``), this script runs
the operations named on its command line one after the other. For each it
prepares a connection, warms it up, then calls :data:`MARK` (``os.getpgrp``,
which nothing else here calls), runs the operation N times, marks, runs it
2N times and marks again. Callgrind writes a profile at every mark, so the
two segments are counted apart, and their difference divided by N is the
cost of one operation: whatever a segment costs once (the mark, the loop's
set-up, a GC pass) cancels out.

Only the client's code is counted. The peer is :class:`ScriptedStream`, a
``trio.abc.Stream`` in memory that answers with bytes built before the
measured segments:

* WebSocket: the 101 is computed from the client's key (one SHA-1), the
  server's frames are built once and served again and again, and what the
  client sends is dropped unread. So ``ws_send_*`` counts the send path
  alone (framing, masking, the write) and ``ws_recv_*`` the receive path
  alone (the read, parsing, unmasked payload assembly).
* HTTP/2: a sans-I/O h2 server answers the client once, while the bytes it
  writes are recorded (:class:`H2Peer`); the measured connections replay the
  recording, so h2's server side costs nothing there. The client is
  deterministic, so the replay checks only that each write has the length
  it had when recorded, and fails loudly if not.

Stable counts: ``PYTHONHASHSEED=0`` (set by the runner), Trio's scheduler
coin seeded here, and the cyclic garbage collector run before each segment
and off during it. Masking keys come from ``os.urandom`` as in real use: a
key changes no instruction count beyond a handful.

The transport is not a ``trio.SocketStream``, so the few shortcuts the
library takes on a real socket (the HTTP/2 writer's ``socket.send``, the
background reader's ``wait_readable``; neither is on these paths without a
nursery except the first) are not exercised, and the stream's own cost is
two checkpoints per call, as a socket's.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import os
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.events
import trio

import trio_upgrade

#: The marker: callgrind dumps its counts each time this C function is entered.
MARK = os.getpgrp
MARK_SYMBOL = "getpgrp"

URL_WS = "ws://bench.test/"
URL_H2 = "http://bench.test/"
MAX_MESSAGE = 16 * 1024 * 1024
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KiB = 1024
MiB = 1024 * KiB


class ScriptedStream(trio.abc.Stream):
    """The peer of one client connection, in memory and synchronous.

    ``respond`` gets each write of the client and returns the bytes the peer
    answers with (queued for the client's reads); ``None`` drops writes.
    Once the queue is empty, reads are served from ``cycle`` (the same bytes
    again and again, a read never crossing their end) if set, else end of
    stream if ``eof``, else fail: the client waits for bytes the script
    never sends.
    """

    def __init__(self, respond: Callable[[bytes], bytes] | None) -> None:
        self.respond = respond
        self.cycle: bytes | None = None
        self.eof = False
        self._buffer = b""
        self._position = 0

    def queue(self, data: bytes) -> None:
        self._buffer = self._buffer[self._position :] + data
        self._position = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self.respond is not None:
            reply = self.respond(bytes(data))
            if reply:
                self.queue(reply)

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if self._position >= len(self._buffer):
            if self.cycle is not None:
                self._buffer, self._position = self.cycle, 0
            elif self.eof:
                return b""
            else:
                raise RuntimeError("the client waits for bytes the script never sends")
        start = self._position
        end = len(self._buffer) if max_bytes is None else start + max_bytes
        chunk = self._buffer[start:end]
        self._position = start + len(chunk)
        return chunk

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


# ---------------------------------------------------------------- WebSocket --


def ws_accept(request: bytes) -> bytes:
    """The 101 for a client's upgrade request (its key found by a search)."""
    start = request.lower().index(b"sec-websocket-key:") + len(b"sec-websocket-key:")
    key = request[start : request.index(b"\r\n", start)].strip()
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def server_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One unmasked, final frame as a server sends it."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


CLOSE_REPLY = server_frame((1000).to_bytes(2, "big"), opcode=0x8)


class WebSocketPeer:
    """Answers the upgrade, then drops frames (or answers a close, then ends)."""

    def __init__(self, stream: ScriptedStream, *, close_reply: bool) -> None:
        self.stream = stream
        self.close_reply = close_reply
        self.switched = False

    def __call__(self, data: bytes) -> bytes:
        if not self.switched:
            self.switched = True
            return ws_accept(data)
        if self.close_reply:
            self.stream.eof = True
            return CLOSE_REPLY
        return b""


def ws_protocol() -> Any:
    return trio_upgrade.WebSocket(
        compression=None, max_size=MAX_MESSAGE, ping_interval=None
    )


async def ws_open(*, close_reply: bool = False) -> tuple[Any, ScriptedStream]:
    stream = ScriptedStream(None)
    stream.respond = WebSocketPeer(stream, close_reply=close_reply)
    conn = await trio_upgrade.upgrade(URL_WS, [ws_protocol()], transport=stream)
    return conn, stream


#: Runs the operation N times.
Runner = Callable[[int], Awaitable[None]]
#: The counts of one operation's segments: warm-up, N, 2N.
Plan = tuple[int, int, int]
#: Builds the connection (told the whole plan) and returns its runner.
Prepare = Callable[[Plan], Awaitable[Runner]]


async def ws_handshake(plan: Plan) -> Runner:
    async def run(count: int) -> None:
        for _ in range(count):
            conn, _ = await ws_open(close_reply=True)
            await conn.aclose()

    return run


def ws_send(size: int) -> Prepare:
    async def prepare(plan: Plan) -> Runner:
        conn, _ = await ws_open()
        payload = random.Random(size).randbytes(size)

        async def run(count: int) -> None:
            send = conn.send
            for _ in range(count):
                await send(payload)

        return run

    return prepare


def ws_receive(size: int, per_read: int = 1) -> Prepare:
    async def prepare(plan: Plan) -> Runner:
        conn, stream = await ws_open()
        stream.cycle = server_frame(random.Random(size).randbytes(size)) * per_read

        async def run(count: int) -> None:
            receive = conn.receive
            for _ in range(count * per_read):
                await receive()

        return run

    return prepare


# ------------------------------------------------------------------- HTTP/2 --


class H2Peer:
    """h2c on h2's server side: the 101, then GET ``/N`` answers N bytes.

    Flow control is kept: a body larger than the client's window waits for
    its WINDOW_UPDATE.
    """

    def __init__(self) -> None:
        self.h2: h2.connection.H2Connection | None = None
        self.head = b""
        self.pending: dict[int, bytes] = {}

    def __call__(self, data: bytes) -> bytes:
        if self.h2 is not None:
            return self.receive(data)
        self.head += data
        head, found, rest = self.head.partition(b"\r\n\r\n")
        if not found:
            return b""
        lines = head.split(b"\r\n")
        path = lines[0].split(b" ")[1].decode()
        settings = next(
            line.split(b":", 1)[1].strip()
            for line in lines[1:]
            if line.lower().startswith(b"http2-settings:")
        )
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.h2.initiate_upgrade_connection(settings)
        self.answer(1, path)
        switch = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
        return switch + b"Upgrade: h2c\r\n\r\n" + self.receive(rest)

    def answer(self, stream_id: int, path: str) -> None:
        assert self.h2 is not None
        body = b"x" * int(path.lstrip("/") or "0")
        headers = [(":status", "200"), ("content-length", str(len(body)))]
        self.h2.send_headers(stream_id, headers, end_stream=not body)
        if body:
            self.pending[stream_id] = body

    def receive(self, data: bytes) -> bytes:
        assert self.h2 is not None
        for event in self.h2.receive_data(data) if data else ():
            if isinstance(event, h2.events.RequestReceived):
                headers = dict(event.headers or ())
                self.answer(event.stream_id, headers[b":path"].decode())
        for stream_id, body in list(self.pending.items()):
            size = min(
                len(body),
                self.h2.local_flow_control_window(stream_id),
                self.h2.max_outbound_frame_size,
            )
            while size > 0:
                self.h2.send_data(stream_id, body[:size], end_stream=size == len(body))
                body = body[size:]
                size = min(
                    len(body),
                    self.h2.local_flow_control_window(stream_id),
                    self.h2.max_outbound_frame_size,
                )
            if body:
                self.pending[stream_id] = body
            else:
                del self.pending[stream_id]
        return self.h2.data_to_send()


class Recording:
    """The peer's answers to each write of the client, to play back."""

    def __init__(self, live: Callable[[bytes], bytes]) -> None:
        self.live = live
        self.answers: list[tuple[int, bytes]] = []

    def record(self, data: bytes) -> bytes:
        reply = self.live(data)
        self.answers.append((len(data), reply))
        return reply

    def player(self) -> Callable[[bytes], bytes]:
        answers = iter(self.answers)

        def play(data: bytes) -> bytes:
            length, reply = next(answers)
            if len(data) != length:
                raise RuntimeError(
                    f"the client wrote {len(data)} bytes where the recording has"
                    f" {length}: it is not deterministic, the replay is void"
                )
            return reply

        return play


async def h2_open(path: str, respond: Callable[[bytes], bytes]) -> Any:
    stream = ScriptedStream(respond)
    return await trio_upgrade.upgrade(URL_H2 + path, "h2c", transport=stream)


async def h2_handshake(plan: Plan) -> Runner:
    recording = Recording(H2Peer())
    conn = await h2_open("16", recording.record)
    await conn.aclose()

    async def run(count: int) -> None:
        for _ in range(count):
            conn = await h2_open("16", recording.player())
            await conn.aclose()

    return run


def h2_get(size: int) -> Prepare:
    path = f"/{size}"

    async def session(conn: Any, counts: list[int]) -> None:
        for count in counts:
            for _ in range(count):
                response = await conn.request("GET", path)
                assert len(response.content) == size

    async def prepare(plan: Plan) -> Runner:
        # The measured connection's whole life is recorded first: the
        # warm-up and both segments, in one sequence.
        recording = Recording(H2Peer())
        recorded = await h2_open("0", recording.record)
        await session(recorded, list(plan))
        conn = await h2_open("0", recording.player())

        async def run(count: int) -> None:
            await session(conn, [count])

        return run

    return prepare


# ----------------------------------------------------------------- running --


@dataclass(frozen=True)
class Operation:
    title: str
    prepare: Prepare
    n: int


OPERATIONS: dict[str, Operation] = {
    "ws_handshake": Operation(
        "WebSocket handshake and close (upgrade, 101 checks, close frames)",
        ws_handshake,
        10,
    ),
    "ws_send_16": Operation("WebSocket send, 16 B", ws_send(16), 200),
    "ws_send_64k": Operation("WebSocket send, 64 KiB", ws_send(64 * KiB), 20),
    "ws_send_1m": Operation("WebSocket send, 1 MiB", ws_send(MiB), 4),
    "ws_recv_16": Operation(
        "WebSocket receive, 16 B (one frame per read)", ws_receive(16), 200
    ),
    "ws_recv_16_x64": Operation(
        "WebSocket receive, 16 B (64 frames per read; per message)",
        ws_receive(16, per_read=64),
        4,
    ),
    "ws_recv_64k": Operation("WebSocket receive, 64 KiB", ws_receive(64 * KiB), 20),
    "ws_recv_1m": Operation("WebSocket receive, 1 MiB", ws_receive(MiB), 4),
    "h2c_handshake": Operation(
        "h2c handshake and close (upgrade, stream-1 response of 16 B)",
        h2_handshake,
        10,
    ),
    "h2_get_16": Operation("HTTP/2 GET, 16 B body, one connection", h2_get(16), 50),
    "h2_get_64k": Operation(
        "HTTP/2 GET, 64 KiB body, one connection", h2_get(64 * KiB), 10
    ),
}

#: Per-message figures: ws_recv_16_x64 runs 64 messages per unit of n.
PER_UNIT = {"ws_recv_16_x64": 64}

WARMUP = 3
#: Dumps per operation: before (prepare, warm-up), N, between, 2N.
DUMPS_PER_OPERATION = 4


async def measure(name: str) -> None:
    operation = OPERATIONS[name]
    plan = (WARMUP, operation.n, 2 * operation.n)
    run = await operation.prepare(plan)
    await run(plan[0])
    for count in plan[1:]:
        # The same fixed work around both segments: it cancels out.
        gc.collect()
        gc.disable()
        MARK()
        await run(count)
        MARK()
        gc.enable()


async def main(names: list[str]) -> None:
    for name in names:
        await measure(name)
        print(f"ok {name}", file=sys.stderr, flush=True)


def seed_trio() -> None:
    """Trio reverses each batch of runnable tasks on a coin toss: seed it."""
    try:
        from trio._core import _run
    except ImportError:  # pragma: no cover - trio moved it
        return
    coin = getattr(_run, "_r", None)
    if isinstance(coin, random.Random):
        coin.seed(0)


if __name__ == "__main__":
    chosen = sys.argv[1:] or list(OPERATIONS)
    unknown = [name for name in chosen if name not in OPERATIONS]
    if unknown:
        sys.exit(f"unknown operations {unknown}; known: {', '.join(OPERATIONS)}")
    seed_trio()
    trio.run(main, chosen)
