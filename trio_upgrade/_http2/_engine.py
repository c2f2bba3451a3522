"""The engine of an HTTP/2 connection: h2 state, one socket, many tasks.

No task of its own. Whichever task needs something from the server (a
response head, body data, a window update, a free stream) and finds nobody
reading becomes the *reader*: it reads once, feeds h2, hands every event to
the stream it concerns, wakes the task waiting on that stream, and looks
again at what it wanted. The other tasks wait on their own
:class:`Waiter`; when the reader leaves, it hands the role to one of them.
So there is no task switch per event beyond waking the task an event is
for, and no per-event scan over streams.

Writes are coalesced the same way: a task that queues frames in h2 and finds
nobody sending becomes the *sender* and writes everything h2 has queued in
as few writes as the socket takes; tasks that queue frames meanwhile leave
them to it (:mod:`._h2_writer`, which also keeps cancellation from cutting
a frame in half).

The protocol logic is h2's; this module only moves bytes and keeps, per
stream, what the application has not consumed yet (bounded by the stream's
receive window, which is reopened as the application reads).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import h2.connection
import h2.events
import h2.exceptions
import trio
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from .._errors import (
    ConnectionClosed,
    ContentLengthError,
    ProtocolError,
    StreamRefused,
)
from .._errors import StreamReset as StreamResetError
from .._sansio._h2_compat import reopen_after_goaway
from .._sansio._h2_frames import FrameScanner, PrefaceError
from .._sansio._h2_options import HTTP2Options
from ._state import (
    CLEANUP_GRACE,
    RECEIVE_SIZE,
    ErrorFactory,
    Grant,
    PingWaiter,
    StreamState,
    Waiter,
    closed_error,
    code_name,
    refused_by_goaway,
    split_head,
)
from ._writer import Writer

if TYPE_CHECKING:
    from .._limits import Limits

__all__ = ["Engine"]


class Engine:
    """The connection's state and I/O; see the module docstring.

    Args:
        transport: the byte stream, owned from now on.
        state: h2's client state machine, initiated (upgrade or preface).
        options: the connection's bounds.
        limits: ``close_timeout`` bounds :meth:`aclose`.
    """

    def __init__(
        self,
        transport: trio.abc.Stream,
        state: h2.connection.H2Connection,
        options: HTTP2Options,
        limits: Limits,
    ) -> None:
        self.transport = transport
        self.h2 = state
        self.options = options
        self.limits = limits
        self.streams: dict[int, StreamState] = {}
        self._scanner = FrameScanner()
        self.settings_seen = False
        # Reading and writing roles (see the module docstring).
        self._reading = False
        self._read_scope: trio.CancelScope | None = None
        self._reader_waiter: Waiter | None = None
        self._parked: dict[Waiter, None] = {}  # ordered: first in, first out
        self._writer = Writer(
            transport, state.data_to_send, self._write_failed, self._abandoned
        )
        # Streams in flight and tasks waiting for one to free up.
        self._active = 0
        self._grants: deque[Grant] = deque()
        self._send_blocked: dict[StreamState, None] = {}
        self._conn_unacked = 0
        self._pings: dict[bytes, PingWaiter] = {}
        self._ping_count = 0
        self._stream_threshold = options.stream_window // 2
        self._conn_threshold = options.connection_window // 2
        # Why the connection can take no new stream, if it cannot.
        self.goaway: tuple[int, int, bytes] | None = None
        self.error: ErrorFactory | None = None
        self.closed_locally = False

    def failed(self) -> bool:
        """Whether the connection can no longer be used (closed or broken).

        A method, not a property: mypy would keep a narrowed ``self.error``
        across the awaits that change it.
        """
        return self.error is not None

    def _failure(self) -> Exception:
        # What the connection failed with, fresh (a method: see failed()).
        assert self.error is not None
        return self.error()

    def adopt(self, state: StreamState) -> None:
        """Track a stream opened outside :meth:`open_stream` (h2c stream 1)."""
        self.streams[state.stream_id] = state
        self._active += 1

    def _check_alive(self) -> None:
        if self.closed_locally:
            raise closed_error()
        if self.error is not None:
            raise self.error()

    def check_usable(self) -> None:
        """Raise why no new stream can be opened, if one cannot."""
        self._check_alive()
        if self.goaway is not None:
            code, last, _ = self.goaway
            raise StreamRefused(
                f"the server sent GOAWAY ({code_name(code)}, last stream "
                f"{last}): this connection takes no new requests; send it on a "
                "new connection",
                code=code,
                stream_id=None,
            )

    # -- waiting and reading --------------------------------------------------

    def wake(self, waiter: Waiter) -> None:
        event = waiter.event
        if event is not None:
            waiter.event = None
            self._parked.pop(waiter, None)
            event.set()
        elif waiter is self._reader_waiter and self._read_scope is not None:
            # The reader itself, blocked reading for everyone, is what a
            # local change (another task closed its stream, freed a slot)
            # was for: stop its read so it sees that now.
            self._read_scope.cancel()

    async def wait(self, waiter: Waiter, ready: Callable[[], bool]) -> None:
        """Return once ``ready()`` or the connection failed; may read for all.

        Not a checkpoint when ``ready()`` already holds.
        """
        try:
            while not ready() and self.error is None:
                if self._reading:
                    event = waiter.event = trio.Event()
                    self._parked[waiter] = None
                    try:
                        await event.wait()
                    finally:
                        if waiter.event is event:
                            waiter.event = None
                            del self._parked[waiter]
                else:
                    self._reader_waiter = waiter
                    try:
                        await self._read_once()
                    finally:
                        self._reader_waiter = None
        finally:
            if not self._reading and self._parked:
                # Whoever stops waiting (the reader, or a task whose wait
                # ended) makes sure someone goes on reading for the rest.
                first = next(iter(self._parked))
                self.wake(first)

    async def _read_once(self) -> None:
        # Send what we owe first (window updates, acks), so the server is
        # never waiting on bytes we hold while we wait on it.
        await self.flush(wait=False)
        if self._reading or self.failed():
            return
        self._reading = True
        data: bytes | bytearray | None = None
        problem: BaseException | None = None
        try:
            with trio.CancelScope() as self._read_scope:
                try:
                    data = await self.transport.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    problem = exc
                except OSError as exc:  # pragma: no cover - SSL stacks
                    problem = exc
        finally:
            self._reading = False
            self._read_scope = None
        if problem is not None:
            self._lost(problem)
        elif data is not None:
            self.receive(data)
        # (No data and no problem: the read was cut short on purpose, by a
        # failure or by _kick.)
        if self.failed():
            await self._shut_down()
        else:
            await self.flush(wait=False)

    async def _shut_down(self) -> None:
        # After a protocol error h2 has queued a GOAWAY with its code (RFC
        # 9113 §5.4.1 asks for one): try briefly to send it, then close.
        writer = self._writer
        data = b"" if writer.sending or self.closed_locally else writer.take_all()
        if data:
            with (
                trio.move_on_after(CLEANUP_GRACE),
                contextlib.suppress(
                    trio.BrokenResourceError, trio.ClosedResourceError, OSError
                ),
            ):
                await self.transport.send_all(data)
        await trio.aclose_forcefully(self.transport)

    def _lost(self, exc: BaseException) -> None:
        if self.closed_locally:
            self.fail(closed_error)
            return
        detail = str(exc) or type(exc).__name__
        self.fail(
            lambda: ConnectionClosed(None, f"connection lost: {detail}", normal=False)
        )

    def receive(self, data: bytes | bytearray) -> None:
        """Feed bytes from the server (``b""``: it closed) and dispatch."""
        if not data:
            self._on_eof()
            return
        try:
            cuts = self._scanner.feed(data)
        except PrefaceError as exc:
            message = str(exc)
            self.fail(lambda: ProtocolError(message, code=ErrorCodes.PROTOCOL_ERROR))
            return
        start = 0
        for cut in cuts:
            if not self._feed(data[start:cut]):
                return
            # After a GOAWAY h2 refuses every frame, but the server may still
            # finish the streams it kept (RFC 9113 §6.8): reopen h2.
            if not self.closed_locally:
                reopen_after_goaway(self.h2)
            start = cut
        if start < len(data):
            self._feed(data[start:])

    def _feed(self, data: bytes | bytearray) -> bool:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.InvalidBodyLengthError as exc:
            # h2 counts DATA against content-length and ends the connection
            # on a mismatch (RFC 9113 §8.1.1 allows a stream error; h2 has
            # already sent GOAWAY by now).
            expected, received = exc.expected_length, exc.actual_length
            message = (
                f"the server broke HTTP/2: a body of {received} bytes where "
                f"content-length said {expected}"
            )
            self.fail(
                lambda: ContentLengthError(
                    message, expected=expected, received=received, stream_id=None
                )
            )
            return False
        except h2.exceptions.ProtocolError as exc:
            code = int(exc.error_code)
            message = f"the server broke HTTP/2: {exc}"
            self.fail(lambda: ProtocolError(message, code=code))
            return False
        handlers = _HANDLERS
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(self, event)
        if self._conn_unacked >= self._conn_threshold:
            # Refill the connection window as data arrives, read or not: the
            # stream windows bound what is buffered, and an unread stream
            # must not starve the others.
            self.h2.increment_flow_control_window(self._conn_unacked)
            self._conn_unacked = 0
        return True

    # -- events ---------------------------------------------------------------

    def _on_response(self, event: h2.events.ResponseReceived) -> None:
        state = self.streams.get(event.stream_id)
        if state is not None:
            state.status, state.headers, length = split_head(event.headers)
            if state.expected_length is None and state.status not in (204, 304):
                # RFC 9110 §8.6: 204 and 304 have no body whatever it says.
                state.expected_length = length
            self.wake(state.recv_waiter)

    def _on_informational(self, event: h2.events.InformationalResponseReceived) -> None:
        state = self.streams.get(event.stream_id)
        if state is None:
            return
        state.informational += 1
        limit = self.options.max_informational
        if state.informational > limit:
            message = (
                f"stream {state.stream_id}: more than {limit} informational (1xx) "
                "responses (HTTP2Options.max_informational)"
            )
            self.reset(
                state,
                ErrorCodes.ENHANCE_YOUR_CALM,
                lambda: ProtocolError(message, code=ErrorCodes.ENHANCE_YOUR_CALM),
            )

    def _on_data(self, event: h2.events.DataReceived) -> None:
        length = event.flow_controlled_length
        self._conn_unacked += length
        state = self.streams.get(event.stream_id)
        if state is None or state.reset_code is not None:
            return
        data = event.data
        # Padding is never handed to the application: give it back with the
        # next window update.
        state.unacked += length - len(data)
        if data:
            state.chunks.append(data)
            state.buffered += len(data)
            self.wake(state.recv_waiter)

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        state = self.streams.get(event.stream_id)
        if state is not None:
            state.trailers = [(n, v) for n, v in event.headers]

    def _on_ended(self, event: h2.events.StreamEnded) -> None:
        state = self.streams.get(event.stream_id)
        if state is not None:
            state.remote_ended = True
            self.wake(state.recv_waiter)
            self._maybe_closed(state)

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        state = self.streams.get(event.stream_id)
        if state is None:
            return
        code = int(event.error_code)
        sid = state.stream_id
        state.reset_code = code
        name = code_name(code)
        if code == ErrorCodes.REFUSED_STREAM:
            state.peer_reset = lambda: StreamRefused(
                f"the server refused stream {sid} (REFUSED_STREAM) without "
                "processing it; the request can be retried",
                code=code,
                stream_id=sid,
            )
        else:
            state.peer_reset = lambda: StreamResetError(
                f"the server reset stream {sid} with {name}",
                code=code,
                stream_id=sid,
            )
        if not state.remote_ended:
            # A response that had ended stays readable; only what was still
            # to come (and any upload) fails.
            state.error = state.peer_reset
        self.wake(state.recv_waiter)
        self.wake(state.send_waiter)
        self._maybe_closed(state)

    def _on_window(self, event: h2.events.WindowUpdated) -> None:
        if event.stream_id == 0:
            self._wake_senders()
        else:
            state = self.streams.get(event.stream_id)
            if state is not None:
                self.wake(state.send_waiter)

    def _wake_senders(self) -> None:
        for state in self._send_blocked:
            self.wake(state.send_waiter)

    def _on_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        self.settings_seen = True
        changed = event.changed_settings
        if SettingCodes.MAX_CONCURRENT_STREAMS in changed:
            self._grant()
        if SettingCodes.INITIAL_WINDOW_SIZE in changed:
            self._wake_senders()

    def _on_ping_ack(self, event: h2.events.PingAckReceived) -> None:
        ping = self._pings.pop(event.ping_data, None)
        if ping is not None:
            ping.acked = True
            self.wake(ping)

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        code = int(event.error_code or 0)
        last = int(event.last_stream_id or 0)
        if self.goaway is not None:
            # A second GOAWAY may only lower last_stream_id (RFC 9113 §6.8).
            last = min(last, self.goaway[1])
        self.goaway = (code, last, event.additional_data or b"")
        for sid, state in list(self.streams.items()):
            if sid > last and not state.closed:
                state.reset_code = code
                state.error = refused_by_goaway(sid, code, last)
                self.wake(state.recv_waiter)
                self.wake(state.send_waiter)
                self._maybe_closed(state)
        for grant in self._grants:
            self.wake(grant)

    def _on_eof(self) -> None:
        if self.goaway is not None:
            code, _, debug = self.goaway
            reason = debug.decode("utf-8", "replace")
            normal = code == ErrorCodes.NO_ERROR
            self.fail(lambda: ConnectionClosed(code, reason, normal=normal))
        else:
            self.fail(
                lambda: ConnectionClosed(
                    None, "the server closed the connection", normal=False
                )
            )

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
        for waiter in list(self._parked):
            self.wake(waiter)
        for grant in self._grants:
            self.wake(grant)
        if self._read_scope is not None:
            self._read_scope.cancel()

    # -- streams in flight ----------------------------------------------------

    def _limit(self) -> int:
        remote = self.h2.remote_settings.max_concurrent_streams
        return min(self.options.max_concurrent_streams, remote)

    def _grant(self) -> None:
        limit = self._limit()
        while self._grants and self._active < limit:
            grant = self._grants.popleft()
            grant.granted = True
            self._active += 1
            self.wake(grant)

    def _release(self) -> None:
        self._active -= 1
        self._grant()

    def _maybe_closed(self, state: StreamState) -> None:
        if state.closed:
            return
        if (state.local_ended and state.remote_ended) or state.reset_code is not None:
            state.closed = True
            self.streams.pop(state.stream_id, None)
            self._send_blocked.pop(state, None)
            self._release()

    def reset(self, state: StreamState, code: int, error: ErrorFactory) -> None:
        """Reset ``state`` (queue RST_STREAM); reads and writes raise ``error``."""
        if state.error is None:
            state.error = error
        if not state.closed:
            state.reset_code = code
            if self.error is None and not self.closed_locally:
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    self.h2.reset_stream(state.stream_id, code)
            self._maybe_closed(state)
        self.wake(state.recv_waiter)
        self.wake(state.send_waiter)

    # -- writing --------------------------------------------------------------

    async def flush(self, *, wait: bool = True) -> None:
        """Write everything h2 has queued, or leave it to the current sender.

        With ``wait``, return only once the bytes queued before the call were
        written (back-pressure for uploads). See :mod:`._h2_writer` for why a
        cancelled write does not break the connection.

        Raises:
            ConnectionClosed, ProtocolError, trio.ClosedResourceError: with
                ``wait``, the connection failed (and the write with it).
        """
        writer = self._writer
        if writer.sending:
            if not wait:
                return
            await writer.wait_idle()
        if self.error is not None:
            # Nothing can be written any more; only a caller that needs its
            # bytes sent (an upload) hears about it here, the others when
            # they next wait.
            if wait and not self.closed_locally:
                raise self.error()
            return
        try:
            await writer.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            if wait:
                raise self._failure() from exc

    def _write_failed(self, exc: BaseException) -> None:
        if isinstance(exc, trio.Cancelled):
            self.fail(
                lambda: ConnectionClosed(
                    None,
                    "a write was cancelled part-way, which breaks HTTP/2 framing",
                    normal=False,
                )
            )
        else:
            self._lost(exc)

    def _abandoned(self) -> None:
        if self.error is None:
            # A sender was cancelled between writes: frames other tasks
            # queued (and left to it) may still be waiting. Have the reader,
            # or a waiting task, send them.
            self._kick()

    def _kick(self) -> None:
        if self._read_scope is not None:
            # Safe: a cancelled receive_some loses nothing (SSLStream's too,
            # once the handshake is done); the reader flushes, then reads.
            self._read_scope.cancel()
        elif self._parked:
            self.wake(next(iter(self._parked)))

    async def aclose(self) -> None:
        """Send GOAWAY, then close the transport (forcefully if cancelled)."""
        if self.closed_locally:
            await trio.lowlevel.checkpoint()
            return
        self.closed_locally = True
        try:
            if self.error is None:
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    self.h2.close_connection()
                with trio.move_on_after(self.limits.close_timeout):
                    await self.flush()
        except (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            ConnectionClosed,
            OSError,
        ):
            pass  # the GOAWAY could not be sent: closing is all that is left
        finally:
            self.fail(closed_error)
            await trio.aclose_forcefully(self.transport)


_HANDLERS: dict[type[h2.events.Event], Callable[[Engine, h2.events.Event], None]] = {
    h2.events.ResponseReceived: Engine._on_response,  # type: ignore[dict-item]
    h2.events.InformationalResponseReceived: Engine._on_informational,  # type: ignore[dict-item]
    h2.events.DataReceived: Engine._on_data,  # type: ignore[dict-item]
    h2.events.TrailersReceived: Engine._on_trailers,  # type: ignore[dict-item]
    h2.events.StreamEnded: Engine._on_ended,  # type: ignore[dict-item]
    h2.events.StreamReset: Engine._on_reset,  # type: ignore[dict-item]
    h2.events.WindowUpdated: Engine._on_window,  # type: ignore[dict-item]
    h2.events.RemoteSettingsChanged: Engine._on_settings,  # type: ignore[dict-item]
    h2.events.PingAckReceived: Engine._on_ping_ack,  # type: ignore[dict-item]
    h2.events.ConnectionTerminated: Engine._on_goaway,  # type: ignore[dict-item]
}
