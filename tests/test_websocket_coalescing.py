"""Write coalescing and whole-read parsing, on real loopback sockets.

A client connection runs on one end of a TCP connection over 127.0.0.1
whose buffers are small, so that a large message blocks its write until
the test reads the other end; the client's transport counts its
``send_all`` and ``receive_some`` calls. Nothing here is timed: the tests
wait until every task is blocked (``wait_all_tasks_blocked``) and count
calls and bytes.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from ws_support import bare_connection, frame, read_client_frame

from trio_upgrade import ConnectionClosed, WebSocket, WebSocketConnection

BIG = b"B" * (1 << 18)  # more than the socket buffers (32 KiB) hold


class Counting(trio.abc.Stream):
    """A stream that counts the calls it passes on to a socket stream."""

    def __init__(self, inner: trio.SocketStream) -> None:
        self.inner = inner
        self.writes = 0
        self.reads = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        self.reads += 1
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def loopback(
    *, plain: bool = False, write_buffer_limit: int | None = 2**16
) -> AsyncIterator[tuple[WebSocketConnection, Counting, trio.SocketStream]]:
    """A client connection on TCP over 127.0.0.1, the server's end, and the
    client's counting transport; both sockets' buffers are small."""
    listener = trio.socket.socket()
    with listener:
        await listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client_sock = trio.socket.socket()
        await client_sock.connect(listener.getsockname())
        server_sock, _ = await listener.accept()
    client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
    server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    client = Counting(trio.SocketStream(client_sock))
    server = trio.SocketStream(server_sock)
    conn = bare_connection(client, plain=plain, write_buffer_limit=write_buffer_limit)
    try:
        yield conn, client, server
    finally:
        with trio.CancelScope(shield=True):
            await conn._engine.state.shut(checkpoint=False)
            await server.aclose()


async def frames(
    server: trio.SocketStream, count: int, buffer: bytearray
) -> list[tuple[int, bytes]]:
    return [
        (op, data)
        for op, _, _, data in [
            await read_client_frame(server, buffer) for _ in range(count)
        ]
    ]


async def blocked_on_big(
    conn: WebSocketConnection, client: Counting, nursery: trio.Nursery
) -> None:
    """Start a send of :data:`BIG` and wait until its write blocks."""
    nursery.start_soon(conn.send, BIG)
    await trio.testing.wait_all_tasks_blocked()
    assert client.writes == 1
    assert conn._writer.sending  # still writing: the server does not read


async def queued(
    nursery: trio.Nursery, send: Callable[..., Awaitable[object]], *args: object
) -> None:
    """Start a task and let it block (so tasks queue in a known order)."""
    nursery.start_soon(send, *args)
    await trio.testing.wait_all_tasks_blocked()


@pytest.mark.parametrize("plain", [False, True], ids=["fast", "plain"])
async def test_sends_behind_a_blocked_write_go_out_in_one_more_write(
    plain: bool,
) -> None:
    with trio.fail_after(10):
        async with loopback(plain=plain) as (conn, client, server):
            async with trio.open_nursery() as nursery:
                await blocked_on_big(conn, client, nursery)
                for i in range(10):
                    await queued(nursery, conn.send, f"m{i}")
                assert client.writes == 1  # all ten wait in the buffer
                buffer = bytearray()
                got = await frames(server, 11, buffer)
            # The blocked write, then the ten messages in a single write.
            assert client.writes == 2
            assert got == [(2, BIG)] + [(1, f"m{i}".encode()) for i in range(10)]
            # A lone send afterwards: its own write, at once.
            await conn.send(b"alone")
            assert client.writes == 3
            assert await frames(server, 1, buffer) == [(2, b"alone")]


async def test_a_send_past_the_bound_waits_until_the_buffer_is_taken() -> None:
    with trio.fail_after(10):
        async with loopback(write_buffer_limit=100) as (conn, client, server):
            async with trio.open_nursery() as nursery:
                await blocked_on_big(conn, client, nursery)
                await queued(nursery, conn.send, b"b" * 60)
                waiting = len(conn._writer.outbox)
                assert waiting == 2 + 4 + 60  # header, mask, payload
                # 60 more would pass 100 bytes: it waits, queueing nothing.
                await queued(nursery, conn.send, b"c" * 60)
                assert len(conn._writer.outbox) == waiting
                buffer = bytearray()
                got = await frames(server, 3, buffer)
            # Each went in its own write: c could queue only once b's batch
            # was taken.
            assert client.writes == 3
            assert got == [(2, BIG), (2, b"b" * 60), (2, b"c" * 60)]


async def test_text_counts_toward_the_bound_in_utf8_bytes() -> None:
    with trio.fail_after(10):
        async with loopback(write_buffer_limit=100) as (conn, client, server):
            async with trio.open_nursery() as nursery:
                await blocked_on_big(conn, client, nursery)
                await queued(nursery, conn.send, b"x" * 50)
                # 25 characters, 50 bytes: 56 + 50 would pass 100 bytes.
                await queued(nursery, conn.send, "é" * 25)
                assert len(conn._writer.outbox) == 2 + 4 + 50
                got = await frames(server, 3, bytearray())
            assert got == [(2, BIG), (2, b"x" * 50), (1, ("é" * 25).encode())]


async def test_a_message_larger_than_the_bound_queues_alone() -> None:
    with trio.fail_after(10):
        async with loopback(write_buffer_limit=10) as (conn, client, server):
            async with trio.open_nursery() as nursery:
                await blocked_on_big(conn, client, nursery)
                await queued(nursery, conn.send, b"x" * 50)
                assert len(conn._writer.outbox) == 2 + 4 + 50
                await queued(nursery, conn.send, b"y")
                assert len(conn._writer.outbox) == 2 + 4 + 50
                got = await frames(server, 3, bytearray())
            assert got == [(2, BIG), (2, b"x" * 50), (2, b"y")]


async def test_order_is_kept_across_data_ping_and_close() -> None:
    with trio.fail_after(10):
        async with loopback() as (conn, client, server):
            async with trio.open_nursery() as nursery:
                await blocked_on_big(conn, client, nursery)
                await queued(nursery, conn.send, b"one")

                async def ping() -> None:
                    # Its pong never comes: aclose() ends the wait.
                    with pytest.raises(trio.ClosedResourceError):
                        await conn.ping(b"p")

                await queued(nursery, ping)
                await queued(nursery, conn.send, b"two")
                await queued(nursery, conn.aclose, 1000, "bye")
                # aclose() was called: a later send is refused at once.
                with pytest.raises(trio.ClosedResourceError):
                    await conn.send(b"late")
                buffer = bytearray()
                got = await frames(server, 5, buffer)
                assert got == [
                    (2, BIG),
                    (2, b"one"),
                    (9, b"p"),
                    (2, b"two"),
                    (8, (1000).to_bytes(2, "big") + b"bye"),
                ]
                assert client.writes == 2
                # The server answers the close; aclose() returns.
                await server.send_all(frame((1000).to_bytes(2, "big"), 0x8))
                await server.send_eof()
            assert conn.close_code == 1000


async def test_a_cancelled_queued_send_is_still_written_in_its_place() -> None:
    # Once queued, a message goes out even though its send() was cancelled;
    # one cancelled while waiting for room queued nothing and never goes.
    with trio.fail_after(10):
        async with loopback(write_buffer_limit=100) as (conn, client, server):
            async with trio.open_nursery() as nursery:
                await blocked_on_big(conn, client, nursery)
                outcomes: dict[str, bool] = {}

                async def send(name: str, scope: trio.CancelScope) -> None:
                    with scope:
                        await conn.send(name.encode() * 60)
                    outcomes[name] = scope.cancelled_caught

                queued_scope, waiting_scope = trio.CancelScope(), trio.CancelScope()
                await queued(nursery, send, "q", queued_scope)
                await queued(nursery, send, "w", waiting_scope)
                queued_scope.cancel()
                waiting_scope.cancel()
                await trio.testing.wait_all_tasks_blocked()
                # Both calls returned, cancelled, while the big write is
                # still blocked.
                assert outcomes == {"q": True, "w": True}
                assert conn._writer.sending
                await queued(nursery, conn.send, b"after")
                buffer = bytearray()
                got = await frames(server, 3, buffer)
            assert got == [(2, BIG), (2, b"q" * 60), (2, b"after")]
            assert conn.close_code is None  # still open
            await conn.send(b"more")
            assert await frames(server, 1, buffer) == [(2, b"more")]


async def test_a_failed_write_is_reported_to_every_queued_sender() -> None:
    with trio.fail_after(10):
        async with loopback() as (conn, client, server):
            errors: dict[str, ConnectionClosed] = {}

            async def send(name: str, message: bytes) -> None:
                try:
                    await conn.send(message)
                except ConnectionClosed as exc:
                    errors[name] = exc

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send, "big", BIG)
                await trio.testing.wait_all_tasks_blocked()
                for name in ("a", "b", "c"):
                    await queued(nursery, send, name, name.encode())
                # The server resets the connection (closed with unread data
                # and SO_LINGER 0): the write in progress fails.
                server.socket.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2
                )
                server.socket.close()
            # None of them returned as if its message had been written.
            assert sorted(errors) == ["a", "b", "big", "c"]
            assert all(exc.code == 1006 for exc in errors.values())
            assert client.writes == 1


@pytest.mark.parametrize("plain", [False, True], ids=["fast", "plain"])
async def test_every_complete_frame_of_one_read_is_queued_before_yielding(
    plain: bool,
) -> None:
    # Twenty messages and a ping in one write of the server's: the first
    # receive() reads them once and queues all twenty (the pong is queued).
    with trio.fail_after(10):
        async with loopback(plain=plain) as (conn, client, server):
            messages = [f"n{i}".encode() for i in range(20)]
            data = b"".join(frame(m) for m in messages[:10])
            data += frame(b"ping?", 0x9)
            data += b"".join(frame(m) for m in messages[10:])
            await server.send_all(data)  # on loopback, there on return
            assert await conn.receive() == messages[0]
            assert client.reads == 1
            state = conn._engine.state
            assert state.queue[state.head :] == messages[1:]
            for message in messages[1:]:
                assert await conn.receive() == message
            assert client.reads == 1
            buffer = bytearray()
            assert await frames(server, 1, buffer) == [(0xA, b"ping?")]


def test_write_buffer_limit_is_checked() -> None:
    assert WebSocket().write_buffer_limit == 2**16
    assert WebSocket(write_buffer_limit=None).write_buffer_limit is None
    with pytest.raises(ValueError, match="write_buffer_limit"):
        WebSocket(write_buffer_limit=0)
    with pytest.raises(TypeError, match="write_buffer_limit"):
        WebSocket(write_buffer_limit=1.5)  # type: ignore[arg-type]


async def test_frames_a_writer_leaves_are_written_by_a_waiting_sender() -> None:
    # The turn's holder leaves with frames queued (a reader's reply that
    # gave up waiting for the transport, a writer cancelled between its
    # writes): a sender whose frames wait takes the turn and writes them,
    # all in one write.
    with trio.fail_after(10):
        async with loopback() as (conn, client, server):
            writer = conn._writer
            writer.sending = True  # held, as by the reader's reply
            async with trio.open_nursery() as nursery:
                await queued(nursery, conn.send, b"a")
                await queued(nursery, conn.send, b"b")
                assert client.writes == 0
                writer.release()
            assert client.writes == 1
            assert await frames(server, 2, bytearray()) == [(2, b"a"), (2, b"b")]
