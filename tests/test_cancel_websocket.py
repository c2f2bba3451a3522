"""A WebSocket operation cancelled at any checkpoint leaves a sound connection.

Each test sweeps one operation (send, receive, ping, close) with
:func:`cancel_support.sweep`: cancelled before its N-th step for every N
until it completes. After each run the connection is either still usable,
proved by a message echoed end to end, or closed (close code set, and a
send raises); the server never saw a message that was not sent whole, nor
a frame it could not parse; and no socket or task is left.
"""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing
from cancel_support import CancelAtStep, Outcome, sweep

import trio_upgrade
from trio_upgrade import ConnectionClosed, WebSocket, WebSocketConnection
from trio_upgrade.testing import (
    ServerWebSocket,
    UpgradeServer,
    WebSocketServerProtocol,
    open_upgrade_server,
)

pytestmark = pytest.mark.timeout(120)

#: Close codes a server may see from a client cancelled anywhere: a closing
#: handshake (1000, or 1001 going away), or none at all (1006). Never 1002
#: (a frame it could not parse), 1007 (broken UTF-8) or 1009 (too big).
CLEAN_CODES = {1000, 1001, 1006}

#: The client's socket send buffer and the server's receive buffer (the
#: kernel doubles each).
BUFFER = 16384


def payload(index: int, size: int) -> bytes:
    """``size`` random bytes, the same for the same ``index``.

    Random, so that permessage-deflate cannot shrink a large message into
    one small write.
    """
    return random.Random(index).randbytes(size)


@dataclass(eq=False)
class Recorder:
    """The server side: records every message whole, answers ``echo`` and ``burst``.

    ``"echo ..."`` comes back as is; ``"burst SIZE SIZE..."`` has the server
    send one binary message ``payload(i, SIZE)`` per size; anything else is
    only recorded.
    """

    received: dict[int, list[str | bytes]] = field(default_factory=dict)
    sockets: list[ServerWebSocket] = field(default_factory=list)

    async def __call__(self, ws: ServerWebSocket) -> None:
        self.sockets.append(ws)
        got = self.received.setdefault(len(self.sockets) - 1, [])
        # A client cancelled mid-write vanishes without a close frame.
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                got.append(message)
                if isinstance(message, str) and message.startswith("echo"):
                    await ws.send(message)
                elif isinstance(message, str) and message.startswith("burst"):
                    sizes = message.split()[1:]
                    for i, size in enumerate(sizes):
                        await ws.send(payload(i, int(size)))


@dataclass
class Session:
    """One client connection at a time to the recorder, reopened when closed."""

    server: UpgradeServer
    url: str
    recorder: Recorder
    offer: WebSocket
    #: Where the connection runs its background reader and keepalive.
    nursery: trio.Nursery | None = None
    conn: WebSocketConnection | None = None
    #: What the client asked to send on the current connection, in order.
    sent: list[str | bytes] = field(default_factory=list)
    echoes: int = 0
    #: Runs after which the connection was closed.
    closed: int = 0

    async def ensure_open(self) -> WebSocketConnection:
        conn = self.conn
        if conn is None or conn.close_code is not None:
            if conn is not None:
                await conn.aclose()
            self.conn = conn = await trio_upgrade.upgrade(
                self.url, self.offer, nursery=self.nursery
            )
            # Small buffers both ways (the server's are set on its
            # listener): a large message never goes out in one write, so
            # the sweep always cancels some write midway.
            transport = conn.transport
            assert isinstance(transport, trio.SocketStream)
            transport.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
            self.sent = []
        return conn

    def connection_tasks(self) -> list[trio.lowlevel.Task]:
        """The connection's background tasks (the nursery holds the server too)."""
        assert self.nursery is not None
        return [
            task
            for task in self.nursery.child_tasks
            if "serve_listeners" not in task.name and "task_b" not in task.name
        ]

    def server_side(self) -> list[str | bytes]:
        return self.recorder.received.get(len(self.recorder.sockets) - 1, [])

    async def check(self, outcome: Outcome) -> None:
        """Usable (an echo goes through) or closed; the server saw whole messages."""
        conn = self.conn
        assert conn is not None
        if conn.close_code is None:
            self.echoes += 1
            probe = f"echo {self.echoes}"
            self.sent.append(probe)
            await conn.send(probe)
            while (message := await conn.receive()) != probe:
                # Left over from a cancelled burst: the rest of it, in order.
                assert isinstance(message, bytes), (outcome, message)
        else:
            self.closed += 1
            with pytest.raises((ConnectionClosed, trio.ClosedResourceError)):
                await conn.send("after the end")
            await conn.aclose()
            records = self.server.connections
            await records[-1].wait_done()
            if self.nursery is not None:  # the background tasks ended with it
                await trio.testing.wait_all_tasks_blocked()
                left = self.connection_tasks()
                assert not left, (
                    outcome,
                    [
                        [
                            f"{f.f_code.co_name}:{lineno}"
                            for f, lineno in t.iter_await_frames()
                        ]
                        for t in left
                    ],
                )
        self._check_server_saw_whole_messages(outcome, conn.close_code is None)

    def _check_server_saw_whole_messages(self, outcome: Outcome, open_: bool) -> None:
        got = self.server_side()
        # Every message arrived whole and in order; one cancelled before
        # its first byte is simply missing.
        sent = iter(self.sent)
        for message in got:
            assert any(message == m for m in sent), (outcome, repr(message)[:80])
        if open_:
            assert got[-1] == self.sent[-1], outcome  # the probe came last
        else:
            ws = self.recorder.sockets[-1]
            assert ws.close_code in CLEAN_CODES, (outcome, ws.close_code)

    async def aclose(self) -> None:
        if self.conn is not None:
            await self.conn.aclose()


@contextlib.asynccontextmanager
async def session(background: bool = False, **offer: Any) -> AsyncIterator[Session]:
    """The recorder's server and a session with it; ``background``: with a
    nursery, so the connection runs its background reader and keepalive
    (a short ``ping_interval``, so that keepalive pings go on meanwhile)."""
    recorder = Recorder()
    protocol = WebSocketServerProtocol(recorder)
    if background:
        offer.setdefault("ping_interval", 0.005)
    async with (
        open_upgrade_server([protocol], tcp=False) as server,
        trio.open_nursery() as nursery,
    ):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        for listener in listeners:
            listener.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        await nursery.start(trio.serve_listeners, server.serve_stream, listeners)
        port = listeners[0].socket.getsockname()[1]
        state = Session(
            server,
            f"ws://127.0.0.1:{port}/",
            recorder,
            WebSocket(**offer),
            nursery if background else None,
        )
        try:
            yield state
        finally:
            await state.aclose()
            nursery.cancel_scope.cancel()  # stop listening


# Small messages go out in one send_all that the socket takes at once; a
# large one (fragmented or not) fills the socket's buffer, so the write
# blocks midway and is cancelled with part of a frame sent.
SEND_CASES: dict[str, tuple[int, dict[str, Any]]] = {
    "small": (100, {}),
    "small-deflate": (100, {"compression": "deflate"}),
    "large": (400_000, {"compression": None, "max_size": None}),
    "large-fragmented": (
        400_000,
        {"compression": None, "max_size": None, "max_fragment_size": 65536},
    ),
    "large-deflate-fragmented": (
        400_000,
        {"compression": "deflate", "max_size": None, "max_fragment_size": 65536},
    ),
}


@pytest.mark.parametrize("background", [False, True], ids=["plain", "nursery"])
@pytest.mark.parametrize("case", SEND_CASES)
async def test_cancelled_send_is_whole_or_closes(case: str, background: bool) -> None:
    size, offer = SEND_CASES[case]
    async with session(background, **offer) as state:
        index = 0

        async def operation() -> None:
            nonlocal index
            index += 1
            message = payload(index, size)
            state.sent.append(message)
            assert state.conn is not None
            await state.conn.send(message)

        async def prepare() -> None:
            await state.ensure_open()

        await sweep(operation, state.check, prepare=prepare)
    # A large message is cancelled midway at least once: the case where the
    # connection must be closed rather than a frame be left cut short.
    assert (state.closed > 0) == (size > 100_000)


@pytest.mark.parametrize("background", [False, True], ids=["plain", "nursery"])
async def test_cancelled_receive_loses_nothing(background: bool) -> None:
    # Small and large messages (a large one takes several reads, and
    # compressed, several inflates), more than max_queue of them.
    sizes = (10, 200_000, 10, 70_000, 5, 5)
    async with session(background, compression="deflate", max_queue=4) as state:
        expected: list[bytes] = []
        got: list[bytes] = []

        async def prepare() -> None:
            conn = await state.ensure_open()
            if len(got) == len(expected):  # the last burst was all read
                expected.extend(payload(i, size) for i, size in enumerate(sizes))
                command = "burst " + " ".join(map(str, sizes))
                state.sent.append(command)
                await conn.send(command)

        async def operation() -> None:
            assert state.conn is not None
            while len(got) < len(expected):
                message = await state.conn.receive()
                assert isinstance(message, bytes)
                got.append(message)

        async def check(outcome: Outcome) -> None:
            assert state.conn is not None
            assert state.conn.close_code is None, outcome  # receive never closes
            # What was read so far is exactly the start of what was sent.
            assert got == expected[: len(got)], outcome
            if len(got) == len(expected):
                await state.check(outcome)

        await sweep(operation, check, prepare=prepare)
        assert got == expected


@pytest.mark.parametrize("background", [False, True], ids=["plain", "nursery"])
@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_cancelled_ping_leaves_connection_usable(
    compression: str | None, background: bool
) -> None:
    async with session(background, compression=compression) as state:

        async def prepare() -> None:
            await state.ensure_open()

        async def operation() -> None:
            assert state.conn is not None
            await state.conn.ping()

        async def check(outcome: Outcome) -> None:
            assert state.conn is not None
            assert state.conn.close_code is None, outcome
            await state.check(outcome)

        await sweep(operation, check, prepare=prepare)


@pytest.mark.parametrize("background", [False, True], ids=["plain", "nursery"])
async def test_cancelled_close_still_closes(background: bool) -> None:
    async with session(background) as state:

        async def prepare() -> None:
            conn = await state.ensure_open()
            state.sent.append("echo before")
            await conn.send("echo before")
            assert await conn.receive() == "echo before"

        async def operation() -> None:
            assert state.conn is not None
            await state.conn.aclose()

        async def check(outcome: Outcome) -> None:
            conn = state.conn
            assert conn is not None
            # Cancelled or not, aclose() closed the transport.
            assert conn.close_code is not None, outcome
            await state.server.connections[-1].wait_client_closed()
            with pytest.raises((ConnectionClosed, trio.ClosedResourceError)):
                await conn.send("after the end")
            await state.check(outcome)

        outcomes = await sweep(operation, check, prepare=prepare)
    # The uncancelled close completed the closing handshake.
    assert state.recorder.sockets[-1].close_code == 1000
    assert outcomes[-1].step is not None


async def test_cancelling_one_sender_never_stalls_or_breaks_another() -> None:
    # Task A, cancelled at its N-th step, sends a large message while task
    # B sends small ones on the same connection: B's messages go out whole
    # and in order, B never waits forever for a turn A held, and if A's
    # write was cut short B is told the connection closed.
    async with session(background=True, compression=None, max_size=None) as state:
        b_finished: trio.Event | None = None
        b_sends = 0

        async def task_b(finished: trio.Event) -> None:
            nonlocal b_sends
            conn = state.conn
            assert conn is not None
            with contextlib.suppress(ConnectionClosed):
                for i in range(5):
                    message = payload(400_000 + i, 1000)
                    state.sent.append(message)
                    await conn.send(message)
                    b_sends += 1
            finished.set()

        async def prepare() -> None:
            nonlocal b_finished
            await state.ensure_open()
            assert state.nursery is not None
            b_finished = trio.Event()
            state.nursery.start_soon(task_b, b_finished)

        index = 0

        async def operation() -> None:
            nonlocal index
            index += 1
            message = payload(index, 400_000)
            state.sent.append(message)
            assert state.conn is not None
            await state.conn.send(message)

        async def check(outcome: Outcome) -> None:
            assert b_finished is not None
            await b_finished.wait()  # within the sweep's deadline
            await state.check(outcome)

        await sweep(operation, check, prepare=prepare)
    assert state.closed > 0  # A was cut short midway at least once
    assert b_sends > 0


@pytest.mark.parametrize("ending", ["aclose", "cut-short"])
async def test_background_tasks_end_as_soon_as_the_connection_closes(
    ending: str,
) -> None:
    # The background reader and the keepalive live in the caller's nursery:
    # once the connection is closed they must be gone, not still asleep
    # (until their next timer), which holds up the nursery's exit.
    async with session(True, compression=None, max_size=None) as state:
        for _ in range(3):
            conn = await state.ensure_open()
            await conn.send("echo")
            assert await conn.receive() == "echo"
            if ending == "aclose":
                await conn.aclose()
            else:  # a send cancelled midway closes the connection (1006)
                with trio.CancelScope() as scope:
                    task = trio.lowlevel.current_task()
                    cancel = CancelAtStep(task, 3, scope)
                    trio.lowlevel.add_instrument(cancel)
                    try:
                        await conn.send(payload(0, 400_000))
                    finally:
                        trio.lowlevel.remove_instrument(cancel)
                assert conn.close_code == 1006
            await trio.testing.wait_all_tasks_blocked()
            assert not state.connection_tasks()
