"""What the parts of one WebSocket connection share.

:class:`SharedState` is the small object the reader, the writer, the closing
handshake and the engine all hold by reference: the transport, wsproto's
connection, the queue of complete messages, who holds the reader role, how
the connection ended, and the events that wake waiting tasks. Each part
keeps the rest of its state to itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio
from wsproto.connection import Connection

from .._transport._fastio import ConnectionIO

__all__ = [
    "BG",
    "DEFAULT_WRITE_BUFFER_LIMIT",
    "FG",
    "Closure",
    "ConnectionSettings",
    "SharedState",
]

#: Bytes a waiting ``ping()`` may queue past ``max_queue`` when there is no
#: ``max_size`` (see :meth:`SharedState.past_limit`): the default max_size.
LOOK_AHEAD = 2**20

#: Bytes of frames that ``send()`` calls may queue behind a write in
#: progress: 64 KiB, what aiohttp writes before it waits for the transport
#: to drain (``websockets`` waits past 32 KiB, its ``write_limit``). Room
#: for about 3,000 small messages to go out in the next write, or for one
#: large message beside the one being written; a connection whose peer
#: does not read holds at most this much beside the write in progress.
DEFAULT_WRITE_BUFFER_LIMIT = 2**16

FG = 1  # an application task holds the reader role
BG = 2  # the background reader holds it


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Per-connection bounds, shared by every connection of a ``WebSocket``."""

    max_size: int | None
    max_queue: int | None
    max_fragment_size: int | None
    ping_interval: float | None
    ping_timeout: float | None
    write_buffer_limit: int | None = DEFAULT_WRITE_BUFFER_LIMIT


class Closure:
    """How the connection ended (the first cause wins)."""

    __slots__ = ("cause", "code", "error", "reason")

    def __init__(
        self, code: int, reason: str, error: bool, cause: BaseException | None
    ) -> None:
        self.code = code
        self.reason = reason
        self.error = error  # the peer broke the protocol: ProtocolError
        self.cause = cause


class SharedState:
    """The state every part of one connection reads and writes."""

    __slots__ = (
        "bg_event",
        "bg_scope",
        "close_timeout",
        "closure",
        "eof",
        "extra",
        "fg_waiting",
        "head",
        "io",
        "ka_scope",
        "local_close",
        "must_close",
        "pinging",
        "queue",
        "reader",
        "settings",
        "stream",
        "traffic",
        "transport_closed",
        "waiter",
        "ws",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        ws: Connection,
        settings: ConnectionSettings,
        close_timeout: float,
    ) -> None:
        self.stream = stream
        # The per-message reads and writes (send(), receive()): the socket
        # under a plain SocketStream, schedule points once a millisecond
        # when nothing has to wait (trio_upgrade/_transport/_fastio.py).
        # Built right after the read of the 101, a schedule point.
        self.io = ConnectionIO(stream, after_schedule_point=True)
        self.ws = ws
        self.settings = settings
        self.close_timeout = close_timeout
        # Complete messages: a list and a head index, not a deque (760 bytes
        # per idle connection), still O(1) per message (see pop_front).
        self.queue: list[str | bytes] = []
        self.head = 0
        self.reader = 0  # who holds the reader role: 0, FG or BG
        self.closure: Closure | None = None
        self.local_close = False  # aclose() was called
        self.eof = False  # nothing more will be read
        self.must_close = False  # the transport must close after our last frames
        self.transport_closed = False
        self.waiter: trio.Event | None = None  # tasks waiting for the reader
        self.fg_waiting = 0  # how many of them are application tasks
        self.bg_event: trio.Event | None = None  # the background reader waits
        self.bg_scope: trio.CancelScope | None = None  # ...or sleeps
        self.ka_scope: trio.CancelScope | None = None  # the keepalive waits
        self.traffic: trio.Event | None = None  # the keepalive awaits data
        self.pinging = 0  # ping() calls awaiting their pong
        self.extra = 0  # about how many bytes were queued past max_queue

    def queue_full(self) -> bool:
        """Whether reading must pause: ``max_queue`` messages wait, and no
        ``ping()`` may look ahead for its pong (:meth:`past_limit`)."""
        limit = self.settings.max_queue
        if limit is None or len(self.queue) - self.head < limit:
            return False
        return not self.pinging or self.extra >= self.look_ahead()

    def look_ahead(self) -> int:
        """Bytes of messages a waiting ``ping()`` may queue past
        ``max_queue`` to reach its pong: ``max_size`` (1 MiB without one)."""
        size = self.settings.max_size
        return size if size is not None else LOOK_AHEAD

    def past_limit(self, message: str | bytes) -> bool:
        """``message`` was queued and the queue holds ``max_queue`` messages
        or more: whether parsing stops there.

        It stops unless a ``ping()`` awaits its pong, which comes after the
        messages the server sent first: then parsing goes on, queueing up to
        :meth:`look_ahead` bytes more (text counted in characters), so that
        the pong is found behind a burst the application has not read yet,
        while memory stays bounded.
        """
        if not self.pinging:
            return True
        self.extra += len(message)
        return self.extra >= self.look_ahead()

    def pop_front(self, head: int, queue: list[str | bytes]) -> None:
        """Drop the message at ``head`` (the caller took it)."""
        limit = self.settings.max_queue
        was_full = limit is not None and len(queue) - head >= limit
        head += 1
        if head == len(queue):
            queue.clear()
            head = 0
        elif head >= 64 and head * 2 >= len(queue):
            del queue[:head]
            head = 0
        self.head = head
        if was_full and limit is not None:
            if len(queue) - head < limit:
                self.extra = 0  # below the bound again: a new look-ahead
            # Room again: whoever waits to read (the background reader, a
            # ping() awaiting its pong) may go on.
            self.wake_bg()
            self.notify()

    # -- waking --------------------------------------------------------

    def notify(self) -> None:
        """Wake the tasks that wait for the reader (:meth:`wait`)."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set()

    async def wait(self) -> None:
        waiter = self.waiter
        if waiter is None:
            waiter = self.waiter = trio.Event()
        self.fg_waiting += 1
        try:
            await waiter.wait()
        finally:
            self.fg_waiting -= 1

    def wake_bg(self) -> None:
        event = self.bg_event
        if event is not None:
            self.bg_event = None
            event.set()

    async def bg_wait(self) -> None:
        event = self.bg_event
        if event is None:
            event = self.bg_event = trio.Event()
        await event.wait()

    # -- ending --------------------------------------------------------

    def set_closure(
        self,
        code: int,
        reason: str,
        *,
        error: bool = False,
        cause: BaseException | None = None,
    ) -> None:
        if self.closure is None:
            # int(): wsproto's codes are its CloseReason IntEnum, which
            # prints as a name on Python 3.10; users get plain numbers.
            self.closure = Closure(int(code), reason, error, cause)

    def lost(self, cause: BaseException | None) -> None:
        """The transport ended (EOF or error): no more reading."""
        self.eof = True
        self.set_closure(1006, "", cause=cause)
        self.must_close = True

    async def shut(self, *, checkpoint: bool = True) -> None:
        """Close the transport now, and wake every task that waits.

        ``checkpoint=False``: the caller has just passed one.
        """
        if self.transport_closed:
            return
        self.transport_closed = True
        self.eof = True
        self.set_closure(1006, "")
        # Wake everything that waits, background tasks included, so that
        # they see the end and return.
        self.notify()
        self.wake_bg()
        if self.bg_scope is not None:
            self.bg_scope.cancel()
        if self.ka_scope is not None:
            self.ka_scope.cancel()
        if self.traffic is not None:
            self.traffic.set()
        # aclose() of a Trio stream closes even when cancelled; the timeout
        # bounds a TLS close_notify to a silent peer. A socket closes at
        # once: close() plus a checkpoint, which a caller that just passed
        # one can skip.
        stream = self.stream
        if type(stream) is trio.SocketStream:
            stream.socket.close()
            if checkpoint:
                await trio.lowlevel.checkpoint()
        else:
            with trio.move_on_after(self.close_timeout):
                await stream.aclose()
