"""Helpers shared by the WebSocket tests: servers and hand-made frames."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import h11
import trio

from trio_upgrade import RawStream, Request, Response, WebSocketConnection
from trio_upgrade._sansio import _speedups
from trio_upgrade._sansio._ws_handshake import accept_key
from trio_upgrade._websocket._reader import FastReader, client_wsproto
from trio_upgrade._websocket._shared import ConnectionSettings
from trio_upgrade.testing import (
    Handle,
    Script,
    UpgradeServer,
    open_upgrade_server,
    switching_response,
)
from trio_upgrade.testing._websocket import WebSocketServerProtocol

__all__ = ["bare_connection", "frame", "read_client_frame", "serve_ws", "ws_script"]


def frame(
    payload: bytes,
    opcode: int = 0x2,
    *,
    fin: bool = True,
    rsv1: bool = False,
    masked: bool = False,
) -> bytes:
    """One frame, byte by byte, valid or not; ``masked`` uses a zero key."""
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    mask_bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    if masked:
        head += b"\x00\x00\x00\x00"  # XOR with zeros: payload unchanged
    return head + payload


@asynccontextmanager
async def serve_ws(
    **options: Any,
) -> AsyncIterator[tuple[UpgradeServer, WebSocketServerProtocol]]:
    """The test server with one ``WebSocketServerProtocol(**options)``."""
    protocol = WebSocketServerProtocol(**options)
    async with open_upgrade_server([protocol]) as server:
        yield server, protocol


async def _read_key(stream: RawStream) -> str:
    conn = h11.Connection(h11.SERVER)
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(65536)))
            continue
        assert isinstance(event, h11.Request), event
        return dict(event.headers)[b"sec-websocket-key"].decode("ascii")


def ws_script(
    then: Callable[[RawStream], Awaitable[None]] | None = None,
    *,
    trailing: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
) -> Script:
    """A script server: a valid 101 (with ``trailing`` in the same write),
    then ``then(stream)`` does the rest by hand."""

    async def handler(stream: RawStream) -> None:
        key = await _read_key(stream)
        fields = [("Sec-WebSocket-Accept", accept_key(key)), *headers]
        await stream.send_all(
            switching_response("websocket", fields, trailing=trailing)
        )
        if then is not None:
            await then(stream)
        else:
            async for _ in stream:
                pass

    return Script([Handle(handler)], read_request=False)


def bare_connection(
    stream: trio.abc.Stream,
    *,
    plain: bool,
    max_size: int = 2**20,
    max_queue: int | None = None,
    write_buffer_limit: int | None = 2**16,
) -> WebSocketConnection:
    """A client connection on ``stream`` with no handshake and no keepalive.

    ``plain=False`` turns the fast paths beside wsproto off (the switch of
    ``_sansio._speedups``, read when the connection is built), so a test can
    run the same bytes both ways and compare.
    """
    settings = ConnectionSettings(
        max_size=max_size,
        max_queue=max_queue,
        max_fragment_size=None,
        ping_interval=None,
        ping_timeout=None,
        write_buffer_limit=write_buffer_limit,
    )
    enabled = _speedups.ENABLED
    _speedups.ENABLED = plain
    try:
        conn = WebSocketConnection(
            stream,
            client_wsproto(),
            settings,
            close_timeout=5,
            request=Request("GET", "/"),
            response=Response(101),
        )
    finally:
        _speedups.ENABLED = enabled
    assert isinstance(conn._engine.reader, FastReader) == plain
    return conn


async def read_client_frame(
    stream: trio.abc.ReceiveStream, buffer: bytearray
) -> tuple[int, bool, bool, bytes]:
    """The next masked client frame from ``stream``: ``(opcode, fin, rsv1,
    unmasked payload)``; ``buffer`` keeps what a read brought beyond it."""

    async def need(size: int) -> None:
        while len(buffer) < size:
            data = await stream.receive_some(65536)
            if not data:
                raise EOFError("the client closed mid-frame")
            buffer.extend(data)

    await need(2)
    first, second = buffer[0], buffer[1]
    assert second & 0x80, "client frames are masked"
    size, pos = second & 0x7F, 2
    if size == 126:
        await need(4)
        size, pos = int.from_bytes(buffer[2:4], "big"), 4
    elif size == 127:
        await need(10)
        size, pos = int.from_bytes(buffer[2:10], "big"), 10
    await need(pos + 4 + size)
    key = buffer[pos : pos + 4]
    masked = buffer[pos + 4 : pos + 4 + size]
    payload = bytes(b ^ key[i % 4] for i, b in enumerate(masked))
    del buffer[: pos + 4 + size]
    return first & 0x0F, bool(first & 0x80), bool(first & 0x40), payload
