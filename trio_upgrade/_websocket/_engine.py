"""The moving parts of a WebSocket connection, on wsproto's frame layer.

How bytes move (the design in one place):

* **Reading.** At most one task reads the transport at a time: the one that
  holds the *reader role*. Any task that needs incoming data (``receive()``,
  ``ping()`` waiting for its pong, ``aclose()`` waiting for the peer's close)
  takes the role if it is free, reads 64 KiB, lets the reader parse it
  (``_reader``), and wakes the others; if the role is taken, it waits for
  that reader to finish. So without a nursery nothing reads unless the
  application does, and with one the application still reads inline,
  without a task switch per message.
* **The background reader** (only with a nursery) takes the role when no
  application task has read for :data:`HANDOVER_DELAY`, so the server's pings
  are answered and its close is seen while the application is busy elsewhere;
  it gives the role back as soon as an application task wants to read.
* **Backpressure.** Complete messages wait in a queue of ``max_queue``;
  while it is full nobody parses or reads, so a slow consumer stops reading
  the socket and TCP flow control pushes back on the server.
* **Writing.** Writers take turns; control frames wait in an outbox that
  the next writer flushes with its own frames (``_writer``).
* **Replies never hold up reading.** A server may send pings and not read
  our pongs; a reader that waited to write them would stop reading, and the
  server's data would never be delivered. So when nobody is writing, the
  reader writes the outbox only as far as the transport takes it without
  blocking (a task beside the read waits until it can), and pongs not yet
  written are bounded (``_writer.PONG_BACKLOG``; RFC 6455 §5.5.3). Only the
  close answer is awaited, within ``close_timeout``.
* **Ending.** Whatever ends the connection is recorded once; every later
  call raises from that record, and the transport is closed (``_closing``).

The parts are objects held by reference: the shared state
(``_shared.SharedState``), the writer and reader roles, each in a fast and a
plain variant chosen here when the connection is built, and the closing
handshake. :class:`WebSocketEngine` holds them, the reader role's I/O and
the background tasks.
"""

from __future__ import annotations

import trio
from wsproto.connection import ConnectionState
from wsproto.events import Ping

from .._groups import lone_errors_unwrapped
from .._sansio._limits import RECEIVE_SIZE
from .._sansio._wsproto_compat import has_extensions
from .._timeout import UpgradeTimeout
from ._closing import ClosingHandshake
from ._reader import FastReader, Reader, fast_paths_on
from ._shared import BG, FG, SharedState
from ._writer import TRANSPORT_ERRORS, FastWriter, Writer

__all__ = ["HANDOVER_DELAY", "REPLY_GRACE", "WebSocketEngine"]

#: The most one read asks for while the rest of a long frame is awaited.
BIG_RECEIVE_SIZE = 2**20

#: Seconds without an application read before the background reader takes
#: over. Long enough that an application reading in a loop (with short
#: pauses to send or compute) keeps reading inline, short enough that pings
#: are answered well within any keepalive timeout in use (seconds).
HANDOVER_DELAY = 0.1

#: Seconds a reader gives the transport to take the replies (pongs) its read
#: produced. A transport that can take them says so at the next I/O poll,
#: far sooner; one that cannot costs a read this much delay, never more.
REPLY_GRACE = 0.001


def _abort_sleep(_: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.SUCCEEDED


class WebSocketEngine:
    """The parts of one connection and the reader role's I/O; see the
    module docstring. :class:`~trio_upgrade.WebSocketConnection` holds one."""

    __slots__ = (
        "_background",
        "_fg_read_at",
        "_last_recv",
        "_take",
        "closing",
        "reader",
        "state",
        "writer",
    )

    def __init__(self, state: SharedState, *, buffered: bool) -> None:
        """``buffered``: wsproto holds bytes that came after the 101."""
        self.state = state
        # The fast paths only without an extension in force (their frames
        # are wsproto's only then), and only if the switch and the probes
        # allow them, read now.
        fast = fast_paths_on() and not has_extensions(state.ws)
        writer = self.writer = FastWriter(state) if fast else Writer(state)
        closing = self.closing = ClosingHandshake(state, writer)
        kind = FastReader if fast else Reader
        reader = self.reader = kind(state, writer, closing, buffered=buffered)
        self._take = reader.take  # bound once: called for every read
        self._background = False
        self._fg_read_at = self._last_recv = 0.0

    # -- reading -------------------------------------------------------

    async def progress(self, role: int = FG) -> None:
        """Move incoming data along once, or wait for the task that does."""
        state = self.state
        if self.reader.backlog and not state.queue_full():
            await trio.lowlevel.checkpoint()
            if not self.reader.backlog or state.queue_full():
                return  # another task parsed meanwhile: the caller looks again
            self.reader.resume()
            state.notify()
            await self._after_parsing()
        elif state.reader or state.eof or state.must_close or state.queue_full():
            # Someone else reads, or nothing more will be read (the task that
            # ended the connection closes it and wakes us), or no room.
            await state.wait()
        elif self.writer.outbox and not self.writer.sending:
            await self._read_answering(role)
        else:
            await self._read(role)

    async def _after_parsing(self) -> None:
        """Close if what was parsed ended the connection; else send the
        replies it produced if the transport takes them at once (else they
        wait: the next read, or writer, sends them)."""
        if self.state.must_close:
            await self.closing.settle()
        elif self.writer.outbox and not self.writer.sending:
            brief = trio.CancelScope(deadline=trio.current_time() + REPLY_GRACE)
            await self.writer.answer(brief)

    async def _read_answering(self, role: int) -> None:
        """:meth:`_read`, while the outbox goes out beside it.

        Frames wait for a writer and nobody holds the turn: a task beside
        the read writes them as soon as the transport may take them without
        blocking (a server that does not read for a while, then waits for
        its pong, gets it), and gives up when the read is done; the frames
        then wait for the next read or writer.
        """
        self.state.reader = role  # taken before anything yields
        waiting = trio.CancelScope()
        with lone_errors_unwrapped():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.writer.answer, waiting)
                await self._read(role, waiting)
        if self.writer.outbox or self.state.must_close:
            await self._after_parsing()

    # Ctrl-C here (between the read and the parsing) would lose bytes and
    # misparse the rest, the goodbye included: it waits for the next wait.
    @trio.lowlevel.enable_ki_protection
    async def _read(self, role: int, answering: trio.CancelScope | None = None) -> None:
        """Read once from the transport and process what came.

        The caller checked that the reader role is free and there is room.
        ``answering``: the scope of the task beside the read that writes the
        outbox (:meth:`_read_answering`), cancelled once the read is done;
        the caller then does what follows parsing.
        """
        state = self.state
        state.reader = role
        long = self.reader.long
        size = RECEIVE_SIZE
        if long is not None and long.need > RECEIVE_SIZE:
            # The rest of a long frame: fewer, larger reads.
            size = min(long.need, BIG_RECEIVE_SIZE)
        try:
            io = state.io
            if io.sock is not None:
                data = await io.receive_some(size)
            else:
                data = await state.stream.receive_some(size)
        except TRANSPORT_ERRORS as exc:
            self._release_reader(role)
            state.lost(exc)
        except BaseException:
            self._release_reader(role)
            # Cancelled: a task waiting for this read (a going-away close)
            # must take the role itself.
            state.notify()
            raise
        else:
            self._release_reader(role)
            # No checkpoint from here to parsing: bytes are parsed in the
            # order they were read even if another task reads next. They are
            # parsed even if another task ended the connection while they
            # came (a send that failed, the keepalive): they arrived first.
            if not data:
                state.lost(None)
            elif state.ws.state is not ConnectionState.CLOSED:
                if long is not None:
                    self.reader.take_long(long, data)
                else:
                    self._take(data)
        state.notify()
        if answering is not None:
            answering.cancel()  # _read_answering goes on once it is done
        elif self.writer.outbox or state.must_close:
            await self._after_parsing()

    def _release_reader(self, role: int) -> None:
        state = self.state
        state.reader = 0
        if not self._background:
            return  # the times below are read by the background tasks only
        now = trio.current_time()
        self._last_recv = now
        traffic = state.traffic
        if traffic is not None:  # the keepalive awaits a sign of life
            state.traffic = None
            traffic.set()
        if role == FG:
            self._fg_read_at = now
            state.wake_bg()

    # -- background tasks (with a nursery only) ------------------------

    def start_background(self, nursery: trio.Nursery) -> None:
        """Run the background reader, and keepalive pings, in ``nursery``.

        The tasks end when the connection closes; errors they meet end the
        connection and reach the application through its next call.
        """
        self._background = True
        self._last_recv = self._fg_read_at = trio.current_time()
        nursery.start_soon(self._background_reader)
        if self.state.settings.ping_interval is not None:
            nursery.start_soon(self._keepalive)

    # They hold no cancel scope of their own (a scope per task costs more
    # memory than the rest of an idle connection's state): closing the
    # connection wakes them and they return.

    async def _background_reader(self) -> None:
        state = self.state
        writer = self.writer
        stream = state.stream
        # An idle socket is waited on here, not in receive_some(): on
        # Pythons before 3.11 every frame of a suspended task's stack is an
        # object of its own, and this stack is most of an idle connection.
        sock = stream.socket if type(stream) is trio.SocketStream else None
        try:
            while not state.eof:
                if state.reader or state.queue_full() or state.local_close:
                    if (
                        writer.outbox
                        and not writer.sending
                        and not state.reader
                        and not state.local_close
                    ):
                        # No room, so no read, but pongs wait: this task may
                        # block on them, as nobody else would write them.
                        await writer.answer(trio.CancelScope())
                        continue
                    await state.bg_wait()
                    continue
                resume = self._fg_read_at + HANDOVER_DELAY
                if trio.current_time() < resume:
                    # Woken early (cancelled) when the connection closes, so
                    # the caller's nursery is not held up until then.
                    with trio.CancelScope(deadline=resume) as state.bg_scope:
                        await trio.lowlevel.wait_task_rescheduled(_abort_sleep)
                    state.bg_scope = None
                    continue
                if sock is not None and not (
                    self.reader.backlog or (writer.outbox and not writer.sending)
                ):
                    # Hold the reader role until the socket has data, or ends.
                    state.reader = BG
                    try:
                        await trio.lowlevel.wait_readable(sock)
                    except TRANSPORT_ERRORS:
                        pass  # the read below meets the error, or the end
                    finally:
                        state.reader = 0
                    if state.transport_closed:
                        continue
                await self.progress(BG)
                if state.fg_waiting:
                    # An application task wants data: let it read itself.
                    self._fg_read_at = trio.current_time()
        finally:
            # Cancelled (the nursery ends) while holding the reader role: a
            # task that waits for it (a going-away close) reads itself.
            state.notify()

    async def _keepalive(self) -> None:
        state = self.state
        interval = state.settings.ping_interval
        timeout = state.settings.ping_timeout
        assert interval is not None
        while not state.eof:
            due = self._last_recv + interval
            if trio.current_time() < due:
                # Woken early (cancelled) when the connection closes.
                with trio.CancelScope(deadline=due) as state.ka_scope:
                    # trio.sleep_forever(), one frame less (see above)
                    await trio.lowlevel.wait_task_rescheduled(_abort_sleep)
                continue
            if state.ws.state is not ConnectionState.OPEN or state.local_close:
                return
            traffic = state.traffic = trio.Event()
            self.writer.outbox += state.ws.send(Ping(payload=b"keepalive"))
            await self.writer.flush_control()
            # Any incoming data, not only the pong, proves the peer alive.
            with trio.move_on_after(timeout if timeout is not None else interval):
                await traffic.wait()
            if timeout is not None and not traffic.is_set() and not state.eof:
                self.closing.keepalive_failed(
                    timeout, UpgradeTimeout("keepalive", timeout)
                )
                await self.closing.settle()
                return
