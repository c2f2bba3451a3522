"""The engine of an HTTP/2 connection: h2 state, one socket, many tasks.

Composed of three parts held by reference: the connection's state
(:class:`~._state.H2State`), its reader (:class:`~._reader.H2Reader`,
the task whose turn it is to read for everyone) and its writer
(:class:`~._writer.H2Writer`, the task whose turn it is to write what
everyone queued). :class:`H2Engine` adds the operations streams are used
through: opening a stream (waiting for a free one), sending a body as flow
control allows, handing received data to the application and reopening the
stream's window as it is consumed, resetting a stream the application gave
up, PING, and closing.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import TYPE_CHECKING

import h2.connection
import h2.exceptions
import trio
from h2.errors import ErrorCodes

from .._sansio._errors import (
    BodyTooLarge,
    ConnectionClosed,
    ProtocolError,
    StreamRefused,
)
from .._sansio._h2_options import DEFAULT_WINDOW, HTTP2Options
from .._transport._fastio import ConnectionIO
from ._reader import H2Reader
from ._state import (
    CLEANUP_GRACE,
    ErrorFactory,
    Grant,
    H2State,
    Header,
    PendingPing,
    StreamState,
    Waiter,
    closed_error,
)
from ._writer import H2Writer

if TYPE_CHECKING:
    from .._sansio._limits import Limits

__all__ = ["H2Engine"]


class H2Engine:
    """One connection's state, reader and writer, and the stream operations.

    Args:
        transport: the byte stream, owned from now on.
        machine: h2's client state machine, initiated (upgrade or preface).
        options: the connection's bounds.
        limits: ``close_timeout`` bounds :meth:`aclose`.

    Attributes:
        state: what the connection knows (streams, GOAWAY, failure).
        reader: the reader role; :meth:`wait` is its ``wait``.
        writer: the writer role; :meth:`flush` is its ``flush``.
    """

    __slots__ = (
        "_stream_threshold",
        "flush",
        "h2",
        "reader",
        "receive",
        "state",
        "transport",
        "wait",
        "writer",
    )

    def __init__(
        self,
        transport: trio.abc.Stream,
        machine: h2.connection.H2Connection,
        options: HTTP2Options,
        limits: Limits,
    ) -> None:
        self.transport = transport
        self.state = state = H2State(machine, options, limits)
        # The writes on a plain socket, with a schedule point once a
        # millisecond when nothing waits (_transport/_fastio.py). Built
        # right after the connection's handshake read (a schedule point).
        # Reads keep Trio's receive_some: see docs/perf/schedule-points.rst.
        io = ConnectionIO(transport, after_schedule_point=True)
        self.writer = H2Writer(transport, state, io)
        self.reader = H2Reader(transport, state, self.writer)
        # Bound once: the stream operations use them on every call.
        self.h2 = machine
        self.wait = self.reader.wait
        self.flush = self.writer.flush
        self.receive = self.reader.receive
        self._stream_threshold = options.stream_window // 2

    # -- opening and closing --------------------------------------------------

    async def open_stream(
        self, headers: list[Header], *, end_stream: bool, head_request: bool = False
    ) -> StreamState:
        """Wait for a free stream, send the request head; a checkpoint.

        ``head_request``: the request is a HEAD, so its response has no body.

        Raises:
            StreamRefused: the server sent GOAWAY (before or while waiting).
            ConnectionClosed, ProtocolError: the connection failed.
            trio.ClosedResourceError: the connection was closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        conn = self.state
        conn.check_usable()
        if conn.grants or conn.active >= conn.limit():
            grant = Grant()
            conn.grants.append(grant)
            try:
                await self.wait(grant, lambda: grant.granted or conn.goaway is not None)
            except BaseException:
                if grant.granted:
                    conn.release()
                else:
                    conn.grants.remove(grant)
                raise
            if not grant.granted:
                # The wait ends ungranted only when no stream can be opened.
                conn.grants.remove(grant)
                conn.check_usable()
                raise AssertionError("unreachable: ungranted yet usable")
            if conn.error is not None or conn.goaway is not None:
                conn.release()
                conn.check_usable()
        else:
            conn.active += 1
        try:
            stream_id = self.h2.get_next_available_stream_id()
            self.h2.send_headers(stream_id, headers, end_stream=end_stream)
        except h2.exceptions.NoAvailableStreamIDError:
            conn.release()
            raise StreamRefused(
                "this connection has used every stream ID; send the request on "
                "a new connection",
                code=ErrorCodes.NO_ERROR,
                stream_id=None,
            ) from None
        except BaseException:
            conn.release()
            raise
        state = StreamState(
            stream_id, local_ended=end_stream, head_request=head_request
        )
        conn.streams[stream_id] = state
        try:
            await self.flush(wait=False)
        except BaseException:
            await self.abandon(state)
            raise
        return state

    async def abandon(
        self, state: StreamState, error: ErrorFactory | None = None
    ) -> None:
        """The application is done with ``state``: reset it unless finished.

        Later reads and writes raise ``error`` (default
        :class:`trio.ClosedResourceError`). Safe to call from a cancelled
        task: the RST_STREAM is sent under a short shield
        (:data:`CLEANUP_GRACE`).
        """
        if state.closed:
            return
        sid = state.stream_id
        self.state.reset(
            state,
            ErrorCodes.CANCEL,
            error or (lambda: trio.ClosedResourceError(f"stream {sid} was closed")),
        )
        await self._flush_in_cleanup()

    async def close_stream(self, state: StreamState, *, fin: bool = True) -> None:
        """Close a byte-stream use of ``state`` as closing a socket would.

        END_STREAM, the FIN of RFC 8441 §5: the server reads the end of
        what was sent. If the server had not ended its side, RST_STREAM
        ``CANCEL`` follows, as a socket closed with input pending sends a
        reset: its further writes fail, and the stream is free at once
        instead of waiting for the server's end. With ``fin=False`` only
        the reset is sent in that case.
        """
        if state.closed or self.state.failed():
            return
        if not state.local_ended and (fin or state.remote_ended):
            self.h2.end_stream(state.stream_id)
            state.local_ended = True
            self.state.maybe_closed(state)
        if state.remote_ended:  # so now closed both ways
            await self._flush_in_cleanup()
        else:
            await self.abandon(state)

    async def _flush_in_cleanup(self) -> None:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + CLEANUP_GRACE
            with contextlib.suppress(
                trio.ClosedResourceError, ConnectionClosed, ProtocolError
            ):
                await self.flush(wait=False)

    # -- receiving ------------------------------------------------------------

    async def wait_head(self, state: StreamState) -> bool:
        """Wait for the response head; raise the stream's error instead.

        Returns whether the task waited (so the call was a schedule point
        of its own): a caller that goes on reading need not yield again.
        """
        if state.has_head():
            await trio.lowlevel.checkpoint()
            waited = False
        else:
            # Not ready, so wait() parks or reads: a schedule point either
            # way (it returns at once only for a failed connection, which
            # raises below).
            await self.wait(state.recv_waiter, state.has_head)
            waited = True
        if state.headers is None:
            error = state.error or self.state.error
            assert error is not None
            raise error()
        return waited

    async def receive_data(self, state: StreamState, max_bytes: int | None) -> bytes:
        """Received DATA of ``state`` (``b""`` at its end); a checkpoint."""
        if state.readable():
            await trio.lowlevel.checkpoint()
        else:
            await self.wait(state.recv_waiter, state.readable)
        if state.chunks:
            chunk = state.chunks.popleft()
            if max_bytes is not None and len(chunk) > max_bytes:
                state.chunks.appendleft(chunk[max_bytes:])
                chunk = chunk[:max_bytes]
            state.buffered -= len(chunk)
            state.delivered += len(chunk)
            state.unacked += len(chunk)
            if state.unacked >= self._stream_threshold:
                await self._give_back(state)
            return chunk
        if state.remote_ended:
            state.check_length()
            return b""
        error = state.error or self.state.error
        assert error is not None
        raise error()

    async def receive_all(
        self, state: StreamState, limit: int, *, yielded: bool = False
    ) -> bytes:
        """Every DATA byte of ``state`` until its end, at most ``limit``.

        A checkpoint, unless ``yielded``: the caller has just been through
        a schedule point of its own (it waited for the head), and a body
        already there is taken without another pass of the run loop.
        """
        # The pieces as h2 made them, joined once at the end (one copy; none
        # for a body that came in one piece), not grown piece by piece.
        parts: list[bytes] = []
        received = 0
        while True:
            if state.readable():
                if not yielded:
                    await trio.lowlevel.checkpoint()
            else:
                await self.wait(state.recv_waiter, state.readable)
            size = state.buffered
            if received + size > limit:
                message = (
                    f"stream {state.stream_id}: the body is larger than {limit} "
                    "bytes (HTTP2Options.max_body_size); use stream() to read "
                    "it in pieces"
                )
                too_large = partial(BodyTooLarge, message, limit=limit)
                await self.abandon(state, too_large)
                raise too_large()
            chunks = state.chunks
            parts += chunks
            chunks.clear()
            received += size
            state.buffered = 0
            state.delivered += size
            # Any later round is a round of its own: it yields again.
            yielded = False
            state.unacked += size
            if state.unacked >= self._stream_threshold:
                await self._give_back(state)
                # While the window update was written, another task may have
                # read more of this stream, its end included: take that too
                # before looking at the end (DESIGN principle 9).
                if state.chunks:
                    continue
            if state.remote_ended:
                state.check_length()
                return parts[0] if len(parts) == 1 else b"".join(parts)
            if state.error is not None:
                raise state.error()
            if self.state.error is not None:
                raise self.state.error()

    async def _give_back(self, state: StreamState) -> None:
        # Half the stream window consumed (``state.unacked``, counted by the
        # callers: a coroutine call per read was most of the cost of reading
        # a small body): reopen it, unless nothing more can come.
        if not (state.remote_ended or state.closed or self.state.error is not None):
            self.h2.increment_flow_control_window(
                state.unacked, stream_id=state.stream_id
            )
            state.unacked = 0
            # Send it now: the server may be waiting on it, and this task
            # may be about to wait on the server.
            await self.flush(wait=False)

    # -- sending --------------------------------------------------------------

    def _send_ready(self, state: StreamState) -> bool:
        if state.error is not None or state.reset_code is not None:
            return True
        return self.h2.local_flow_control_window(state.stream_id) > 0

    async def send_data(
        self, state: StreamState, data: bytes | bytearray | memoryview, *, end: bool
    ) -> None:
        """Send ``data`` on ``state`` as flow control allows; a checkpoint.

        Raises:
            StreamReset: the server reset the stream (not when it ended its
                response and then reset with ``NO_ERROR`` to stop the upload,
                which RFC 9113 §8.1 allows: the rest is dropped).
            trio.ClosedResourceError: the stream's sending side is closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        view = memoryview(data).cast("B")
        pos = 0
        total = len(view)
        sid = state.stream_id
        machine = self.h2
        while True:
            if self._upload_stopped(state):
                return
            if pos < total:
                window = machine.local_flow_control_window(sid)
                if window <= 0:
                    await self._wait_window(state)
                    continue
                frame = machine.max_outbound_frame_size
                stop = pos + min(window, total - pos)
                while pos < stop:
                    step = min(frame, stop - pos)
                    last = end and pos + step == total
                    machine.send_data(sid, view[pos : pos + step], end_stream=last)
                    pos += step
            elif end:
                machine.end_stream(sid)
            if end and pos == total:
                state.local_ended = True
                self.state.maybe_closed(state)
            await self.flush()
            if pos == total:
                return

    def _upload_stopped(self, state: StreamState) -> bool:
        conn = self.state
        if conn.error is not None:
            raise conn.error()
        if state.local_ended:
            raise trio.ClosedResourceError(
                f"stream {state.stream_id}: the request body was already ended"
            )
        if state.reset_code is not None:
            if state.remote_ended and state.reset_code == ErrorCodes.NO_ERROR:
                return True
            error = state.error or state.peer_reset
            if error is not None:
                raise error()
            raise trio.ClosedResourceError(f"stream {state.stream_id} was closed")
        return False

    async def _wait_window(self, state: StreamState) -> None:
        blocked = self.state.send_blocked
        blocked[state] = None
        try:
            await self.wait(state.send_waiter, lambda: self._send_ready(state))
        finally:
            blocked.pop(state, None)

    async def wait_writable(self, state: StreamState) -> None:
        """Wait until ``state`` has send window (or cannot send at all)."""
        await trio.lowlevel.checkpoint()
        if self.state.error is None and not self._send_ready(state):
            await self._wait_window(state)

    # -- the connection as a whole -----------------------------------------

    def open_receive_window(self) -> None:
        """Queue the WINDOW_UPDATE that opens the connection window."""
        increment = self.state.options.connection_window - DEFAULT_WINDOW
        if increment > 0:
            self.h2.increment_flow_control_window(increment)

    async def wait_settings(self) -> None:
        """Wait for the server's SETTINGS preface; raise if it failed."""
        conn = self.state
        await self.wait(Waiter(), lambda: conn.settings_seen)
        if conn.error is not None:
            raise conn.error()

    async def ping(self) -> float:
        """Send PING, wait for its ACK; the round-trip time in seconds.

        Allowed after a GOAWAY (it opens no stream), not after a failure.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        conn = self.state
        conn.check_alive()
        conn.ping_count += 1
        opaque = conn.ping_count.to_bytes(8, "big")
        ping = PendingPing()
        conn.pings[opaque] = ping
        try:
            self.h2.ping(opaque)
            start = trio.current_time()
            await self.flush(wait=False)
            await self.wait(ping, lambda: ping.acked)
        finally:
            conn.pings.pop(opaque, None)
        if not ping.acked:
            conn.check_alive()
        return trio.current_time() - start

    # -- servicing while idle -------------------------------------------------

    def start_service(self, nursery: trio.Nursery) -> None:
        """Keep the connection serviced while idle, in ``nursery``."""
        nursery.start_soon(self._serve, name=f"trio_upgrade HTTP/2 {self.transport!r}")

    async def _serve(self) -> None:
        options = self.state.options
        if options.ping_interval is None and options.idle_timeout is None:
            # The defaults: the reader is all there is to run, and a nursery
            # of its own would be one more scope to open and close per
            # connection.
            await self.reader.serve()
            return
        async with trio.open_nursery() as nursery:
            if options.ping_interval is not None:
                nursery.start_soon(self._keepalive, options.ping_interval)
            if options.idle_timeout is not None:
                nursery.start_soon(self._close_when_idle, options.idle_timeout)
            await self.reader.serve()
            # The connection failed or was closed: nothing left to keep.
            nursery.cancel_scope.cancel()

    async def _keepalive(self, interval: float) -> None:
        conn = self.state
        timeout = conn.options.ping_timeout
        while True:
            await trio.sleep(interval)
            if conn.failed() or conn.closed_locally:
                return
            with trio.move_on_after(timeout) as scope:
                try:
                    await self.ping()
                except (ConnectionClosed, trio.ClosedResourceError):
                    return  # the connection ended: nothing to keep alive
            if scope.cancelled_caught:
                conn.fail(
                    lambda: ConnectionClosed(
                        None,
                        f"keepalive PING not answered within {timeout} s",
                        normal=False,
                    )
                )
                return

    async def _close_when_idle(self, seconds: float) -> None:
        conn = self.state
        timeout = seconds
        while True:
            if conn.active:
                deadline = trio.current_time() + timeout
            else:
                deadline = conn.idle_since + timeout
            await trio.sleep_until(deadline)
            if conn.failed() or conn.closed_locally:
                return
            if not conn.active and conn.idle_since + timeout <= trio.current_time():
                await self.aclose()
                return

    async def aclose(self) -> None:
        """Send GOAWAY, then close the transport (forcefully if cancelled)."""
        conn = self.state
        if conn.closed_locally:
            await trio.lowlevel.checkpoint()
            return
        conn.closed_locally = True
        if conn.reader_waiter is conn.keeper is not None and conn.read_scope:
            # The background reader stops reading: h2 takes no frame after
            # our GOAWAY, and the close needs no more of them.
            conn.read_scope.cancel()
        try:
            if conn.error is None:
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    self.h2.close_connection()
                with trio.move_on_after(conn.limits.close_timeout):
                    await self.flush()
        except (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            ConnectionClosed,
            OSError,
        ):
            pass  # the GOAWAY could not be sent: closing is all that is left
        finally:
            conn.fail(closed_error)
            await trio.aclose_forcefully(self.transport)
