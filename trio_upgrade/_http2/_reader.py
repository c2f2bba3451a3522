"""The reader role of an HTTP/2 connection: one socket read for many tasks.

No task of its own. Whichever task needs something from the server (a
response head, body data, a window update, a free stream) and finds nobody
reading becomes the *reader*: it reads once, feeds h2, hands every event to
the stream it concerns, wakes the task waiting on that stream, and looks
again at what it wanted. The other tasks wait on their own
:class:`~._state.Waiter`; when the reader leaves, it hands the role to one
of them. So there is no task switch per event beyond waking the task an
event is for, and no per-event scan over streams.

The protocol logic is h2's; this module only moves bytes in and keeps, per
stream, what the application has not consumed yet (bounded by the stream's
receive window, which is reopened as the application reads).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import h2.events
import h2.exceptions
import trio
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from .._sansio._errors import (
    ConnectionClosed,
    ContentLengthError,
    ProtocolError,
    StreamRefused,
)
from .._sansio._errors import StreamReset as StreamResetError
from .._sansio._h2_compat import reopen_after_goaway
from .._sansio._h2_frames import FrameScanner, PrefaceError
from ._state import (
    CLEANUP_GRACE,
    RECEIVE_SIZE,
    H2State,
    Waiter,
    code_name,
    refused_by_goaway,
    split_head,
)
from ._writer import H2Writer, lost

__all__ = ["IDLE_GRACE", "READ_SIZE", "H2Reader"]

#: Bytes asked of the transport in one read: four times the library's
#: usual :data:`~trio_upgrade._sansio._limits.RECEIVE_SIZE`, so that a
#: 64 KiB response and its frame headers come in one read, not two, and
#: larger bodies in a quarter of the reads (each read costs a trip through
#: Trio and through h2's frame buffer: 12 % fewer instructions per 64 KiB
#: GET, callgrind, docs/perf/http2-throughput.rst). A read size, not a
#: bound: nothing of that size is kept once the read is fed to h2.
READ_SIZE = 4 * RECEIVE_SIZE

#: Seconds without a read before the background reader (see
#: :meth:`H2Reader.serve`) reads for an idle connection: short enough that
#: the server's PING is answered and its GOAWAY seen within a tenth of a
#: second, long enough to cost nothing while tasks use the connection.
IDLE_GRACE = 0.05


class H2Reader:
    """The reader role of one connection; see the module docstring.

    Args:
        transport: where the bytes come from.
        state: the connection's state, which received events change.
        writer: what the reader flushes before each read (window updates,
            acks), and hands the last bytes to when the connection fails.
    """

    __slots__ = (
        "_conn_threshold",
        "_conn_unacked",
        "_h2",
        "_reading",
        "_scanner",
        "_state",
        "_streams",
        "_transport",
        "_wake",
        "_writer",
    )

    def __init__(
        self, transport: trio.abc.Stream, state: H2State, writer: H2Writer
    ) -> None:
        self._transport = transport
        self._state = state
        self._writer = writer
        # Bound once: these run for every event.
        self._h2 = state.h2
        self._streams = state.streams
        self._wake = state.wake
        self._scanner = FrameScanner()
        self._reading = False
        self._conn_unacked = 0  # DATA received, not yet given back
        self._conn_threshold = state.options.connection_window // 2

    async def wait(self, waiter: Waiter, ready: Callable[[], bool]) -> None:
        """Return once ``ready()`` or the connection failed; may read for all.

        Not a checkpoint when ``ready()`` already holds.
        """
        state = self._state
        try:
            while not ready() and state.error is None:
                if self._reading:
                    event = waiter.event = trio.Event()
                    state.parked[waiter] = None
                    try:
                        await event.wait()
                    finally:
                        if waiter.event is event:
                            waiter.event = None
                            del state.parked[waiter]
                else:
                    state.reader_waiter = waiter
                    try:
                        await self._read_once()
                    finally:
                        state.reader_waiter = None
        finally:
            if not self._reading and state.parked:
                # Whoever stops waiting (the reader, or a task whose wait
                # ended) makes sure someone goes on reading for the rest.
                self._wake(next(iter(state.parked)))

    async def serve(self) -> None:
        """Read for everyone while no task waits on the connection.

        The background reader of a connection with a nursery: while idle,
        the server's PINGs are answered, its SETTINGS applied and acked,
        its GOAWAY or close seen within ``2 * IDLE_GRACE``. It takes the
        reader role only once nobody has read for ``IDLE_GRACE``: while
        tasks use the connection they read for themselves, as without a
        nursery, and the reader costs one timer wake-up per
        ``IDLE_GRACE``, not a task switch per request (handing the role
        over at each request cost 64-81% more instructions per sequential
        GET, measured with callgrind). After each read of its own, it hands
        the role to a task that came to wait meanwhile.

        Returns when the connection has failed or was closed; never raises
        for the connection's own errors (they are the connection's, seen
        by its users).
        """
        state = self._state
        waiter = state.keeper = Waiter()
        try:
            while not state.failed() and not state.closed_locally:
                seen = state.reads
                # Cut short by fail() (a close too): once the connection is
                # over, the caller's nursery is not held up by this sleep.
                with trio.move_on_after(IDLE_GRACE) as state.idle_scope:
                    await trio.sleep_forever()
                state.idle_scope = None
                if self._reading or state.reads != seen:
                    continue  # in use: its users read
                if state.parked:
                    # (Not reached in practice: a task parks only while
                    # someone reads, and the reader wakes one as it leaves.)
                    self._wake(next(iter(state.parked)))
                    continue
                state.reader_waiter = waiter
                try:
                    await self._read_once()
                finally:
                    state.reader_waiter = None
                if state.parked and not self._reading:
                    # Tasks came to wait while we read: one reads for them.
                    self._wake(next(iter(state.parked)))
        finally:
            state.keeper = None

    # Ctrl-C (KeyboardInterrupt) between a read and h2 taking its bytes
    # would lose them; protected, it is raised at the next wait instead.
    @trio.lowlevel.enable_ki_protection
    async def _read_once(self) -> None:
        state = self._state
        # Send what we owe first (window updates, acks), so the server is
        # never waiting on bytes we hold while we wait on it.
        await self._writer.flush(wait=False)
        if self._reading or state.failed():
            return
        if state.closed_locally and state.reader_waiter is state.keeper:
            return  # the background reader stops at the close (see aclose)
        self._reading = True
        state.reads += 1
        data: bytes | bytearray | None = None
        problem: BaseException | None = None
        try:
            with trio.CancelScope() as state.read_scope:
                try:
                    data = await self._transport.receive_some(READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    problem = exc
                except OSError as exc:  # pragma: no cover - SSL stacks
                    problem = exc
        finally:
            self._reading = False
            state.read_scope = None
        if problem is not None:
            lost(state, problem)
        elif data is not None:
            self.receive(data)
        # (No data and no problem: the read was cut short on purpose, by a
        # failure or by H2State.kick.)
        if state.failed():
            await self._shut_down()
        else:
            await self._writer.flush(wait=False)

    async def _shut_down(self) -> None:
        # After a protocol error h2 has queued a GOAWAY with its code (RFC
        # 9113 §5.4.1 asks for one): try briefly to send it, then close.
        writer = self._writer
        closed = self._state.closed_locally
        data = b"" if writer.sending or closed else writer.take_all()
        if data:
            with (
                trio.move_on_after(CLEANUP_GRACE),
                contextlib.suppress(
                    trio.BrokenResourceError, trio.ClosedResourceError, OSError
                ),
            ):
                await self._transport.send_all(data)
        await trio.aclose_forcefully(self._transport)

    def receive(self, data: bytes | bytearray) -> None:
        """Feed bytes from the server (``b""``: it closed) and dispatch."""
        if not data:
            self._on_eof()
            return
        if self._state.closed_locally:
            # aclose() sent our GOAWAY, after which h2 refuses every frame,
            # and fails every stream: what still arrives (a PING's ACK, the
            # rest of a response) concerns nobody.
            return
        try:
            cuts = self._scanner.feed(data)
        except PrefaceError as exc:
            message = str(exc)
            self._state.fail(
                lambda: ProtocolError(message, code=ErrorCodes.PROTOCOL_ERROR)
            )
            return
        start = 0
        for cut in cuts:
            if not self._feed(data[start:cut]):
                return
            # After a GOAWAY h2 refuses every frame, but the server may still
            # finish the streams it kept (RFC 9113 §6.8): reopen h2.
            if not self._state.closed_locally:
                reopen_after_goaway(self._h2)
            start = cut
        if start < len(data):
            self._feed(data[start:])

    def _feed(self, data: bytes | bytearray) -> bool:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.InvalidBodyLengthError as exc:
            # h2 counts DATA against content-length and ends the connection
            # on a mismatch (RFC 9113 §8.1.1 allows a stream error; h2 has
            # already sent GOAWAY by now).
            expected, received = exc.expected_length, exc.actual_length
            message = (
                f"the server broke HTTP/2: a body of {received} bytes where "
                f"content-length said {expected}"
            )
            self._state.fail(
                lambda: ContentLengthError(
                    message, expected=expected, received=received, stream_id=None
                )
            )
            return False
        except h2.exceptions.ProtocolError as exc:
            code = int(exc.error_code)
            message = f"the server broke HTTP/2: {exc}"
            self._state.fail(lambda: ProtocolError(message, code=code))
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
            self._h2.increment_flow_control_window(self._conn_unacked)
            self._conn_unacked = 0
        return True

    # -- events ---------------------------------------------------------------

    def _on_response(self, event: h2.events.ResponseReceived) -> None:
        state = self._streams.get(event.stream_id)
        if state is not None:
            state.status, state.headers, length = split_head(event.headers)
            if state.expected_length is None and state.status not in (204, 304):
                # RFC 9110 §8.6: 204 and 304 have no body whatever it says.
                state.expected_length = length
            self._wake(state.recv_waiter)

    def _on_informational(self, event: h2.events.InformationalResponseReceived) -> None:
        state = self._streams.get(event.stream_id)
        if state is None:
            return
        state.informational += 1
        limit = self._state.options.max_informational
        if state.informational > limit:
            message = (
                f"stream {state.stream_id}: more than {limit} informational (1xx) "
                "responses (HTTP2Options.max_informational)"
            )
            self._state.reset(
                state,
                ErrorCodes.ENHANCE_YOUR_CALM,
                lambda: ProtocolError(message, code=ErrorCodes.ENHANCE_YOUR_CALM),
            )

    def _on_data(self, event: h2.events.DataReceived) -> None:
        length = event.flow_controlled_length
        self._conn_unacked += length
        state = self._streams.get(event.stream_id)
        if state is None or state.reset_code is not None:
            return
        data = event.data
        # Padding is never handed to the application: give it back with the
        # next window update.
        state.unacked += length - len(data)
        if data:
            state.chunks.append(data)
            state.buffered += len(data)
            self._wake(state.recv_waiter)

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        state = self._streams.get(event.stream_id)
        if state is not None:
            state.trailers = [(n, v) for n, v in event.headers]

    def _on_ended(self, event: h2.events.StreamEnded) -> None:
        state = self._streams.get(event.stream_id)
        if state is not None:
            state.remote_ended = True
            self._wake(state.recv_waiter)
            self._state.maybe_closed(state)

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        state = self._streams.get(event.stream_id)
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
        self._wake(state.recv_waiter)
        self._wake(state.send_waiter)
        self._state.maybe_closed(state)

    def _on_window(self, event: h2.events.WindowUpdated) -> None:
        if event.stream_id == 0:
            self._state.wake_senders()
        else:
            state = self._streams.get(event.stream_id)
            if state is not None:
                self._wake(state.send_waiter)

    def _on_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        conn = self._state
        conn.settings_seen = True
        changed = event.changed_settings
        if SettingCodes.MAX_CONCURRENT_STREAMS in changed:
            conn.max_streams = self._h2.remote_settings.max_concurrent_streams
            conn.grant()
        if SettingCodes.INITIAL_WINDOW_SIZE in changed:
            conn.wake_senders()

    def _on_ping_ack(self, event: h2.events.PingAckReceived) -> None:
        ping = self._state.pings.pop(event.ping_data, None)
        if ping is not None:
            ping.acked = True
            self._wake(ping)

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        conn = self._state
        code = int(event.error_code or 0)
        last = int(event.last_stream_id or 0)
        if conn.goaway is not None:
            # A second GOAWAY may only lower last_stream_id (RFC 9113 §6.8).
            last = min(last, conn.goaway[1])
        conn.goaway = (code, last, event.additional_data or b"")
        for sid, state in list(self._streams.items()):
            if sid > last and not state.closed:
                state.reset_code = code
                state.error = refused_by_goaway(sid, code, last)
                self._wake(state.recv_waiter)
                self._wake(state.send_waiter)
                conn.maybe_closed(state)
        for grant in conn.grants:
            self._wake(grant)

    def _on_eof(self) -> None:
        conn = self._state
        if conn.goaway is not None:
            code, _, debug = conn.goaway
            reason = debug.decode("utf-8", "replace")
            normal = code == ErrorCodes.NO_ERROR
            conn.fail(lambda: ConnectionClosed(code, reason, normal=normal))
        else:
            conn.fail(
                lambda: ConnectionClosed(
                    None, "the server closed the connection", normal=False
                )
            )


_HANDLERS: dict[type[h2.events.Event], Callable[[H2Reader, h2.events.Event], None]] = {
    h2.events.ResponseReceived: H2Reader._on_response,  # type: ignore[dict-item]
    h2.events.InformationalResponseReceived: H2Reader._on_informational,  # type: ignore[dict-item]
    h2.events.DataReceived: H2Reader._on_data,  # type: ignore[dict-item]
    h2.events.TrailersReceived: H2Reader._on_trailers,  # type: ignore[dict-item]
    h2.events.StreamEnded: H2Reader._on_ended,  # type: ignore[dict-item]
    h2.events.StreamReset: H2Reader._on_reset,  # type: ignore[dict-item]
    h2.events.WindowUpdated: H2Reader._on_window,  # type: ignore[dict-item]
    h2.events.RemoteSettingsChanged: H2Reader._on_settings,  # type: ignore[dict-item]
    h2.events.PingAckReceived: H2Reader._on_ping_ack,  # type: ignore[dict-item]
    h2.events.ConnectionTerminated: H2Reader._on_goaway,  # type: ignore[dict-item]
}
