"""Graceful endings: a block that owns a connection and ends with an exception
(cancelled, interrupted, failed) says goodbye before closing the socket.

WebSocket: close code 1001 "going away"; HTTP/2: GOAWAY; WebSocket over an
HTTP/2 stream (RFC 8441): 1001 on the stream. Always within the smaller of
``Limits.close_timeout`` and 1 s, even when the server stops reading, and
the exception goes on as it came.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial

import pytest
import trio
from h2_helpers import h2c_server, prior_knowledge_server, server_settings
from ws_support import serve_ws, ws_script

import trio_upgrade
from trio_upgrade import HTTP2Connection, Limits, RawStream, WebSocketConnection
from trio_upgrade.testing import open_upgrade_server
from trio_upgrade.testing._http2 import H2CServerProtocol, websocket_over_h2
from trio_upgrade.testing._websocket import WebSocketServerProtocol

pytestmark = pytest.mark.timeout(30)


class Boom(Exception):
    pass


Opener = Callable[[str], AbstractAsyncContextManager[WebSocketConnection]]


@asynccontextmanager
async def upgraded(url: str) -> AsyncIterator[WebSocketConnection]:
    """The connection's own ``async with`` (no nursery)."""
    async with await trio_upgrade.upgrade(url, ["websocket"]) as ws:
        yield ws


def opened(url: str) -> AbstractAsyncContextManager[WebSocketConnection]:
    """``open_upgrade``: keepalive and the background reader running."""
    return trio_upgrade.open_upgrade(url, ["websocket"])


OPENERS = [pytest.param(upgraded, id="async-with"), pytest.param(opened, id="open")]


async def end_block(
    how: str, opener: Opener, url: str, body: Callable[[WebSocketConnection], object]
) -> None:
    """Run ``opener(url)``'s block, calling ``body(ws)``, ended by ``how``.

    The exception that ends the block must come out of it unchanged.
    """
    scope = trio.CancelScope()

    async def block() -> None:
        async with opener(url) as ws:
            body(ws)
            await trio.lowlevel.checkpoint()
            if how == "cancel":
                scope.cancel()
                await trio.sleep_forever()
            raise Boom if how == "error" else KeyboardInterrupt

    with scope:
        if how == "cancel":
            await block()
        else:
            with pytest.raises(Boom if how == "error" else KeyboardInterrupt):
                await block()
    assert scope.cancelled_caught == (how == "cancel")


@pytest.mark.parametrize("opener", OPENERS)
@pytest.mark.parametrize("how", ["cancel", "error", "interrupt"])
async def test_a_block_ended_by_an_exception_closes_with_1001(
    opener: Opener, how: str
) -> None:
    seen: list[WebSocketConnection] = []
    async with serve_ws() as (server, protocol):
        with trio.fail_after(10):
            start = trio.current_time()
            await end_block(how, opener, server.url(), seen.append)
            assert trio.current_time() - start < 1
            [record] = await server.wait_closed(1)
    [ws] = seen
    assert (ws.close_code, ws.close_reason) == (1001, "going away")
    [peer] = protocol.connections
    # Before: 1006, the socket closed without a close frame.
    assert (peer.close_code, peer.close_reason) == (1001, "going away")
    assert record.client_closed


async def test_messages_in_flight_do_not_stop_the_goodbye() -> None:
    """The server keeps sending while the client leaves: the client reads
    on (dropping messages) until the server's answer to its close."""

    async def chatter(peer: trio_upgrade.testing.ServerWebSocket) -> None:
        for i in range(200):
            await peer.send(f"news {i}" * 100)
        async for _ in peer:
            pass

    async with serve_ws(handler=chatter) as (server, protocol):
        with trio.fail_after(10):
            await end_block("cancel", upgraded, server.url(), lambda ws: None)
            await server.wait_closed(1)
    assert protocol.connections[0].close_code == 1001


async def test_a_normal_end_still_closes_with_1000() -> None:
    async with serve_ws() as (server, protocol):
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(server.url(), "websocket") as ws:
                await ws.send("hi")
                assert await ws.receive() == "hi"
            await server.wait_closed(1)
    assert protocol.connections[0].close_code == 1000


async def test_going_away_in_a_cancelled_finally() -> None:
    """Without ``async with``: ``going_away()`` is the goodbye that works in
    a cancelled scope, where ``aclose()`` can only close the socket."""
    async with serve_ws() as (server, protocol):
        with trio.fail_after(10):
            for method in ("aclose", "going_away"):
                ws = await trio_upgrade.upgrade(server.url(), "websocket")
                with trio.CancelScope() as scope:
                    try:
                        scope.cancel()
                        await trio.sleep_forever()
                    finally:
                        await getattr(ws, method)()
            await server.wait_closed(2)
    assert [c.close_code for c in protocol.connections] == [1006, 1001]


def stops_reading(until: trio.Event) -> Callable[[RawStream], Awaitable[None]]:
    """A server handler that reads nothing after the 101 until ``until``;
    then it reads to the end, so that it ends once the client has gone."""

    async def handler(stream: RawStream) -> None:
        await until.wait()
        async for _ in stream:
            pass

    return handler


async def _fill(stream: trio.abc.Stream) -> int:
    """Write to ``stream``'s socket until it takes no more (the server does
    not read); the bytes are never read, so they need not be frames."""
    assert isinstance(stream, trio.SocketStream)
    total = 0
    # Smaller and smaller writes: a full socket still takes a few bytes
    # into the last packet queued, which would let a close frame through.
    for size in (65536, 4096, 256, 16, 1):
        chunk = b"\0" * size
        with trio.move_on_after(0.3 if size == 65536 else 0.05):
            while True:
                total += await stream.socket.send(chunk)
    return total


@pytest.mark.parametrize(
    ("close_timeout", "grace"), [(10.0, 1.0), (0.25, 0.25)], ids=["default", "short"]
)
async def test_the_goodbye_never_hangs_on_a_server_that_stops_reading(
    close_timeout: float, grace: float
) -> None:
    resume = trio.Event()
    async with open_upgrade_server(script=ws_script(stops_reading(resume))) as server:
        with trio.fail_after(10):
            ws = await trio_upgrade.upgrade(
                server.url(), "websocket", limits=Limits(close_timeout=close_timeout)
            )
            assert await _fill(ws.transport) > 0
            with trio.CancelScope() as scope:
                async with ws:
                    scope.cancel()
                    start = trio.current_time()
                    await trio.sleep_forever()
            elapsed = trio.current_time() - start
            resume.set()
    assert scope.cancelled_caught
    # It tried for the whole grace (the frame could not be written), no more.
    # (The upper bound leaves room for a loaded machine; 10 s would be
    # close_timeout, and a hang fail_after.)
    assert grace * 0.9 <= elapsed < grace + 2.0
    assert ws.close_code == 1006
    with pytest.raises(trio.ClosedResourceError):
        await ws.send("late")


async def test_the_goodbye_waits_no_longer_for_a_sender_stuck_on_a_full_socket() -> (
    None
):
    """Another task holds the turn to write, blocked: the close frame would
    go after its message, which never goes."""

    resume = trio.Event()
    async with open_upgrade_server(script=ws_script(stops_reading(resume))) as server:
        with trio.fail_after(10):
            ws = await trio_upgrade.upgrade(
                server.url(), "websocket", limits=Limits(close_timeout=0.3)
            )

            async def send_forever() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await ws.send(b"x" * 64 * 2**20)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_forever)
                await trio.sleep(0.3)  # its send is blocked by now
                with trio.CancelScope() as scope:
                    async with ws:
                        scope.cancel()
                        start = trio.current_time()
                        await trio.sleep_forever()
                elapsed = trio.current_time() - start
            resume.set()
    assert 0.27 <= elapsed < 0.8


# -- HTTP/2 --------------------------------------------------------------------


async def test_a_cancelled_http2_block_sends_goaway() -> None:
    async with h2c_server() as (server, protocol):
        with trio.fail_after(10):
            with trio.CancelScope() as scope:
                async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                    assert isinstance(conn, HTTP2Connection)
                    await conn.upgrade_response.read()
                    scope.cancel()
                    await trio.sleep_forever()
            assert scope.cancelled_caught
            server_side = protocol.connections[0]
            await server_side.wait_for(lambda: server_side.goaway_received is not None)
            (record,) = await server.wait_closed()
    goaway = server_side.goaway_received
    assert goaway is not None
    assert goaway.error_code == 0
    assert record.client_closed


@pytest.mark.parametrize("how", ["cancel", "interrupt"])
async def test_open_http2_ended_by_an_exception_sends_goaway(how: str) -> None:
    async with prior_knowledge_server() as (url, protocol):
        with trio.fail_after(10):
            start = trio.current_time()
            with trio.CancelScope() as scope:
                try:
                    async with trio_upgrade.open_http2(url) as conn:
                        assert (await conn.request("GET", "/")).content == b"ok"
                        if how == "cancel":
                            scope.cancel()
                            await trio.sleep_forever()
                        raise KeyboardInterrupt
                except KeyboardInterrupt:
                    assert how == "interrupt"
            assert scope.cancelled_caught == (how == "cancel")
            assert trio.current_time() - start < 1
            server_side = protocol.connections[0]
            await server_side.wait_for(lambda: server_side.goaway_received is not None)
    goaway = server_side.goaway_received
    assert goaway is not None
    assert goaway.error_code == 0


async def test_a_cancelled_websocket_over_http2_closes_with_1001() -> None:
    ws_protocol = WebSocketServerProtocol(compression=False)
    h2 = H2CServerProtocol(connect={"websocket": websocket_over_h2(ws_protocol)})
    async with h2c_server(h2) as (server, protocol):
        with trio.fail_after(10):
            with trio.CancelScope() as scope:
                conn = await trio_upgrade.upgrade(server.url(), "h2c")
                async with conn, await conn.websocket("/chat") as ws:
                    await ws.send("hello")
                    assert await ws.receive() == "hello"
                    scope.cancel()
                    await trio.sleep_forever()
            assert scope.cancelled_caught
            server_side = protocol.connections[0]
            await server_side.wait_for(lambda: server_side.goaway_received is not None)
            await server.wait_closed()
    [peer] = ws_protocol.connections
    assert (peer.close_code, peer.close_reason) == (1001, "going away")


@pytest.mark.parametrize("nursery_inside", [True, False])
async def test_goodbye_while_another_task_was_receiving(nursery_inside: bool) -> None:
    """The task reading the socket is cancelled with the block (before or
    while the goodbye runs): the goodbye reads the server's answer itself,
    without waiting out the grace."""
    async with serve_ws() as (server, protocol):
        with trio.fail_after(10):
            ws = await trio_upgrade.upgrade(server.url(), "websocket")
            start = trio.current_time()
            with trio.CancelScope() as scope:
                if nursery_inside:
                    async with ws, trio.open_nursery() as nursery:
                        nursery.start_soon(ws.receive)
                        await trio.testing.wait_all_tasks_blocked()
                        scope.cancel()
                else:
                    async with trio.open_nursery() as nursery, ws:
                        nursery.start_soon(ws.receive)
                        await trio.testing.wait_all_tasks_blocked()
                        scope.cancel()
            elapsed = trio.current_time() - start
            await server.wait_closed(1)
    assert scope.cancelled_caught
    assert elapsed < 0.5
    assert protocol.connections[0].close_code == 1001
    assert ws.close_code == 1001


async def test_goaway_never_hangs_on_a_server_that_stops_reading() -> None:
    """HTTP/2 with prior knowledge to a server that sends its SETTINGS and
    then reads nothing: with the socket full, the GOAWAY cannot be written;
    the block's exit gives up after the grace (close_timeout, shorter than
    1 s), and the socket is closed."""
    resume = trio.Event()

    async def stalled(stream: trio.SocketStream) -> None:
        await stream.send_all(server_settings())
        await resume.wait()
        with contextlib.suppress(trio.BrokenResourceError):
            while await stream.receive_some():
                pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, stalled, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        with trio.fail_after(10):
            with trio.CancelScope() as scope:
                url = f"http://127.0.0.1:{port}/"
                limits = Limits(close_timeout=0.3)
                async with trio_upgrade.open_http2(url, limits=limits) as conn:
                    transport = conn._engine.transport
                    assert await _fill(transport) > 0
                    scope.cancel()
                    start = trio.current_time()
                    await trio.sleep_forever()
            elapsed = trio.current_time() - start
            resume.set()
        nursery.cancel_scope.cancel()
    assert scope.cancelled_caught
    assert 0.27 <= elapsed < 0.8
    assert isinstance(transport, trio.SocketStream)
    assert transport.socket.fileno() == -1


async def test_a_cancelled_open_reconnecting_block_closes_with_1001() -> None:
    async with serve_ws() as (server, protocol):
        with trio.fail_after(10):
            with trio.CancelScope() as scope:
                async with trio_upgrade.open_reconnecting(
                    server.url(), "websocket"
                ) as connections:
                    async for ws in connections:
                        await ws.send("hi")
                        assert await ws.receive() == "hi"
                        scope.cancel()
                        await trio.sleep_forever()
            assert scope.cancelled_caught
            await server.wait_closed(1)
    assert protocol.connections[0].close_code == 1001
