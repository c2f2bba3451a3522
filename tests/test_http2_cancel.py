"""Cancellation at every checkpoint of an HTTP/2 operation.

Each operation (a request, reading a streamed body, a streamed upload, a
ping, the close) is swept with :func:`cancel_support.sweep`: cancelled
before its N-th step for every N until it completes. Meanwhile another
task, never cancelled, makes requests on other streams of the same
connection; after each run it must have gone on getting correct answers,
the connection must still serve a request end to end (or, after a
cancelled close, refuse one with the documented error), and no socket or
task is left.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest
import trio
import trio.testing
from cancel_support import CancelAtStep, Outcome, sweep
from h2_helpers import h2c_server

import trio_upgrade
from trio_upgrade import HTTP2Connection
from trio_upgrade.testing import UpgradeServer
from trio_upgrade.testing._http2 import pattern

pytestmark = pytest.mark.timeout(120)


@dataclass
class Neighbour:
    """Another user of the connection: requests on other streams, each checked.

    Started before each run, its requests go on while the operation runs
    and is cancelled; :meth:`wait` returns once they all got their answer.
    """

    conn: HTTP2Connection
    done: int = 0
    _finished: trio.Event | None = None

    def start(self, nursery: trio.Nursery, count: int = 3) -> None:
        self._finished = trio.Event()
        nursery.start_soon(self._requests, count, self._finished)

    async def _requests(self, count: int, finished: trio.Event) -> None:
        for _ in range(count):
            size = (self.done * 7919) % 20_000
            response = await self.conn.request("GET", f"/bytes/{size}")
            assert response.content == pattern(size)
            self.done += 1
        finished.set()

    async def wait(self) -> None:
        assert self._finished is not None
        await self._finished.wait()


async def prove_usable(conn: HTTP2Connection, outcome: Outcome) -> None:
    assert conn.is_usable, outcome
    body = pattern(20_000)
    echoed = await conn.request("POST", "/echo", body=body)
    assert echoed.content == body, outcome


async def upload_body(size: int, chunk: int = 16_384) -> AsyncIterator[bytes]:
    data = pattern(size)
    for start in range(0, size, chunk):
        await trio.lowlevel.checkpoint()
        yield data[start : start + chunk]


async def _request(conn: HTTP2Connection) -> None:
    response = await conn.request("POST", "/echo", body=pattern(100_000))
    assert response.content == pattern(100_000)


async def _stream(conn: HTTP2Connection) -> None:
    received = bytearray()
    async with conn.stream("GET", "/bytes/150000") as response:
        async for chunk in response:
            received += chunk
    assert received == pattern(150_000)


async def _upload(conn: HTTP2Connection) -> None:
    response = await conn.request("POST", "/echo", body=upload_body(150_000))
    assert response.content == pattern(150_000)


async def _ping(conn: HTTP2Connection) -> None:
    await conn.ping()


OPERATIONS: dict[str, Callable[[HTTP2Connection], Awaitable[None]]] = {
    "request": _request,
    "stream": _stream,
    "upload": _upload,
    "ping": _ping,
}


@contextlib.asynccontextmanager
async def connection(
    server: UpgradeServer, background: bool
) -> AsyncIterator[HTTP2Connection]:
    if background:  # the reader of a connection with a nursery (issue 11, item 1)
        async with trio_upgrade.open_upgrade(server.url(), "h2c") as conn:
            yield conn
    else:
        async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
            yield conn


@pytest.mark.parametrize("background", [False, True], ids=["plain", "nursery"])
@pytest.mark.parametrize("name", OPERATIONS)
async def test_cancelled_operation_leaves_the_connection_and_other_streams_sound(
    name: str, background: bool
) -> None:
    operation = OPERATIONS[name]
    async with (
        h2c_server() as (server, _),
        connection(server, background) as conn,
        trio.open_nursery() as nursery,
    ):
        neighbour = Neighbour(conn)

        async def prepare() -> None:
            neighbour.start(nursery)
            await trio.lowlevel.checkpoint()

        async def check(outcome: Outcome) -> None:
            await neighbour.wait()
            await prove_usable(conn, outcome)

        outcomes = await sweep(lambda: operation(conn), check, prepare=prepare)
    assert len(server.connections) == 1  # one connection served it all
    assert neighbour.done == 3 * len(outcomes)


async def test_cancelled_close_closes() -> None:
    async with h2c_server() as (server, _):
        conns: list[HTTP2Connection] = []

        async def prepare() -> None:
            conn = await trio_upgrade.upgrade(server.url(), "h2c")
            conns.append(conn)
            await prove_usable(conn, Outcome(None, False, 0))

        async def operation() -> None:
            await conns[-1].aclose()

        async def check(outcome: Outcome) -> None:
            conn = conns[-1]
            # Cancelled or not, the connection is closed and says so.
            assert not conn.is_usable, outcome
            with pytest.raises(trio.ClosedResourceError):
                await conn.request("GET", "/")
            await server.connections[-1].wait_done()
            assert server.connections[-1].client_closed, outcome

        await sweep(operation, check, prepare=prepare)


async def session(server: UpgradeServer) -> None:
    async with trio_upgrade.open_upgrade(server.url(), "h2c") as conn:
        assert await conn.upgrade_response.read() == b"ok"
        echoed = await conn.request("POST", "/echo", body=pattern(200_000))
        assert echoed.content == pattern(200_000)
        async with conn.stream("GET", "/bytes/150000") as response:
            async for _ in response:
                pass
        await conn.ping()


async def test_cancel_at_every_step_of_a_session_leaves_no_socket_open() -> None:
    async with h2c_server() as (server, _):

        async def check(outcome: Outcome) -> None:
            for record in server.connections:
                await record.wait_client_closed()

        outcomes = await sweep(lambda: session(server), check)
    assert outcomes[0].steps > 20  # it did cancel a lot of different awaits


async def test_cancelling_one_task_at_every_step_never_stalls_another() -> None:
    # Task A is cancelled at its N-th step while task B, never cancelled,
    # uses the same connection: whatever A held (the reader or sender role,
    # a stream, frames B queued for A to write) must pass on, so B finishes.
    # Every step, not a sample: it is quick, and the hand-over of a role
    # between two tasks is where a missed step would hide.
    async with (
        h2c_server() as (server, _),
        trio_upgrade.open_upgrade(server.url(), "h2c") as conn,
    ):
        await conn.upgrade_response.read()
        step = 0
        while True:
            step += 1
            assert step < 5000
            b_done = 0

            async def task_b() -> None:
                nonlocal b_done
                for i in range(5):
                    response = await conn.request("GET", f"/bytes/{i * 1000}")
                    assert response.content == pattern(i * 1000)
                    b_done += 1

            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(task_b)
                    with trio.CancelScope() as scope:
                        task = trio.lowlevel.current_task()
                        instrument = CancelAtStep(task, step, scope)
                        trio.lowlevel.add_instrument(instrument)
                        try:
                            await conn.ping()
                            body = pattern(300_000)
                            echoed = await conn.request("POST", "/echo", body=body)
                            assert echoed.content == body
                            async with conn.stream("GET", "/bytes/200000") as r:
                                await r.receive_some()
                        finally:
                            trio.lowlevel.remove_instrument(instrument)
            assert b_done == 5
            assert conn.is_usable
            if not scope.cancelled_caught:
                break
        assert step > 10


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_a_cancelled_body_generator_is_closed_at_once(kind: str) -> None:
    # The request iterates the body; when it stops early it must close the
    # generator, so the generator's cleanup runs then, not whenever the
    # garbage collector finds it (for an async generator, Trio reports
    # that as a ResourceWarning, an error in this suite).
    closed = trio.Event()

    async def async_body() -> AsyncIterator[bytes]:
        try:
            while True:
                await trio.lowlevel.checkpoint()
                yield b"x" * 16_384
        finally:
            closed.set()

    def sync_body() -> Iterator[bytes]:
        try:
            while True:
                yield b"x" * 16_384
        finally:
            closed.set()

    body = async_body() if kind == "async" else sync_body()
    async with (
        h2c_server() as (server, _),
        trio_upgrade.open_upgrade(server.url(), "h2c") as conn,
    ):
        with trio.move_on_after(0.05) as scope:
            await conn.request("POST", "/echo", body=body)
        assert scope.cancelled_caught
        assert closed.is_set()
        await prove_usable(conn, Outcome(None, False, 0))


@pytest.mark.parametrize("keepalive", [False, True])
async def test_the_background_reader_ends_as_soon_as_the_connection_closes(
    keepalive: bool,
) -> None:
    # Once closed, a connection leaves nothing running in the caller's
    # nursery, rather than a reader asleep until its next timer, which
    # holds up the nursery's exit.
    options = trio_upgrade.HTTP2Options(ping_interval=0.05 if keepalive else None)
    async with h2c_server() as (server, _), trio.open_nursery() as nursery:
        for _ in range(3):
            conn = await trio_upgrade.upgrade(
                server.url(), trio_upgrade.H2C(options=options), nursery=nursery
            )
            assert (await conn.request("GET", "/")).content == b"ok"
            await conn.aclose()
            await trio.testing.wait_all_tasks_blocked()
            assert not nursery.child_tasks
