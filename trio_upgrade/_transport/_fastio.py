"""The per-message I/O of a connection, with fewer trips through Trio's run loop.

Every ``send_all`` and ``receive_some`` of a ``trio.SocketStream`` is a
*checkpoint*: a cancel point (a cancelled call raises before it does
anything) and a schedule point (the task goes back to the run loop, which
runs its other tasks and polls the operating system, before it continues),
even when the socket took or had the bytes at once. The cancel point is a
test of a flag. The schedule point is a whole pass of the run loop, with an
``epoll_wait`` or its equivalent, and on a busy connection it costs more than
the system call and the framing together: it is most of the gap between a
Trio WebSocket client and the asyncio ones, whose ``send()`` returns without
a pass of the event loop when the transport took the bytes.

:class:`ConnectionIO` keeps every cancel point and makes the schedule point
of a call that did not have to wait only when the connection made none in
the last :data:`SLICE` (a millisecond). That is the idea of Trio's own
issue #1757, "Skip schedule points if we've done one recently enough"
(0.5 to 5 ms proposed there, as a pure optimisation of Trio's semantics): a
task that sends or receives in a loop still lets every other task run at
least once a millisecond, and a call that has to wait (the socket is full,
or has nothing) yields as before. Cancellation is exactly Trio's: checked
before the call does anything, never after it did (a send whose bytes the
socket took returns normally).

For a ``trio.SocketStream`` the calls go to the socket object underneath
(:func:`raw_socket`, the one access to Trio's private state, with checks,
and ``trio.SocketStream`` itself whenever they do not hold or the call would
block). Any other stream (TLS, a test's stream in memory) has no socket
path (``ConnectionIO.sock`` is ``None``): the hot paths then call its own
``send_all`` / ``receive_some`` directly, which yield at every call, and
only a WebSocket ``receive()`` of a message already read uses the slice.
``TRIO_UPGRADE_NO_SPEEDUPS=1`` turns the socket path off. Errors are
Trio's: ``trio.BrokenResourceError`` for a broken connection (the
``OSError`` as its cause), ``trio.ClosedResourceError`` for a socket closed
here.
"""

from __future__ import annotations

import errno
import socket
from time import perf_counter

import trio

from .._sansio import _speedups

__all__ = ["SLICE", "ConnectionIO", "raw_socket", "stream_error"]

#: Seconds a connection's calls may go without a schedule point while none
#: of them had to wait (Trio issue #1757 proposes 0.5 to 5 ms).
SLICE = 0.001


def raw_socket(stream: trio.abc.Stream) -> socket.socket | None:
    """The standard-library socket under a plain ``trio.SocketStream``.

    ``None`` for any other stream, when ``TRIO_UPGRADE_NO_SPEEDUPS`` is
    set, and when Trio's socket does not hold one as this module expects
    (a non-blocking ``socket.socket`` with the same file descriptor, held
    as ``_sock``, which every Trio release since 0.2 does): the caller then
    uses the stream's public methods.
    """
    if not _speedups.ENABLED or type(stream) is not trio.SocketStream:
        return None
    trio_socket = stream.socket
    sock = getattr(trio_socket, "_sock", None)
    if not isinstance(sock, socket.socket):
        return None
    try:
        if sock.fileno() != trio_socket.fileno() or sock.gettimeout() != 0.0:
            return None
    except OSError:  # pragma: no cover - closed meanwhile
        return None
    return sock


def stream_error(exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    """The error ``trio.SocketStream`` raises for ``exc``."""
    if exc.errno == errno.EBADF:
        return trio.ClosedResourceError("this socket was already closed")
    return trio.BrokenResourceError(f"socket connection broken: {exc}")


class ConnectionIO:
    """One connection's ``send_all``, ``receive_some`` and schedule points.

    ``send_all`` expects its caller to have passed a cancel point
    (``trio.lowlevel.checkpoint_if_cancelled()``) with nothing awaited
    since, as the WebSocket writer does so that a cancelled send never cuts
    a frame; ``receive_some`` is a cancel point itself.
    """

    __slots__ = ("_stream", "_yielded_at", "sock")

    def __init__(self, stream: trio.abc.Stream, *, after_schedule_point: bool) -> None:
        self._stream = stream
        #: The socket path's socket, or ``None``: then :meth:`send_all` and
        #: :meth:`receive_some` are the stream's own, which a caller on a
        #: hot path calls directly (one coroutine fewer per call).
        self.sock = raw_socket(stream)
        # ``after_schedule_point``: the caller has just passed one (a
        # WebSocket connection is built right after the read of its 101;
        # the handshake's request follows the connect), so the slice starts
        # now. Otherwise the first call that need not wait makes one.
        self._yielded_at = perf_counter() if after_schedule_point else 0.0

    def due(self) -> bool:
        """Whether this connection made no schedule point in the last
        :data:`SLICE`: the next call that need not wait must make one
        (:meth:`schedule_point`)."""
        return perf_counter() - self._yielded_at >= SLICE

    async def schedule_point(self) -> None:
        """Yield to the run loop (not a cancel point: the caller has passed
        one), and note when."""
        await trio.lowlevel.cancel_shielded_checkpoint()
        self._yielded_at = perf_counter()

    async def send_all(self, data: bytes | bytearray) -> None:
        """Write all of ``data`` (``trio.abc.SendStream.send_all``)."""
        sock = self.sock
        if sock is not None:
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise stream_error(exc) from exc
            if sent == len(data):
                # Inline, as below: this runs for every message.
                if perf_counter() - self._yielded_at >= SLICE:
                    await self.schedule_point()
                return
            # What is left waits for room: Trio's own loop, which yields.
            await self._stream.send_all(memoryview(data)[sent:])
        else:
            await self._stream.send_all(data)
        self._yielded_at = perf_counter()

    async def receive_some(self, max_bytes: int) -> bytes | bytearray:
        """Read up to ``max_bytes`` (``trio.abc.ReceiveStream.receive_some``)."""
        sock = self.sock
        if sock is not None:
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                data = sock.recv(max_bytes)
            except BlockingIOError:
                pass  # nothing yet: wait below, as Trio does
            except OSError as exc:
                raise stream_error(exc) from exc
            else:
                if perf_counter() - self._yielded_at >= SLICE:
                    await self.schedule_point()
                return data
        received = await self._stream.receive_some(max_bytes)
        self._yielded_at = perf_counter()
        return received
