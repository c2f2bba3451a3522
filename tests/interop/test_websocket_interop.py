"""trio_upgrade's WebSocket client against real WebSocket servers and proxies.

Servers (see servers.py): the ``websockets`` library, uvicorn with each of
its three WebSocket implementations, hypercorn (wsproto underneath), Node's
``ws`` with permessage-deflate off and on, and nginx, lighttpd and h2o
reverse-proxying to Node ``ws`` with deflate on (so compressed frames cross
the proxies too). Every one echoes messages with their type, closes on
``/close?code=C&reason=R`` and greets on ``/greet``. What each one does
differently is in ws_cases.py.

All servers start once per module; each test opens its own connections.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Literal

import pytest
import servers
import trio
from ws_cases import (
    MAX_SIZE,
    TARGETS,
    Endpoint,
    SplitStream,
    binary_payload,
    closure,
    socket_closed,
    text_payload,
)

import trio_upgrade
from trio_upgrade import (
    ConnectionClosed,
    Deflate,
    InvalidUpgrade,
    Limits,
    ProtocolError,
    WebSocket,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

RunningServer = servers.RunningServer
Compression = Literal["deflate"] | None

# The RFC 6455 length-encoding boundaries (7-bit, 16-bit, 64-bit), and 1 MiB.
SIZES = [0, 125, 126, 65535, 65536, 2**20]
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits; server_max_window_bits=12"


# ---------------------------------------------------------------- servers ---


@pytest.fixture(scope="module")
def websockets_srv() -> Iterator[RunningServer]:
    yield from servers.started(servers.websockets_server)


@pytest.fixture(scope="module")
def uvicorn_websockets() -> Iterator[RunningServer]:
    yield from servers.started(servers.uvicorn_server, ws="websockets")


@pytest.fixture(scope="module")
def uvicorn_sansio() -> Iterator[RunningServer]:
    yield from servers.started(servers.uvicorn_server, ws="websockets-sansio")


@pytest.fixture(scope="module")
def uvicorn_wsproto() -> Iterator[RunningServer]:
    yield from servers.started(servers.uvicorn_server, ws="wsproto")


@pytest.fixture(scope="module")
def hypercorn() -> Iterator[RunningServer]:
    yield from servers.started(servers.hypercorn_server)


@pytest.fixture(scope="module")
def node() -> Iterator[RunningServer]:
    yield from servers.started(servers.node_ws_server, deflate=False)


@pytest.fixture(scope="module")
def node_deflate() -> Iterator[RunningServer]:
    yield from servers.started(servers.node_ws_server, deflate=True)


@pytest.fixture(scope="module")
def nginx(node_deflate: RunningServer) -> Iterator[RunningServer]:
    backend = (node_deflate.host, node_deflate.port)
    yield from servers.started(servers.nginx_proxy, backend)


@pytest.fixture(scope="module")
def lighttpd(node_deflate: RunningServer) -> Iterator[RunningServer]:
    backend = (node_deflate.host, node_deflate.port)
    yield from servers.started(servers.lighttpd_server, backend=backend)


@pytest.fixture(scope="module")
def h2o(node_deflate: RunningServer) -> Iterator[RunningServer]:
    backend = (node_deflate.host, node_deflate.port)
    yield from servers.started(servers.h2o_server, backend=backend)


@pytest.fixture(params=TARGETS, ids=lambda t: t.name)
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    return Endpoint(request.param, request.getfixturevalue(request.param.fixture))


@pytest.fixture
def all_endpoints(request: pytest.FixtureRequest) -> list[Endpoint]:
    """Every target whose server is installed (missing ones are left out)."""
    found = []
    for target in TARGETS:
        try:
            found.append(Endpoint(target, request.getfixturevalue(target.fixture)))
        except pytest.skip.Exception:
            continue
    if not found:
        pytest.skip("no WebSocket server is installed")
    return found


# --------------------------------------------------------------- messages ---


@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("compression", ["deflate", None])
async def test_echo(endpoint: Endpoint, compression: Compression, kind: str) -> None:
    with trio.fail_after(30):
        async with await endpoint.connect(compression=compression) as conn:
            for size in SIZES:
                message = text_payload(size) if kind == "text" else binary_payload(size)
                await conn.send(message)
                echoed = await conn.receive()
                assert type(echoed) is type(message), size
                assert len(echoed) == len(message), size
                # Not `==` in the assert itself: a 1 MiB diff is unreadable.
                same = echoed == message
                assert same, f"the {size}-byte {kind} echo differs"
        assert conn.close_code == 1000


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_extensions(endpoint: Endpoint, compression: Compression) -> None:
    with trio.fail_after(10):
        async with await endpoint.connect(compression=compression) as conn:
            offered = conn.handshake_request.headers.get("sec-websocket-extensions")
            answered = conn.handshake_response.headers.get("sec-websocket-extensions")
            assert conn.handshake_response.status_code == 101
            if compression is None:
                assert (offered, answered, conn.extensions) == (None, None, ())
            else:
                assert offered == DEFLATE_OFFER
                if endpoint.target.deflate:
                    [extension] = conn.extensions
                    assert extension.startswith("permessage-deflate")
                    # All of them take the window sizes we asked for.
                    assert "server_max_window_bits=12" in extension
                else:
                    assert (answered, conn.extensions) == (None, ())
            # Compressible: deflated both ways when negotiated.
            message = "compress me " * 10_000
            await conn.send(message)
            assert await conn.receive() == message


DEFLATE_VARIANTS = {
    "no-context-takeover": Deflate(
        client_no_context_takeover=True, server_no_context_takeover=True
    ),
    "15-bits": Deflate(client_max_window_bits=15, server_max_window_bits=15),
    "9-bits": Deflate(client_max_window_bits=9, server_max_window_bits=9),
    "any-server-window": Deflate(server_max_window_bits=None),
    "server-8-bits": Deflate(server_max_window_bits=8),
    "level-0": Deflate(level=0),
}


@pytest.mark.parametrize("variant", list(DEFLATE_VARIANTS))
async def test_deflate_parameters(endpoint: Endpoint, variant: str) -> None:
    """Other offers; several messages, so the context carries between them."""
    settings = DEFLATE_VARIANTS[variant]
    expected = endpoint.target.deflate and (
        settings.server_max_window_bits != 8 or endpoint.target.deflate_8_bits
    )
    messages: list[str | bytes] = ["", "hello " * 1000, "hello " * 1000]
    messages.append(binary_payload(50_000))
    messages += [text_payload(70_000), "abc" * 30_000]
    with trio.fail_after(20):
        async with await endpoint.connect(compression=settings) as conn:
            assert bool(conn.extensions) == expected, conn.extensions
            for message in messages:
                await conn.send(message)
                assert await conn.receive() == message


async def test_fragmented_messages(endpoint: Endpoint) -> None:
    """Messages sent as many frames (continuations), compressed where possible."""
    with trio.fail_after(20):
        async with await endpoint.connect(max_fragment_size=4096) as conn:
            text = text_payload(300_000)  # cut between characters
            binary = binary_payload(300_000)
            for message in (text, binary):
                await conn.send(message)
                echoed = await conn.receive()
                assert type(echoed) is type(message)
                assert echoed == message


async def test_many_messages_keep_their_order(endpoint: Endpoint) -> None:
    """A burst larger than max_queue, with pings among it: all in order."""
    count = 200

    def message(i: int) -> str | bytes:
        if i % 50 == 0:
            return binary_payload(70_000 + i)
        return f"message {i}" if i % 2 else b"%d" % i

    with trio.fail_after(20):
        async with await endpoint.connect(max_queue=4) as conn:

            async def sender() -> None:
                for i in range(count):
                    await conn.send(message(i))

            async def pinger() -> None:
                for i in range(20):
                    await conn.ping(b"%d" % i)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender)
                nursery.start_soon(pinger)
                for i in range(count):
                    assert await conn.receive() == message(i)


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_message_too_big(endpoint: Endpoint, compression: Compression) -> None:
    """max_size bytes pass; one more fails the connection with 1009."""
    limit = 2**20
    with trio.fail_after(15):
        conn = await endpoint.connect(compression=compression, max_size=limit)
        async with conn:
            for message in (text_payload(limit), binary_payload(limit)):
                await conn.send(message)
                assert await conn.receive() == message
            await conn.send(binary_payload(limit + 1))
            with pytest.raises(ProtocolError) as info:
                await conn.receive()
            assert info.value.code == 1009
            assert conn.close_code == 1009
            # The server read our 1009 and closed: the socket is closed too.
            assert socket_closed(conn)


async def test_subprotocols(endpoint: Endpoint) -> None:
    offered = ["chat.v2", "chat"]
    with trio.fail_after(10):
        lax = WebSocket(offered)  # the default: a server may pick none
        async with await trio_upgrade.upgrade(endpoint.url(), [lax]) as conn:
            expected = "chat.v2" if endpoint.target.picks_subprotocol else None
            assert conn.subprotocol == expected
        strict = WebSocket(offered, require_subprotocol=True)
        if endpoint.target.picks_subprotocol:
            async with await trio_upgrade.upgrade(endpoint.url(), [strict]) as conn:
                assert conn.subprotocol == "chat.v2"
        else:
            with pytest.raises(InvalidUpgrade, match="chose none"):
                await trio_upgrade.upgrade(endpoint.url(), [strict])


# ---------------------------------------------------------------- closing ---


@pytest.mark.parametrize(
    ("code", "reason"),
    [(4000, "bye"), (1000, ""), (4999, "é" * 61 + "x")],
    ids=["4000", "1000", "4999-123-bytes"],
)
async def test_client_close(endpoint: Endpoint, code: int, reason: str) -> None:
    with trio.fail_after(15):
        conn = await endpoint.connect()
        await conn.send("before closing")
        await conn.aclose(code, reason)
        # Every server here answers with our code and reason (RFC 6455 §5.5.1
        # says it "typically echos the status code it received").
        assert (conn.close_code, conn.close_reason) == (code, reason)
        assert socket_closed(conn)
        with pytest.raises(trio.ClosedResourceError):
            await conn.send("after closing")
        with pytest.raises(trio.ClosedResourceError):
            await conn.receive()
        await conn.aclose()  # again: nothing more to do


@pytest.mark.parametrize(
    ("code", "reason", "normal"),
    [
        (4001, "server says bye", False),
        (4002, "ünïcödé ✓", False),
        (1000, "done", True),
        (1001, "", True),
    ],
    ids=["4001", "4002-utf8", "1000", "1001"],
)
async def test_server_close(
    endpoint: Endpoint, code: int, reason: str, normal: bool
) -> None:
    path = f"/close?code={code}&reason={urllib.parse.quote_plus(reason)}"
    with trio.fail_after(15):
        async with await endpoint.connect(path) as conn:
            with pytest.raises(ConnectionClosed) as info:
                await conn.receive()
            assert (info.value.code, info.value.reason) == (code, reason)
            assert info.value.normal is normal
            assert (conn.close_code, conn.close_reason) == (code, reason)
            # The closing handshake is over: the transport is closed
            # without waiting for aclose().
            assert socket_closed(conn)
            with pytest.raises(ConnectionClosed):
                await conn.send("too late")
            with pytest.raises(ConnectionClosed):
                await conn.ping()
        assert (conn.close_code, conn.close_reason) == (code, reason)


async def test_server_close_ends_async_for(endpoint: Endpoint) -> None:
    with trio.fail_after(15):
        async with await endpoint.connect("/close?code=1000&reason=done") as conn:
            assert [message async for message in conn] == []
            assert conn.close_code == 1000


async def test_server_close_seen_by_the_background_reader(endpoint: Endpoint) -> None:
    """With a nursery, the server's close is answered without a receive()."""
    with trio.fail_after(15):
        url = endpoint.url("/close?code=4001&reason=server+says+bye")
        async with trio_upgrade.open_upgrade(url, [WebSocket()]) as conn:
            # No event says "closed" (that is the point: nobody waits on the
            # connection), so poll.
            while not socket_closed(conn):  # noqa: ASYNC110
                await trio.sleep(0.01)
            assert conn.close_code == 4001
            assert conn.close_reason == "server says bye"
            with pytest.raises(ConnectionClosed) as info:
                await conn.receive()
            assert not info.value.normal


# ------------------------------------------------------------ ping, greet ---


async def test_ping(endpoint: Endpoint) -> None:
    with trio.fail_after(15):
        async with await endpoint.connect() as conn:
            latency = await conn.ping(b"payload")
            assert 0 <= latency < 10
            assert await conn.ping() >= 0  # a random payload
            assert await conn.ping(b"x" * 125) >= 0  # the largest allowed
            # A message that arrives before the pong waits for receive().
            await conn.send("first")
            await conn.ping(b"after first")
            assert await conn.receive() == "first"


async def test_greeting_with_the_101(endpoint: Endpoint) -> None:
    """/greet: "hello" right after the 101, for websockets and Node in its segment."""
    with trio.fail_after(15):
        stream = SplitStream(await endpoint.open_tcp(), split_head=False)
        offer = WebSocket(compression=None)  # Node corks uncompressed only
        url = endpoint.url("/greet")
        async with await trio_upgrade.upgrade(url, [offer], transport=stream) as conn:
            assert await conn.receive() == "hello"
            await conn.send("then echo")
            assert await conn.receive() == "then echo"
        if endpoint.target.greet_with_101:
            # The case this test is for: the frame came with the 101's head.
            frame = b"\r\n\r\n\x81\x05hello"
            assert any(frame in data for data in stream.reads), stream.reads


async def test_greeting_with_open_upgrade(endpoint: Endpoint) -> None:
    with trio.fail_after(15):
        offer = WebSocket(max_size=MAX_SIZE)
        async with trio_upgrade.open_upgrade(endpoint.url("/greet"), [offer]) as conn:
            assert await conn.receive() == "hello"
            await conn.send(b"\x00then echo")
            assert await conn.receive() == b"\x00then echo"


async def test_keepalive_with_open_upgrade(all_endpoints: list[Endpoint]) -> None:
    """Keepalive pings every 0.2 s for 1 s, against every server at once.

    The frames on the wire show the pings and the server's pongs; and since
    nothing else comes from the servers meanwhile (their own pings are 20 s
    apart), ping_timeout=0.5 would fail a connection whose server did not
    answer.
    """
    failures: dict[str, str] = {}

    async def check(endpoint: Endpoint) -> None:
        offer = WebSocket(ping_interval=0.2, ping_timeout=0.5)
        stream = SplitStream(await endpoint.open_tcp(), split_head=True)
        url = endpoint.url("/")
        try:
            async with trio_upgrade.open_upgrade(url, [offer], transport=stream) as c:
                reads, writes = len(stream.reads), len(stream.writes)
                await trio.sleep(1.0)
                assert closure(c) == (None, None)
                # Masked pings from us (0x89), pongs from the server (0x8a).
                pings = [w for w in stream.writes[writes:] if w[:1] == b"\x89"]
                pongs = [r for r in stream.reads[reads:] if r[:1] == b"\x8a"]
                assert len(pings) >= 3, stream.writes
                assert len(pongs) >= 3, stream.reads
                await c.send("still alive")
                assert await c.receive() == "still alive"
            assert closure(c) == (1000, "")
            assert socket_closed(c)
        except Exception as exc:
            failures[endpoint.target.name] = repr(exc)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for endpoint in all_endpoints:
                nursery.start_soon(check, endpoint)
    assert failures == {}


# ----------------------------------------------------------- cancellation ---


async def test_socket_closed_after_async_with(endpoint: Endpoint) -> None:
    with trio.fail_after(15):
        async with await endpoint.connect() as conn:
            # A cancelled receive() loses nothing and the connection goes on.
            with trio.move_on_after(0.05) as scope:
                await conn.receive()
            assert scope.cancelled_caught
            assert closure(conn) == (None, None)
            await conn.send("still here")
            assert await conn.receive() == "still here"
            assert not socket_closed(conn)
        assert socket_closed(conn)
        assert closure(conn) == (1000, "")  # the server answered our close

        # Cancelled inside the block: leaving it still closes the socket,
        # after telling the server (1001, going away; see the tests of
        # graceful endings below), the unread echo dropped.
        with trio.move_on_after(0.2) as scope:
            async with await endpoint.connect() as conn:
                await conn.send(b"unread echo")
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert socket_closed(conn)
        assert conn.close_code == 1001


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_send_cancelled_before_writing(
    endpoint: Endpoint, compression: Compression
) -> None:
    """A send() cancelled before it wrote anything leaves the connection usable.

    Trio's rule: an operation that raises Cancelled did not happen. Here
    nothing of the message reaches the server, so the next messages must
    arrive intact. (With permessage-deflate and context takeover, the
    compressor must not remember a message the server never saw, or the
    server inflates later messages against the wrong window.)
    """
    message = "the quick brown fox jumps over the lazy dog " * 20
    with trio.fail_after(15):
        async with await endpoint.connect(compression=compression) as conn:
            with trio.CancelScope() as scope:
                scope.cancel()  # e.g. a deadline that has already passed
                await conn.send(message)
            assert scope.cancelled_caught
            assert closure(conn) == (None, None)
            await conn.send(message)
            assert await conn.receive() == message


async def test_cancelled_just_after_reading_the_servers_close(
    endpoint: Endpoint,
) -> None:
    """A receive() cancelled as the server's close frame arrives still answers it.

    The close frame is read; a deadline expires at that moment (Trio raises
    Cancelled at the next checkpoint). The client must still send its close
    answer, which the server waits for, and aclose() must not wait out
    close_timeout.
    """
    close_timeout = 1.0
    with trio.fail_after(15):
        stream = SplitStream(await endpoint.open_tcp(), split_head=True)
        conn = await endpoint.connect(
            "/close?code=4001&reason=bye",
            transport=stream,
            limits=Limits(close_timeout=close_timeout),
        )
        written_before = len(stream.writes)
        with trio.CancelScope() as scope:
            stream.cancel_after_read = scope
            await conn.receive()
        assert scope.cancelled_caught
        assert (conn.close_code, conn.close_reason) == (4001, "bye")
        with pytest.raises(ConnectionClosed):
            await conn.receive()
        started = trio.current_time()
        await conn.aclose()
        took = trio.current_time() - started
        assert socket_closed(conn)
        # A masked close frame (0x88) went out after the server's close.
        answered = any(w[:1] == b"\x88" for w in stream.writes[written_before:])
        assert answered and took < close_timeout / 2, (
            f"close answer sent: {answered}; aclose() took {took:.2f} s"
        )


# ------------------------------------------------------- graceful endings ---


async def test_a_cancelled_block_closes_with_1001(endpoint: Endpoint) -> None:
    """The server answers the client's close frame with its code and reason
    (RFC 6455 §5.5.1): that answer shows the server read 1001 "going away".
    Before, the socket closed without a close frame (1006)."""
    with trio.fail_after(15):
        conn = await endpoint.connect()
        start = trio.current_time()
        with trio.CancelScope() as scope:
            async with conn:
                await conn.send("hello")
                assert await conn.receive() == "hello"
                scope.cancel()
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert trio.current_time() - start < 1
    assert closure(conn) == (1001, "going away")
    assert socket_closed(conn)


@pytest.mark.parametrize("how", ["cancel", "interrupt"])
async def test_websockets_server_records_1001(
    websockets_srv: RunningServer, how: str
) -> None:
    """The ``websockets`` server's own record of the client's close frame:
    open_upgrade's block, cancelled or interrupted (Ctrl-C)."""
    endpoint = Endpoint(TARGETS[0], websockets_srv)
    key = f"ending-{how}"
    with trio.fail_after(15):
        with trio.CancelScope() as scope:
            try:
                async with trio_upgrade.open_upgrade(
                    endpoint.url(f"/record?id={key}"), "websocket"
                ) as conn:
                    await conn.send("hello")
                    assert await conn.receive() == "hello"
                    if how == "cancel":
                        scope.cancel()
                        await trio.sleep_forever()
                    raise KeyboardInterrupt
            except KeyboardInterrupt:
                assert how == "interrupt"
        assert scope.cancelled_caught == (how == "cancel")
        async with trio_upgrade.open_upgrade(
            endpoint.url(f"/report?id={key}"), "websocket"
        ) as reporter:
            assert await reporter.receive() == "1001 going away"
