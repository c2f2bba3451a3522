"""A fault-injecting TCP proxy on loopback, for the fault-injection tests.

:func:`open_fault_proxy` listens on 127.0.0.1 port 0 and relays every
connection it accepts to an upstream server, byte for byte, except for one
:class:`Fault` applied at byte offset ``offset`` of one direction (``"up"``:
client to server, ``"down"``: server to client). Offsets count the bytes of
that direction from the start of the connection, so offset 0 is before the
first byte of the request (or of the response), and an offset inside a frame
cuts that frame.

The kinds of fault:

``reset``
    Forward the bytes before the offset, then reset both TCP connections
    (``SO_LINGER`` 0 then close: an RST, not a FIN).
``stall``
    Forward the bytes before the offset, then nothing more in that
    direction, keeping both sockets open (the other direction still flows).
``trickle``
    From the offset on, forward ``TRICKLE_BYTES`` bytes one at a time with a
    short pause between them, then the rest normally: every byte boundary
    in that stretch is a read boundary for the receiver.
``truncate``
    Forward the bytes before the offset, then close both connections
    cleanly (FIN both ways).
``duplicate``
    Forward the ``DUPLICATE_BYTES`` bytes at the offset twice.
``half-close``
    Forward the bytes before the offset, then send EOF in that direction
    only (``shutdown(SHUT_WR)``): the receiver sees the stream end in the
    middle of a frame, while its own writes still reach the other end.

Every byte the proxy delivers is recorded per direction
(:attr:`Relay.delivered`), so a test can check what a client reported
against what it was really sent: after a ``duplicate`` the data on the wire
is wrong, and the client's duty is only to report what the wire carried, or
an error.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

import trio

Direction = Literal["up", "down"]
Kind = Literal["reset", "stall", "trickle", "truncate", "duplicate", "half-close"]

KINDS: tuple[Kind, ...] = (
    "reset",
    "stall",
    "trickle",
    "truncate",
    "duplicate",
    "half-close",
)
DIRECTIONS: tuple[Direction, ...] = ("up", "down")

#: How many bytes a ``trickle`` sends one at a time, and the pause after each.
TRICKLE_BYTES = 48
TRICKLE_PAUSE = 0.001
#: How many bytes a ``duplicate`` repeats.
DUPLICATE_BYTES = 3
#: What a send or receive raises when the other end is gone.
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)
#: The size of one read from either socket.
READ_SIZE = 65536


@dataclass(frozen=True)
class Fault:
    """One fault: what, in which direction, at which byte offset."""

    kind: Kind
    direction: Direction
    offset: int

    def __str__(self) -> str:
        return f"{self.kind}@{self.direction}:{self.offset}"


@dataclass
class Relay:
    """One relayed connection: the bytes delivered each way, and its fault.

    Attributes:
        delivered: per direction, every byte written to the receiver, in order
            (a duplicated chunk appears twice).
        fired: whether the fault was applied (the offset was reached).
        fired_event: set when it is.
    """

    fault: Fault | None
    delivered: dict[Direction, bytearray] = field(
        default_factory=lambda: {"up": bytearray(), "down": bytearray()}
    )
    fired: bool = False
    fired_event: trio.Event = field(default_factory=trio.Event)


def _reset(stream: trio.SocketStream) -> None:
    """Make the next close of ``stream`` send an RST."""
    with contextlib.suppress(OSError):  # closed already: nothing to reset
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class _Abort(Exception):
    """Ends a relay: both connections are closed (reset or cleanly)."""


async def _pump(
    relay: Relay,
    direction: Direction,
    source: trio.SocketStream,
    sink: trio.SocketStream,
    ends: dict[str, trio.SocketStream],
) -> None:
    fault = relay.fault if relay.fault and relay.fault.direction == direction else None
    out = relay.delivered[direction]
    seen = 0
    while True:
        try:
            data = await source.receive_some(READ_SIZE)
        except _GONE:
            raise _Abort from None
        if not data:
            with contextlib.suppress(*_GONE):
                await sink.send_eof()
            return
        start, seen = seen, seen + len(data)
        if fault is None or relay.fired or seen <= fault.offset:
            await _send(sink, data, out)
            continue
        # The offset lies in this read (or at its start).
        cut = fault.offset - start
        await _send(sink, data[:cut], out)
        relay.fired = True
        relay.fired_event.set()
        rest = data[cut:]
        if fault.kind == "reset":
            _reset(ends["client"])
            _reset(ends["server"])
            raise _Abort
        if fault.kind == "truncate":
            raise _Abort
        if fault.kind == "half-close":
            with contextlib.suppress(*_GONE):
                await sink.send_eof()
            return
        if fault.kind == "stall":
            await trio.sleep_forever()
        if fault.kind == "duplicate":
            # A chunk cut short by the end of this read repeats only what
            # arrived: the property under test does not need the full size.
            chunk = rest[:DUPLICATE_BYTES]
            await _send(sink, chunk + rest, out)
            continue
        # trickle
        slow, fast = rest[:TRICKLE_BYTES], rest[TRICKLE_BYTES:]
        for i in range(len(slow)):
            await _send(sink, slow[i : i + 1], out)
            await trio.sleep(TRICKLE_PAUSE)
        await _send(sink, fast, out)
        # The rest of a trickle window that spans several reads goes fast:
        # the window is counted from the offset within one read only.


async def _pump_or_abort(
    relay: Relay,
    direction: Direction,
    source: trio.SocketStream,
    sink: trio.SocketStream,
    ends: dict[str, trio.SocketStream],
    nursery: trio.Nursery,
) -> None:
    """:func:`_pump`, ending the whole relay when it aborts."""
    try:
        await _pump(relay, direction, source, sink, ends)
    except _Abort:
        nursery.cancel_scope.cancel()


async def _send(sink: trio.SocketStream, data: bytes, out: bytearray) -> None:
    if not data:
        return
    try:
        await sink.send_all(data)
    except _GONE:
        raise _Abort from None
    out += data


class FaultProxy:
    """The running proxy: its address, and the connections it relayed."""

    def __init__(self, upstream: tuple[str, int], fault: Fault | None) -> None:
        self.upstream = upstream
        self.fault = fault
        self.port = 0
        self.relays: list[Relay] = []
        #: Set when the first connection is accepted.
        self.first_relay = trio.Event()

    def url(self, scheme: str = "http", path: str = "/") -> str:
        """The URL of ``path`` through the proxy."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def _relay(self, client: trio.SocketStream) -> None:
        relay = Relay(self.fault)
        self.relays.append(relay)
        self.first_relay.set()
        try:
            server = await trio.open_tcp_stream(*self.upstream)
        except OSError:
            _reset(client)
            await client.aclose()
            return
        ends = {"client": client, "server": server}
        try:
            async with trio.open_nursery() as nursery:
                for args in (("up", client, server), ("down", server, client)):
                    nursery.start_soon(_pump_or_abort, relay, *args, ends, nursery)
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()
                await server.aclose()

    async def serve(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        await trio.serve_listeners(self._relay, listeners, task_status=task_status)


@asynccontextmanager
async def open_fault_proxy(
    upstream: tuple[str, int], fault: Fault | None = None
) -> AsyncIterator[FaultProxy]:
    """Run a :class:`FaultProxy` to ``upstream`` for the block's duration.

    Leaving the block closes the listener and every relayed connection
    (a stalled one included).
    """
    proxy = FaultProxy(upstream, fault)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        try:
            yield proxy
        finally:
            nursery.cancel_scope.cancel()
