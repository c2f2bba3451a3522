"""upgrade() over real loopback sockets against byte-exact servers.

Each server here is a few lines of raw TCP, so a test controls every byte
and every pause; the reusable server for applications is
``trio_upgrade.testing`` and has its own tests.
"""

from __future__ import annotations

import logging
import math
import socket
import struct
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trio.testing

import trio_upgrade
from trio_upgrade import (
    ConnectError,
    InvalidResponse,
    Limits,
    ProtocolNotOffered,
    Raw,
    RawStream,
    ResponseTooLarge,
    UpgradeRefused,
    UpgradeTimeout,
)

pytestmark = pytest.mark.timeout(30)

Handler = Callable[[trio.SocketStream], Awaitable[None]]


def switch(token: bytes = b"echo", extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + token + b"\r\n"
        b"Connection: Upgrade\r\n" + extra + b"\r\n"
    )


async def read_head(stream: trio.SocketStream) -> tuple[bytes, bytes]:
    """Read one request head; return it and whatever followed it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise EOFError(data)
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


class Server:
    """One raw TCP server on 127.0.0.1:0 running ``handler`` per connection.

    Records each request head and whether the client closed its side.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.heads: list[bytes] = []
        self.connections = 0
        self.eofs = 0
        self.closed = trio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/path"

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        try:
            await self.handler(stream)
            # Then wait for the client to close: EOF or a reset.
            while await stream.receive_some(65536):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, EOFError):
            pass  # the client reset, or the handler closed the stream itself
        finally:
            self.eofs += 1
            self.closed.set()
            await stream.aclose()

    async def wait_all_closed(self) -> None:
        while self.eofs < self.connections:
            self.closed = trio.Event()
            await self.closed.wait()


@pytest.fixture
def serve(nursery: trio.Nursery) -> Callable[[Handler], Awaitable[Server]]:
    """Start a Server in the test's nursery; it stops with the test."""

    async def start(handler: Handler) -> Server:
        server = Server(handler)
        listeners = await nursery.start(
            partial(trio.serve_tcp, server._serve, 0, host="127.0.0.1")
        )
        server.port = listeners[0].socket.getsockname()[1]
        return server

    return start


async def drain(stream: trio.SocketStream) -> None:
    while await stream.receive_some(65536):
        pass


def recorder(server_heads: list[bytes], reply: bytes, *, then: bytes = b"") -> Handler:
    async def handler(stream: trio.SocketStream) -> None:
        head, _ = await read_head(stream)
        server_heads.append(head)
        await stream.send_all(reply + then)

    return handler


async def echo_after(stream: trio.SocketStream, reply: bytes) -> None:
    _, rest = await read_head(stream)
    await stream.send_all(reply)
    if rest:
        await stream.send_all(rest)
    while data := await stream.receive_some(65536):
        await stream.send_all(data)


async def test_raw_upgrade_round_trip(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    heads: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        head, _ = await read_head(stream)
        heads.append(head)
        await stream.send_all(switch())
        while data := await stream.receive_some(65536):
            await stream.send_all(data)

    server = await serve(handler)
    with trio.fail_after(5):
        conn = await trio_upgrade.upgrade(server.url, ["echo"])
        assert isinstance(conn, RawStream)
        assert conn.protocol == "echo"
        assert conn.handshake_response is not None
        assert conn.handshake_response.status_code == 101
        assert conn.handshake_request is not None
        assert conn.handshake_request.headers.get("upgrade") == "echo"
        await conn.send_all(b"hello")
        assert await conn.receive_some() == b"hello"
        await conn.aclose()
        await server.wait_all_closed()
    (head,) = heads
    lines = head.split(b"\r\n")
    assert lines[0] == b"GET /path HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"Upgrade: echo" in lines
    assert b"Connection: Upgrade" in lines


@pytest.mark.parametrize("size", [1, 100, 65536 * 3])
async def test_bytes_in_the_same_segment_as_the_101_are_delivered(
    serve: Callable[[Handler], Awaitable[Server]], size: int
) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)

    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(switch() + payload)

    server = await serve(handler)
    with trio.fail_after(5):
        async with await trio_upgrade.upgrade(server.url, "echo") as conn:
            received = b""
            while len(received) < len(payload):
                received += await conn.receive_some()
            assert received == payload


@pytest.mark.parametrize("cut", range(1, len(switch(extra=b"X-A: 1\r\n")) + 1))
async def test_head_split_at_every_byte_boundary(
    serve: Callable[[Handler], Awaitable[Server]], cut: int
) -> None:
    reply = switch(extra=b"X-A: 1\r\n") + b"tail"

    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(reply[:cut])
        await trio.sleep(0.001)  # force a separate segment
        await stream.send_all(reply[cut:])

    server = await serve(handler)
    with trio.fail_after(5):
        async with await trio_upgrade.upgrade(server.url, "echo") as conn:
            assert conn.handshake_response is not None
            assert conn.handshake_response.headers.get("x-a") == "1"
            received = b""
            while len(received) < 4:
                received += await conn.receive_some()
            assert received == b"tail"


@pytest.mark.parametrize("cut", range(len(switch())))
async def test_truncation_at_every_offset_is_a_typed_error(
    serve: Callable[[Handler], Awaitable[Server]], cut: int
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(switch()[:cut])
        await stream.aclose()  # the truncation

    server = await serve(handler)
    with trio.fail_after(5), pytest.raises(InvalidResponse) as info:
        await trio_upgrade.upgrade(server.url, "echo")
    assert info.value.received == cut
    with trio.fail_after(5):
        await server.wait_all_closed()


async def test_informational_responses_before_the_101(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        await stream.send_all(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
        await stream.send_all(switch() + b"after")

    server = await serve(handler)
    with trio.fail_after(5):
        async with await trio_upgrade.upgrade(server.url, "echo") as conn:
            assert conn.handshake_response is not None
            assert conn.handshake_response.status_code == 101
            assert await conn.receive_some() == b"after"


@pytest.mark.parametrize(
    ("upgrade_value", "message"),
    [
        (b"other", "not offered"),
        (b"echo, other", "several"),
        (b"websocket", "not offered"),
    ],
)
async def test_101_naming_unoffered_or_several_protocols(
    serve: Callable[[Handler], Awaitable[Server]], upgrade_value: bytes, message: str
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(switch(upgrade_value))

    server = await serve(handler)
    with trio.fail_after(5), pytest.raises(ProtocolNotOffered, match=message) as info:
        await trio_upgrade.upgrade(server.url, ["echo", "alt"], strategy="combined")
    assert info.value.response is not None
    assert info.value.response.status_code == 101
    with trio.fail_after(5):
        await server.wait_all_closed()


async def test_101_without_upgrade_header_for_a_sole_offer(
    serve: Callable[[Handler], Awaitable[Server]], caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\nhi")

    server = await serve(handler)
    with trio.fail_after(5), caplog.at_level(logging.WARNING, "trio_upgrade"):
        async with await trio_upgrade.upgrade(server.url, "echo") as conn:
            assert conn.protocol == "echo"
            assert await conn.receive_some() == b"hi"
    assert "without an Upgrade header" in caplog.text


REFUSALS = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, b"hello", False),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        200,
        b"abc",
        False,
    ),
    (b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nbad", 400, b"bad", False),
    (
        b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n"
        b"Content-Length: 0\r\n\r\n",
        426,
        b"",
        False,
    ),
    (
        b"HTTP/1.1 200 OK\r\nUpgrade: echo\r\nConnection: Upgrade\r\n"
        b"Content-Length: 2\r\n\r\nno",
        200,
        b"no",
        False,
    ),
]


@pytest.mark.parametrize(("reply", "status", "body", "truncated"), REFUSALS)
async def test_refusals_carry_status_headers_and_body(
    serve: Callable[[Handler], Awaitable[Server]],
    reply: bytes,
    status: int,
    body: bytes,
    truncated: bool,
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(reply)
        if b"Connection: close" in reply:
            await stream.aclose()

    server = await serve(handler)
    with trio.fail_after(5), pytest.raises(UpgradeRefused) as info:
        await trio_upgrade.upgrade(server.url, "echo")
    error = info.value
    assert error.status_code == status
    assert error.body == body
    assert error.body_truncated is truncated
    assert [a.offered for a in error.attempts] == [("echo",)]
    assert str(status) in str(error)
    if status == 426:
        assert error.response.headers.get("upgrade") == "websocket"
    with trio.fail_after(5):
        await server.wait_all_closed()


async def test_close_delimited_refusal_body_does_not_hang(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(b"HTTP/1.1 500 Oops\r\n\r\n")
        # An endless close-delimited body: the client must stop at its bound.
        with trio.move_on_after(10):
            while True:
                await stream.send_all(b"x" * 65536)

    server = await serve(handler)
    with trio.fail_after(5), pytest.raises(UpgradeRefused) as info:
        await trio_upgrade.upgrade(
            server.url, "echo", limits=Limits(max_refusal_body=1000)
        )
    assert info.value.body == b"x" * 1000
    assert info.value.body_truncated


async def test_close_delimited_refusal_ended_by_eof(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        await stream.aclose()

    server = await serve(handler)
    with trio.fail_after(5), pytest.raises(UpgradeRefused) as info:
        await trio_upgrade.upgrade(server.url, "echo")
    assert info.value.body == b"all of it"
    assert not info.value.body_truncated


async def test_oversized_head_is_bounded(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(b"HTTP/1.1 101 Switching Protocols\r\n")
        with trio.move_on_after(10):
            while True:  # an endless header line
                await stream.send_all(b"X" * 65536)

    server = await serve(handler)
    with trio.fail_after(5), pytest.raises(ResponseTooLarge) as info:
        await trio_upgrade.upgrade(
            server.url, "echo", limits=Limits(max_head_size=4096)
        )
    assert info.value.limit == 4096


async def test_endless_informational_responses_are_bounded(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        with trio.move_on_after(10):
            while True:
                await stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")

    server = await serve(handler)
    with trio.fail_after(5), pytest.raises(ResponseTooLarge, match="informational"):
        await trio_upgrade.upgrade(server.url, "echo")


async def test_handshake_deadline(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await drain(stream)  # answer nothing more; notice the client's close

    server = await serve(handler)
    with trio.fail_after(5), pytest.raises(UpgradeTimeout) as info:
        await trio_upgrade.upgrade(
            server.url, "echo", limits=Limits(handshake_timeout=0.2)
        )
    assert info.value.phase == "handshake"
    assert isinstance(info.value, trio.TooSlowError)


class _SlowConnect:
    """Stands in for connect_transport: takes ``seconds`` (shielded, so it
    completes even past a deadline) and returns one end of a memory pair
    whose other end never answers."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.client, self.server = trio.testing.memory_stream_pair()
        self.closed = False

    async def __call__(self, *args: object, **kwargs: object) -> trio.abc.Stream:
        with trio.CancelScope(shield=True):
            await trio.sleep(self.seconds)
        self.client.send_stream.close_hook = self._on_close
        return self.client

    def _on_close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("connect_takes", "phase", "limit", "elapsed"),
    [
        # connect and handshake share one cancel scope whose deadline moves:
        # the handshake still gets its whole handshake_timeout after
        # connecting.
        (3, "handshake", 4, 3 + 4),
        # The connection completed, but after connect_timeout: the scope is
        # cancelled for good, so the attempt ends as a connect timeout and
        # the stream is closed, without waiting for the handshake deadline.
        (6, "connect", 5, 6),
    ],
)
async def test_connect_and_handshake_deadlines(
    monkeypatch: pytest.MonkeyPatch,
    autojump_clock: trio.testing.MockClock,
    connect_takes: float,
    phase: str,
    limit: float,
    elapsed: float,
) -> None:
    fake = _SlowConnect(connect_takes)
    monkeypatch.setattr("trio_upgrade._upgrade.connect_transport", fake)
    start = trio.current_time()
    with pytest.raises(UpgradeTimeout) as info:
        await trio_upgrade.upgrade(
            "ws://127.0.0.1:1/",
            "echo",
            limits=Limits(connect_timeout=5, handshake_timeout=4),
        )
    assert info.value.phase == phase
    assert info.value.timeout == limit
    assert trio.current_time() - start == pytest.approx(elapsed)
    assert fake.closed
    assert fake.closed


async def test_a_slow_trickle_still_hits_the_deadline(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        for byte in switch():
            await stream.send_all(bytes([byte]))
            await trio.sleep(0.05)

    server = await serve(handler)
    with trio.fail_after(5), pytest.raises(UpgradeTimeout):
        await trio_upgrade.upgrade(
            server.url, "echo", limits=Limits(handshake_timeout=0.3)
        )


async def test_connect_refused_is_a_connect_error() -> None:
    # Bind a port and close it: nothing listens there now.
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with trio.fail_after(5), pytest.raises(ConnectError) as info:
        await trio_upgrade.upgrade(f"http://127.0.0.1:{port}/", "echo")
    assert isinstance(info.value, OSError)
    assert isinstance(info.value.__cause__, OSError)


async def test_sequential_strategy_falls_back_on_the_same_connection(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    heads: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        buffered = b""
        while True:
            while b"\r\n\r\n" not in buffered:
                buffered += await stream.receive_some(65536)
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            heads.append(head)
            if b"Upgrade: second" in head:
                await stream.send_all(switch(b"second") + b"chosen")
                return
            await stream.send_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!"
            )

    server = await serve(handler)
    with trio.fail_after(5):
        async with await trio_upgrade.upgrade(server.url, ["first", "second"]) as conn:
            assert conn.protocol == "second"
            assert await conn.receive_some() == b"chosen"
    assert len(heads) == 2
    assert server.connections == 1
    assert b"Upgrade: first\r\n" in heads[0] + b"\r\n"
    assert b"Upgrade: second\r\n" in heads[1] + b"\r\n"


async def test_sequential_strategy_reconnects_after_connection_close(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        head, _ = await read_head(stream)
        if b"Upgrade: second" in head:
            await stream.send_all(switch(b"second"))
        else:
            await stream.send_all(b"HTTP/1.1 400 No\r\nConnection: close\r\n\r\n")
            await stream.aclose()

    server = await serve(handler)
    with trio.fail_after(5):
        async with await trio_upgrade.upgrade(server.url, ["first", "second"]) as conn:
            assert conn.protocol == "second"
    assert server.connections == 2


async def test_every_offer_refused_lists_the_attempts(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        while True:
            await read_head(stream)
            await stream.send_all(b"HTTP/1.1 426 Nope\r\nContent-Length: 0\r\n\r\n")

    server = await serve(handler)
    with trio.fail_after(5), pytest.raises(UpgradeRefused) as info:
        await trio_upgrade.upgrade(server.url, ["a", "b", "c"])
    assert [a.offered for a in info.value.attempts] == [("a",), ("b",), ("c",)]
    assert [a.status_code for a in info.value.attempts] == [426, 426, 426]


async def test_combined_strategy_sends_one_request(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    heads: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        head, _ = await read_head(stream)
        heads.append(head)
        await stream.send_all(switch(b"B"))

    server = await serve(handler)
    with trio.fail_after(5):
        async with await trio_upgrade.upgrade(
            server.url, ["a", "b"], strategy="combined"
        ) as conn:
            assert conn.protocol == "b"
    assert b"Upgrade: a, b" in heads[0]


async def test_extra_headers_are_sent(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    heads: list[bytes] = []
    server = await serve(recorder(heads, switch()))
    with trio.fail_after(5):
        conn = await trio_upgrade.upgrade(
            server.url,
            Raw("echo", headers=[("X-Proto", "1")]),
            headers={"Authorization": "Bearer t", "Origin": "http://o"},
        )
        await conn.aclose()
    assert b"Authorization: Bearer t" in heads[0]
    assert b"Origin: http://o" in heads[0]
    assert b"X-Proto: 1" in heads[0]


# -- cancellation: every await of the handshake leaves no open socket --------


@pytest.mark.parametrize("stage", ["before-head", "mid-head", "before-body-end"])
async def test_cancellation_during_handshake_closes_the_socket(
    serve: Callable[[Handler], Awaitable[Server]], stage: str
) -> None:
    reached = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        if stage == "mid-head":
            await stream.send_all(switch()[:10])
        elif stage == "before-body-end":
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        reached.set()
        await drain(stream)  # answer nothing more; notice the client's close

    server = await serve(handler)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:

            async def client() -> None:
                await trio_upgrade.upgrade(server.url, "echo")

            nursery.start_soon(client)
            await reached.wait()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        # The server sees the client's socket close.
        await server.wait_all_closed()
    assert server.eofs == server.connections == 1


async def test_cancellation_at_every_checkpoint_leaves_no_socket(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    """Cancel after 0, 1, 2... checkpoints until the upgrade completes."""

    async def handler(stream: trio.SocketStream) -> None:
        await echo_after(stream, switch())

    server = await serve(handler)
    completed = False
    checkpoints = 0
    while not completed:
        with trio.fail_after(5):
            with trio.CancelScope() as scope:
                # Cancel once the client has passed `checkpoints` schedule points.
                async with trio.open_nursery() as nursery:

                    async def cancel_later(n: int = checkpoints) -> None:
                        for _ in range(n):
                            await trio.lowlevel.cancel_shielded_checkpoint()
                        scope.cancel()

                    nursery.start_soon(cancel_later)
                    conn = await trio_upgrade.upgrade(server.url, "echo")
                    completed = True
                    await conn.aclose()
                    nursery.cancel_scope.cancel()
            await server.wait_all_closed()
        assert server.eofs == server.connections
        checkpoints += 1
        assert checkpoints < 200
    assert server.connections > 1  # some attempts really were cancelled


async def test_caller_deadline_still_works(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await drain(stream)  # answer nothing more; notice the client's close

    server = await serve(handler)
    limits = Limits(handshake_timeout=math.inf, connect_timeout=math.inf)
    with trio.move_on_after(0.2) as scope:
        await trio_upgrade.upgrade(server.url, "echo", limits=limits)
    assert scope.cancelled_caught
    with trio.fail_after(5):
        await server.wait_all_closed()


async def test_open_upgrade_closes_on_exit(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await echo_after(stream, switch())

    server = await serve(handler)
    with trio.fail_after(5):
        async with trio_upgrade.open_upgrade(server.url, "echo") as conn:
            await conn.send_all(b"x")
            assert await conn.receive_some() == b"x"
        await server.wait_all_closed()


async def test_open_upgrade_raises_errors_unwrapped(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    server = await serve(handler)
    with trio.fail_after(5), pytest.raises(UpgradeRefused):
        async with trio_upgrade.open_upgrade(server.url, "echo"):
            pytest.fail("not reached")  # pragma: no cover
    # An error in the body comes out as itself too, not in an exception group.
    switching = await serve(lambda stream: echo_after(stream, switch()))
    with trio.fail_after(5), pytest.raises(KeyError):
        async with trio_upgrade.open_upgrade(switching.url, "echo"):
            raise KeyError("from the body")
    with trio.fail_after(5):
        await switching.wait_all_closed()


async def test_bad_arguments_fail_before_connecting() -> None:
    with pytest.raises(trio_upgrade.InvalidURL):
        await trio_upgrade.upgrade("ftp://127.0.0.1/", "echo")
    with pytest.raises(ValueError, match="strategy"):
        await trio_upgrade.upgrade("http://127.0.0.1:1/", "echo", strategy="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Upgrade"):
        await trio_upgrade.upgrade(
            "http://127.0.0.1:1/", "echo", headers={"Upgrade": "x"}
        )


async def test_upgrade_over_a_given_transport_in_memory() -> None:
    from trio_upgrade.testing import open_upgrade_server

    async with open_upgrade_server(["echo"], tcp=False) as server:
        with trio.fail_after(5):
            transport = await server.connect_in_memory()
            conn = await trio_upgrade.upgrade(
                "http://memory.test/x", "echo", transport=transport
            )
            async with conn:
                await conn.send_all(b"no sockets")
                assert await conn.receive_some() == b"no sockets"
        assert server.requests[0].headers.get("host") == "memory.test"


async def test_given_transport_is_not_replaced_after_a_closing_refusal() -> None:
    from trio_upgrade.testing import open_upgrade_server

    async with open_upgrade_server(["b"], keep_alive=False, tcp=False) as server:
        with trio.fail_after(5), pytest.raises(UpgradeRefused) as info:
            await trio_upgrade.upgrade(
                "http://memory.test/",
                ["a", "b"],
                transport=await server.connect_in_memory(),
            )
        assert [a.offered for a in info.value.attempts] == [("a",)]
        assert len(server.connections) == 1


@pytest.mark.parametrize("after", [0, 20])
async def test_connection_reset_mid_handshake_is_a_typed_error(
    serve: Callable[[Handler], Awaitable[Server]], after: int
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        if after:
            await stream.send_all(switch()[:after])
            await trio.sleep(0.05)
        # SO_LINGER with a zero timeout turns close() into a TCP reset.
        stream.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        await stream.aclose()

    server = await serve(handler)
    with trio.fail_after(5), pytest.raises(InvalidResponse) as info:
        await trio_upgrade.upgrade(server.url, "echo")
    assert info.value.received in (0, after)
    assert "broke" in str(info.value) or "closed" in str(info.value)
