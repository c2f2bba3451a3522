"""State read after an await is read again (DESIGN principle 9).

Each test stages one interleaving of tasks on purpose: another task moves
the connection forward while this one waits, and what arrived meanwhile
must not be lost nor a bound broken.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest
import trio
import trio.testing
from ws_support import bare_connection, frame
from wsproto import Connection, ConnectionType

from trio_upgrade import ConnectionClosed, Request, Response, WebSocketConnection
from trio_upgrade._websocket._shared import ConnectionSettings

pytestmark = pytest.mark.timeout(30)


# -- two tasks waiting to read when the queue gets room ------------------------


@pytest.mark.parametrize("plain", [True, False])
async def test_tasks_woken_together_keep_max_queue(plain: bool) -> None:
    # Two ping() calls wait for their pongs (never sent) while the queue is
    # full and more messages wait unparsed. receive() makes room: both wake,
    # both see room, and only one may parse. The pings' look-ahead past a
    # full queue (max_size bytes) ends with the first message here: the
    # bound they wait behind is still max_queue.
    client, server = trio.testing.memory_stream_pair()
    conn = bare_connection(client, plain=plain, max_queue=1, max_size=2)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.ping, b"1")
            nursery.start_soon(conn.ping, b"2")
            await server.send_all(frame(b"m1") + frame(b"m2") + frame(b"m3"))
            await trio.testing.wait_all_tasks_blocked()
            state = conn._engine.state
            assert len(state.queue) - state.head == 1
            assert await conn.receive() == b"m1"
            await trio.testing.wait_all_tasks_blocked()
            waiting = len(state.queue) - state.head
            assert waiting <= 1, f"{waiting} messages queued with max_queue=1"
            assert await conn.receive() == b"m2"
            assert await conn.receive() == b"m3"
            nursery.cancel_scope.cancel()


# -- data in hand when another task's write fails -------------------------------


class GatedStream(trio.abc.HalfCloseableStream):
    """A socket stream whose reads, once they have data, wait for ``gate``.

    Trio's own ``receive_some`` yields after taking the bytes from the
    socket (a checkpoint): other tasks run before the reader sees them. The
    gate makes that moment as long as a test needs.
    """

    def __init__(self, inner: trio.SocketStream) -> None:
        self.inner = inner
        self.gate: trio.Event | None = None
        self.holding = trio.Event()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        if data and self.gate is not None:
            self.holding.set()
            await self.gate.wait()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _loopback() -> tuple[trio.SocketStream, trio.SocketStream]:
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        port = listener.socket.getsockname()[1]
        client = await trio.open_tcp_stream("127.0.0.1", port)
        server = await listener.accept()
    assert isinstance(server, trio.SocketStream)
    return client, server


@pytest.mark.parametrize("plain", [True, False])
async def test_data_read_before_a_send_failed_is_delivered(plain: bool) -> None:
    # The server sends a message and its close, then resets the connection.
    # The reader has the bytes in hand when a send() in another task fails
    # (reset) and ends the connection: the message and the close still
    # count, as they would had the reader run first.
    inner, server = await _loopback()
    stream = GatedStream(inner)
    conn = bare_connection(stream, plain=plain)
    stream.gate = trio.Event()
    got: list[Any] = []

    async def reader() -> None:
        while True:
            try:
                got.append(await conn.receive())
            except ConnectionClosed as exc:
                got.append((exc.code, exc.reason))
                return

    async def send_until_it_fails() -> None:
        while True:  # the reset reaches the socket at once on loopback
            await conn.send("x")
            await trio.sleep(0.01)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await server.send_all(frame(b"bye", 0x1) + frame(b"\x03\xe8done", 0x8))
            await stream.holding.wait()  # the reader holds both frames
            # A reset: the next send fails.
            linger = struct.pack("ii", 1, 0)
            server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            server.socket.close()
            with pytest.raises(ConnectionClosed):
                await send_until_it_fails()
            stream.gate.set()
    assert got == ["bye", (1000, "done")]
    assert conn.close_code == 1000


# -- the keepalive while aclose() waits for the server ---------------------------


async def test_keepalive_leaves_a_closing_handshake_to_aclose(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # aclose() starts while a keepalive ping waits for a sign of life. The
    # keepalive's timeout passes during the closing handshake: aclose() owns
    # the ending then, within close_timeout; the keepalive must not fail the
    # connection (1011) from what it saw before aclose() began.
    client, server = trio.testing.memory_stream_pair()
    settings = ConnectionSettings(
        max_size=2**20,
        max_queue=16,
        max_fragment_size=None,
        ping_interval=1.0,
        ping_timeout=2.0,
    )
    conn = WebSocketConnection(
        client,
        Connection(ConnectionType.CLIENT),
        settings,
        close_timeout=10.0,
        request=Request("GET", "/"),
        response=Response(101),
    )
    written = bytearray()

    async def silent_server() -> None:  # reads, never answers nor closes
        while data := await server.receive_some():
            written.extend(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(silent_server)
        conn._engine.start_background(nursery)
        await trio.sleep(1.5)  # the keepalive ping is out, unanswered
        assert written[:1] == b"\x89"
        started = trio.current_time()
        await conn.aclose()
        took = trio.current_time() - started
        nursery.cancel_scope.cancel()
    # The whole close_timeout, then 1006: not the keepalive's 1011 at 2 s.
    assert (conn.close_code, round(took)) == (1006, 10)
