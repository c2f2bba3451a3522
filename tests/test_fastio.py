"""The per-message I/O path (trio_upgrade/_transport/_fastio.py).

Every call is a cancel point; a call that need not wait is a schedule point
at least once per ``SLICE``; the socket path gives the bytes and the errors
of ``trio.SocketStream``'s own methods.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.lowlevel
import trio.testing

import trio_upgrade
from trio_upgrade import WebSocket
from trio_upgrade._sansio import _speedups
from trio_upgrade._transport._fastio import ConnectionIO, raw_socket
from trio_upgrade.testing import ServerWebSocket, open_upgrade_server
from trio_upgrade.testing._websocket import WebSocketServerProtocol

pytestmark = pytest.mark.timeout(30)

#: The tests of the socket path itself (TRIO_UPGRADE_NO_SPEEDUPS=1 turns it
#: off, and every call goes through the stream's own methods).
socket_path = pytest.mark.skipif(
    not _speedups.ENABLED, reason="TRIO_UPGRADE_NO_SPEEDUPS: no socket path"
)


async def _pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = trio.socket.socketpair()
    return trio.SocketStream(a), trio.SocketStream(b)


@socket_path
async def test_the_socket_path_is_taken_for_a_socket_stream_only() -> None:
    left, right = await _pair()
    async with left, right:
        sock = raw_socket(left)
        assert isinstance(sock, socket.socket)
        assert sock.fileno() == left.socket.fileno()
        memory = trio.testing.memory_stream_pair()[0]
        assert raw_socket(memory) is None


@pytest.mark.parametrize(
    "via_socket",
    [pytest.param(True, marks=socket_path), False],
    ids=["socket", "stream"],
)
async def test_bytes_go_through_as_with_the_stream(via_socket: bool) -> None:
    left, right = await _pair()
    async with left, right:
        io = ConnectionIO(left, after_schedule_point=False)
        if not via_socket:
            io.sock = None
        assert (io.sock is not None) == via_socket
        chunks = [bytes([i % 256]) * (1 + i * 37) for i in range(200)]
        sent = b"".join(chunks)
        got = bytearray()

        async def read() -> None:
            while len(got) < len(sent):
                got.extend(await right.receive_some(65536))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            for chunk in chunks:
                await io.send_all(chunk)
        assert bytes(got) == sent
        # A send larger than the socket buffer: the rest through send_all.
        big = os.urandom(4 * 1024 * 1024)
        got.clear()
        async with trio.open_nursery() as nursery:

            async def read_big() -> None:
                while len(got) < len(big):
                    got.extend(await right.receive_some(65536))

            nursery.start_soon(read_big)
            await io.send_all(big)
        assert bytes(got) == big
        await right.send_all(b"back")
        assert await io.receive_some(100) == b"back"


@socket_path
async def test_errors_are_socket_streams() -> None:
    left, right = await _pair()
    io = ConnectionIO(left, after_schedule_point=False)
    assert io.sock is not None
    await right.aclose()

    async def fill() -> None:
        for _ in range(100):  # the first sends may still be buffered
            await io.send_all(b"x" * 65536)

    with pytest.raises(trio.BrokenResourceError) as info:
        await fill()
    assert isinstance(info.value.__cause__, OSError)
    assert await io.receive_some(10) == b""  # EOF, as SocketStream
    left.socket.close()
    with pytest.raises(trio.ClosedResourceError):
        await io.send_all(b"x")
    with pytest.raises(trio.ClosedResourceError):
        await io.receive_some(10)


async def test_every_call_is_a_cancel_point() -> None:
    left, right = await _pair()
    async with left, right:
        io = ConnectionIO(left, after_schedule_point=False)
        await io.send_all(b"a")  # the first call makes a schedule point...
        assert not io.due()  # ...so the next ones need not
        await right.send_all(b"waiting")
        with trio.CancelScope() as scope:
            scope.cancel()
            await io.receive_some(100)
        assert scope.cancelled_caught
        assert await io.receive_some(100) == b"waiting"  # nothing was taken
        assert await right.receive_some(100) == b"a"


async def test_a_cancelled_send_sends_nothing_between_schedule_points() -> None:
    async with echo_server() as url:
        ws = await trio_upgrade.upgrade(url, [WebSocket(compression=None)])
        async with ws:
            await ws.send("a")
            assert not ws._shared.io.due()  # the next call need not yield
            with trio.CancelScope() as scope:
                scope.cancel()
                await ws.send("never")
            assert scope.cancelled_caught
            await ws.send("b")
            assert [await ws.receive(), await ws.receive()] == ["a", "b"]
            with trio.move_on_after(0.1):
                assert await ws.receive() is None  # nothing more comes


@asynccontextmanager
async def echo_server() -> AsyncIterator[str]:
    async def echo(ws: ServerWebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    async with open_upgrade_server([WebSocketServerProtocol(handler=echo)]) as server:
        yield server.url()


async def test_a_sending_loop_lets_other_tasks_run() -> None:
    # 3,000 sends that never have to wait for the socket: the task still
    # yields at least once a SLICE (before: at every call), so a task beside
    # it runs throughout the loop, not only once it is over.
    ticks_during: list[int] = []
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with echo_server() as url:
        ws = await trio_upgrade.upgrade(url, [WebSocket(compression=None)])
        async with ws, trio.open_nursery() as nursery:
            assert (ws._shared.io.sock is not None) == _speedups.ENABLED
            nursery.start_soon(ticker)
            await trio.lowlevel.checkpoint()
            for i in range(3000):
                await ws.send(b"x" * 16)
                if i % 500 == 499:
                    ticks_during.append(ticks)
            for _ in range(3000):
                assert await ws.receive() == b"x" * 16
            nursery.cancel_scope.cancel()
    # It ran within every 500 sends (they take more than a SLICE of wall
    # time, however fast the machine: at least 3 µs each). How often
    # exactly depends on the machine's load, so it is not asserted.
    assert ticks_during[0] > 0
    assert all(b > a for a, b in itertools.pairwise(ticks_during))


@socket_path
async def test_fewer_schedule_points_than_calls() -> None:
    # What the change is for: 200 pipelined messages, the socket taking each
    # at once, make far fewer trips through the run loop than calls.
    steps = 0

    class Count(trio.abc.Instrument):
        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            nonlocal steps
            if task is me:
                steps += 1

    me = trio.lowlevel.current_task()
    offer = WebSocket(compression=None)
    async with echo_server() as url, await trio_upgrade.upgrade(url, offer) as ws:
        await ws.send(b"warm")
        await ws.receive()
        instrument = Count()
        trio.lowlevel.add_instrument(instrument)
        try:
            for _ in range(200):
                await ws.send(b"x" * 16)
        finally:
            trio.lowlevel.remove_instrument(instrument)
        for _ in range(200):
            await ws.receive()
    assert steps < 100, steps
