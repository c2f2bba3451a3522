"""Extended CONNECT (RFC 8441): HTTP/2 streams as byte streams, WebSockets."""

from __future__ import annotations

import h2.events
import pytest
import trio
import trio.testing
from h2.errors import ErrorCodes
from h2_helpers import h2c_server

import trio_upgrade
from trio_upgrade import UpgradeError, UpgradeRefused, WebSocket
from trio_upgrade._http2._stream import HTTP2Stream
from trio_upgrade.testing._http2 import (
    H2CServerProtocol,
    H2Request,
    H2ServerStream,
    pattern,
    websocket_over_h2,
)
from trio_upgrade.testing._websocket import WebSocketServerProtocol

pytestmark = pytest.mark.timeout(30)


async def echo_bytes(request: H2Request, stream: H2ServerStream) -> None:
    await stream.respond(200, [("x-tunnel", request.target)])
    while data := await stream.receive_some():
        await stream.send_all(data)


def connect_server() -> H2CServerProtocol:
    return H2CServerProtocol(
        connect={
            "websocket": websocket_over_h2(
                WebSocketServerProtocol(subprotocols=["chat.v2"], compression=False)
            ),
            "echo": echo_bytes,
        }
    )


async def test_stream_as_a_byte_stream() -> None:
    async with h2c_server(connect_server()) as (server, protocol):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                assert conn.extended_connect
                stream = await conn.open_stream("CONNECT", "/t", protocol="echo")
                assert isinstance(stream, HTTP2Stream)
                assert stream.status_code == 200
                assert stream.headers.get("x-tunnel") == "/t"
                big = pattern(3 * 1024 * 1024)
                received = bytearray()

                async def receive() -> None:
                    while data := await stream.receive_some(100_000):
                        assert len(data) <= 100_000
                        received.extend(data)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(receive)
                    await stream.send_all(b"hello ")
                    await stream.send_all(big)
                    await stream.wait_send_all_might_not_block()
                    await stream.send_eof()
                    await stream.send_eof()  # idempotent
                assert bytes(received) == b"hello " + big
                await stream.aclose()
                with pytest.raises(trio.ClosedResourceError):
                    await stream.send_all(b"x")
                with pytest.raises(trio.ClosedResourceError):
                    await stream.receive_some()
                assert (await conn.request("GET", "/")).content == b"ok"
    # Both sides ended the stream: closed in order, no reset.
    assert protocol.connections[0].resets() == []


async def test_stream_conflicts_and_abrupt_close() -> None:
    async with h2c_server(connect_server()) as (server, protocol):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                stream = await conn.open_stream("CONNECT", "/", protocol="echo")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stream.receive_some)
                    await trio.testing.wait_all_tasks_blocked()
                    with pytest.raises(trio.BusyResourceError):
                        await stream.receive_some()
                    await stream.send_all(b"x")
                with pytest.raises(ValueError, match=">= 1"):
                    await stream.receive_some(0)
                await stream.aclose()  # the server has not ended: a reset
                server_side = protocol.connections[0]
                await server_side.wait_for(lambda: bool(server_side.resets()))
                assert server_side.resets() == [(3, ErrorCodes.CANCEL)]


@pytest.mark.parametrize("end_before_reset", [True, False])
async def test_what_closing_sends_before_the_server_ended(
    end_before_reset: bool,
) -> None:
    async with h2c_server(connect_server()) as (server, protocol):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                stream = await conn.open_stream(
                    "CONNECT",
                    "/",
                    protocol="echo",
                    end_before_reset=end_before_reset,
                )
                await stream.aclose()
                server_side = protocol.connections[0]
                await server_side.wait_for(lambda: bool(server_side.resets()))
                assert server_side.resets() == [(3, ErrorCodes.CANCEL)]
                ended = [
                    e.stream_id
                    for e in server_side.events
                    if isinstance(e, h2.events.StreamEnded)
                ]
                # END_STREAM (the server reads the end) before the reset, or
                # the reset alone.
                assert ended == ([3] if end_before_reset else [])


async def test_websocket_over_http2() -> None:
    async with h2c_server(connect_server()) as (server, protocol):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                options = WebSocket(subprotocols=["chat.v1", "chat.v2"])
                ws = await conn.websocket("/chat", protocol=options)
                async with ws:
                    assert ws.subprotocol == "chat.v2"
                    await ws.send("hello")
                    assert await ws.receive() == "hello"
                    await ws.send(b"\x00\x01")
                    assert await ws.receive() == b"\x00\x01"
                    # The connection carries other streams meanwhile.
                    other = await conn.websocket("/other")
                    async with other:
                        await other.send("second")
                        assert await other.receive() == "second"
                    response = await conn.request("GET", "/bytes/100")
                    assert response.content == pattern(100)
                assert (await conn.request("GET", "/")).content == b"ok"
    # Closing handshakes, then END_STREAM both ways (RFC 8441 §5): no reset.
    assert protocol.connections[0].resets() == []


async def test_extended_connect_needs_the_setting() -> None:
    async with h2c_server() as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                assert not conn.extended_connect
                with pytest.raises(UpgradeError, match="ENABLE_CONNECT_PROTOCOL"):
                    await conn.websocket("/")
                with pytest.raises(ValueError, match="CONNECT"):
                    await conn.open_stream("GET", "/", protocol="websocket")


async def test_unknown_protocol_is_refused() -> None:
    async with h2c_server(connect_server()) as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                with pytest.raises(UpgradeRefused, match="501") as caught:
                    await conn.open_stream("CONNECT", "/", protocol="unknown")
                assert caught.value.status_code == 501
                assert (await conn.request("GET", "/")).content == b"ok"


async def test_streams_pass_trio_stream_checks() -> None:
    # Both ends, the client's HTTP2Stream and the test server's
    # H2ServerStream, against Trio's own conformance suite.
    send_channel, receive_channel = trio.open_memory_channel[H2ServerStream](1)

    async def hand_over(request: H2Request, stream: H2ServerStream) -> None:
        await stream.respond(200)
        await send_channel.send(stream)
        await trio.sleep_forever()

    protocol = H2CServerProtocol(connect={"pair": hand_over})
    async with h2c_server(protocol) as (server, _):
        with trio.fail_after(5):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:

                async def make_pair() -> tuple[HTTP2Stream, H2ServerStream]:
                    client = await conn.open_stream("CONNECT", "/", protocol="pair")
                    return client, await receive_channel.receive()

                await trio.testing.check_half_closeable_stream(make_pair, None)
                assert (await conn.request("GET", "/")).content == b"ok"
