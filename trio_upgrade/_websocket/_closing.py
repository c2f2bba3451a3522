"""How a WebSocket connection ends: :class:`ClosingHandshake`.

Whatever ends the connection (the server's close frame, a protocol error,
end of stream, a keepalive timeout, ``aclose()``) is recorded once as a
:class:`~._shared.Closure` in the shared state; every later call raises from
that record (:meth:`ClosingHandshake.closed_error`), and the transport is
closed, after our last frames are written
(:meth:`ClosingHandshake.close_transport`). This is the one place that
decides how a connection ends and what the application sees.
"""

from __future__ import annotations

import trio
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection

from .._sansio._errors import ConnectionClosed, ProtocolError
from .._sansio._limits import RECEIVE_SIZE
from ._shared import FG, SharedState
from ._writer import TRANSPORT_ERRORS, Writer

__all__ = ["NORMAL_CODES", "ClosingHandshake"]

#: Close codes that end a connection normally (RFC 6455 §7.4.1): normal,
#: going away, and a close frame without a code (1005), which ``websockets``
#: also counts as orderly.
NORMAL_CODES = frozenset({1000, 1001, 1005})

_SHORT_REASONS = {1002: "protocol error", 1007: "invalid data", 1009: "message too big"}


class ClosingHandshake:
    """Ending the connection, held by the reader, the engine and the
    connection."""

    __slots__ = ("_shared", "_writer")

    def __init__(self, state: SharedState, writer: Writer) -> None:
        self._shared = state
        self._writer = writer

    def got_close(self, event: CloseConnection, payload: bytes | None = None) -> None:
        """Act on the server's close frame (``payload``: when the fast
        reader took the frame itself)."""
        state = self._shared
        ws_state = state.ws.state
        closure = state.closure
        if (
            closure is not None
            and closure.code == 1006
            and not closure.error
            and ws_state is not ConnectionState.OPEN
        ):
            # The transport ended (another task's send failed, say) after
            # this frame had been read: the frame says how the connection
            # ended, as it would had it been parsed first.
            state.closure = None
        if ws_state is ConnectionState.REMOTE_CLOSING:
            # The server closes: answer with the same code (RFC 6455 §5.5.1),
            # then close the transport.
            state.set_closure(event.code, event.reason or "")
            self._writer.close_answer(event, payload)
            state.must_close = True
        elif ws_state is ConnectionState.CLOSED:
            # The answer to our close frame; the transport closes at EOF.
            state.set_closure(event.code, event.reason or "")
            if not state.local_close:
                state.must_close = True
        else:
            # wsproto reports a frame it could not parse as a close event
            # without changing state: fail the connection (RFC 6455 §7.1.7).
            code = int(event.code)
            reason = event.reason or ""
            if code == 1009:
                reason = self.too_big()
            elif code == 1007:
                reason = f"invalid data: {reason}"
            self.fail(code, reason)

    def too_big(self) -> str:
        return f"message larger than max_size ({self._shared.settings.max_size} bytes)"

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection because of the peer: send ``code``, then close."""
        state = self._shared
        state.set_closure(code, reason, error=True)
        ws = state.ws
        if ws.state is ConnectionState.OPEN:
            self._writer.outbox += ws.send(
                CloseConnection(code, _SHORT_REASONS.get(code, ""))
            )
        state.must_close = True

    def keepalive_failed(self, timeout: float, cause: BaseException) -> None:
        """No sign of life within ``timeout`` of a keepalive ping: 1011."""
        state = self._shared
        if state.local_close:
            return  # aclose() began meanwhile: how it ends is aclose()'s
        reason = "keepalive ping timeout"
        state.set_closure(1011, reason, cause=cause)
        ws = state.ws
        if ws.state is ConnectionState.OPEN:
            self._writer.outbox += ws.send(CloseConnection(1011, reason))
        state.must_close = True
        state.notify()

    async def settle(self) -> None:
        """After a read that ended the connection: send the close answer (or
        our close), then close the transport.

        Other replies (pongs) are not awaited here: see ``_engine``. Every
        caller has just passed a checkpoint (the read), so closing the
        transport needs none of its own.
        """
        state = self._shared
        if state.must_close and not state.transport_closed:
            if self._writer.outbox:
                # Cancelled here, the close answer stays for aclose(), and
                # the transport stays open to send it.
                await self._writer.flush_control()
            await self.close_transport(drain=True, checkpoint=False)

    async def close_transport(self, *, drain: bool, checkpoint: bool = True) -> None:
        """Write our last frames (``drain``), linger after failing the
        connection, then close the transport."""
        state = self._shared
        if state.transport_closed:
            return
        writer = self._writer
        try:
            closure = state.closure
            if drain and (
                writer.outbox
                or writer.sending
                or (closure is not None and closure.error and not state.reader)
            ):
                with trio.move_on_after(state.close_timeout):
                    if writer.outbox or writer.sending:
                        # Our last frames (a close answer) go first.
                        await writer.drain()
                    closure = state.closure
                    if closure is not None and closure.error and not state.reader:
                        await self._linger()
        finally:
            await state.shut(checkpoint=checkpoint)

    async def _linger(self) -> None:
        """After failing the connection, let the server read our close frame.

        Closing a socket with unread input sends a reset, which can destroy
        the close frame before the server reads it; so half-close and drop
        what still comes until the server closes (RFC 6455 §7.1.1: the
        server closes first), within the caller's time bound.
        """
        state = self._shared
        if state.eof:
            return
        stream = state.stream
        state.reader = FG  # nobody else reads meanwhile
        try:
            if isinstance(stream, trio.abc.HalfCloseableStream):
                await stream.send_eof()
            while await stream.receive_some(RECEIVE_SIZE):
                pass
        except TRANSPORT_ERRORS:
            pass
        finally:
            state.reader = 0
            state.eof = True

    def closed_error(self) -> Exception:
        """What a call on the ended connection raises."""
        state = self._shared
        if state.local_close:
            return trio.ClosedResourceError(
                "the WebSocket connection was closed (aclose)"
            )
        closure = state.closure
        assert closure is not None
        exc: Exception
        if closure.error:
            exc = ProtocolError(
                f"the server broke the WebSocket protocol: {closure.reason} "
                f"(closed with code {closure.code})",
                code=closure.code,
            )
        else:
            exc = ConnectionClosed(
                closure.code, closure.reason, normal=closure.code in NORMAL_CODES
            )
        exc.__cause__ = closure.cause
        return exc
