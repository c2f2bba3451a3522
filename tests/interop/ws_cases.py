"""What test_websocket_interop.py knows about each server, and its helpers.

Observed on this machine (websockets 17.4; uvicorn 0.54 with its three
WebSocket implementations; hypercorn 0.18 and wsproto 1.3; Node 20 with ws
8.23; nginx 1.22, lighttpd 1.4.69 and h2o 2.2.5 in front of Node ws) and
asserted by the tests:

* Every server echoes our close frame's code and reason (4000 "bye", or a
  123-byte reason) in its answer, sends the code and reason of ``/close``,
  and answers pings with the same payload.
* All accept our default permessage-deflate offer
  (``client_max_window_bits; server_max_window_bits=12``), except
  Node ``ws`` with compression off, which answers without
  ``Sec-WebSocket-Extensions``. The proxies pass the offer and the answer
  through untouched (their backend is Node ws with deflate on).
* ``server_max_window_bits=8``: Node accepts it (its zlib compresses with 9
  bits, which our inflater allows for); websockets, uvicorn and hypercorn
  decline compression instead.
* Subprotocols: none of the servers is configured with any. Node ws then
  picks the client's first offer anyway (its default ``handleProtocols``);
  the others answer without ``Sec-WebSocket-Protocol``.
* ``/greet``: the websockets server and Node (uncompressed) write "hello" in
  the 101's segment. Node with deflate compresses asynchronously, so its
  greeting comes later; uvicorn and hypercorn never cork.
"""

from __future__ import annotations

from dataclasses import dataclass

import servers
import trio

import trio_upgrade
from trio_upgrade import WebSocket, WebSocketConnection

__all__ = [
    "MAX_SIZE",
    "TARGETS",
    "Endpoint",
    "SplitStream",
    "Target",
    "binary_payload",
    "closure",
    "socket_closed",
    "text_payload",
]

MAX_SIZE = 16 * 1024 * 1024  # the servers allow 16 MiB (Node: 64 MiB)


@dataclass(frozen=True)
class Target:
    """One server (or proxy) under test, and how it behaves."""

    name: str
    fixture: str
    # Path prefix the proxy routes to its backend (and strips): lighttpd and
    # h2o proxy only /ws; nginx proxies every path.
    prefix: str = ""
    # It accepts our permessage-deflate offer.
    deflate: bool = True
    # It accepts server_max_window_bits=8 (else it declines compression).
    deflate_8_bits: bool = False
    # /greet's "hello" leaves in the 101's segment (uncompressed).
    greet_with_101: bool = False
    # It picks the first subprotocol offered although it was given none.
    picks_subprotocol: bool = False


TARGETS = [
    Target("websockets", "websockets_srv", greet_with_101=True),
    Target("uvicorn-websockets", "uvicorn_websockets"),
    Target("uvicorn-websockets-sansio", "uvicorn_sansio"),
    Target("uvicorn-wsproto", "uvicorn_wsproto"),
    Target("hypercorn", "hypercorn"),
    # ws's perMessageDeflate is off by default: no Sec-WebSocket-Extensions.
    Target("node", "node", deflate=False, greet_with_101=True, picks_subprotocol=True),
    Target(
        "node-deflate",
        "node_deflate",
        deflate_8_bits=True,
        greet_with_101=True,
        picks_subprotocol=True,
    ),
    # The proxies front Node ws with deflate on.
    Target("nginx-node", "nginx", deflate_8_bits=True, picks_subprotocol=True),
    Target(
        "lighttpd-node",
        "lighttpd",
        prefix="/ws",
        deflate_8_bits=True,
        picks_subprotocol=True,
    ),
    Target(
        "h2o-node", "h2o", prefix="/ws", deflate_8_bits=True, picks_subprotocol=True
    ),
]


@dataclass(frozen=True)
class Endpoint:
    """A target and its running server."""

    target: Target
    server: servers.RunningServer

    def url(self, path: str = "/") -> str:
        return self.server.url(self.target.prefix + path, scheme="ws")

    async def connect(
        self,
        path: str = "/",
        transport: trio.abc.Stream | None = None,
        limits: trio_upgrade.Limits | None = None,
        **options: object,
    ) -> WebSocketConnection:
        """``upgrade()`` with a 16 MiB ``max_size`` unless told otherwise."""
        options.setdefault("max_size", MAX_SIZE)
        offer = WebSocket(**options)  # type: ignore[arg-type]
        return await trio_upgrade.upgrade(
            self.url(path), [offer], transport=transport, limits=limits
        )

    async def open_tcp(self) -> trio.SocketStream:
        return await trio.open_tcp_stream(self.server.host, self.server.port)


def text_payload(size: int) -> str:
    """Text of exactly ``size`` UTF-8 bytes, with 2-, 3- and 4-byte characters."""
    unit = "WebSocket über alles ✓ 🚀 {}:,"
    data = (unit * (size // len(unit.encode()) + 1)).encode()[:size]
    text = data.decode("utf-8", "ignore")  # drops a character cut at the end
    text += "." * (size - len(text.encode()))
    assert len(text.encode()) == size
    return text


def binary_payload(size: int) -> bytes:
    return servers.payload(size, offset=size)  # random: incompressible


def closure(conn: WebSocketConnection) -> tuple[int | None, str | None]:
    """``(close_code, close_reason)``; a call, so mypy does not narrow it."""
    return conn.close_code, conn.close_reason


def socket_closed(conn: WebSocketConnection) -> bool:
    stream = conn.transport
    if isinstance(stream, SplitStream):
        stream = stream.inner
    assert isinstance(stream, trio.SocketStream), stream
    return stream.socket.fileno() == -1


class SplitStream(trio.abc.HalfCloseableStream):
    """A TCP stream that records reads and writes, for two experiments.

    ``split_head``: the read that completes the 101's head returns nothing
    past it (any stream may return fewer bytes than it has); the rest comes
    with the next read, so the frames after the 101 are read by the
    WebSocket connection, never handed over as handshake leftovers.

    ``cancel_after_read``: a cancel scope to cancel right after the next
    read that returns data, as when a deadline expires just as the data
    arrives (Trio delivers it at the next checkpoint).
    """

    def __init__(self, inner: trio.SocketStream, *, split_head: bool) -> None:
        self.inner = inner
        self.reads: list[bytes] = []
        self.writes: list[bytes] = []
        self.cancel_after_read: trio.CancelScope | None = None
        self._split = split_head
        self._seen = b""  # the tail of the head so far (to find its end)
        self._held = b""

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._held:
            await trio.lowlevel.checkpoint()
            limit = max_bytes or len(self._held)
            data, self._held = self._held[:limit], self._held[limit:]
        else:
            data = bytes(await self.inner.receive_some(max_bytes))
            self.reads.append(data)
            if self._split:
                data = self._cut_after_head(data)
        if data and self.cancel_after_read is not None:
            self.cancel_after_read.cancel()
            self.cancel_after_read = None
        return data

    def _cut_after_head(self, data: bytes) -> bytes:
        seen = self._seen + data
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            self._seen = seen[-3:]
            return data
        self._split = False
        cut = end + 4 - len(self._seen)
        self._held = data[cut:]
        return data[:cut]

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()
