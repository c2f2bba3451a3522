"""No HTTP/2 body is ever returned short: interleavings that used to lose data.

The connection has no reader task: whichever task waits reads for everyone.
So while one task is busy (writing a WINDOW_UPDATE, say), another can read
the rest of its stream, END_STREAM included. These tests stage exactly that
interleaving with a transport whose writes the test holds back, then check
the body is whole; a randomised run on loopback does the same at scale.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import h2.connection
import h2.events
import pytest
import trio
import trio.testing
from h2_helpers import h2c_server, server_state

import trio_upgrade
from trio_upgrade import ContentLengthError, ProtocolError
from trio_upgrade._http2._protocol import H2C, HTTP2Connection
from trio_upgrade._sansio._h2_options import HTTP2Options
from trio_upgrade.testing._http2 import pattern

pytestmark = pytest.mark.timeout(60)

WINDOW = 65535  # the smallest stream window: the server's view needs no SETTINGS
FRAME = 16384


class HeldWrites(trio.abc.Stream):
    """A stream whose writes wait while the test holds them."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.release = trio.Event()
        self.release.set()
        self.writes_held = 0

    def hold(self) -> None:
        self.release = trio.Event()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if not self.release.is_set():
            self.writes_held += 1
            await self.release.wait()
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ScriptedServer:
    """The server's end of a memory stream, driven by the test through h2."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h2: h2.connection.H2Connection = server_state()

    async def answer_upgrade(self, headers: list[tuple[bytes, bytes]]) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += await self.stream.receive_some()
        self.h2.receive_data(request.partition(b"\r\n\r\n")[2])
        self.h2.send_headers(1, [(b":status", b"200"), *headers])
        await self.stream.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n" + self.h2.data_to_send()
        )

    async def next_request(self) -> int:
        """Read until a request head arrives; its stream ID."""
        while True:
            data = await self.stream.receive_some()
            assert data, "the client closed"
            for event in self.h2.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    assert event.stream_id is not None
                    await self.stream.send_all(self.h2.data_to_send())
                    return event.stream_id

    async def respond(
        self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.h2.send_headers(
            stream_id, [(b":status", str(status).encode()), *headers], end_stream=True
        )
        await self.stream.send_all(self.h2.data_to_send())

    async def send_data(self, stream_id: int, data: bytes, *, end: bool) -> None:
        for start in range(0, len(data), FRAME):
            piece = data[start : start + FRAME]
            last = end and start + FRAME >= len(data)
            self.h2.send_data(stream_id, piece, end_stream=last)
        if not data and end:
            self.h2.end_stream(stream_id)
        await self.stream.send_all(self.h2.data_to_send())


@asynccontextmanager
async def scripted_h2c(
    headers: list[tuple[bytes, bytes]],
) -> AsyncIterator[tuple[HTTP2Connection, ScriptedServer, HeldWrites]]:
    client_end, server_end = trio.testing.memory_stream_pair()
    held = HeldWrites(client_end)
    server = ScriptedServer(server_end)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.answer_upgrade, headers)
        conn = await trio_upgrade.upgrade(
            "http://test/",
            [H2C(HTTP2Options(stream_window=WINDOW))],
            transport=held,
        )
    async with conn:
        yield conn, server, held


ReadBody = Callable[[HTTP2Connection], Awaitable[bytes]]


async def read_whole(conn: HTTP2Connection) -> bytes:
    return await conn.upgrade_response.read()


async def read_pieces(conn: HTTP2Connection) -> bytes:
    body = b""
    async for piece in conn.upgrade_response:
        body += piece
    return body


@pytest.mark.parametrize("read", [read_whole, read_pieces], ids=["read", "iterate"])
async def test_end_of_body_read_by_another_task_during_a_flush(
    read: ReadBody,
) -> None:
    # Task A reads stream 1: it takes the first 40,000 bytes, which is more
    # than half the window, so it sends a WINDOW_UPDATE, and the test holds
    # that write. Meanwhile task B (a ping) becomes the reader and reads the
    # last DATA frame with END_STREAM. A must still return every byte.
    first, rest = pattern(40_000), pattern(1_000)[::-1]
    length = str(len(first) + len(rest)).encode()
    body: list[bytes] = []
    with trio.fail_after(10):
        async with scripted_h2c([(b"content-length", length)]) as (conn, server, held):
            await server.send_data(1, first, end=False)
            await trio.testing.wait_all_tasks_blocked()
            held.hold()
            async with trio.open_nursery() as nursery:

                async def task_a() -> None:
                    body.append(await read(conn))

                nursery.start_soon(task_a)
                await trio.testing.wait_all_tasks_blocked()
                assert held.writes_held == 1, "A should be writing its WINDOW_UPDATE"
                nursery.start_soon(conn.ping)
                await trio.testing.wait_all_tasks_blocked()
                await server.send_data(1, rest, end=True)
                await trio.testing.wait_all_tasks_blocked()
                held.release.set()
                await trio.testing.wait_all_tasks_blocked()
                assert body, "A should have returned"
                nursery.cancel_scope.cancel()  # the ping is never answered
    assert len(body[0]) == len(first) + len(rest)
    assert body[0] == first + rest


@pytest.mark.parametrize(
    ("declared", "sent"), [(41_000, 40_000), (41_000, 42_000)], ids=["short", "long"]
)
async def test_body_length_differs_from_content_length(
    declared: int, sent: int
) -> None:
    # h2 checks Content-Length against the DATA it sees; the mismatch must
    # reach the caller as an error, never as a body of the wrong length.
    with trio.fail_after(10):
        async with scripted_h2c([(b"content-length", str(declared).encode())]) as (
            conn,
            server,
            _,
        ):
            await server.send_data(1, pattern(sent), end=True)
            with pytest.raises(ContentLengthError) as caught:
                await conn.upgrade_response.read()
    assert (caught.value.expected, caught.value.received) == (declared, sent)
    assert isinstance(caught.value, ProtocolError)
    assert f"{sent} bytes where content-length said {declared}" in str(caught.value)


async def test_many_concurrent_large_bodies_arrive_whole() -> None:
    # The randomised counterpart on loopback against h2's server role: many
    # tasks on a few connections, downloads of random sizes beside uploads,
    # every body compared byte for byte (the server's pattern() bodies).
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    failures: list[str] = []

    async with h2c_server() as (server, _):

        async def worker(conn: HTTP2Connection, jobs: list[int]) -> None:
            for size in jobs:
                if size < 0:
                    body = pattern(-size)
                    echoed = await conn.request("POST", "/echo", body=body)
                    if echoed.content != body:
                        failures.append(f"upload of {-size}: {len(echoed.content)}")
                    continue
                async with conn.stream("GET", f"/bytes/{size}") as response:
                    if rng.random() < 0.5:
                        got = await response.read()
                    else:
                        got = b"".join([piece async for piece in response])
                if got != pattern(size):
                    failures.append(f"download of {size}: got {len(got)}")

        with trio.fail_after(50):
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    conn = await trio_upgrade.upgrade(
                        server.url(),
                        [H2C(HTTP2Options(stream_window=WINDOW))],
                        nursery=nursery,
                    )
                    await conn.upgrade_response.read()

                    async def run(conn: HTTP2Connection = conn) -> None:
                        async with conn, trio.open_nursery() as inner:
                            for _ in range(6):
                                jobs = [
                                    rng.choice([1, 1, 1, -1])
                                    * rng.randrange(0, 600_000)
                                    for _ in range(4)
                                ]
                                inner.start_soon(worker, conn, jobs)

                    nursery.start_soon(run)
    assert not failures, f"seed {seed}: {failures}"


@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)]
)
async def test_no_body_whatever_content_length_says(method: str, status: int) -> None:
    # RFC 9110 §9.3.2, §15.3.5, §15.4.5: these responses have no body. For
    # HEAD, content-length describes what a GET would get, not this message;
    # h2 itself only knows about HEAD, so the 204 and 304 carry none here.
    length = [(b"content-length", b"1234")] if method == "HEAD" else []
    responses = []
    with trio.fail_after(10):
        async with scripted_h2c([]) as (conn, server, _):
            await server.send_data(1, b"", end=True)
            assert await conn.upgrade_response.read() == b""

            async def request() -> None:
                responses.append(await conn.request(method, "/"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(request)
                stream_id = await server.next_request()
                await server.respond(stream_id, status, length)
    assert responses[0].status_code == status
    assert responses[0].content == b""
