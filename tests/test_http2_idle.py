"""An idle HTTP/2 connection in a nursery stays serviced (issue 11, item 1).

A scripted server on a loopback socket (h2 on the server side, driven by the
test) sends PING, SETTINGS and GOAWAY while no task of the client waits on
the connection: with a nursery (``open_http2``, ``open_upgrade``) the
connection answers and sees them at once; keepalive PINGs and the idle
timeout are measured the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import h2.config
import h2.connection
import h2.events
import pytest
import trio
from h2.settings import SettingCodes
from h2_helpers import h2c_server

import trio_upgrade
from trio_upgrade import HTTP2Options, StreamRefused

pytestmark = pytest.mark.timeout(20)


class ScriptedServer:
    """One client connection, the server's h2 state, what the client sent."""

    def __init__(self) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config)
        self.stream: trio.SocketStream | None = None
        self.connected = trio.Event()
        self.ping_acks: list[bytes] = []
        self.pings: list[float] = []
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.settings_acked = 0
        self.reading = True
        self.changed = trio.Event()
        self._sending = trio.Lock()

    async def send(self) -> None:
        assert self.stream is not None
        async with self._sending:
            await self.stream.send_all(self.h2.data_to_send())

    async def wait_for(self, predicate: object) -> None:
        assert callable(predicate)
        while not predicate():
            await self.changed.wait()

    async def serve(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h2.initiate_connection()
        await self.send()
        self.connected.set()
        while True:
            if not self.reading:
                await trio.sleep_forever()
            data = await stream.receive_some(65536)
            if not data:
                return
            for event in self.h2.receive_data(data):
                if isinstance(event, h2.events.PingAckReceived):
                    self.ping_acks.append(event.ping_data)
                elif isinstance(event, h2.events.PingReceived):
                    self.pings.append(trio.current_time())
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self.goaway = event
                elif isinstance(event, h2.events.SettingsAcknowledged):
                    self.settings_acked += 1
                elif isinstance(event, h2.events.RequestReceived):
                    self.h2.send_headers(
                        event.stream_id, [(b":status", b"200")], end_stream=True
                    )
            await self.send()
            self.changed.set()
            self.changed = trio.Event()


async def until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate``: the client's state changes with no event to wait on."""
    while not predicate():  # noqa: ASYNC110
        await trio.sleep(0.01)


@asynccontextmanager
async def scripted_server() -> AsyncIterator[tuple[str, ScriptedServer]]:
    server = ScriptedServer()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, host="127.0.0.1"), server.serve, 0
        )
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}/", server
        nursery.cancel_scope.cancel()


async def test_idle_connection_answers_ping_and_sees_goaway() -> None:
    async with (
        scripted_server() as (url, server),
        trio_upgrade.open_http2(url) as conn,
    ):
        await server.connected.wait()
        # No task of the client waits on the connection from here on.
        server.h2.ping(b"idle-png")
        await server.send()
        with trio.fail_after(1):
            await server.wait_for(lambda: server.ping_acks == [b"idle-png"])
        server.h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 7})
        await server.send()
        with trio.fail_after(1):
            await server.wait_for(lambda: server.settings_acked == 2)
        assert conn.max_concurrent_streams == 7
        server.h2.close_connection(last_stream_id=0)
        await server.send()
        with trio.fail_after(1):
            await until(lambda: conn.goaway is not None)
        assert not conn.is_usable
        with trio.fail_after(1), pytest.raises(StreamRefused):
            await conn.request("GET", "/")


async def test_requests_still_work_beside_the_idle_reader() -> None:
    async with (
        scripted_server() as (url, server),
        trio_upgrade.open_http2(url) as conn,
    ):
        for _ in range(3):
            with trio.fail_after(2):
                async with trio.open_nursery() as nursery:
                    for _ in range(20):
                        nursery.start_soon(conn.request, "GET", "/")
            # Idle between rounds: the server's PING is still answered.
            server.h2.ping(b"between!")
            await server.send()
            with trio.fail_after(1):
                await server.wait_for(lambda: b"between!" in server.ping_acks)
            server.ping_acks.clear()


async def test_without_a_nursery_nothing_reads() -> None:
    # The documented behaviour without a nursery stays: no background task.
    async with scripted_server() as (url, server):
        conn = await trio_upgrade.connect_http2(url)
        async with conn:
            await server.connected.wait()
            server.h2.ping(b"unheard!")
            await server.send()
            await trio.sleep(0.2)
            assert server.ping_acks == []
            # The next task that waits reads it (and answers).
            await conn.ping()
            with trio.fail_after(1):
                await server.wait_for(lambda: b"unheard!" in server.ping_acks)


async def test_keepalive_pings_are_sent_while_idle() -> None:
    options = HTTP2Options(ping_interval=0.05, ping_timeout=1.0)
    async with (
        scripted_server() as (url, server),
        trio_upgrade.open_http2(url, options=options) as conn,
    ):
        with trio.fail_after(2):
            await server.wait_for(lambda: len(server.pings) >= 3)
        assert conn.is_usable


async def test_keepalive_timeout_fails_the_connection() -> None:
    options = HTTP2Options(ping_interval=0.05, ping_timeout=0.2)
    async with (
        scripted_server() as (url, server),
        trio_upgrade.open_http2(url, options=options) as conn,
    ):
        await server.connected.wait()
        server.reading = False  # the server stops answering anything
        with trio.fail_after(2):
            await until(lambda: not conn.is_usable)
        with pytest.raises(trio_upgrade.ConnectionClosed, match="keepalive"):
            await conn.request("GET", "/")


async def test_idle_timeout_closes_with_goaway() -> None:
    options = HTTP2Options(idle_timeout=0.2)
    async with (
        scripted_server() as (url, server),
        trio_upgrade.open_http2(url, options=options) as conn,
    ):
        response = await conn.request("GET", "/")
        assert response.status_code == 200
        start = trio.current_time()
        with trio.fail_after(2):
            await server.wait_for(lambda: server.goaway is not None)
        assert trio.current_time() - start >= 0.15
        assert not conn.is_usable


async def test_h2c_upgrade_in_open_upgrade_is_serviced() -> None:
    async with (
        h2c_server() as (server, _),
        trio_upgrade.open_upgrade(server.url(), ["h2c"]) as conn,
    ):
        await conn.upgrade_response.read()
        assert conn.is_usable
        server.stop()
        # Nobody waits on the connection, yet its end is seen.
        with trio.fail_after(2):
            await until(lambda: not conn.is_usable)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"ping_interval": 0}, ValueError),
        ({"ping_timeout": -1.0}, ValueError),
        ({"idle_timeout": float("nan")}, ValueError),
        ({"ping_interval": "5"}, TypeError),
        ({"ping_timeout": None}, TypeError),
        ({"idle_timeout": True}, TypeError),
    ],
)
def test_durations_are_checked(kwargs: dict[str, object], error: type) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        HTTP2Options(**kwargs)  # type: ignore[arg-type]
