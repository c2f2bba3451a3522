"""HTTP/2 receive flow control: windows reopened in batches, never stalled.

The client gives consumed data back with one WINDOW_UPDATE per half
window (per stream: as the application reads; for the connection: as data
arrives), as nghttp2 and Go do, not one per DATA frame or per read; and a
window is always reopened before the server runs dry, however small the
windows and however many streams share them. Counted on the server's side
(the test server records every frame's event), on real loopback.
"""

from __future__ import annotations

import h2.events
import pytest
import trio
from h2_helpers import h2c_server

import trio_upgrade
from trio_upgrade._sansio._h2_options import DEFAULT_WINDOW, HTTP2Options
from trio_upgrade.testing._http2 import pattern

pytestmark = pytest.mark.timeout(30)

#: The smallest windows there are: the server can send 64 KiB at most
#: before it needs a WINDOW_UPDATE, on each stream and on the connection.
SMALLEST = HTTP2Options(stream_window=DEFAULT_WINDOW, connection_window=DEFAULT_WINDOW)


def window_updates(events: list[h2.events.Event], stream_id: int) -> list[int]:
    """The increments of the WINDOW_UPDATEs the server got for a stream."""
    return [
        e.delta
        for e in events
        if isinstance(e, h2.events.WindowUpdated) and e.stream_id == stream_id
    ]


async def test_window_updates_come_one_per_half_window() -> None:
    # 1 MiB through 64 KiB windows: 16 windows' worth, so at least 16
    # updates are needed on each level, and half-window batching sends at
    # most one per 32 KiB consumed (one per DATA frame would be 64: h2 sends
    # 16 KiB frames).
    size = 1024 * 1024
    half = DEFAULT_WINDOW // 2
    async with h2c_server() as (server, protocol):
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), trio_upgrade.H2C(SMALLEST))
            async with conn:
                response = await conn.request("GET", f"/bytes/{size}")
                assert response.content == pattern(size)
                # A small request after it: the window updates of the first
                # have been read by the server by the time it answers.
                assert (await conn.request("GET", "/")).content == b"ok"
        events = protocol.connections[0].events
    stream = window_updates(events, 3)
    connection = window_updates(events, 0)
    for updates in (stream, connection):
        assert all(delta >= half for delta in updates), updates
        assert size // DEFAULT_WINDOW <= len(updates) <= size // half, updates
    # Nothing is given back twice: the stream's updates add up to what was
    # consumed beyond the first window, at most.
    assert sum(stream) <= size


async def test_default_windows_send_no_update_for_a_64_kib_body() -> None:
    # With the default 1 MiB stream window, a 64 KiB response is read
    # without a single WINDOW_UPDATE on its stream (the stream ends first).
    async with h2c_server() as (server, protocol):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                for _ in range(5):
                    response = await conn.request("GET", "/bytes/65536")
                    assert response.content == pattern(65536)
                assert (await conn.request("GET", "/")).content == b"ok"
        events = protocol.connections[0].events
    for sid in (3, 5, 7, 9, 11):
        assert window_updates(events, sid) == []


async def test_a_stream_read_in_small_pieces_batches_its_updates() -> None:
    # The application reads 1 KiB at a time: still one update per half
    # window, not one per read.
    size = 512 * 1024
    async with h2c_server() as (server, protocol):
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), trio_upgrade.H2C(SMALLEST))
            async with conn:
                got = bytearray()
                async with conn.stream("GET", f"/bytes/{size}") as response:
                    while chunk := await response.receive_some(1024):
                        got += chunk
                assert bytes(got) == pattern(size)
                assert (await conn.request("GET", "/")).content == b"ok"
        events = protocol.connections[0].events
    stream = window_updates(events, 3)
    assert size // DEFAULT_WINDOW <= len(stream) <= size // (DEFAULT_WINDOW // 2)


async def test_many_streams_share_small_windows_without_stalling() -> None:
    # 20 streams of 256 KiB each through one 64 KiB connection window and
    # 64 KiB stream windows, read at once: every body arrives whole.
    size = 256 * 1024
    async with h2c_server() as (server, protocol):
        with trio.fail_after(20):
            conn = await trio_upgrade.upgrade(server.url(), trio_upgrade.H2C(SMALLEST))
            async with conn:
                bodies: list[bytes] = []

                async def get() -> None:
                    response = await conn.request("GET", f"/bytes/{size}")
                    bodies.append(response.content)

                async with trio.open_nursery() as nursery:
                    for _ in range(20):
                        nursery.start_soon(get)
                assert bodies == [pattern(size)] * 20
        events = protocol.connections[0].events
    connection = window_updates(events, 0)
    # 5 MiB through the connection: batched there too.
    assert len(connection) <= 20 * size // (DEFAULT_WINDOW // 2)
