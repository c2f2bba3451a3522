"""What an HTTP/2 connection knows: its streams, its slots, why it stopped.

:class:`H2State` is the one object the roles of a connection share
(the reader and the writer of :mod:`._reader` and :mod:`._writer`, the
stream operations of :mod:`._engine`): h2's state machine, the streams in
flight, the tasks waiting and why the connection can take no new stream.
Its methods change that state and wake whoever the change is for; none of
them awaits. :class:`StreamState` is the same for one stream.

Sans-I/O apart from :class:`trio.Event` (in :class:`Waiter`) and the
reader's :class:`trio.CancelScope`, which a change may cancel.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import h2.connection
import h2.exceptions
import trio
from h2.errors import ErrorCodes

from .._sansio._errors import ContentLengthError, StreamRefused
from .._sansio._h2_options import HTTP2Options
from .._sansio._limits import RECEIVE_SIZE

if TYPE_CHECKING:
    from .._sansio._limits import Limits

__all__ = [
    "CLEANUP_GRACE",
    "RECEIVE_SIZE",
    "H2State",
    "ErrorFactory",
    "Grant",
    "Header",
    "PendingPing",
    "StreamState",
    "Waiter",
    "closed_error",
    "code_name",
    "refused_by_goaway",
    "split_head",
]

#: Seconds a task that was cancelled may still spend sending its stream's
#: RST_STREAM. Such a write normally completes at once; when the socket is
#: full (the server stopped reading) the cancel is not held up longer than
#: this, and the connection is then given up (a write cut short breaks the
#: framing). 1 s: short next to any caller's timeout, long next to a write.
CLEANUP_GRACE = 1.0

#: Makes the exception to raise: a fresh one per raise, since one error (a
#: lost connection) reaches many tasks, and one exception object raised in
#: several tasks would collect all their tracebacks.
ErrorFactory = Callable[[], Exception]
Header = tuple[bytes, bytes]


class Waiter:
    """Where one waiting task is woken; at most one task waits on each."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event: trio.Event | None = None


class Grant(Waiter):
    """A task waiting for a free stream; ``granted`` once it has one."""

    __slots__ = ("granted",)

    def __init__(self) -> None:
        super().__init__()
        self.granted = False


class PendingPing(Waiter):
    """A PING sent and not acknowledged yet; its task waits here."""

    __slots__ = ("acked",)

    def __init__(self) -> None:
        super().__init__()
        self.acked = False


class StreamState:
    """What the connection knows of one stream, as the application sees it.

    ``chunks`` holds received DATA the application has not consumed (at most
    the stream's receive window); ``error`` makes reads (once ``chunks`` is
    empty and the stream has not ended) and writes raise. ``delivered``
    counts the body bytes handed to the application, checked at the end of
    the body against ``expected_length`` (the response's ``content-length``;
    0 for a HEAD request), so that no body is ever returned short.
    """

    __slots__ = (
        "buffered",
        "chunks",
        "closed",
        "delivered",
        "error",
        "expected_length",
        "headers",
        "informational",
        "local_ended",
        "peer_reset",
        "recv_waiter",
        "remote_ended",
        "reset_code",
        "send_waiter",
        "status",
        "stream_id",
        "trailers",
        "unacked",
    )

    def __init__(
        self, stream_id: int, *, local_ended: bool, head_request: bool = False
    ) -> None:
        self.stream_id = stream_id
        self.recv_waiter = Waiter()
        self.send_waiter = Waiter()
        self.status = 0
        self.headers: list[Header] | None = None
        self.trailers: list[Header] | None = None
        self.informational = 0
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.delivered = 0
        # RFC 9110 §9.3.2: a response to HEAD has no body, whatever its
        # content-length says.
        self.expected_length: int | None = 0 if head_request else None
        self.unacked = 0  # consumed bytes not yet given back to the window
        self.local_ended = local_ended
        self.remote_ended = False
        self.reset_code: int | None = None
        self.peer_reset: ErrorFactory | None = None  # the server's RST_STREAM
        self.closed = False  # closed in HTTP/2 terms: its slot is free
        self.error: ErrorFactory | None = None

    def has_head(self) -> bool:
        return self.headers is not None or self.error is not None

    def readable(self) -> bool:
        return bool(self.chunks) or self.remote_ended or self.error is not None

    def check_length(self) -> None:
        """At the end of the body: raise unless it had its declared length."""
        expected = self.expected_length
        if expected is not None and self.delivered != expected:
            raise ContentLengthError(
                f"stream {self.stream_id}: the body ended after {self.delivered} "
                f"bytes but content-length said {expected}",
                expected=expected,
                received=self.delivered,
                stream_id=self.stream_id,
            )


class H2State:
    """The state of one connection that its reader, writer and streams share.

    Args:
        machine: h2's client state machine, initiated (upgrade or
            preface); the ``h2`` attribute.
        options: the connection's bounds.
        limits: ``close_timeout`` bounds a clean close.

    Attributes:
        streams: the streams in flight, by ID (closed ones are dropped).
        goaway: ``(code, last_stream_id, debug data)`` of the server's
            GOAWAY, once one came.
        error: makes the exception the connection failed with; set once.
        closed_locally: :meth:`~._engine.H2Engine.aclose` began.
        settings_seen: the server's SETTINGS preface arrived.
        parked: the tasks waiting for the reader to wake them, first in
            first out (see :meth:`~._reader.H2Reader.wait`).
        keeper: the waiter of the background reader that services the
            connection while no task waits on it, when there is one
            (:meth:`~._reader.H2Reader.serve`).
        idle_since: when the last stream in flight ended (trio's clock).
    """

    __slots__ = (
        "active",
        "closed_locally",
        "error",
        "goaway",
        "grants",
        "h2",
        "idle_scope",
        "idle_since",
        "keeper",
        "limits",
        "max_streams",
        "options",
        "parked",
        "ping_count",
        "pings",
        "read_scope",
        "reader_waiter",
        "reads",
        "send_blocked",
        "settings_seen",
        "streams",
    )

    def __init__(
        self,
        machine: h2.connection.H2Connection,
        options: HTTP2Options,
        limits: Limits,
    ) -> None:
        self.h2 = machine
        self.options = options
        self.limits = limits
        # The server's SETTINGS_MAX_CONCURRENT_STREAMS, as h2 has it: read
        # from h2 again at each RemoteSettingsChanged (the only time it
        # changes), not at each request (h2 looks it up by enum member).
        self.max_streams = machine.remote_settings.max_concurrent_streams
        self.streams: dict[int, StreamState] = {}
        self.settings_seen = False
        # Why the connection can take no new stream, if it cannot.
        self.goaway: tuple[int, int, bytes] | None = None
        self.error: ErrorFactory | None = None
        self.closed_locally = False
        # Streams in flight and tasks waiting for one to free up.
        self.active = 0
        self.grants: deque[Grant] = deque()
        self.send_blocked: dict[StreamState, None] = {}
        self.pings: dict[bytes, PendingPing] = {}
        self.ping_count = 0
        # Who waits: the reader's own waiter and read, and everyone else.
        self.parked: dict[Waiter, None] = {}  # ordered: first in, first out
        self.reader_waiter: Waiter | None = None
        self.read_scope: trio.CancelScope | None = None
        # The background reader's waiter, with a nursery (H2Reader.serve),
        # and the reads so far, by which it sees whether anyone reads.
        self.keeper: Waiter | None = None
        self.reads = 0
        # Its sleep between two looks at the connection, cut short by fail().
        self.idle_scope: trio.CancelScope | None = None
        # When the last stream in flight ended (for the idle timeout).
        self.idle_since = trio.current_time()

    def failed(self) -> bool:
        """Whether the connection can no longer be used (closed or broken).

        A method, not a property: mypy would keep a narrowed ``error``
        across the awaits that change it.
        """
        return self.error is not None

    def failure(self) -> Exception:
        """What the connection failed with, fresh (a method: see failed())."""
        assert self.error is not None
        return self.error()

    def check_alive(self) -> None:
        """Raise if the connection was closed or failed."""
        if self.closed_locally:
            raise closed_error()
        if self.error is not None:
            raise self.error()

    def check_usable(self) -> None:
        """Raise why no new stream can be opened, if one cannot."""
        self.check_alive()
        if self.goaway is not None:
            code, last, _ = self.goaway
            raise StreamRefused(
                f"the server sent GOAWAY ({code_name(code)}, last stream "
                f"{last}): this connection takes no new requests; send it on a "
                "new connection",
                code=code,
                stream_id=None,
            )

    def limit(self) -> int:
        """How many streams may be open at once now."""
        return min(self.options.max_concurrent_streams, self.max_streams)

    # -- waking ---------------------------------------------------------------

    def wake(self, waiter: Waiter) -> None:
        """Wake the task waiting on ``waiter``, if one is."""
        event = waiter.event
        if event is not None:
            waiter.event = None
            self.parked.pop(waiter, None)
            event.set()
        elif waiter is self.reader_waiter and self.read_scope is not None:
            # The reader itself, blocked reading for everyone, is what a
            # local change (another task closed its stream, freed a slot)
            # was for: stop its read so it sees that now.
            self.read_scope.cancel()

    def kick(self) -> None:
        """Have someone send what is queued: the reader, or a waiting task."""
        if self.read_scope is not None:
            # Safe: a cancelled receive_some loses nothing (SSLStream's too,
            # once the handshake is done); the reader flushes, then reads.
            self.read_scope.cancel()
        elif self.parked:
            self.wake(next(iter(self.parked)))

    def fail(self, factory: ErrorFactory) -> None:
        """The connection is unusable from now on; wake everyone to see it."""
        if self.error is not None:
            return
        self.error = factory
        for state in self.streams.values():
            if state.error is None and not (state.remote_ended and state.local_ended):
                state.error = factory
            self.wake(state.recv_waiter)
            self.wake(state.send_waiter)
        for waiter in list(self.parked):
            self.wake(waiter)
        for grant in self.grants:
            self.wake(grant)
        if self.read_scope is not None:
            self.read_scope.cancel()
        if self.idle_scope is not None:
            self.idle_scope.cancel()

    # -- streams in flight ----------------------------------------------------

    def adopt(self, state: StreamState) -> None:
        """Track a stream opened outside ``open_stream`` (h2c stream 1)."""
        self.streams[state.stream_id] = state
        self.active += 1

    def grant(self) -> None:
        """Give free stream slots to the tasks waiting for one, in order."""
        if not self.grants:
            return  # (most releases: nobody waits, no settings to look up)
        limit = self.limit()
        while self.grants and self.active < limit:
            grant = self.grants.popleft()
            grant.granted = True
            self.active += 1
            self.wake(grant)

    def release(self) -> None:
        """A stream slot is free again."""
        self.active -= 1
        if not self.active:
            self.idle_since = trio.current_time()
        self.grant()

    def maybe_closed(self, state: StreamState) -> None:
        """Free ``state``'s slot once it is closed both ways or reset."""
        if state.closed:
            return
        if (state.local_ended and state.remote_ended) or state.reset_code is not None:
            state.closed = True
            self.streams.pop(state.stream_id, None)
            self.send_blocked.pop(state, None)
            self.release()

    def reset(self, state: StreamState, code: int, error: ErrorFactory) -> None:
        """Reset ``state`` (queue RST_STREAM); reads and writes raise ``error``."""
        if state.error is None:
            state.error = error
        if not state.closed:
            state.reset_code = code
            if self.error is None and not self.closed_locally:
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    self.h2.reset_stream(state.stream_id, code)
            self.maybe_closed(state)
        self.wake(state.recv_waiter)
        self.wake(state.send_waiter)

    def wake_senders(self) -> None:
        """Wake every task waiting for send window."""
        for state in self.send_blocked:
            self.wake(state.send_waiter)


def split_head(headers: list[Header]) -> tuple[int, list[Header], int | None]:
    """The ``:status`` (h2 has checked it is there), the regular fields and
    the ``content-length`` (h2 has checked that it is digits, and the same
    in every field line) or ``None``."""
    length: int | None = None
    if headers and headers[0][0] == b":status":
        # The shape h2 lets through: its checks of what the server sent put
        # pseudo-header fields first, and allow only one, :status, in a
        # response. One slice, no rebuilt pairs.
        rest = headers[1:]
        for name, value in rest:
            if name == b"content-length":
                length = int(value)
        return int(headers[0][1]), rest, length
    status = 0
    rest = []
    for name, value in headers:
        if name == b":status":
            status = int(value)
        elif not name.startswith(b":"):
            if name == b"content-length":
                length = int(value)
            rest.append((name, value))
    return status, rest, length


def closed_error() -> Exception:
    return trio.ClosedResourceError("the HTTP/2 connection was closed")


def code_name(code: int) -> str:
    """``"CANCEL (0x8)"``: an HTTP/2 error code as RFC 9113 §7 names it."""
    try:
        return f"{ErrorCodes(code).name} (0x{code:x})"
    except ValueError:
        return f"error code 0x{code:x}"


def refused_by_goaway(sid: int, code: int, last: int) -> ErrorFactory:
    name = code_name(code)
    return lambda: StreamRefused(
        f"the server sent GOAWAY ({name}) with last stream {last}: stream "
        f"{sid} was not processed; the request can be retried on a new connection",
        code=code,
        stream_id=sid,
    )
