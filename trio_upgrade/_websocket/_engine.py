"""The moving parts of a WebSocket connection, on wsproto's frame layer.

How bytes move (the design in one place):

* **Reading.** At most one task reads the transport at a time: the one that
  holds the *reader role*. Any task that needs incoming data (``receive()``,
  ``ping()`` waiting for its pong, ``aclose()`` waiting for the peer's close)
  takes the role if it is free, reads 64 KiB, lets wsproto parse it, and
  wakes the others; if the role is taken, it waits for that reader to finish.
  So without a nursery nothing reads unless the application does, and with
  one the application still reads inline, without a task switch per message.
* **The background reader** (only with a nursery) takes the role when no
  application task has read for :data:`HANDOVER_DELAY`, so the server's pings
  are answered and its close is seen while the application is busy elsewhere;
  it gives the role back as soon as an application task wants to read.
* **Backpressure.** Complete messages wait in a queue of ``max_queue``;
  while it is full nobody parses or reads, so a slow consumer stops reading
  the socket and TCP flow control pushes back on the server.
* **Writing.** Writers take turns (FIFO), so frames of concurrent messages
  never interleave. Control frames the reader must send (pongs, the close
  answer) are appended to an outbox that the next writer flushes with its
  own frames: one ``send_all`` carries as many frames as are ready.
* **Replies never hold up reading.** A server may send pings and not read
  our pongs; a reader that waited to write them would stop reading, and the
  server's data would never be delivered. So when nobody is writing, the
  reader writes the outbox only as far as the transport takes it without
  blocking (a task beside the read waits until it can), and pongs not yet
  written are bounded: past :data:`PONG_BACKLOG` bytes only the latest ping
  is answered (RFC 6455 §5.5.3). Only the close answer is awaited, within
  ``close_timeout``.
* **Ending.** Whatever ends the connection (a close frame, a protocol error,
  end of stream, a keepalive timeout, ``aclose()``) is recorded once; every
  later call raises from that record, and the transport is closed.

This module holds the reader role, the writer turns, waking and the
background tasks, and the state they share (``Engine.__slots__``). Two
mixins of ``Engine`` hold the rest, each with its own concern: the receive
fast paths beside wsproto (``_fastpath``) and how the connection ends
(``_closing``). ``NORMAL_CODES`` and the wsproto checks are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import trio
from wsproto.connection import Connection, ConnectionState
from wsproto.events import CloseConnection, Message, Ping, Pong

from .._groups import lone_errors_unwrapped
from .._sansio._messages import Request, Response
from .._timeout import UpgradeTimeout
from ._closing import NORMAL_CODES, Closing, _Closure
from ._fastpath import _WSPROTO_FITS, FastPath, _LongFrame
from ._fastpath import _wsproto_close_fits as _wsproto_close_fits
from ._fastpath import _wsproto_fits as _wsproto_fits

__all__ = [
    "HANDOVER_DELAY",
    "NORMAL_CODES",
    "PONG_BACKLOG",
    "RECEIVE_SIZE",
    "ConnectionSettings",
    "Engine",
    "PingWaiter",
]

#: One read's size. 64 KiB: the most a loopback or LAN read usually yields,
#: and wsproto parses big messages several times faster in big chunks.
RECEIVE_SIZE = 65536

#: The most one read asks for while the rest of a long frame is awaited.
BIG_RECEIVE_SIZE = 2**20

#: Seconds without an application read before the background reader takes
#: over. Long enough that an application reading in a loop (with short
#: pauses to send or compute) keeps reading inline, short enough that pings
#: are answered well within any keepalive timeout in use (seconds).
HANDOVER_DELAY = 0.1

#: Bytes of pongs that may wait for the transport. A burst of pings that
#: arrives in one read is answered ping for ping (what peers and test suites
#: expect, 15 pongs of the largest size); past this the server is not
#: reading its pongs, and only the one for the latest ping is kept, which
#: RFC 6455 §5.5.3 allows. It bounds what a ping flood can make us hold.
PONG_BACKLOG = 2048

#: Seconds a reader gives the transport to take the replies (pongs) its read
#: produced. A transport that can take them says so at the next I/O poll,
#: far sooner; one that cannot costs a read this much delay, never more.
REPLY_GRACE = 0.001

_TRANSPORT_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
_FG = 1  # an application task holds the reader role
_BG = 2  # the background reader holds it


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Per-connection bounds, shared by every connection of a ``WebSocket``."""

    max_size: int | None
    max_queue: int | None
    max_fragment_size: int | None
    ping_interval: float | None
    ping_timeout: float | None


class PingWaiter:
    __slots__ = ("latency", "sent_at")

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at
        self.latency: float | None = None


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _join(parts: list[str | bytes]) -> str | bytes:
    if isinstance(parts[0], str):
        return "".join(parts)  # type: ignore[arg-type]
    return b"".join(parts)  # type: ignore[arg-type]


class Engine(FastPath, Closing):
    """The moving parts of a WebSocket connection; see the module docstring.

    :class:`~trio_upgrade.WebSocketConnection` adds the public methods.
    """

    __slots__ = (
        "_background",
        "_backlog",
        "_bg_event",
        "_close_timeout",
        "_closure",
        "_eof",
        "_extensions",
        "_fg_read_at",
        "_fg_waiting",
        "_head",
        "_ka_event",
        "_last_recv",
        "_local_close",
        "_long",
        "_must_close",
        "_outbox",
        "_parts",
        "_pings",
        "_plain",
        "_pong_end",
        "_queue",
        "_reader",
        "_receiving",
        "_request",
        "_response",
        "_send_lot",
        "_sending",
        "_settings",
        "_size",
        "_stream",
        "_subprotocol",
        "_traffic",
        "_transport_closed",
        "_waiter",
        "_ws",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        ws: Connection,
        settings: ConnectionSettings,
        *,
        close_timeout: float,
        request: Request,
        response: Response,
        subprotocol: str | None = None,
        extensions: Sequence[str] = (),
        buffered: bool = False,
    ) -> None:
        """Wrap an upgraded ``stream``; built by ``WebSocket``'s offer.

        ``ws`` is a client-side wsproto connection already holding any bytes
        that came after the 101 (``buffered`` says whether there are some).
        """
        now = trio.current_time()
        self._stream = stream
        self._ws = ws
        self._settings = settings
        self._close_timeout = close_timeout
        self._request = request
        self._response = response
        self._subprotocol = subprotocol
        self._extensions = tuple(extensions)
        self._queue: list[str | bytes] = []
        self._head = 0
        self._parts: list[str | bytes] | None = None
        self._size = 0
        self._backlog = buffered
        self._reader = 0
        self._receiving = False
        self._waiter: trio.Event | None = None
        self._fg_waiting = 0
        self._fg_read_at = now
        self._background = False
        self._bg_event: trio.Event | None = None
        self._ka_event: trio.Event | None = None
        self._last_recv = now
        self._traffic: trio.Event | None = None
        self._outbox = bytearray()
        self._pong_end = 0  # the outbox starts with this many bytes of pongs
        self._sending = False
        self._send_lot: trio.lowlevel.ParkingLot | None = None
        self._pings: dict[bytes, PingWaiter] | None = None
        self._closure: _Closure | None = None
        self._local_close = False
        self._eof = False
        self._must_close = False
        self._transport_closed = False
        # No extension in force: plain frames may skip wsproto (_frames).
        self._plain = _WSPROTO_FITS and not ws._proto.extensions
        self._long: _LongFrame | None = None

    # -- receiving -----------------------------------------------------

    def _queue_full(self) -> bool:
        limit = self._settings.max_queue
        return limit is not None and len(self._queue) - self._head >= limit

    def _pop_front(self, head: int, queue: list[str | bytes]) -> None:
        # A list and a head index: no deque (760 bytes) per idle connection,
        # and still O(1) per message however long the queue grows.
        limit = self._settings.max_queue
        was_full = limit is not None and len(queue) - head >= limit
        head += 1
        if head == len(queue):
            queue.clear()
            head = 0
        elif head >= 64 and head * 2 >= len(queue):
            del queue[:head]
            head = 0
        self._head = head
        if was_full:
            # Room again: whoever waits to read (the background reader, a
            # ping() awaiting its pong) may go on.
            self._wake_bg()
            self._notify()

    async def _progress(self, role: int = _FG) -> None:
        """Move incoming data along once, or wait for the task that does."""
        if self._backlog and not self._queue_full():
            await trio.lowlevel.checkpoint()
            if not self._backlog or self._queue_full():
                return  # another task parsed meanwhile: the caller looks again
            long = self._long
            if long is not None and not long.opcode:
                # Bytes that _take() held back while the queue was full.
                self._backlog = False
                self._long = None
                self._take(long.head)
            else:
                self._pump()
            self._notify()
            await self._after_parsing()
        elif self._reader or self._eof or self._must_close or self._queue_full():
            # Someone else reads, or nothing more will be read (the task that
            # ended the connection closes it and wakes us), or no room.
            await self._wait()
        elif self._outbox and not self._sending:
            await self._read_answering(role)
        else:
            await self._read(role)

    async def _after_parsing(self) -> None:
        """Close if what was parsed ended the connection; else send the
        replies it produced if the transport takes them at once (else they
        wait: the next read, or writer, sends them)."""
        if self._must_close:
            await self._settle()
        elif self._outbox and not self._sending:
            brief = trio.CancelScope(deadline=trio.current_time() + REPLY_GRACE)
            await self._answer(brief)

    async def _read_answering(self, role: int) -> None:
        """:meth:`_read`, while the outbox goes out beside it.

        Frames wait for a writer and nobody holds the turn: a task beside
        the read writes them as soon as the transport may take them without
        blocking (a server that does not read for a while, then waits for
        its pong, gets it), and gives up when the read is done; the frames
        then wait for the next read or writer.
        """
        self._reader = role  # taken before anything yields
        waiting = trio.CancelScope()
        with lone_errors_unwrapped():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._answer, waiting)
                await self._read(role, waiting)
        if self._outbox or self._must_close:
            await self._after_parsing()

    async def _answer(self, waiting: trio.CancelScope) -> None:
        """Write the outbox once the transport may take it without blocking.

        Gives up, writing nothing, when ``waiting`` is cancelled (or its
        deadline passes) first; once the transport is ready, the write is
        not cancelled by it.
        """
        if self._sending or not self._outbox:
            # A writer took the turn meanwhile, and the frames with it.
            await trio.lowlevel.checkpoint()
            return
        # The turn covers the wait too: wait_send_all_might_not_block() and
        # send_all() may not overlap on a Trio stream.
        self._sending = True
        ready = False
        try:
            with waiting:
                await self._stream.wait_send_all_might_not_block()
                ready = True
            if ready:
                await self._flush_outbox()
        except _TRANSPORT_ERRORS as exc:
            self._lost(exc)
            await self._close_transport(drain=False)
        finally:
            self._release_send()

    async def _read(self, role: int, answering: trio.CancelScope | None = None) -> None:
        """Read once from the transport and process what came.

        The caller checked that the reader role is free and there is room.
        ``answering``: the scope of the task beside the read that writes the
        outbox (:meth:`_read_answering`), cancelled once the read is done;
        the caller then does what follows parsing.
        """
        self._reader = role
        long = self._long
        size = RECEIVE_SIZE
        if long is not None and long.need > RECEIVE_SIZE:
            # The rest of a long frame: fewer, larger reads.
            size = min(long.need, BIG_RECEIVE_SIZE)
        try:
            data = await self._stream.receive_some(size)
        except _TRANSPORT_ERRORS as exc:
            self._release_reader(role)
            self._lost(exc)
        except BaseException:
            self._release_reader(role)
            raise
        else:
            self._release_reader(role)
            # No checkpoint from here to _pump(): bytes are parsed in the
            # order they were read even if another task reads next. They are
            # parsed even if another task ended the connection while they
            # came (a send that failed, the keepalive): they arrived first.
            if not data:
                self._lost(None)
            elif self._ws.state is not ConnectionState.CLOSED:
                if long is not None:
                    self._take_long(long, data)
                elif self._plain:
                    self._take(data)
                else:
                    # wsproto takes bytearray too (TLS reads give one).
                    self._ws.receive_data(cast(bytes, data))
                    self._pump()
        self._notify()
        if answering is not None:
            answering.cancel()  # _read_answering goes on once it is done
        elif self._outbox or self._must_close:
            await self._after_parsing()

    def _release_reader(self, role: int) -> None:
        self._reader = 0
        if not self._background:
            return  # the times below are read by the background tasks only
        now = trio.current_time()
        self._last_recv = now
        traffic = self._traffic
        if traffic is not None:  # the keepalive awaits a sign of life
            self._traffic = None
            traffic.set()
        if role == _FG:
            self._fg_read_at = now
            self._wake_bg()

    def _pump(self) -> None:
        """Turn buffered bytes into queued messages and replies.

        Stops early when the queue is full (the rest stays in wsproto's
        buffer: ``_backlog``) or the connection ended.
        """
        ws = self._ws
        queue = self._queue
        limit = self._settings.max_queue
        max_size = self._settings.max_size
        self._backlog = False
        for event in ws.events():
            if isinstance(event, Message):
                data = event.data
                size = self._size + (
                    _utf8_size(data) if isinstance(data, str) else len(data)
                )
                if max_size is not None and size > max_size:
                    self._fail(1009, f"message larger than max_size ({max_size} bytes)")
                    return
                if not event.message_finished:
                    if self._parts is None:
                        self._parts = []
                    self._parts.append(data)
                    self._size = size
                    continue
                if self._parts is not None:
                    self._parts.append(data)
                    data = _join(self._parts)
                    self._parts = None
                self._size = 0
                if self._local_close:
                    continue  # after aclose() messages are dropped
                queue.append(data)
                if limit is not None and len(queue) - self._head >= limit:
                    self._backlog = True
                    return
            elif isinstance(event, Ping):
                if ws.state is ConnectionState.OPEN:
                    self._queue_pong(ws.send(event.response()))
            elif isinstance(event, Pong):
                # wsproto 1.2 gives a bytearray (unhashable: the pings are
                # keyed by payload); later releases give bytes.
                self._got_pong(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                self._got_close(event)
                return
        # What wsproto holds now may be the header of a frame too big to wait
        # for: fail at once (1009) rather than when the payload comes.
        if max_size is not None and self._announced_past(max_size):
            self._fail(1009, f"message larger than max_size ({max_size} bytes)")

    def _queue_pong(self, pong: bytes) -> None:
        """Put a pong frame in the outbox, after the pongs already there.

        Pongs lead the outbox (a close frame, the last frame, can only be
        queued once no more pings are answered). Past :data:`PONG_BACKLOG`
        the waiting pongs are dropped for this one, the latest.
        """
        outbox = self._outbox
        end = self._pong_end
        if end + len(pong) > PONG_BACKLOG:
            del outbox[:end]
            end = 0
        outbox[end:end] = pong
        self._pong_end = end + len(pong)

    def _take_outbox(self) -> bytes:
        """Everything in the outbox, which is left empty."""
        data = bytes(self._outbox)
        self._outbox.clear()
        self._pong_end = 0
        return data

    def _got_pong(self, payload: bytes) -> None:
        pings = self._pings
        if not pings or payload not in pings:
            return
        # A pong answers its ping and every earlier one (RFC 6455 §5.5.3
        # lets a peer answer only the latest).
        now = trio.current_time()
        for key in list(pings):
            waiter = pings.pop(key)
            waiter.latency = now - waiter.sent_at
            if key == payload:
                break

    # -- sending -------------------------------------------------------

    async def _acquire_send(self) -> None:
        """Take the writer's turn (FIFO); not a checkpoint when uncontended."""
        if not self._sending:
            self._sending = True
            return
        lot = self._send_lot
        if lot is None:
            lot = self._send_lot = trio.lowlevel.ParkingLot()
        await lot.park()  # the releasing writer hands the turn over

    def _release_send(self) -> None:
        lot = self._send_lot
        if lot:
            lot.unpark()
        else:
            self._sending = False

    async def _write(self, data: bytes | bytearray) -> bool:
        """Write frames; ``False`` when the transport failed (recorded).

        The caller has checked for cancellation with nothing awaited since
        (``checkpoint_if_cancelled``), so ``send_all`` cannot be cancelled
        before its first byte and a cancelled call never loses the frames.
        """
        try:
            await self._stream.send_all(data)
        except _TRANSPORT_ERRORS as exc:
            self._lost(exc)
            await self._close_transport(drain=False)
            return False
        except BaseException:
            # Interrupted midway (cancelled): a frame may be cut short and
            # nothing can follow it. The connection is over.
            self._set_closure(1006, "a write was interrupted")
            await self._close_transport(drain=False)
            raise
        return True

    async def _flush_outbox(self) -> bool:
        """Write the outbox until empty; the caller holds the turn."""
        while self._outbox:
            # Cancelled here, the frames stay in the outbox for the next
            # writer (or aclose()); once taken, they are written or the
            # connection is aborted.
            await trio.lowlevel.checkpoint_if_cancelled()
            data = self._take_outbox()
            if not await self._write(data):
                return False
        return True

    async def _flush_control(self) -> None:
        """Write pending control frames now, unless a writer will."""
        if self._sending or not self._outbox:
            return
        self._sending = True
        try:
            await self._flush_outbox()
        finally:
            self._release_send()

    async def _drain(self) -> None:
        """Wait for our turn, so everything queued before is written."""
        await self._acquire_send()
        try:
            await self._flush_outbox()
        finally:
            self._release_send()

    # -- reading at the end (for Closing._close_transport) -----------------
    # Here, not in _closing: it holds the reader role like _read.

    async def _linger(self) -> None:
        """After failing the connection, let the server read our close frame.

        Closing a socket with unread input sends a reset, which can destroy
        the close frame before the server reads it; so half-close and drop
        what still comes until the server closes (RFC 6455 §7.1.1: the
        server closes first), within the caller's time bound.
        """
        if self._eof:
            return
        stream = self._stream
        self._reader = _FG  # nobody else reads meanwhile
        try:
            if isinstance(stream, trio.abc.HalfCloseableStream):
                await stream.send_eof()
            while await stream.receive_some(RECEIVE_SIZE):
                pass
        except _TRANSPORT_ERRORS:
            pass
        finally:
            self._reader = 0
            self._eof = True

    # -- waking --------------------------------------------------------

    def _notify(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    async def _wait(self) -> None:
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = trio.Event()
        self._fg_waiting += 1
        try:
            await waiter.wait()
        finally:
            self._fg_waiting -= 1

    def _wake_bg(self) -> None:
        event = self._bg_event
        if event is not None:
            self._bg_event = None
            event.set()

    async def _bg_wait(self) -> None:
        event = self._bg_event
        if event is None:
            event = self._bg_event = trio.Event()
        await event.wait()

    # -- background tasks (with a nursery only) ------------------------

    def _start_background(self, nursery: trio.Nursery) -> None:
        """Run the background reader, and keepalive pings, in ``nursery``.

        The tasks end when the connection closes; errors they meet end the
        connection and reach the application through its next call.
        """
        self._background = True
        self._last_recv = self._fg_read_at = trio.current_time()
        nursery.start_soon(self._background_reader)
        if self._settings.ping_interval is not None:
            nursery.start_soon(self._keepalive)

    # They hold no cancel scope of their own (a scope per task costs more
    # memory than the rest of an idle connection's state): closing the
    # connection wakes them and they return.

    async def _background_reader(self) -> None:
        while not self._eof:
            if self._reader or self._queue_full() or self._local_close:
                if (
                    self._outbox
                    and not self._sending
                    and not self._reader
                    and not self._local_close
                ):
                    # No room, so no read, but pongs wait: this task may
                    # block on them, as nobody else would write them.
                    await self._answer(trio.CancelScope())
                    continue
                await self._bg_wait()
                continue
            resume = self._fg_read_at + HANDOVER_DELAY
            if trio.current_time() < resume:
                await trio.sleep_until(resume)
                continue
            await self._progress(_BG)
            if self._fg_waiting:
                # An application task wants data: let it read itself.
                self._fg_read_at = trio.current_time()

    async def _keepalive(self) -> None:
        interval = self._settings.ping_interval
        timeout = self._settings.ping_timeout
        assert interval is not None
        while not self._eof:
            due = self._last_recv + interval
            if trio.current_time() < due:
                wake = self._ka_event = trio.Event()
                with trio.move_on_at(due):
                    await wake.wait()
                continue
            if self._ws.state is not ConnectionState.OPEN or self._local_close:
                return
            traffic = self._traffic = trio.Event()
            self._outbox += self._ws.send(Ping(payload=b"keepalive"))
            await self._flush_control()
            # Any incoming data, not only the pong, proves the peer alive.
            with trio.move_on_after(timeout if timeout is not None else interval):
                await traffic.wait()
            if timeout is not None and not traffic.is_set() and not self._eof:
                self._keepalive_failed(timeout)
                await self._settle()
                return

    def _keepalive_failed(self, timeout: float) -> None:
        if self._local_close:
            return  # aclose() began meanwhile: how it ends is aclose()'s
        reason = "keepalive ping timeout"
        self._set_closure(1011, reason, cause=UpgradeTimeout("keepalive", timeout))
        if self._ws.state is ConnectionState.OPEN:
            self._outbox += self._ws.send(CloseConnection(1011, reason))
        self._must_close = True
        self._notify()
