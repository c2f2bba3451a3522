"""RawStream passes Trio's own stream conformance checks, on stream pairs
made by real upgrades over loopback."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trio_upgrade
from trio_upgrade import RawStream

pytestmark = pytest.mark.timeout(60)

SWITCH = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: pair\r\nConnection: Upgrade\r\n\r\n"
)


async def upgraded_pair(
    server_leftover: bytes = b"", client_leftover: bytes = b""
) -> tuple[RawStream, RawStream]:
    """(client, server) RawStreams joined by a real upgrade on 127.0.0.1.

    ``client_leftover`` is sent by the server in the same write as the 101,
    so the client's stream starts with buffered bytes; ``server_leftover`` is
    sent by the client right behind its request head (via a custom offer's
    first bytes is not possible with GET, so the server side simply gets its
    own buffer) — both ends exercise the buffered path.
    """
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    server_side: list[RawStream] = []

    async def accept() -> None:
        stream = await listener.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        _, _, rest = data.partition(b"\r\n\r\n")
        await stream.send_all(SWITCH + client_leftover)
        server_side.append(RawStream(stream, server_leftover + rest, protocol="pair"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        client = await trio_upgrade.upgrade(f"http://127.0.0.1:{port}/", "pair")
    await listener.aclose()
    return client, server_side[0]


async def clean_pair() -> tuple[RawStream, RawStream]:
    return await upgraded_pair()


async def buffered_pair() -> tuple[RawStream, RawStream]:
    # Each side starts with bytes already buffered; the checks expect an empty
    # stream, so the buffers are drained first... which is exactly the path
    # under test: receive_some from the buffer, then from the socket.
    client, server = await upgraded_pair(b"s" * 10, b"c" * 10)
    assert await client.receive_some(3) == b"ccc"
    assert await client.receive_some() == b"c" * 7
    assert await server.receive_some(10) == b"s" * 10
    return client, server


async def test_check_two_way_stream() -> None:
    await trio.testing.check_two_way_stream(clean_pair, None)


async def test_check_half_closeable_stream() -> None:
    await trio.testing.check_half_closeable_stream(clean_pair, None)


async def test_check_streams_after_draining_leftovers() -> None:
    await trio.testing.check_half_closeable_stream(buffered_pair, None)


async def test_leftover_served_first_in_max_bytes_pieces() -> None:
    client, server = await upgraded_pair(client_leftover=b"0123456789")
    async with client, server:
        assert await client.receive_some(4) == b"0123"
        assert await client.receive_some(4) == b"4567"
        await server.send_all(b"live")
        assert await client.receive_some(4) == b"89"
        assert await client.receive_some() == b"live"


async def test_leftover_receive_is_a_checkpoint() -> None:
    client, server = await upgraded_pair(client_leftover=b"abc")
    async with client, server:
        with trio.CancelScope() as scope:
            scope.cancel()
            await client.receive_some()
        # Cancelled at the checkpoint, nothing consumed.
        assert await client.receive_some() == b"abc"


async def test_concurrent_receivers_on_buffered_data_conflict() -> None:
    client, server = await upgraded_pair(client_leftover=b"abc")
    async with client, server:
        with pytest.RaisesGroup(trio.BusyResourceError):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.receive_some)
                nursery.start_soon(client.receive_some)


async def test_receive_after_close_and_bad_max_bytes() -> None:
    client, server = await upgraded_pair(client_leftover=b"abc")
    async with server:
        with pytest.raises(ValueError, match=">= 1"):
            await client.receive_some(0)
        with pytest.raises(TypeError):
            await client.receive_some(1.5)  # type: ignore[arg-type]
        await client.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await client.receive_some()
        with pytest.raises(trio.ClosedResourceError):
            await client.send_all(b"x")
        with pytest.raises(trio.ClosedResourceError):
            await client.send_eof()


async def test_unwrap_hands_over_transport_and_buffer() -> None:
    client, server = await upgraded_pair(client_leftover=b"pending")
    async with server:
        assert await client.receive_some(2) == b"pe"
        transport, rest = client.unwrap()
        assert rest == b"nding"
        assert isinstance(transport, trio.SocketStream)
        async with transport:
            await server.send_all(b"more")
            assert await transport.receive_some() == b"more"
        with pytest.raises(trio.ClosedResourceError):
            await client.receive_some()
