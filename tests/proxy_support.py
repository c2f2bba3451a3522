"""Pieces of a loopback CONNECT proxy shared by the proxy and host tests."""

from __future__ import annotations

import trio


async def read_head(stream: trio.SocketStream) -> bytes:
    """Read until the end of an HTTP head (the bytes after it included)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise EOFError
        data += chunk
    return data


async def pipe(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
    """Copy ``source`` to ``sink`` until either ends, then close ``sink``."""
    try:
        async for data in source:
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await sink.aclose()
