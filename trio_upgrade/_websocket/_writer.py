"""The writer role: turns to write, the outbox of control frames, encoding.

One task at a time holds the turn to write, so frames of concurrent
messages never interleave. Everything that waits to be written is in the
outbox, in order: control frames the reader must send (pongs, the close
answer), pings, our close frame, and the messages of ``send()`` calls that
found a write in progress (write coalescing). The task that holds the turn
writes its own frames, then, each time a ``send_all`` returns, everything
queued meanwhile in one more ``send_all``, until the outbox is empty; so
``N`` senders behind a slow write cost one more write, not ``N``. Each
take of the outbox is a *batch*, numbered: a queued sender waits until its
batch was written (``written``), and is told if it never will be.

Bounds: messages and control frames queue while they fit in
``write_buffer_limit`` bytes (one always fits in an empty outbox); past it,
a sender waits, queueing nothing, until the turn's holder takes the outbox.
Pongs lead the outbox, ahead of the frames that wait (never inside a
message: those are queued whole), and are bounded apart
(:data:`PONG_BACKLOG`), so a server's pings cannot fill the room of the
application's messages nor be held up by them.

Two variants, chosen when the connection is built: :class:`Writer` encodes
with wsproto's ``send``; :class:`FastWriter` builds unfragmented data
frames and our close frame itself when that gives wsproto's bytes
(``_sansio._ws_frames``), moving wsproto's state through
``_sansio._wsproto_compat``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

import trio
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, TextMessage

from .._sansio._ws_frames import build_frame
from .._sansio._wsproto_compat import (
    can_build_frames,
    mark_close_answered,
    mark_closing,
)
from ._shared import SharedState

__all__ = ["PONG_BACKLOG", "TRANSPORT_ERRORS", "FastWriter", "Writer"]

#: Bytes of pongs that may wait for the transport. A burst of pings that
#: arrives in one read is answered ping for ping (what peers and test suites
#: expect, 15 pongs of the largest size); past this the server is not
#: reading its pongs, and only the one for the latest ping is kept, which
#: RFC 6455 §5.5.3 allows. It bounds what a ping flood can make us hold.
PONG_BACKLOG = 2048

TRANSPORT_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)

_pack_code = struct.Struct("!H").pack


def _split(message: str | bytes, size: int) -> Sequence[str | bytes]:
    """Cut a message into fragments of at most ``size`` bytes of payload."""
    if isinstance(message, bytes):
        return [message[i : i + size] for i in range(0, len(message), size)]
    if message.isascii():
        return [message[i : i + size] for i in range(0, len(message), size)]
    data = message.encode("utf-8")
    parts: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + size, len(data))
        # Cut between code points: text frames carry whole characters here.
        while end < len(data) and end > start and data[end] & 0xC0 == 0x80:
            end -= 1
        if end == start:  # size smaller than one character: take it whole
            end = start + 1
            while end < len(data) and data[end] & 0xC0 == 0x80:
                end += 1
        parts.append(data[start:end].decode("utf-8"))
        start = end
    return parts


def _send_close(ws: Connection, fast: bool, code: int, reason: str) -> bytes:
    """The close frame for ``code`` and ``reason`` (checked by the caller).

    ``fast`` (no extension in force): the frame is built here as data
    frames are, and wsproto is moved to the state its own send would leave
    it in; wsproto's path costs about as much again, on every connection's
    close. Otherwise wsproto builds it.
    """
    if fast:
        # wsproto would map local-only codes (1005, 1006, 1015) to 1000 and
        # truncate the reason at 123 bytes: neither can reach here.
        frame = build_frame(8, _pack_code(code) + reason.encode("utf-8"))
        mark_closing(ws)
        return bytes(frame)
    return ws.send(CloseConnection(code, reason))


class Writer:
    """Turns to write and the outbox; frames built by wsproto."""

    __slots__ = (
        "_lot",
        "_queued",
        "_shared",
        "outbox",
        "pong_end",
        "sending",
        "taken",
        "written",
    )

    def __init__(self, state: SharedState) -> None:
        self._shared = state
        self.outbox = bytearray()
        self.pong_end = 0  # the outbox starts with this many bytes of pongs
        self.sending = False  # a task holds the turn
        self.taken = 0  # batches taken from the outbox so far
        self.written = 0  # the last batch written whole
        self._lot: trio.lowlevel.ParkingLot | None = None  # drain() waits
        # send() calls whose frames wait for their batch, or for room.
        self._queued: trio.lowlevel.ParkingLot | None = None

    # -- frames --------------------------------------------------------

    def encode(self, message: str | bytes) -> bytes | bytearray:
        """The frames of one message (several with ``max_fragment_size``)."""
        ws = self._shared.ws
        size = self._shared.settings.max_fragment_size
        if (
            size is None
            or len(message) <= size // 4
            or (isinstance(message, bytes) and len(message) <= size)
        ):
            if isinstance(message, str):
                return ws.send(TextMessage(data=message))
            return ws.send(BytesMessage(data=message))
        parts = _split(message, size)
        out = bytearray()
        last = len(parts) - 1
        for index, part in enumerate(parts):
            event: TextMessage | BytesMessage
            if isinstance(part, str):
                event = TextMessage(data=part, message_finished=index == last)
            else:
                event = BytesMessage(data=part, message_finished=index == last)
            out += ws.send(event)
        return bytes(out)

    def close_frame(self, code: int, reason: str) -> bytes:
        """Our close frame; wsproto moves to LOCAL_CLOSING."""
        return _send_close(self._shared.ws, False, code, reason)

    def close_answer(self, event: CloseConnection, payload: bytes | None) -> None:
        """Queue the answer to the server's close frame (REMOTE_CLOSING).

        ``payload``: the close frame's payload when the fast reader took it.
        """
        self.outbox += self._shared.ws.send(event.response())

    def queue_pong(self, pong: bytes) -> None:
        """Put a pong frame in the outbox, after the pongs already there.

        Pongs lead the outbox (a close frame, the last frame, can only be
        queued once no more pings are answered). Past :data:`PONG_BACKLOG`
        the waiting pongs are dropped for this one, the latest.
        """
        outbox = self.outbox
        end = self.pong_end
        if end + len(pong) > PONG_BACKLOG:
            del outbox[:end]
            end = 0
        outbox[end:end] = pong
        self.pong_end = end + len(pong)

    def take_outbox(self) -> bytes:
        """Everything in the outbox, which is left empty: the next batch.

        The caller holds the turn and writes it at once (:meth:`write`).
        """
        data = bytes(self.outbox)
        self.outbox.clear()
        self.pong_end = 0
        self.taken += 1
        self._wake()  # room again for senders that wait for it
        return data

    def _wake(self) -> None:
        queued = self._queued
        if queued:
            queued.unpark_all()

    # -- turns ---------------------------------------------------------

    async def acquire(self) -> None:
        """Take the writer's turn (FIFO); not a checkpoint when uncontended."""
        if not self.sending:
            self.sending = True
            return
        lot = self._lot
        if lot is None:
            lot = self._lot = trio.lowlevel.ParkingLot()
        await lot.park()  # the releasing writer hands the turn over

    def release(self) -> None:
        lot = self._lot
        if lot:
            lot.unpark()  # the turn goes to drain(), which writes the rest
        else:
            self.sending = False
            # Queued frames the holder left (cancelled): a waiting sender
            # takes the turn and writes them. Inline: every send comes here.
            queued = self._queued
            if queued is not None and queued:
                queued.unpark_all()

    # Ctrl-C (KeyboardInterrupt) may strike at any bytecode; here it would
    # leave us not knowing whether the frames went out, and the connection
    # would be aborted. Protected, it is raised at the next wait instead:
    # before the first byte, or, on a full socket, like a cancellation.
    @trio.lowlevel.enable_ki_protection
    async def write(self, data: bytes | bytearray) -> bool:
        """Write frames; ``False`` when the transport failed (recorded).

        The caller has checked for cancellation with nothing awaited since
        (``checkpoint_if_cancelled``), so ``send_all`` cannot be cancelled
        before its first byte and a cancelled call never loses the frames.
        """
        state = self._shared
        try:
            io = state.io
            if io.sock is not None:
                # A schedule point only if none was made in the last
                # millisecond, when the socket takes everything at once.
                await io.send_all(data)
            else:
                await state.stream.send_all(data)
        except TRANSPORT_ERRORS as exc:
            state.lost(exc)
            self._wake()  # queued senders: their frames will never go
            await state.shut()
            return False
        except BaseException:
            # Interrupted midway (cancelled): a frame may be cut short and
            # nothing can follow it. The connection is over.
            state.set_closure(1006, "a write was interrupted")
            self._wake()
            await state.shut()
            raise
        # Everything taken so far is written: one write at a time (the turn).
        self.written = self.taken
        queued = self._queued
        if queued is not None and queued:  # inline: every send comes here
            queued.unpark_all()
        return True

    async def flush_outbox(self) -> bool:
        """Write the outbox until empty; the caller holds the turn."""
        while self.outbox:
            # Cancelled here, the frames stay in the outbox for the next
            # writer (or aclose()); once taken, they are written or the
            # connection is aborted.
            await trio.lowlevel.checkpoint_if_cancelled()
            data = self.take_outbox()
            if not await self.write(data):
                return False
        return True

    async def flush_queued(self) -> bool:
        """After a ``send()``'s own write: write what was queued meanwhile.

        The caller holds the turn. ``False`` when the transport failed.
        Cancelled, it stops between writes without raising (the caller's
        message was written): :meth:`release` hands the rest to a sender
        that waits for it, or it waits in the outbox for the next writer.
        """
        while self.outbox and trio.current_effective_deadline() != -math.inf:
            if not await self.write(self.take_outbox()):
                return False
        return True

    async def queue(
        self, message: str | bytes, closed: Callable[[], Exception]
    ) -> bool:
        """``send()`` found a write in progress: queue behind it.

        Waits for room (``write_buffer_limit``) queueing nothing, so
        cancelled meanwhile nothing is sent; then encodes and queues the
        message's frames, from which point they will be written, and waits
        until their batch was written. Returns ``False``, having queued
        nothing, when the turn is free (the writer left): the caller takes
        it at once and writes itself.

        Raises:
            closed(): the connection ended before the frames were written.
            trio.Cancelled: cancelled while waiting; once the frames are
                queued they are written all the same.
        """
        state = self._shared
        limit = state.settings.write_buffer_limit
        # Counted by its payload (its frames' headers add at most 14 bytes).
        size = (
            len(message)
            if isinstance(message, bytes) or message.isascii()
            else len(message.encode("utf-8"))
        )
        lot = self._queued
        if lot is None:
            lot = self._queued = trio.lowlevel.ParkingLot()
        while True:
            if state.closure is not None or state.local_close:
                await trio.lowlevel.checkpoint()
                raise closed()
            if not self.sending:
                return False
            waiting = len(self.outbox) - self.pong_end
            if not waiting or limit is None or waiting + size <= limit:
                break
            await lot.park()  # woken when the outbox is taken
        # As send(): a cancelled call must not touch the compressor.
        await trio.lowlevel.checkpoint_if_cancelled()
        self.outbox += self.encode(message)
        batch = self.taken + 1  # the next take carries these frames
        while self.written < batch:
            if state.transport_closed:
                raise closed()
            if not await self._take_over(closed):
                await lot.park()  # woken after each write, and on release
        return True

    async def _take_over(self, closed: Callable[[], Exception]) -> bool:
        """Write the outbox if nobody holds the turn (its holder left the
        frames, cancelled); ``False`` if somebody does."""
        if self.sending:
            return False
        self.sending = True
        try:
            if not await self.flush_outbox():
                raise closed()
        finally:
            self.release()
        return True

    async def flush_control(self) -> None:
        """Write pending control frames now, unless a writer will."""
        if self.sending or not self.outbox:
            return
        self.sending = True
        try:
            await self.flush_outbox()
        finally:
            self.release()

    async def drain(self) -> None:
        """Wait for our turn, so everything queued before is written."""
        await self.acquire()
        try:
            await self.flush_outbox()
        finally:
            self.release()

    async def answer(self, waiting: trio.CancelScope) -> None:
        """Write the outbox once the transport may take it without blocking.

        Gives up, writing nothing, when ``waiting`` is cancelled (or its
        deadline passes) first; once the transport is ready, the write is
        not cancelled by it.
        """
        if self.sending or not self.outbox:
            # A writer took the turn meanwhile, and the frames with it.
            await trio.lowlevel.checkpoint()
            return
        # The turn covers the wait too: wait_send_all_might_not_block() and
        # send_all() may not overlap on a Trio stream.
        self.sending = True
        state = self._shared
        ready = False
        try:
            with waiting:
                await state.stream.wait_send_all_might_not_block()
                ready = True
            if ready:
                await self.flush_outbox()
        except TRANSPORT_ERRORS as exc:
            state.lost(exc)
            await state.shut()
        finally:
            self.release()


class FastWriter(Writer):
    """:class:`Writer` that builds plain frames itself (no extension)."""

    __slots__ = ()

    def encode(self, message: str | bytes) -> bytes | bytearray:
        state = self._shared
        size = state.settings.max_fragment_size
        if (
            size is None
            or len(message) <= size // 4
            or (isinstance(message, bytes) and len(message) <= size)
        ) and can_build_frames(state.ws):
            # What wsproto would send, and its state stays as it is.
            if isinstance(message, str):
                return build_frame(1, message.encode("utf-8"))
            return build_frame(2, message)
        return super().encode(message)

    def close_frame(self, code: int, reason: str) -> bytes:
        return _send_close(self._shared.ws, True, code, reason)

    def close_answer(self, event: CloseConnection, payload: bytes | None) -> None:
        if payload is None:
            super().close_answer(event, payload)
            return
        # wsproto's answer echoes the code and the (valid, at most 123
        # bytes) reason: the payload as received, or none for 1005. Its
        # send moves REMOTE_CLOSING to CLOSED.
        self.outbox += build_frame(8, payload)
        mark_close_answered(self._shared.ws)
