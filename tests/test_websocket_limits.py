"""Bounds and bad input: message size (deflate bombs included), protocol
violations from the server, backpressure, and memory per idle connection."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tracemalloc
import zlib

import pytest
import trio
import trio.testing
import wsproto
import wsproto.events
from ws_support import bare_connection, frame, read_client_frame, serve_ws, ws_script

import trio_upgrade
from trio_upgrade import ProtocolError, RawStream, WebSocket
from trio_upgrade._sansio import _speedups
from trio_upgrade._sansio._ws_deflate import BoundedDeflate, Deflate
from trio_upgrade.testing import open_upgrade_server
from trio_upgrade.testing._websocket import ServerWebSocket

pytestmark = pytest.mark.timeout(60)


async def _sends(ws: ServerWebSocket, data: bytes) -> None:
    await ws.send_raw(data)
    async for _ in ws:  # then see how the client closes
        pass


@pytest.mark.parametrize(
    ("frames", "max_size", "ok"),
    [
        ([frame(bytes(1000))], 1000, True),
        ([frame(bytes(1001))], 1000, False),
        (
            [
                frame(b"\x00" * 400, fin=False),
                frame(b"\x00" * 400, 0, fin=False),
                frame(b"\x00" * 400, 0),
            ],
            1000,
            False,
        ),
        ([frame("é".encode() * 500, 0x1)], 1000, True),  # 500 characters, 1000 bytes
        ([frame("é".encode() * 501, 0x1)], 1000, False),
        ([frame(bytes(300_000))], None, True),
    ],
)
async def test_max_size(frames: list[bytes], max_size: int | None, ok: bool) -> None:
    async def handler(ws: ServerWebSocket) -> None:
        await _sends(ws, b"".join(frames))

    async with serve_ws(handler=handler, compression=False) as (server, protocol):
        offer = WebSocket(max_size=max_size, compression=None)
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), offer) as ws:
                if ok:
                    await ws.receive()
                else:
                    with pytest.raises(ProtocolError, match="max_size") as info:
                        await ws.receive()
                    assert info.value.code == 1009
                    assert ws.close_code == 1009
            [record] = await server.wait_closed(1)
    assert record.client_closed
    assert protocol.connections[0].close_code == (1000 if ok else 1009)


async def test_compressed_message_over_max_size() -> None:
    async def handler(ws: ServerWebSocket) -> None:
        await ws.send(os.urandom(3000))  # wsproto's server compresses it
        await _sends(ws, b"")

    async with serve_ws(handler=handler) as (server, protocol):
        with trio.fail_after(10):
            offer = WebSocket(max_size=2000)
            async with await trio_upgrade.upgrade(server.url(), offer) as ws:
                assert ws.extensions
                with pytest.raises(ProtocolError) as info:
                    await ws.receive()
                assert info.value.code == 1009
    assert protocol.connections[0].close_code == 1009


def _bomb(megabytes: int) -> bytes:
    """A compressed message of ``megabytes`` MiB of zeros (12-bit window),
    made a MiB at a time so the test itself never holds it inflated."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -12)
    zeros = bytes(2**20)
    parts = [deflater.compress(zeros) for _ in range(megabytes)]
    parts.append(deflater.flush(zlib.Z_SYNC_FLUSH)[:-4])
    return frame(b"".join(parts), rsv1=True)


async def test_deflate_bomb_stays_bounded() -> None:
    bomb = _bomb(200)  # 200 MiB inflated, ~200 KiB on the wire
    assert len(bomb) < 300_000

    async def handler(ws: ServerWebSocket) -> None:
        await _sends(ws, bomb)

    async with serve_ws(handler=handler) as (server, protocol):
        with trio.fail_after(20):
            async with await trio_upgrade.upgrade(server.url(), ["websocket"]) as ws:
                assert ws.extensions
                tracemalloc.start()
                try:
                    with pytest.raises(ProtocolError) as info:
                        await ws.receive()
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
    assert info.value.code == 1009
    # max_size is 1 MiB: a few MiB of buffers at most, never the 200 MiB.
    assert peak < 6 * 2**20, peak
    assert protocol.connections[0].close_code == 1009


async def test_compressed_message_within_max_size_across_fragments() -> None:
    deflater = zlib.compressobj(6, zlib.DEFLATED, -12)
    first = deflater.compress(b"a" * 300_000)
    rest = deflater.compress(b"b" * 300_000) + deflater.flush(zlib.Z_SYNC_FLUSH)[:-4]
    # A ping between the fragments must not lose the message's compression.
    data = frame(first, 0x1, fin=False, rsv1=True) + frame(b"p", 0x9) + frame(rest, 0x0)

    async def handler(ws: ServerWebSocket) -> None:
        await _sends(ws, data)

    async with serve_ws(handler=handler) as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), ["websocket"]) as ws:
                assert await ws.receive() == "a" * 300_000 + "b" * 300_000


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(b"", 0x3), 1002),  # reserved opcode
        (frame(b"hi", 0x1, masked=True), 1002),  # servers must not mask
        (frame(b"hi", 0x1, rsv1=True), 1002),  # RSV1 without an extension
        (frame(b"x" * 126, 0x9), 1002),  # control frame over 125 bytes
        (frame(b"", 0x9, fin=False), 1002),  # fragmented control frame
        (frame(b"orphan", 0x0), 1002),  # continuation of nothing
        (frame(b"a", 0x1, fin=False) + frame(b"b", 0x1), 1002),  # no continuation
        (frame(b"\xff\xfe", 0x1), 1007),  # invalid UTF-8
        (frame(b"\x03\xe8\xff", 0x8), 1007),  # close reason not UTF-8
        (frame(b"\x03", 0x8), 1002),  # one-byte close payload
    ],
)
async def test_protocol_violations_fail_the_connection(data: bytes, code: int) -> None:
    received: list[bytes] = []

    async def violate(stream: RawStream) -> None:
        await stream.send_all(frame(b"fine", 0x1) + data)
        async for chunk in stream:
            received.append(bytes(chunk))

    async with open_upgrade_server(script=ws_script(violate)) as server:
        with trio.fail_after(10):
            offer = WebSocket(compression=None)
            async with await trio_upgrade.upgrade(server.url(), offer) as ws:
                assert await ws.receive() == "fine"  # what came before is kept
                with pytest.raises(ProtocolError) as info:
                    await ws.receive()
                assert info.value.code == code
                assert ws.close_code == code
                with pytest.raises(ProtocolError):
                    await ws.send("after")
            [record] = await server.wait_closed(1)
    assert record.client_closed
    # The client's close frame: masked, with the code.
    close = b"".join(received)
    assert close[0] == 0x88
    assert (
        int.from_bytes(
            bytes(a ^ b for a, b in zip(close[6:8], close[2:4], strict=True)), "big"
        )
        == code
    )


async def test_backpressure_stops_reading() -> None:
    count = 300
    sent = 0

    async def flood(ws: ServerWebSocket) -> None:
        nonlocal sent
        for i in range(count):
            await ws.send(i.to_bytes(4, "big") * 16384)  # 64 KiB each
            sent += 1
        async for _ in ws:
            pass

    async with serve_ws(handler=flood, compression=False) as (server, _):
        offer = WebSocket(max_queue=4, compression=None)
        with trio.fail_after(20):
            async with trio_upgrade.open_upgrade(server.url(), offer) as ws:
                # Not reading: the background reader queues 4 messages, then
                # stops, and TCP flow control stops the server (19 MiB in all,
                # far more than the socket buffers hold). Wait for that to
                # happen, not for a fixed time (0.5 s was once too short on a
                # loaded machine: 75 sent, then 76): until every task, the
                # server's included, has been blocked with no I/O for 0.2 s.
                await trio.testing.wait_all_tasks_blocked(cushion=0.2)
                stalled = sent
                assert stalled < count // 4
                await trio.sleep(0.5)
                # The kernel may still move a little (a send buffer that
                # grew, a late window update: once 13 became 14 in CI); a
                # client that kept reading would have taken tens more.
                assert sent - stalled <= 2
                for i in range(count):
                    assert await ws.receive() == i.to_bytes(4, "big") * 16384
                # The server's task counts a message once its send returns:
                # let it run (a receive that finds its message need not be
                # a schedule point, so the last count may still be pending).
                await trio.testing.wait_all_tasks_blocked()
                assert sent == count


_SERVER = """
import math, sys, trio
from trio_upgrade.testing import open_upgrade_server
from trio_upgrade.testing._websocket import WebSocketServerProtocol

async def main():
    protocol = WebSocketServerProtocol()
    async with open_upgrade_server([protocol], connection_timeout=math.inf) as server:
        print(server.port, flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)

trio.run(main)
"""


# Bytes an idle connection may hold, as traced, with headroom over the
# figures measured here on CPython 3.11 (about 2.7 KiB without
# compression, 3.3 KiB with, 8.9 KiB with a nursery's background reader;
# docs/perf/memory.rst) for other Pythons' object sizes. Before issue 13
# they were 4.6, 5.3 and 10.8 KiB: the first two budgets fail there.
# Python 3.10's coroutine frames and Trio's task objects are larger, and the
# background reader is a task: 12.4 KiB there with a nursery (13.0 with
# trio 0.25), against 8.9 on 3.11 and 9.3 on 3.13; the other two cases
# measure 3.2 and 4.1 KiB on 3.10.
_NURSERY_BUDGET = (11 if sys.version_info >= (3, 11) else 14) * 1024
_IDLE_BUDGETS = [
    pytest.param(False, None, 4 * 1024, id="plain"),
    pytest.param(False, "deflate", 5 * 1024, id="deflate"),
    pytest.param(True, "deflate", _NURSERY_BUDGET, id="deflate-nursery"),
]


@pytest.mark.parametrize(("nursery", "compression", "budget"), _IDLE_BUDGETS)
async def test_memory_per_idle_connection(
    nursery: bool, compression: str | None, budget: int
) -> None:
    # The server runs in another process so that only the client is measured.
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    offer = WebSocket() if compression else WebSocket(compression=None)
    try:
        assert process.stdout is not None
        port = int(await trio.to_thread.run_sync(process.stdout.readline))
        url = f"ws://127.0.0.1:{port}/"
        n = 200
        connections = []
        with trio.fail_after(30):
            async with trio.open_nursery() as tasks:
                # One connection first: first-use allocations (caches, lazy
                # imports) are not the connections'.
                first = await trio_upgrade.upgrade(url, [offer])
                assert bool(first.extensions) == bool(compression)
                await first.aclose()
                gc.collect()
                tracemalloc.start()
                try:
                    before = tracemalloc.take_snapshot()
                    for _ in range(n):
                        connections.append(
                            await trio_upgrade.upgrade(
                                url, [offer], nursery=tasks if nursery else None
                            )
                        )
                    await trio.sleep(0.3)  # background readers take over
                    gc.collect()
                    after = tracemalloc.take_snapshot()
                finally:
                    tracemalloc.stop()
                per_connection = (
                    sum(s.size_diff for s in after.compare_to(before, "filename")) / n
                )
                for ws in connections:
                    await ws.aclose()
    finally:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.close()
        process.stdout.close()
        process.wait(10)
    print(f"{per_connection:.0f} bytes per idle connection: {nursery=} {compression=}")
    assert per_connection < budget


# -- a header that announces too much fails the connection at once ------------

_HUGE = 2**62


def _header(opcode: int, size: int, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A server frame header announcing ``size`` bytes (none follow)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if size < 65536:
        return bytes([first, 126]) + size.to_bytes(2, "big")
    return bytes([first, 127]) + size.to_bytes(8, "big")


_DEFLATE_101 = [
    ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=12")
]

_ANNOUNCED = {
    "binary": (_header(0x2, _HUGE), False),
    "text": (_header(0x1, _HUGE), False),
    "just-over": (_header(0x2, 2**20 + 1), False),
    # Fragments: each within max_size, their total not.
    "fragments": (
        frame(b"a" * 600_000, 0x1, fin=False) + _header(0x0, 600_000),
        False,
    ),
    "fragments-around-a-ping": (
        frame(b"a" * 600_000, 0x2, fin=False)
        + frame(b"p", 0x9)
        + _header(0x0, 600_000, fin=False),
        False,
    ),
    "deflate-uncompressed": (_header(0x2, _HUGE), True),
    "deflate-fragments": (
        frame(b"a" * 600_000, 0x2, fin=False) + _header(0x0, 600_000),
        True,
    ),
    "deflate-compressed": (_header(0x2, _HUGE, rsv1=True), True),
}


@pytest.mark.parametrize("speedups", [True, False])
@pytest.mark.parametrize("case", list(_ANNOUNCED))
async def test_announced_size_over_max_size_fails_at_once(
    case: str, speedups: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the fast paths, wsproto's public path (SizeGuard) must fail
    # from the header as soon.
    monkeypatch.setattr(_speedups, "ENABLED", speedups)
    data, deflate = _ANNOUNCED[case]
    closes: list[bytes] = []

    async def announce_then_hang(stream: RawStream) -> None:
        await stream.send_all(data)
        # Hang: nothing more comes; read what the client sends until it goes.
        buffer = bytearray()
        while True:
            try:
                opcode, _, _, payload = await read_client_frame(stream, buffer)
            except EOFError:
                return
            if opcode == 8:
                closes.append(payload)

    script = ws_script(announce_then_hang, headers=_DEFLATE_101 if deflate else [])
    async with open_upgrade_server(script=script) as server:
        offer = WebSocket(compression="deflate" if deflate else None)
        with trio.fail_after(5):
            async with await trio_upgrade.upgrade(server.url(), offer) as ws:
                assert bool(ws.extensions) == deflate
                start = trio.current_time()
                with pytest.raises(ProtocolError, match="max_size") as info:
                    await ws.receive()
                # The header is enough: no wait for a payload that never comes.
                assert trio.current_time() - start < 2
                assert info.value.code == 1009
                assert ws.close_code == 1009
            [record] = await server.wait_closed(1)
    assert record.client_closed
    [close] = closes
    assert int.from_bytes(close[:2], "big") == 1009


@pytest.mark.parametrize("plain", [True, False])
async def test_announced_size_checked_on_both_receive_paths(plain: bool) -> None:
    # The same bytes through the fast path and through wsproto alone.
    client, server = trio.testing.memory_stream_pair()
    conn = bare_connection(client, plain=plain, max_size=1000)
    written = bytearray()

    async def server_side() -> None:
        await server.send_all(frame(b"ok", 0x1) + _header(0x2, 1001))
        while data := await server.receive_some():  # until the client's EOF
            written.extend(data)
        await server.aclose()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server_side)
            assert await conn.receive() == "ok"
            with pytest.raises(ProtocolError) as info:
                await conn.receive()
            assert info.value.code == 1009
    assert written[0] == 0x88  # the close frame, masked, with 1009
    code = bytes(a ^ b for a, b in zip(written[6:8], written[2:4], strict=True))
    assert int.from_bytes(code, "big") == 1009


async def test_incompressible_message_at_max_size_passes_the_header_check() -> None:
    # Stored blocks make the frame longer than the message: still accepted.
    message = os.urandom(20_000)
    deflater = zlib.compressobj(0, zlib.DEFLATED, -9, 1)
    payload = deflater.compress(message) + deflater.flush(zlib.Z_SYNC_FLUSH)[:-4]
    assert len(payload) > len(message)

    async def send(stream: RawStream) -> None:
        await stream.send_all(frame(payload, rsv1=True))
        opcode, *_ = await read_client_frame(stream, bytearray())
        assert opcode == 8  # the client's close: the script then closes

    script = ws_script(send, headers=_DEFLATE_101)
    async with open_upgrade_server(script=script) as server:
        with trio.fail_after(5):
            offer = WebSocket(max_size=len(message))
            async with await trio_upgrade.upgrade(server.url(), offer) as ws:
                assert await ws.receive() == message


@pytest.mark.parametrize("max_size", [None, 2**20])
def test_a_message_after_the_end_of_the_deflate_stream_is_invalid(
    max_size: int | None,
) -> None:
    # RFC 7692 §7.2.3.3 lets a sender end a message with a BFINAL block; the
    # stream is then over, and the next compressed message's bytes went to
    # zlib's unused_data: the message came out empty, its content lost.
    # As wsproto's own extension does, the connection fails with 1007.
    ended = zlib.compressobj(wbits=-12)
    first = ended.compress(b"first") + ended.flush(zlib.Z_FINISH)
    other = zlib.compressobj(wbits=-12)
    second = other.compress(b"second, lost") + other.flush(zlib.Z_SYNC_FLUSH)
    frames = bytes([0xC2, len(first)]) + first
    frames += bytes([0xC2, len(second) - 4]) + second[:-4]
    deflate = BoundedDeflate(Deflate(), max_size)
    deflate.finalize("permessage-deflate; server_max_window_bits=12")
    conn = wsproto.Connection(wsproto.ConnectionType.CLIENT, extensions=[deflate])
    conn.receive_data(frames)
    events = list(conn.events())
    assert events[0] == wsproto.events.BytesMessage(data=b"first")
    assert events[1:] == [
        wsproto.events.CloseConnection(code=1007, reason="error in extension")
    ]
