"""Writing an HTTP/2 connection's bytes: coalesced, and safe to cancel.

Frames are queued in h2 by any task; whichever task flushes and finds nobody
writing becomes the *sender* and writes everything queued, in as few writes
as the socket takes, until nothing is left. The others leave their frames to
it (or, for back-pressure, wait until it is done).

A write cut short would leave half a frame on the wire and the connection
unusable, so a cancelled sender must never stop in the middle of one. On a
plain socket (h2c is cleartext) each write is a ``socket.send()``, which
Trio cancels only before anything was written: the sender stops between
writes and what is left stays in :attr:`Writer.pending` for the next sender,
frame boundaries intact. On other streams (TLS) ``send_all`` is the only
primitive; cancelled in the middle, the connection is given up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

__all__ = ["Writer"]


class Writer:
    """The sender role of one connection.

    Args:
        transport: where the bytes go.
        source: returns (and forgets) the bytes h2 has queued.
        on_error: called with the exception when a write fails or is cut
            short; it must mark the connection failed.
        on_abandon: called when a sender stops (cancelled) with bytes
            possibly left: someone else must take over.
    """

    def __init__(
        self,
        transport: trio.abc.Stream,
        source: Callable[[], bytes],
        on_error: Callable[[BaseException], None],
        on_abandon: Callable[[], None],
    ) -> None:
        self._transport = transport
        self._source = source
        self._on_error = on_error
        self._on_abandon = on_abandon
        #: Bytes taken from h2 but not written yet (after a cancelled send).
        self.pending = bytearray()
        self.sending = False
        self._done = trio.Event()
        self._send: Callable[[memoryview], Awaitable[int]] | None = None
        if isinstance(transport, trio.SocketStream):
            self._send = transport.socket.send

    async def wait_idle(self) -> None:
        """Wait until the current sender (if any) is done."""
        while self.sending:
            await self._done.wait()

    async def flush(self) -> None:
        """Write everything queued; the caller must have checked ``sending``.

        Raises:
            trio.Cancelled: between writes (nothing lost) or, on a stream
                other than a socket, in the middle of one (after
                ``on_error``).
            trio.BrokenResourceError, OSError: the write failed (after
                ``on_error``).
        """
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
                        self._on_error(exc)  # in the middle of send_all
                    raise
                except BaseException as exc:
                    self._on_error(exc)
                    raise
        finally:
            self.sending = False
            done, self._done = self._done, trio.Event()
            done.set()
            if not emptied:
                self._on_abandon()

    async def _write(self) -> None:
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

    def take_all(self) -> bytes:
        """Everything not written yet, queued or pending (to send at the end)."""
        data = bytes(self.pending) + self._source()
        self.pending.clear()
        return data
