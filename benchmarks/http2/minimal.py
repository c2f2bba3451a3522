"""The reference client: Trio and h2 and nothing else (``minimal``), and the
h2c upgrade done by hand (``minimal-h2c``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h2.config
import h2.connection
import h2.events
import trio

from ..harness.processes import BenchFailure
from .plan import CONCURRENCY


class _Pending:
    __slots__ = ("body", "done", "error", "status")

    def __init__(self) -> None:

        self.done = trio.Event()
        self.status = 0
        self.body = bytearray()
        self.error: str | None = None


def h2_config() -> Any:

    # Configured like trio_upgrade's state machine (bytes headers, no second
    # validation pass over our own request headers), so that the ratio of
    # the two measures everything around h2, not h2's configuration.
    return h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


class MinimalH2:
    """The reference client: Trio and h2 and nothing else.

    One reader task feeds h2 and completes the waiting requests; one writer
    task sends everything h2 has queued in one ``send_all`` whenever it is
    woken. A request takes a slot (the server's stream limit), queues its
    HEADERS in h2, wakes the writer and waits for its stream to end.
    """

    def __init__(self, stream: Any, conn: Any, authority: str) -> None:

        self._stream = stream
        self._h2 = conn
        self._pending: dict[int, _Pending] = {}
        self._wake = trio.Event()
        self._settings = trio.Event()
        self._slots = trio.CapacityLimiter(CONCURRENCY)
        self._head = [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", authority.encode("ascii")),
        ]

    def flush(self) -> None:
        self._wake.set()

    async def get(self, path: bytes) -> bytes:
        async with self._slots:
            sid = self._h2.get_next_available_stream_id()
            pending = self._pending[sid] = _Pending()
            self._h2.send_headers(sid, [*self._head, (b":path", path)], end_stream=True)
            self._wake.set()
            await pending.done.wait()
        if pending.error is not None:
            raise BenchFailure(pending.error)
        if pending.status != 200:
            raise BenchFailure(f"status {pending.status}")
        return bytes(pending.body)

    async def writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            data = self._h2.data_to_send()
            if data:
                await self._stream.send_all(data)

    async def reader(self) -> None:
        conn = self._h2
        pending = self._pending
        while True:
            data = await self._stream.receive_some(65536)
            if not data:
                raise BenchFailure("the server closed the connection")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    p = pending.get(event.stream_id)
                    if p is not None:
                        p.body += event.data
                    conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.ResponseReceived):
                    p = pending.get(event.stream_id)
                    if p is not None:
                        p.status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.StreamEnded):
                    p = pending.pop(event.stream_id, None)
                    if p is not None:
                        p.done.set()
                elif isinstance(event, h2.events.StreamReset):
                    p = pending.pop(event.stream_id, None)
                    if p is not None:
                        p.error = f"stream reset with {event.error_code!r}"
                        p.done.set()
                elif isinstance(event, h2.events.RemoteSettingsChanged):
                    limit = conn.remote_settings.max_concurrent_streams
                    self._slots.total_tokens = max(1, min(CONCURRENCY, limit))
                    self._settings.set()
                elif isinstance(event, h2.events.ConnectionTerminated):
                    raise BenchFailure(f"GOAWAY {event.error_code!r}")
            self._wake.set()  # SETTINGS/PING acks, WINDOW_UPDATEs

    @property
    def server_streams(self) -> int:
        return int(self._h2.remote_settings.max_concurrent_streams)


@asynccontextmanager
async def open_minimal(host: str, port: int) -> AsyncIterator[MinimalH2]:

    stream = await trio.open_tcp_stream(host, port)
    conn = h2.connection.H2Connection(config=h2_config())
    conn.initiate_connection()
    client = MinimalH2(stream, conn, f"{host}:{port}")
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.reader)
            nursery.start_soon(client.writer)
            client.flush()
            await client._settings.wait()
            yield client
            nursery.cancel_scope.cancel()
        conn.close_connection()
        await stream.send_all(conn.data_to_send())
    finally:
        await trio.aclose_forcefully(stream)


async def minimal_h2c_handshake(host: str, port: int, path: str) -> bytes:
    """Connect, upgrade to h2c by hand, read stream 1's response, close."""
    stream = await trio.open_tcp_stream(host, port)
    try:
        conn = h2.connection.H2Connection(config=h2_config())
        # Queues the preface and SETTINGS (sent after the 101), opens stream 1.
        settings = conn.initiate_upgrade_connection()
        assert settings is not None
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            f"HTTP2-Settings: {settings.decode('ascii').rstrip('=')}\r\n\r\n"
        ).encode("ascii")
        await stream.send_all(request)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise BenchFailure("closed before the 101")
            buffer += chunk
        head, _, data = buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise BenchFailure(f"no 101: {head[:40]!r}")
        await stream.send_all(conn.data_to_send())
        body = bytearray()
        status = 0
        ended = False
        while True:
            if data:
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = int(dict(event.headers)[b":status"])
                    elif isinstance(event, h2.events.DataReceived):
                        body += event.data
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        ended = event.stream_id == 1 or ended
                    elif isinstance(event, h2.events.StreamReset):
                        raise BenchFailure("stream 1 was reset")
            if ended:
                break
            out = conn.data_to_send()
            if out:
                await stream.send_all(out)
            data = await stream.receive_some(65536)
            if not data:
                raise BenchFailure("closed before the end of stream 1")
        if status != 200:
            raise BenchFailure(f"status {status}")
        conn.close_connection()
        await stream.send_all(conn.data_to_send())
        return bytes(body)
    finally:
        await trio.aclose_forcefully(stream)
