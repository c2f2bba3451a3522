"""WebSocketConnection against real servers over loopback: messages, closing,
pings, concurrency, cancellation and keepalive."""

from __future__ import annotations

import os
import random
import ssl
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trustme
from h2.errors import ErrorCodes
from ws_support import frame, serve_ws, ws_script
from wsproto.events import Message

import trio_upgrade
from trio_upgrade import (
    ConnectionClosed,
    Limits,
    ProtocolError,
    RawStream,
    StreamReset,
    UpgradeTimeout,
    WebSocket,
    WebSocketConnection,
)
from trio_upgrade._transport import _fastio
from trio_upgrade._websocket._writer import _split
from trio_upgrade.testing import UpgradeServer, open_upgrade_server
from trio_upgrade.testing._websocket import (
    ServerWebSocket,
    WebSocketServerProtocol,
    echo_messages,
)

pytestmark = pytest.mark.timeout(30)

SIZES = [0, 125, 126, 65535, 65536, 2**20]


def text_of(size: int) -> str:
    rng = random.Random(size)
    return "".join(rng.choice('abcdefghij klmnop{}":,') for _ in range(size))


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_echo_text_and_binary(compression: str | None) -> None:
    offer = WebSocket(compression=compression)  # type: ignore[arg-type]
    async with serve_ws() as (server, _):
        with trio.fail_after(20):
            async with await trio_upgrade.upgrade(server.url(), offer) as ws:
                assert bool(ws.extensions) == (compression is not None)
                for size in SIZES:
                    binary = random.Random(size).randbytes(size)
                    for message in (text_of(size), binary):
                        await ws.send(message)
                        echoed = await ws.receive()
                        assert type(echoed) is type(message)
                        assert echoed == message
                await ws.send(bytearray(b"ba"))
                assert await ws.receive() == b"ba"
                await ws.send(memoryview(b"mv"))
                assert await ws.receive() == b"mv"
                with pytest.raises(TypeError):
                    await ws.send(42)  # type: ignore[arg-type]


async def test_compression_shrinks_the_wire() -> None:
    message = '{"key": "value", "list": [1, 2, 3]}' * 3000
    async with serve_ws() as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), ["websocket"]) as ws:
                await ws.send(message)
                assert await ws.receive() == message
        [record] = await server.wait_closed(1)
    assert record.received < len(message) // 10


async def test_multibyte_text_and_fragments() -> None:
    frames: list[int] = []

    async def count_frames(ws: ServerWebSocket) -> None:
        # Read with wsproto directly to see frames, not just messages.
        parts: list[str | bytes] = []
        while True:
            data = await ws.stream.receive_some(65536)
            if not data:
                return
            ws.connection.receive_data(bytes(data))
            for event in ws.connection.events():
                if not isinstance(event, Message):
                    return
                parts.append(event.data)
                if event.frame_finished:
                    frames.append(1)
                if event.message_finished:
                    texts = [p for p in parts if isinstance(p, str)]
                    blobs = [p for p in parts if isinstance(p, bytes)]
                    joined = "".join(texts) if texts else b"".join(blobs)
                    parts.clear()
                    await ws.send(joined)

    text = "héllo wörld ✓ 🎉 " * 200
    async with serve_ws(handler=count_frames, compression=False) as (server, _):
        offer = WebSocket(max_fragment_size=999, compression=None)
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), offer) as ws:
                await ws.send(text)
                assert await ws.receive() == text
                assert (
                    len(frames) == -(-len(text.encode()) // 999) + 1 or len(frames) > 4
                )
                frames.clear()
                await ws.send(bytes(10_000))
                assert await ws.receive() == bytes(10_000)
                assert len(frames) == 11  # ceil(10000 / 999)


def test_split_keeps_characters_whole() -> None:
    text = "aé✓🎉" * 50
    for size in (1, 2, 3, 4, 5, 7, 64):
        parts = _split(text, size)
        assert "".join(parts) == text  # type: ignore[arg-type]
        for part in parts:
            assert isinstance(part, str)
            assert len(part.encode()) <= max(size, 4)
    assert _split(b"abcdefg", 3) == [b"abc", b"def", b"g"]


async def test_client_close_code_and_reason() -> None:
    async with serve_ws() as (server, protocol):
        with trio.fail_after(10):
            ws = await trio_upgrade.upgrade(server.url(), ["websocket"])
            assert (ws.close_code, ws.close_reason) == (None, None)
            await ws.aclose(4001, "bye now")
            assert (ws.close_code, ws.close_reason) == (4001, "bye now")
            with pytest.raises(trio.ClosedResourceError):
                await ws.receive()
            with pytest.raises(trio.ClosedResourceError):
                await ws.send("late")
            await ws.aclose()  # again: nothing more
            [record] = await server.wait_closed(1)
    assert record.client_closed
    [peer] = protocol.connections
    assert (peer.close_code, peer.close_reason) == (4001, "bye now")


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
async def test_aclose_rejects_codes_that_cannot_be_sent(code: int) -> None:
    async with (
        serve_ws() as (server, _),
        await trio_upgrade.upgrade(server.url(), ["websocket"]) as ws,
    ):
        with pytest.raises(ValueError, match="may not be sent"):
            await ws.aclose(code)
        with pytest.raises(ValueError, match="123 bytes"):
            await ws.aclose(1000, "é" * 62)


async def test_server_closes_normally() -> None:
    async with serve_ws(
        handler=None, first_message="last words", close_reason="done"
    ) as (server, protocol):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), ["websocket"]) as ws:
                assert await ws.receive() == "last words"
                with pytest.raises(ConnectionClosed) as info:
                    await ws.receive()
                assert (info.value.code, info.value.reason, info.value.normal) == (
                    1000,
                    "done",
                    True,
                )
                assert (ws.close_code, ws.close_reason) == (1000, "done")
                with pytest.raises(ConnectionClosed):
                    await ws.send("too late")
            # async for stops quietly at a normal close.
            async with await trio_upgrade.upgrade(server.url(), ["websocket"]) as ws:
                assert [m async for m in ws] == ["last words"]
            records = await server.wait_closed(2)
    assert all(r.client_closed for r in records)
    assert [c.close_code for c in protocol.connections] == [1000, 1000]


async def test_server_closes_with_error_code() -> None:
    async with serve_ws(handler=None, close_code=4002, close_reason="go away") as (
        server,
        _,
    ):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), ["websocket"]) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    async for _ in ws:
                        pass
                assert (info.value.code, info.value.reason, info.value.normal) == (
                    4002,
                    "go away",
                    False,
                )


async def test_ping_waits_for_its_pong() -> None:
    async with serve_ws() as (server, protocol):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), ["websocket"]) as ws:
                latency = await ws.ping(b"hello")
                assert 0 <= latency < 5
                await ws.ping()
                with pytest.raises(ValueError, match="125"):
                    await ws.ping(bytes(126))
    assert protocol.connections[0].pings[0] == b"hello"
    assert len(protocol.connections[0].pings) == 2


async def test_ping_payloads_must_be_distinct() -> None:
    async with serve_ws(answer_pings=False) as (server, _):
        with trio.fail_after(10):
            async with (
                await trio_upgrade.upgrade(server.url(), ["websocket"]) as ws,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(ws.ping, b"same")
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(ValueError, match="already"):
                    await ws.ping(b"same")
                nursery.cancel_scope.cancel()


async def _server_pings(ws: ServerWebSocket, got_pong: trio.Event) -> None:
    await ws.ping(b"are you there")
    await ws.wait_pong(b"are you there")
    got_pong.set()
    await ws.send("thanks")
    async for _ in ws:
        pass


async def test_pings_answered_while_not_reading_with_a_nursery() -> None:
    got_pong = trio.Event()

    async def handler(ws: ServerWebSocket) -> None:
        await _server_pings(ws, got_pong)

    async with serve_ws(handler=handler) as (server, _):
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(server.url(), ["websocket"]) as ws:
                await got_pong.wait()  # not reading: the background task is
                assert await ws.receive() == "thanks"


async def test_pings_wait_for_a_read_without_a_nursery() -> None:
    got_pong = trio.Event()

    async def handler(ws: ServerWebSocket) -> None:
        await _server_pings(ws, got_pong)

    async with serve_ws(handler=handler) as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), ["websocket"]) as ws:
                await trio.sleep(0.2)
                assert not got_pong.is_set()  # documented: nobody reads
                assert await ws.receive() == "thanks"
                assert got_pong.is_set()


async def test_server_close_seen_while_not_reading_with_a_nursery() -> None:
    async with serve_ws(handler=None, close_code=1001) as (server, protocol):
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(server.url(), ["websocket"]) as ws:
                # The closing handshake completes and the socket closes
                # without the application reading.
                [record] = await server.wait_closed(1)
                assert record.client_closed
                assert ws.close_code == 1001
                with pytest.raises(ConnectionClosed) as info:
                    await ws.receive()
                assert info.value.normal
    assert protocol.connections[0].close_code == 1001


async def test_first_messages_in_the_same_write_as_the_101() -> None:
    second = frame(b"two", 0x1)

    async def rest(stream: RawStream) -> None:
        await trio.sleep(0.05)
        await stream.send_all(second[3:])
        await stream.receive_some()  # the client's close; then end of stream

    trailing = frame(b"one", 0x1) + frame(b"\x00\x01", 0x2) + second[:3]
    async with open_upgrade_server(script=ws_script(rest, trailing=trailing)) as server:
        with trio.fail_after(10):
            offer = WebSocket(compression=None)
            async with await trio_upgrade.upgrade(server.url(), offer) as ws:
                assert await ws.receive() == "one"
                assert await ws.receive() == b"\x00\x01"
                assert await ws.receive() == "two"


async def test_abrupt_close_is_1006() -> None:
    async def abort(stream: RawStream) -> None:
        await stream.send_all(frame(b"partial message", 0x1, fin=False))
        await stream.aclose()

    async with open_upgrade_server(script=ws_script(abort)) as server:
        with trio.fail_after(10):
            offer = WebSocket(compression=None)
            async with await trio_upgrade.upgrade(server.url(), offer) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await ws.receive()
                assert (info.value.code, info.value.normal) == (1006, False)
                assert ws.close_code == 1006
                # The server is gone, so it cannot see the client close: look.
                transport = ws.transport
                assert isinstance(transport, trio.SocketStream)
                assert transport.socket.fileno() == -1


async def test_server_close_closes_the_socket_and_aclose_still_checkpoints() -> None:
    # The read that sees the end closes the socket without a checkpoint of
    # its own (the read was one); aclose() afterwards is still a checkpoint.
    async def close_normally(stream: RawStream) -> None:
        await stream.send_all(frame(b"\x03\xe8", 0x8))
        await stream.aclose()

    async with open_upgrade_server(script=ws_script(close_normally)) as server:
        with trio.fail_after(10):
            offer = WebSocket(compression=None)
            ws = await trio_upgrade.upgrade(server.url(), offer)
            with trio.testing.assert_checkpoints(), pytest.raises(ConnectionClosed):
                await ws.receive()
            assert ws.close_code == 1000
            transport = ws.transport
            assert isinstance(transport, trio.SocketStream)
            assert transport.socket.fileno() == -1
            with trio.testing.assert_checkpoints():
                await ws.aclose()


async def test_close_codes_are_plain_ints() -> None:
    # wsproto reports close codes as its CloseReason IntEnum, whose str() is
    # "CloseReason.NORMAL_CLOSURE" on Python 3.10 and "1000" later: what a
    # user prints or logs must not depend on that (found by the tutorial's
    # output check under nox -s tests-3.10).
    async def close_normally(stream: RawStream) -> None:
        await stream.send_all(frame(b"\x03\xe8", 0x8))
        await stream.aclose()

    with trio.fail_after(10):
        async with open_upgrade_server(script=ws_script(close_normally)) as server:
            ws = await trio_upgrade.upgrade(server.url(), WebSocket())
            with pytest.raises(ConnectionClosed) as caught:
                await ws.receive()
            await ws.aclose()
        assert type(ws.close_code) is int
        assert type(caught.value.code) is int
        assert "code 1000" in str(caught.value)
        # Our close, answered by the server (wsproto parses the answer).
        async with serve_ws() as (server, _):
            ws = await trio_upgrade.upgrade(server.url(), WebSocket())
            await ws.aclose()
        assert type(ws.close_code) is int
        assert f"{ws.close_code}" == "1000"


def test_error_codes_are_plain_ints() -> None:
    # The same for h2's ErrorCodes, which HTTP/2 errors carry.
    closed = ConnectionClosed(ErrorCodes.NO_ERROR, normal=True)
    reset = StreamReset("reset", code=ErrorCodes.CANCEL, stream_id=1)
    assert type(closed.code) is int
    assert type(reset.code) is int
    assert "code 0" in str(closed)


async def test_send_while_another_task_receives() -> None:
    async with serve_ws() as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), ["websocket"]) as ws:
                received: list[str | bytes] = []

                async def reader() -> None:
                    for _ in range(200):
                        received.append(await ws.receive())

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(reader)
                    for i in range(200):
                        await ws.send(f"message {i}")
                assert received == [f"message {i}" for i in range(200)]


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_concurrent_senders_do_not_interleave(compression: str | None) -> None:
    # 100-byte fragments: interleaved frames would break the server's parse.
    offer = WebSocket(max_fragment_size=100, compression=compression)  # type: ignore[arg-type]
    async with serve_ws() as (server, protocol):
        with trio.fail_after(20):
            async with await trio_upgrade.upgrade(server.url(), offer) as ws:

                async def sender(n: int) -> None:
                    for i in range(10):
                        await ws.send(bytes([n, i]) * 5000)

                async with trio.open_nursery() as nursery:
                    for n in range(5):
                        nursery.start_soon(sender, n)
                    got = {await ws.receive() for _ in range(50)}
    assert got == {bytes([n, i]) * 5000 for n in range(5) for i in range(10)}
    assert protocol.connections[0].close_code == 1000


async def test_two_receivers_is_an_error() -> None:
    async with serve_ws() as (server, _):
        with trio.fail_after(10):
            async with (
                await trio_upgrade.upgrade(server.url(), ["websocket"]) as ws,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(ws.receive)
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(trio.BusyResourceError):
                    await ws.receive()
                await ws.send("unblock")


async def test_aclose_bounded_when_the_server_is_silent() -> None:
    async def silent(ws: ServerWebSocket) -> None:
        async for _ in ws.stream:  # reads, never answers
            pass

    async with serve_ws(handler=silent) as (server, _):
        with trio.fail_after(10):
            ws = await trio_upgrade.upgrade(
                server.url(), ["websocket"], limits=Limits(close_timeout=0.2)
            )
            start = trio.current_time()
            await ws.aclose()
            assert 0.15 < trio.current_time() - start < 2
            assert ws.close_code == 1006
            [record] = await server.wait_closed(1)
    assert record.client_closed


async def test_keepalive_timeout_fails_the_connection() -> None:
    offer = WebSocket(ping_interval=0.1, ping_timeout=0.2)
    async with serve_ws(answer_pings=False) as (server, protocol):
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(server.url(), offer) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await ws.receive()
            # Raised out of open_upgrade, it comes as itself, not in a group.
            with pytest.raises(ConnectionClosed):
                async with trio_upgrade.open_upgrade(server.url(), offer) as ws:
                    await ws.receive()
            records = await server.wait_closed(2)
    assert (info.value.code, info.value.normal) == (1011, False)
    assert info.value.reason == "keepalive ping timeout"
    assert isinstance(info.value.__cause__, UpgradeTimeout)
    assert all(r.client_closed for r in records)
    assert protocol.connections[0].close_code == 1011
    assert protocol.connections[0].pings  # the server saw the pings


async def test_keepalive_keeps_an_idle_connection() -> None:
    offer = WebSocket(ping_interval=0.05, ping_timeout=1)
    async with serve_ws() as (server, protocol):
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(server.url(), offer) as ws:
                await trio.sleep(0.4)
                await ws.send("still here")
                assert await ws.receive() == "still here"
    assert len(protocol.connections[0].pings) >= 2


Scenario = Callable[[str], Awaitable[None]]


async def _with_nursery(url: str) -> None:
    offer = WebSocket(ping_interval=0.01)
    async with trio_upgrade.open_upgrade(url, offer) as ws:
        await ws.send("a" * 100)
        assert await ws.receive() == "a" * 100
        await ws.ping()
        await ws.send(b"b" * 70000)
        assert await ws.receive() == b"b" * 70000


async def _without_nursery(url: str) -> None:
    ws: WebSocketConnection = await trio_upgrade.upgrade(url, ["websocket"])
    try:
        await ws.send("x")
        assert await ws.receive() == "x"
        await ws.ping()
    finally:
        await ws.aclose()


class _CancelAtStep(trio.abc.Instrument):
    """Cancel ``scope`` when ``task`` is about to run its ``step``-th step."""

    def __init__(
        self, task: trio.lowlevel.Task, step: int, scope: trio.CancelScope
    ) -> None:
        self.task, self.step, self.scope, self.count = task, step, scope, 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.count += 1
            if self.count == self.step:
                self.scope.cancel()


@pytest.mark.parametrize("every_call", [True, False], ids=["yield-always", "slice"])
@pytest.mark.parametrize("scenario", [_with_nursery, _without_nursery])
async def test_cancellation_at_every_step_leaves_no_socket(
    scenario: Scenario, every_call: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A call that does not have to wait is a schedule point once a
    # millisecond (trio_upgrade/_transport/_fastio.py): with SLICE = 0 every
    # cancel point is one too, so that cancelling at each step of the task
    # reaches every cancel point; with the default, the steps that remain.
    if every_call:
        monkeypatch.setattr(_fastio, "SLICE", 0.0)
    async with serve_ws() as (server, _):
        task = trio.lowlevel.current_task()
        step = 0
        while True:
            step += 1
            assert step < 1000, "the scenario never completes"
            with trio.CancelScope() as scope:
                instrument = _CancelAtStep(task, step, scope)
                trio.lowlevel.add_instrument(instrument)
                try:
                    with trio.fail_after(10):
                        await scenario(server.url())
                finally:
                    trio.lowlevel.remove_instrument(instrument)
            if not scope.cancelled_caught:
                break
        with trio.fail_after(15):
            records = await server.wait_closed(len(server.connections))
    assert step > (10 if every_call else 5)
    assert all(r.client_closed for r in records), [
        r.index for r in records if not r.client_closed
    ]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_wss(nursery: trio.Nursery, ca: trustme.CA) -> None:
    async def violate(ws: ServerWebSocket) -> None:
        if ws.request.target == "/bad":
            await ws.send_raw(frame(b"", 0x3))
        await echo_messages(ws)

    protocol = WebSocketServerProtocol(handler=violate)
    server = UpgradeServer([protocol])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    listeners = await nursery.start(
        partial(
            trio.serve_ssl_over_tcp, server.serve_stream, 0, context, host="127.0.0.1"
        )
    )
    url = f"wss://127.0.0.1:{listeners[0].transport_listener.socket.getsockname()[1]}"
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    sockets = []
    with trio.fail_after(10):
        for path in ("/", "/bad"):
            ws = await trio_upgrade.upgrade(
                url + path, ["websocket"], ssl_context=client_context
            )
            async with ws:
                assert isinstance(ws.transport, trio.SSLStream)
                sockets.append(ws.transport.transport_stream)
                if path == "/bad":  # over TLS: no half-close, still a clean end
                    with pytest.raises(ProtocolError):
                        await ws.receive()
                    continue
                for message in ("secret", os.urandom(2**20)):
                    await ws.send(message)
                    assert await ws.receive() == message
                await ws.ping()
            assert ws.close_code == 1000
        await server.wait_closed(2)
    # The test server cannot see a TLS client's close (it cannot half-close
    # TLS to wait for it), so look at the client's own sockets.
    for sock in sockets:
        assert isinstance(sock, trio.SocketStream)
        assert sock.socket.fileno() == -1
    assert [c.close_code for c in protocol.connections] == [1000, 1002]
