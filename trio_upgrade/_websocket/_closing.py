"""How a WebSocket connection ends, as a mixin of ``Engine``.

Whatever ends the connection (the server's close frame, a protocol error,
end of stream, a keepalive timeout, ``aclose()``) is recorded once as a
:class:`_Closure`; every later call raises from that record
(:meth:`Closing._closed_error`), and the transport is closed, after our
last frames are written (:meth:`Closing._close_transport`). Split from
``_engine``, which keeps reading, writing and waking, because this is the
one place that decides how a connection ends and what the application sees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from wsproto.connection import Connection, ConnectionState
from wsproto.events import CloseConnection

from .._errors import ConnectionClosed, ProtocolError
from .._sansio._ws_frames import build_frame

if TYPE_CHECKING:
    from ._engine import ConnectionSettings

__all__ = ["NORMAL_CODES", "Closing"]

#: Close codes that end a connection normally (RFC 6455 §7.4.1): normal,
#: going away, and a close frame without a code (1005), which ``websockets``
#: also counts as orderly.
NORMAL_CODES = frozenset({1000, 1001, 1005})


class _Closure:
    """How the connection ended (the first cause wins)."""

    __slots__ = ("cause", "code", "error", "reason")

    def __init__(
        self, code: int, reason: str, error: bool, cause: BaseException | None
    ) -> None:
        self.code = code
        self.reason = reason
        self.error = error  # the peer broke the protocol: ProtocolError
        self.cause = cause


class Closing:
    """Ending the connection; ``Engine`` holds the state it uses."""

    if not TYPE_CHECKING:  # mypy checks assignments against slots
        __slots__ = ()  # Engine declares the slots

    if TYPE_CHECKING:
        _ws: Connection
        _stream: trio.abc.Stream
        _settings: ConnectionSettings
        _close_timeout: float
        _parts: list[str | bytes] | None
        _reader: int
        _outbox: bytearray
        _sending: bool
        _closure: _Closure | None
        _local_close: bool
        _eof: bool
        _must_close: bool
        _transport_closed: bool
        _ka_event: trio.Event | None
        _traffic: trio.Event | None

        async def _drain(self) -> None: ...

        async def _flush_control(self) -> None: ...

        async def _linger(self) -> None: ...

        def _notify(self) -> None: ...

        def _wake_bg(self) -> None: ...

    def _got_close(self, event: CloseConnection, payload: bytes | None = None) -> None:
        """Act on the server's close frame (``payload``: from _take_close)."""
        state = self._ws.state
        closure = self._closure
        if (
            closure is not None
            and closure.code == 1006
            and not closure.error
            and state is not ConnectionState.OPEN
        ):
            # The transport ended (another task's send failed, say) after
            # this frame had been read: the frame says how the connection
            # ended, as it would had it been parsed first.
            self._closure = None
        if state is ConnectionState.REMOTE_CLOSING:
            # The server closes: answer with the same code (RFC 6455 §5.5.1),
            # then close the transport.
            self._set_closure(event.code, event.reason or "")
            if payload is not None:
                # wsproto's answer echoes the code and the (valid, at most
                # 123 bytes) reason: the payload as received, or none for
                # 1005. Its send moves REMOTE_CLOSING to CLOSED.
                self._outbox += build_frame(8, payload)
                self._ws._state = ConnectionState.CLOSED
            else:
                self._outbox += self._ws.send(event.response())
            self._must_close = True
        elif state is ConnectionState.CLOSED:
            # The answer to our close frame; the transport closes at EOF.
            self._set_closure(event.code, event.reason or "")
            if not self._local_close:
                self._must_close = True
        else:
            # wsproto reports a frame it could not parse as a close event
            # without changing state: fail the connection (RFC 6455 §7.1.7).
            code = int(event.code)
            reason = event.reason or ""
            if code == 1009:
                reason = (
                    f"message larger than max_size ({self._settings.max_size} bytes)"
                )
            elif code == 1007:
                reason = f"invalid data: {reason}"
            self._fail(code, reason)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection because of the peer: send ``code``, then close."""
        self._set_closure(code, reason, error=True)
        self._parts = None
        if self._ws.state is ConnectionState.OPEN:
            short = {
                1002: "protocol error",
                1007: "invalid data",
                1009: "message too big",
            }
            self._outbox += self._ws.send(CloseConnection(code, short.get(code, "")))
        self._must_close = True

    def _lost(self, cause: BaseException | None) -> None:
        """The transport ended (EOF or error): no more reading."""
        self._eof = True
        self._set_closure(1006, "", cause=cause)
        self._must_close = True

    async def _settle(self) -> None:
        """After a read that ended the connection: send the close answer (or
        our close), then close the transport.

        Other replies (pongs) are not awaited here: see ``_engine``. Every
        caller has just passed a checkpoint (the read), so closing the
        transport needs none of its own.
        """
        if self._must_close and not self._transport_closed:
            if self._outbox:
                # Cancelled here, the close answer stays for aclose(), and
                # the transport stays open to send it.
                await self._flush_control()
            await self._close_transport(drain=True, checkpoint=False)

    async def _close_transport(self, *, drain: bool, checkpoint: bool = True) -> None:
        if self._transport_closed:
            return
        try:
            closure = self._closure
            if drain and (
                self._outbox
                or self._sending
                or (closure is not None and closure.error and not self._reader)
            ):
                with trio.move_on_after(self._close_timeout):
                    if self._outbox or self._sending:
                        # Our last frames (a close answer) go first.
                        await self._drain()
                    closure = self._closure
                    if closure is not None and closure.error and not self._reader:
                        await self._linger()
        finally:
            if not self._transport_closed:
                self._transport_closed = True
                self._eof = True
                self._set_closure(1006, "")
                # Wake everything that waits, background tasks included,
                # so that they see the end and return.
                self._notify()
                self._wake_bg()
                for event in (self._ka_event, self._traffic):
                    if event is not None:
                        event.set()
                # aclose() of a Trio stream closes even when cancelled; the
                # timeout bounds a TLS close_notify to a silent peer. A
                # socket closes at once: no cancel scope needed for it, and
                # SocketStream.aclose() is close() plus a checkpoint, which
                # a caller that just passed one can skip (a scheduler pass).
                stream = self._stream
                if type(stream) is trio.SocketStream:
                    stream.socket.close()
                    if checkpoint:
                        await trio.lowlevel.checkpoint()
                else:
                    with trio.move_on_after(self._close_timeout):
                        await stream.aclose()

    def _set_closure(
        self,
        code: int,
        reason: str,
        *,
        error: bool = False,
        cause: BaseException | None = None,
    ) -> None:
        if self._closure is None:
            self._closure = _Closure(code, reason, error, cause)

    def _closed_error(self) -> Exception:
        if self._local_close:
            return trio.ClosedResourceError(
                "the WebSocket connection was closed (aclose)"
            )
        closure = self._closure
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
