"""A client for driving trio_upgrade.testing's server byte by byte.

It parses with h11, an HTTP implementation independent of trio_upgrade's
own client, so the server is checked against someone else's reading of
HTTP/1.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import h11
import pytest
import trio

from trio_upgrade.testing import UpgradeServer

ResponseEvent = h11.Response | h11.InformationalResponse


class Client:
    """The client side of one connection: h11 framing over a trio stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def request(
        self,
        upgrade: str | None = None,
        *,
        connection: str = "Upgrade",
        headers: Sequence[tuple[str, str]] = (),
        then: bytes = b"",
    ) -> None:
        """Send a GET offering ``upgrade``; ``then`` goes in the same write."""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        fields = [("Host", "test.invalid")]
        if upgrade is not None:
            fields += [("Connection", connection), ("Upgrade", upgrade)]
        event = h11.Request(method="GET", target="/", headers=[*fields, *headers])
        data = self.conn.send(event) + self.conn.send(h11.EndOfMessage())
        await self.stream.send_all(data + then)

    async def _event(self) -> h11.Event:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(bytes(await self.stream.receive_some(65536)))
            else:
                assert isinstance(event, h11.Event), event
                return event

    async def response(self) -> tuple[list[int], ResponseEvent, bytes]:
        """The 1xx statuses skipped, the 101 or final response, and its body."""
        skipped: list[int] = []
        while True:
            event = await self._event()
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return skipped, event, b""
                skipped.append(event.status_code)
            elif isinstance(event, h11.Response):
                body = b""
                while not isinstance(part := await self._event(), h11.EndOfMessage):
                    assert isinstance(part, h11.Data)
                    body += part.data
                return skipped, event, body
            else:  # pragma: no cover - a failing test shows the event
                raise AssertionError(event)

    @property
    def leftover(self) -> bytes:
        return bytes(self.conn.trailing_data[0])


Connect = Callable[[UpgradeServer], Awaitable[Client]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Opens loopback connections to a server; closes them after the test."""
    streams: list[trio.SocketStream] = []

    async def open_client(server: UpgradeServer) -> Client:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        streams.append(stream)
        return Client(stream)

    yield open_client
    for stream in streams:
        await stream.aclose()


def header(event: ResponseEvent, name: str) -> str | None:
    values = [v for n, v in event.headers if n == name.lower().encode()]
    return b", ".join(values).decode() if values else None


async def read_all(stream: trio.abc.Stream) -> bytes:
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


async def read_at_least(stream: trio.abc.Stream, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = await stream.receive_some(65536)
        assert chunk, f"end of stream after {len(data)} bytes: {data[:200]!r}"
        data += chunk
    return data


async def expect_echo(stream: trio.abc.Stream, data: bytes) -> None:
    await stream.send_all(data)
    assert await read_at_least(stream, len(data)) == data
