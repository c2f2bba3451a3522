"""trio_upgrade.testing: a handler's failure always fails the test.

The test server runs user code (protocol handlers, script steps, HTTP/2
routes and tunnels). Whatever that code asserts must reach the test, also
when the client is already gone by the time the handler gets to its
assertion and the test leaves the server's block at once: the block waits
(bounded) for running handlers instead of cancelling them.

Every scenario runs over real loopback TCP and over memory streams.
"""

from __future__ import annotations

import contextlib
import gc
import warnings

import h2.connection
import pytest
import trio
import trio.testing

import trio_upgrade
from trio_upgrade import (
    ConnectionClosed,
    HTTP2Connection,
    Raw,
    RawStream,
    Request,
    WebSocketConnection,
)
from trio_upgrade.testing import (
    H2CServerProtocol,
    H2Reply,
    H2Request,
    H2ServerStream,
    Handle,
    HandlerTimeout,
    RawServerProtocol,
    Script,
    Send,
    ServerProtocol,
    ServerWebSocket,
    UpgradeServer,
    WebSocketServerProtocol,
    open_upgrade_server,
    switching_response,
    websocket_over_h2,
)

pytestmark = pytest.mark.timeout(30)

TRANSPORTS = pytest.mark.parametrize("tcp", [True, False], ids=["tcp", "memory"])


async def transport_for(
    server: UpgradeServer, tcp: bool
) -> tuple[str, trio.abc.Stream | None]:
    """The URL to upgrade, and the in-memory transport when not over TCP."""
    if tcp:
        return server.url(), None
    return "http://memory.invalid/", await server.connect_in_memory()


async def websocket(server: UpgradeServer, tcp: bool) -> WebSocketConnection:
    url, transport = await transport_for(server, tcp)
    return await trio_upgrade.upgrade(url, "websocket", transport=transport)


async def raw(server: UpgradeServer, tcp: bool, token: str) -> RawStream:
    url, transport = await transport_for(server, tcp)
    return await trio_upgrade.upgrade(url, Raw(token), transport=transport)


async def h2c(server: UpgradeServer, tcp: bool) -> HTTP2Connection:
    url, transport = await transport_for(server, tcp)
    return await trio_upgrade.upgrade(url, "h2c", transport=transport)


# -- WebSocket -------------------------------------------------------------------


async def collect_then_assert(ws: ServerWebSocket) -> None:
    messages = [message async for message in ws]
    assert messages == ["something else"]


@TRANSPORTS
async def test_websocket_assertion_after_the_client_closed_fails_the_block(
    tcp: bool,
) -> None:
    protocol = WebSocketServerProtocol(collect_then_assert)

    async def run() -> None:
        async with (
            open_upgrade_server([protocol], tcp=tcp) as server,
            await websocket(server, tcp) as conn,
        ):
            await conn.send("one")
            await conn.send("two")

    with trio.fail_after(10), pytest.raises(AssertionError) as info:
        await run()
    # The assertion itself, not an exception group around it.
    assert type(info.value) is AssertionError
    assert "something else" in str(info.value)


@TRANSPORTS
async def test_websocket_handler_finishes_after_the_block_and_client_closed(
    tcp: bool,
) -> None:
    seen: list[list[str | bytes]] = []

    async def collect(ws: ServerWebSocket) -> None:
        messages = [message async for message in ws]
        await trio.sleep(0.05)  # any async work after the client's close
        seen.append(messages)

    protocol = WebSocketServerProtocol(collect)
    with trio.fail_after(10):
        async with (
            open_upgrade_server([protocol], tcp=tcp) as server,
            await websocket(server, tcp) as conn,
        ):
            await conn.send("one")
            await conn.send(b"two")
    assert seen == [["one", b"two"]]
    (record,) = server.connections
    assert record.done and record.client_closed and not record.broken
    assert protocol.connections[0].close_code == 1000


# -- raw ---------------------------------------------------------------------------


async def collect_bytes_then_assert(stream: RawStream) -> None:
    data = b"".join([bytes(chunk) async for chunk in stream])
    await trio.sleep(0.05)  # any async work after the end of stream
    assert data == b"something else"


@TRANSPORTS
async def test_raw_assertion_after_end_of_stream_fails_the_block(tcp: bool) -> None:
    async def collect(stream: RawStream, request: Request) -> None:
        await collect_bytes_then_assert(stream)

    async def run() -> None:
        protocol = RawServerProtocol("collect", collect)
        async with (
            open_upgrade_server([protocol], tcp=tcp) as server,
            await raw(server, tcp, "collect") as conn,
        ):
            await conn.send_all(b"hello")

    with trio.fail_after(10), pytest.raises(AssertionError) as info:
        await run()
    assert type(info.value) is AssertionError


@TRANSPORTS
async def test_script_handle_assertion_after_end_of_stream_fails_the_block(
    tcp: bool,
) -> None:
    script = Script(
        [Send(switching_response("echo")), Handle(collect_bytes_then_assert)]
    )

    async def run() -> None:
        async with (
            open_upgrade_server(script=script, tcp=tcp) as server,
            await raw(server, tcp, "echo") as conn,
        ):
            await conn.send_all(b"hello")

    with trio.fail_after(10), pytest.raises(AssertionError) as info:
        await run()
    assert type(info.value) is AssertionError


class Collecting(ServerProtocol):
    """A protocol of the user's own: its whole ``serve`` is user code."""

    token = "collecting"

    async def serve(self, stream: RawStream, request: Request) -> None:
        await collect_bytes_then_assert(stream)


@TRANSPORTS
async def test_own_protocol_assertion_after_end_of_stream_fails_the_block(
    tcp: bool,
) -> None:
    async def run() -> None:
        async with (
            open_upgrade_server([Collecting()], tcp=tcp) as server,
            await raw(server, tcp, "collecting") as conn,
        ):
            await conn.send_all(b"hello")

    with trio.fail_after(10), pytest.raises(AssertionError) as info:
        await run()
    assert type(info.value) is AssertionError


# -- h2c: extended CONNECT tunnels ------------------------------------------------


@TRANSPORTS
async def test_websocket_over_h2_assertion_after_the_client_closed(tcp: bool) -> None:
    ws_protocol = WebSocketServerProtocol(collect_then_assert, compression=False)
    protocol = H2CServerProtocol(connect={"websocket": websocket_over_h2(ws_protocol)})

    async def run() -> None:
        async with (
            open_upgrade_server([protocol], tcp=tcp) as server,
            await h2c(server, tcp) as conn,
            await conn.websocket("/chat") as ws,
        ):
            await ws.send("one")

    with trio.fail_after(10), pytest.raises(AssertionError) as info:
        await run()
    assert type(info.value) is AssertionError


@TRANSPORTS
async def test_tunnel_assertion_after_the_client_ended_the_stream(tcp: bool) -> None:
    async def collect(request: H2Request, stream: H2ServerStream) -> None:
        await stream.respond(200)
        await collect_bytes_then_assert(RawStream(stream))

    protocol = H2CServerProtocol(connect={"collect": collect})

    async def run() -> None:
        async with (
            open_upgrade_server([protocol], tcp=tcp) as server,
            await h2c(server, tcp) as conn,
        ):
            stream = await conn.open_stream("CONNECT", "/", protocol="collect")
            await stream.send_all(b"hello")
            await stream.send_eof()

    with trio.fail_after(10), pytest.raises(AssertionError) as info:
        await run()
    assert type(info.value) is AssertionError


# -- records --------------------------------------------------------------------


@TRANSPORTS
async def test_client_closed_is_true_after_a_clean_websocket_close(tcp: bool) -> None:
    with trio.fail_after(10):
        async with (
            open_upgrade_server([WebSocketServerProtocol()], tcp=tcp) as server,
            await websocket(server, tcp) as conn,
        ):
            await conn.send("ping")
            assert await conn.receive() == "ping"
            # No waiting: leaving the block lets the server see the close.
    (record,) = server.connections
    assert record.done and record.client_closed and not record.broken


# -- how the client's close reaches a WebSocket handler ------------------------------


@TRANSPORTS
@pytest.mark.parametrize(
    ("code", "normal"), [(1000, True), (1001, True), (4000, False)]
)
async def test_a_close_frame_ends_receive_and_escaping_it_is_no_failure(
    tcp: bool, code: int, normal: bool
) -> None:
    got: list[str | bytes] = []
    closed: list[ConnectionClosed] = []

    async def receive_until_closed(ws: ServerWebSocket) -> None:
        while True:
            try:
                got.append(await ws.receive())
            except ConnectionClosed as exc:
                closed.append(exc)
                raise  # let it escape: the client's close is no failure

    protocol = WebSocketServerProtocol(receive_until_closed)
    with trio.fail_after(10):
        async with open_upgrade_server([protocol], tcp=tcp) as server:
            conn = await websocket(server, tcp)
            await conn.send("one")
            await conn.aclose(code, "bye")
    assert got == ["one"]
    (exc,) = closed
    assert (exc.code, exc.reason, exc.normal) == (code, "bye", normal)
    ws = protocol.connections[0]
    assert (ws.close_code, ws.close_reason, ws.closed_cleanly) == (code, "bye", True)
    assert server.connections[0].client_closed


@TRANSPORTS
async def test_a_close_frame_without_a_code_is_normal(tcp: bool) -> None:
    closed: list[ConnectionClosed] = []

    async def handler(ws: ServerWebSocket) -> None:
        messages = [message async for message in ws]  # ends cleanly
        assert messages == ["one"]
        with pytest.raises(ConnectionClosed) as info:
            await ws.receive()
        closed.append(info.value)

    protocol = WebSocketServerProtocol(handler)
    with trio.fail_after(10):
        async with open_upgrade_server([protocol], tcp=tcp) as server:
            conn = await websocket(server, tcp)
            await conn.send("one")
            # A masked close frame with no payload: no code (RFC 6455 §5.5.1).
            await conn.transport.send_all(b"\x88\x80" + bytes(4))
            await trio.aclose_forcefully(conn)  # bytes sent come first
    (exc,) = closed
    assert (exc.code, exc.normal) == (1005, True)


@TRANSPORTS
async def test_send_after_the_client_closed_raises_connection_closed(tcp: bool) -> None:
    raised: list[ConnectionClosed] = []

    async def handler(ws: ServerWebSocket) -> None:
        async for message in ws:
            assert message == "one"
        try:
            await ws.send("too late")
        except ConnectionClosed as exc:
            raised.append(exc)
            raise  # still the client's close: no failure

    with trio.fail_after(10):
        async with (
            open_upgrade_server([WebSocketServerProtocol(handler)], tcp=tcp) as server,
            await websocket(server, tcp) as conn,
        ):
            await conn.send("one")
    (exc,) = raised
    assert (exc.code, exc.normal) == (1000, True)


@TRANSPORTS
async def test_a_lost_connection_fails_a_handler_that_lets_it_escape(
    tcp: bool,
) -> None:
    async def handler(ws: ServerWebSocket) -> None:
        async for _ in ws:
            pass

    async def run() -> None:
        protocol = WebSocketServerProtocol(handler)
        async with open_upgrade_server([protocol], tcp=tcp) as server:
            conn = await websocket(server, tcp)
            await conn.send("one")
            # Gone without a close frame.
            await trio.aclose_forcefully(conn.transport)
            await trio.aclose_forcefully(conn)

    with trio.fail_after(10), pytest.raises(ConnectionClosed) as info:
        await run()
    assert (info.value.code, info.value.normal) == (1006, False)


@TRANSPORTS
async def test_echo_is_not_failed_by_a_lost_connection(tcp: bool) -> None:
    protocol = WebSocketServerProtocol()  # echo_messages
    with trio.fail_after(10):
        async with open_upgrade_server([protocol], tcp=tcp) as server:
            conn = await websocket(server, tcp)
            await conn.send("one")
            assert await conn.receive() == "one"
            await trio.aclose_forcefully(conn.transport)
            await trio.aclose_forcefully(conn)
            await server.wait_closed(1)
    assert protocol.connections[0].close_code == 1006
    assert not protocol.connections[0].closed_cleanly


# -- stopping: bounded, and loud when a handler does not finish -----------------------


@TRANSPORTS
async def test_a_handler_still_waiting_for_an_open_client_fails_with_handler_timeout(
    tcp: bool,
) -> None:
    async def wait_for_more(stream: RawStream, request: Request) -> None:
        async for _ in stream:
            pass

    protocol = RawServerProtocol("wait", wait_for_more)
    clients: list[RawStream] = []

    async def run() -> None:
        async with open_upgrade_server(
            [protocol], tcp=tcp, shutdown_timeout=0.2
        ) as server:
            clients.append(await raw(server, tcp, "wait"))
            await clients[0].send_all(b"hello")
            await server.wait_requests(1)
            # The client is still open when the block ends.

    start = trio.current_time()
    try:
        with trio.fail_after(10), pytest.raises(HandlerTimeout) as info:
            await run()
    finally:
        for client in clients:
            await client.aclose()
    assert trio.current_time() - start < 5
    message = str(info.value)
    assert "wait_for_more" in message and "connection #0" in message
    assert "had not closed the connection" in message
    assert info.value.handler.endswith("wait_for_more")
    assert info.value.record.index == 0 and info.value.timeout == 0.2
    assert isinstance(info.value, trio.TooSlowError)


@TRANSPORTS
async def test_a_handler_sleeping_past_the_timeout_fails_with_handler_timeout(
    tcp: bool,
) -> None:
    async def sleepy(stream: RawStream, request: Request) -> None:
        async for _ in stream:
            pass
        await trio.sleep_forever()

    async def run() -> None:
        protocol = RawServerProtocol("sleepy", sleepy)
        async with (
            open_upgrade_server([protocol], tcp=tcp, shutdown_timeout=0.2) as server,
            await raw(server, tcp, "sleepy"),
        ):
            pass

    with trio.fail_after(10), pytest.raises(HandlerTimeout, match="had closed"):
        await run()


async def test_the_servers_own_code_is_cancelled_at_once() -> None:
    # Echo, and a connection between requests, hold nothing to wait for.
    with trio.fail_after(10):
        async with open_upgrade_server(["echo"], shutdown_timeout=30) as server:
            conn = await raw(server, True, "echo")
            idle = await trio.open_tcp_stream("127.0.0.1", server.port)
            start = trio.current_time()
        assert trio.current_time() - start < 2
    await conn.aclose()
    await idle.aclose()
    assert all(record.done for record in server.connections)


async def test_stop_ends_serve_tcp_after_the_handlers() -> None:
    finished = trio.Event()

    async def slow(stream: RawStream, request: Request) -> None:
        async for _ in stream:
            pass
        await trio.sleep(0.05)
        finished.set()

    server = UpgradeServer([RawServerProtocol("slow", slow)])
    with pytest.raises(RuntimeError, match="not running"):
        server.stop()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_tcp)
            async with await raw(server, True, "slow") as conn:
                await conn.send_all(b"x")
            server.stop()
            server.stop()  # idempotent
            with pytest.raises(RuntimeError, match="not running"):
                await server.connect_in_memory()
        assert finished.is_set()


def test_shutdown_timeout_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="shutdown_timeout"):
        UpgradeServer(shutdown_timeout=-1)


# -- HTTP/2: a route's own errors are not taken for the client's ---------------


@TRANSPORTS
async def test_an_h2_route_raising_a_stream_error_itself_fails_the_block(
    tcp: bool,
) -> None:
    async def broken(request: H2Request) -> H2Reply:
        raise trio.ClosedResourceError("a bug in the handler")

    protocol = H2CServerProtocol({("GET", "/broken"): broken})

    async def run() -> None:
        async with (
            open_upgrade_server([protocol], tcp=tcp) as server,
            await h2c(server, tcp) as conn,
        ):
            # The server's failure may close the connection first.
            with contextlib.suppress(ConnectionClosed):
                await conn.request("GET", "/broken")
            await trio.sleep_forever()  # until the server's error cancels

    with trio.fail_after(10), pytest.raises(trio.ClosedResourceError, match="bug"):
        await run()


async def test_a_handler_may_be_any_callable_even_unhashable() -> None:
    # A handler is any callable: an instance of a class with __call__ and
    # __eq__ (a dataclass, say) has no hash, which the server must not need.
    class Collector:
        def __init__(self) -> None:
            self.messages: list[str | bytes] = []

        __hash__ = None  # type: ignore[assignment]  # as a dataclass with eq

        async def __call__(self, ws: ServerWebSocket) -> None:
            async for message in ws:
                self.messages.append(message)

    collector = Collector()
    async with open_upgrade_server([WebSocketServerProtocol(collector)]) as server:
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), "websocket")
            async with conn:
                await conn.send("kept")
    assert collector.messages == ["kept"]


@TRANSPORTS
async def test_leaving_async_for_early_leaves_nothing_to_finalize(tcp: bool) -> None:
    # A handler that stops iterating before the client closes (break, or a
    # send that fails because the client is gone, as in echo_messages) must
    # not leave an unfinished async generator for the garbage collector:
    # trio reports one as a ResourceWarning, an error in this suite.
    seen: list[str | bytes] = []

    async def first_only(ws: ServerWebSocket) -> None:
        async for message in ws:
            seen.append(message)
            break

    protocol = WebSocketServerProtocol(first_only)
    with trio.fail_after(10):
        async with open_upgrade_server([protocol], tcp=tcp) as server:
            conn = await websocket(server, tcp)
            await conn.send("one")
            await conn.send("two")
            await conn.aclose()
            await server.wait_closed(1)
    assert seen == ["one"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
        await trio.lowlevel.checkpoint()  # trio's finalizer runs in a task
        gc.collect()
    assert [str(w.message) for w in caught] == []


async def test_an_h2_handler_answering_after_the_client_broke_the_connection() -> None:
    # The client sends a frame h2 rejects (DATA on stream 0) while a route
    # is about to answer: the server sends its GOAWAY and the connection is
    # over, so the answer is dropped like any on a connection the client
    # left, instead of failing the block with h2's ProtocolError (found by
    # the fault sweep, duplicating bytes of a request).
    async def answers_once_closed(request: H2Request) -> H2Reply:
        h2_state = request.connection.h2.state_machine
        while h2_state.state is not h2.connection.ConnectionState.CLOSED:
            await trio.lowlevel.checkpoint()
        return H2Reply(200, b"too late")

    protocol = H2CServerProtocol(routes={("GET", "/late"): answers_once_closed})
    with trio.fail_after(10):
        async with open_upgrade_server([protocol], tcp=False) as server:
            transport = await server.connect_in_memory()
            conn = await trio_upgrade.upgrade(
                "http://memory.invalid/", "h2c", transport=transport
            )
            async with conn, trio.open_nursery() as nursery:

                async def late() -> None:
                    with contextlib.suppress(trio_upgrade.UpgradeError):
                        await conn.request("GET", "/late")

                nursery.start_soon(late)
                server_conn = protocol.connections[0]
                await server_conn.wait_for(lambda: len(server_conn.requests) >= 2)
                await transport.send_all(b"\x00" * 9)  # DATA on stream 0
