"""The writer role of an HTTP/2 connection: coalesced, and safe to cancel.

Frames are queued in h2 by any task; whichever task flushes and finds nobody
writing becomes the *sender* and writes everything queued, in as few writes
as the socket takes, until nothing is left. The others leave their frames to
it (or, for back-pressure, wait until it is done).

A write cut short would leave half a frame on the wire and the connection
unusable, so a cancelled sender must never stop in the middle of one. On a
plain socket (h2c is cleartext) each write is a ``socket.send()``, which
Trio cancels only before anything was written: the sender stops between
writes and what is left stays in :attr:`H2Writer.pending` for the next sender,
frame boundaries intact. On other streams (TLS) ``send_all`` is the only
primitive; cancelled in the middle, the connection is given up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from .._sansio._errors import ConnectionClosed
from .._transport._fastio import ConnectionIO
from ._state import H2State, closed_error

__all__ = ["H2Writer"]


class H2Writer:
    """The sender role of one connection.

    Args:
        transport: where the bytes go.
        state: the connection's state: its h2 queues the bytes, and a
            write that fails marks it failed.
    """

    __slots__ = (
        "_done",
        "_io",
        "_send",
        "_sock",
        "_source",
        "_state",
        "_transport",
        "pending",
        "sending",
    )

    def __init__(
        self, transport: trio.abc.Stream, state: H2State, io: ConnectionIO
    ) -> None:
        self._transport = transport
        self._io = io
        # The socket under a plain SocketStream: written without a pass of
        # the run loop when it takes bytes at once (_transport/_fastio.py).
        self._sock = io.sock
        self._state = state
        self._source = state.h2.data_to_send
        #: Bytes taken from h2 but not written yet (after a cancelled send).
        self.pending = bytearray()
        self.sending = False
        # Set when the current sender is done; made only when a task waits
        # for that (back-pressure), not for every write.
        self._done: trio.Event | None = None
        self._send: Callable[[memoryview], Awaitable[int]] | None = None
        if isinstance(transport, trio.SocketStream):
            self._send = transport.socket.send

    async def flush(self, *, wait: bool = True) -> None:
        """Write everything h2 has queued, or leave it to the current sender.

        With ``wait``, return only once the bytes queued before the call were
        written (back-pressure for uploads). A cancelled write does not
        break the connection on a socket (see the module docstring).

        Raises:
            ConnectionClosed, ProtocolError, trio.ClosedResourceError: with
                ``wait``, the connection failed (and the write with it).
        """
        if self.sending:
            if not wait:
                return
            while self.sending:
                if self._done is None:
                    self._done = trio.Event()
                await self._done.wait()
        state = self._state
        if state.error is not None:
            # Nothing can be written any more; only a caller that needs its
            # bytes sent (an upload) hears about it here, the others when
            # they next wait.
            if wait and not state.closed_locally:
                raise state.error()
            return
        try:
            await self._write_queued()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            if wait:
                raise state.failure() from exc

    async def _write_queued(self) -> None:
        # Raises trio.Cancelled between writes (nothing lost) or, on a
        # stream other than a socket, in the middle of one (after failing
        # the connection); BrokenResourceError, OSError: the write failed
        # (the connection failed with it).
        assert not self.sending
        self.sending = True
        emptied = False
        try:
            while True:
                # Cancelled here, nothing is lost: the bytes are still queued.
                await trio.lowlevel.checkpoint_if_cancelled()
                if not self.pending:
                    self.pending += self._source()
                    if not self.pending:
                        emptied = True
                        return
                try:
                    await self._write()
                except trio.Cancelled as exc:
                    if self._send is None:
                        self._failed(exc)  # in the middle of send_all
                    raise
                except BaseException as exc:
                    self._failed(exc)
                    raise
        finally:
            self.sending = False
            done, self._done = self._done, None
            if done is not None:
                done.set()
            if not emptied and self._state.error is None:
                # A sender was cancelled between writes: frames other tasks
                # queued (and left to it) may still be waiting. Have the
                # reader, or a waiting task, send them.
                self._state.kick()

    # Ctrl-C between a send and taking its bytes off ``pending`` would send
    # them twice; protected, it is raised at the next wait instead.
    @trio.lowlevel.enable_ki_protection
    async def _write(self) -> None:
        sock = self._sock
        if sock is not None:
            # The socket takes what it can at once, with no wait and nothing
            # to cancel; a schedule point only if none was made in the last
            # millisecond. Full, Trio's send() below waits for room.
            try:
                sent = sock.send(self.pending)
            except BlockingIOError:
                pass
            else:
                del self.pending[:sent]
                io = self._io
                if io.due():
                    await io.schedule_point()
                return
        if self._send is not None:
            # One send(): it writes some bytes, or raises (cancelled, broken)
            # having written none, so pending stays exact.
            with memoryview(self.pending) as view:
                sent = await self._send(view)
            del self.pending[:sent]
        else:
            data = bytes(self.pending)
            await self._transport.send_all(data)
            self.pending.clear()

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, trio.Cancelled):
            self._state.fail(
                lambda: ConnectionClosed(
                    None,
                    "a write was cancelled part-way, which breaks HTTP/2 framing",
                    normal=False,
                )
            )
        else:
            lost(self._state, exc)

    def take_all(self) -> bytes:
        """Everything not written yet, queued or pending (to send at the end)."""
        data = bytes(self.pending) + self._source()
        self.pending.clear()
        return data


def lost(state: H2State, exc: BaseException) -> None:
    """The transport broke (``exc``): fail the connection with why."""
    if state.closed_locally:
        state.fail(closed_error)
        return
    detail = str(exc) or type(exc).__name__
    state.fail(
        lambda: ConnectionClosed(None, f"connection lost: {detail}", normal=False)
    )
