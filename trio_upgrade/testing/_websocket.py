"""The test server's WebSocket: wsproto's server role behind our own 101.

The generic server sends the 101 with the fields :meth:`accept` gives
(``Sec-WebSocket-Accept`` computed here, the chosen subprotocol, the
accepted permessage-deflate parameters); :meth:`serve` then runs a wsproto
``Connection(ConnectionType.SERVER)`` on the switched stream and hands a
:class:`ServerWebSocket` to a handler (by default, echo).

Knobs stage what clients must cope with: a first message right after the
101, a close with a given code and reason, pings left unanswered, raw bytes
(invalid frames, deflate bombs) through :meth:`ServerWebSocket.send_raw`.

How the client's close reaches a handler (as in the library's own client,
``websockets`` and ``trio-websocket``): ``async for`` ends when the client's
close frame arrives, whatever its code; ``receive()`` then raises
:class:`~trio_upgrade.ConnectionClosed`, which a handler may let escape. A
connection lost without a close frame (code 1006) is abnormal: ``async
for`` and ``receive()`` raise, and a handler that lets that escape fails the
test.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Awaitable, Callable, Sequence

import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate

from .._sansio._errors import ConnectionClosed
from .._sansio._limits import RECEIVE_SIZE
from .._sansio._messages import Request
from .._sansio._syntax import list_elements
from .._sansio._ws_handshake import (
    ExtensionError,
    accept_key,
    parse_extensions,
    valid_key,
)
from .._transport._stream import RawStream
from .._websocket._closing import NORMAL_CODES
from ._handlers import own, run_handler
from ._protocols import ServerProtocol

__all__ = [
    "ServerWebSocket",
    "WebSocketHandler",
    "WebSocketServerProtocol",
    "echo_messages",
]

#: The close code of a connection that ended without a close frame (RFC 6455
#: §7.1.5); never sent on the wire.
ABNORMAL_CLOSURE = 1006

#: Seconds the server waits for the client's close frame after its own.
#: 5 s: half the client's default ``close_timeout``, so a test of a client
#: that never answers ends on the server side first.
CLOSE_TIMEOUT = 5.0


class ServerWebSocket:
    """The server's end of one WebSocket connection, given to handlers.

    Attributes:
        request: the upgrade request.
        subprotocol: the subprotocol the server chose, or ``None``.
        extensions: the extension elements it accepted.
        pings: payloads of the pings received from the client, in order.
        pongs: payloads of the pongs received from the client, in order.
        close_code: the client's close code once it closed (1005 for a
            close frame without a code, 1006 if the connection ended without
            a close frame), else ``None``.
        close_reason: the reason that came with it.

    The client's close frame, whatever its code, ends ``async for``;
    :meth:`receive` (and :meth:`send`) then raise
    :class:`~trio_upgrade.ConnectionClosed`, with ``normal`` true for
    codes 1000, 1001 and 1005. A handler may let that exception escape: the
    client ended the conversation, that is no failure (assert on
    :attr:`close_code` if the code matters). A connection lost without a
    close frame is abnormal: ``async for`` raises too, and the
    ``ConnectionClosed`` (code 1006), if it escapes the handler, fails the
    test. Catch it where the test makes the client vanish on purpose.
    """

    def __init__(
        self,
        stream: RawStream,
        request: Request,
        connection: Connection,
        *,
        subprotocol: str | None,
        extensions: Sequence[str],
        answer_pings: bool,
    ) -> None:
        self.request = request
        self.subprotocol = subprotocol
        self.extensions = tuple(extensions)
        self.pings: list[bytes] = []
        self.pongs: list[bytes] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self._stream = stream
        self._conn = connection
        self._answer_pings = answer_pings
        self._parts: list[str | bytes] = []
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._closed: ConnectionClosed | None = None
        self._send_lock = trio.Lock()

    @property
    def connection(self) -> Connection:
        """The wsproto connection, for anything the methods do not cover."""
        return self._conn

    @property
    def stream(self) -> RawStream:
        """The switched byte stream."""
        return self._stream

    @property
    def closed_cleanly(self) -> bool:
        """Whether the client's close frame arrived (any code)."""
        return self._closed is not None and self.close_code != ABNORMAL_CLOSURE

    async def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary message in one frame.

        Raises:
            ConnectionClosed: the client closed, or the connection is lost.
        """
        if self._closed is not None:
            await trio.lowlevel.checkpoint()
            raise self._closed.with_traceback(None)
        if isinstance(message, str):
            await self.send_raw(self._conn.send(TextMessage(data=message)))
        else:
            await self.send_raw(self._conn.send(BytesMessage(data=bytes(message))))

    async def ping(self, payload: bytes = b"") -> None:
        """Send a ping (its pong shows up in :attr:`pongs`).

        Raises:
            ConnectionClosed: as for :meth:`send`.
        """
        if self._closed is not None:
            await trio.lowlevel.checkpoint()
            raise self._closed.with_traceback(None)
        await self.send_raw(self._conn.send(Ping(payload=payload)))

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are: hand-made frames, garbage, a bomb.

        Raises:
            ConnectionClosed: the connection is lost (code 1006).
        """
        async with self._send_lock:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise self._lost() from exc

    def _lost(self) -> ConnectionClosed:
        """The connection ended without (or before) the client's close frame."""
        if self._closed is None:
            self.close_code = ABNORMAL_CLOSURE
            self._closed = ConnectionClosed(
                ABNORMAL_CLOSURE, self.close_reason, normal=False
            )
        return self._closed

    async def receive(self) -> str | bytes:
        """The next message from the client; pings are answered meanwhile.

        Raises:
            ConnectionClosed: the client closed (its close is answered;
                ``normal`` for codes 1000, 1001 and 1005), or the connection
                ended without a close frame (code 1006, not ``normal``).
        """
        while not self._messages:
            await self._advance()
        return self._messages.popleft()

    async def wait_pong(self, payload: bytes) -> None:
        """Read until a pong with ``payload`` came; keep messages for later.

        Raises:
            ConnectionClosed: the connection ended first.
        """
        while payload not in self.pongs:
            await self._advance()

    async def _advance(self) -> None:
        """Process what is buffered, else read more.

        Raises:
            ConnectionClosed: the connection is closed.
        """
        if self._closed is not None:
            await trio.lowlevel.checkpoint()
            raise self._closed.with_traceback(None)
        progress = False
        for event in self._conn.events():
            progress = True
            if isinstance(event, Message):
                self._parts.append(event.data)
                if event.message_finished:
                    parts, self._parts = self._parts, []
                    if isinstance(parts[0], str):
                        self._messages.append(
                            "".join(p for p in parts if isinstance(p, str))
                        )
                    else:
                        self._messages.append(
                            b"".join(p for p in parts if isinstance(p, bytes))
                        )
            elif isinstance(event, Ping):
                self.pings.append(bytes(event.payload))
                if self._answer_pings and self._conn.state is ConnectionState.OPEN:
                    await self.send_raw(self._conn.send(event.response()))
            elif isinstance(event, Pong):
                self.pongs.append(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                await self._got_close(event)
                return
        if progress:
            await trio.lowlevel.checkpoint()
            return
        try:
            data = await self._stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self._lost()
        elif self._conn.state is not ConnectionState.CLOSED:
            self._conn.receive_data(bytes(data))

    async def _got_close(self, event: CloseConnection) -> None:
        self.close_code = int(event.code)
        self.close_reason = event.reason or ""
        normal = self.close_code in NORMAL_CODES
        self._closed = ConnectionClosed(
            self.close_code, self.close_reason, normal=normal
        )
        if self._conn.state is ConnectionState.REMOTE_CLOSING:
            data = self._conn.send(event.response())
            # The close is the client's, even if its answer cannot go out.
            with contextlib.suppress(ConnectionClosed):
                await self.send_raw(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; wait (bounded) for the client's answer.

        Messages that arrive meanwhile are dropped.
        """
        if self._conn.state is not ConnectionState.OPEN:
            await trio.lowlevel.checkpoint()
            return
        with (
            trio.move_on_after(CLOSE_TIMEOUT),
            contextlib.suppress(ConnectionClosed),
        ):
            await self.send_raw(
                self._conn.send(CloseConnection(code=code, reason=reason))
            )
            while True:
                await self._advance()

    def __aiter__(self) -> ServerWebSocket:
        """Messages until the client's close frame (any code).

        The connection is its own iterator (not an async generator), so
        leaving ``async for`` early, by ``break`` or by an error, leaves
        nothing to finalize.

        Raises:
            ConnectionClosed: the connection ended without a close frame
                (code 1006).
        """
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except ConnectionClosed as exc:
            if exc is self._closed and self.closed_cleanly:
                raise StopAsyncIteration from None
            raise


#: A server handler: given the connection, talk until done.
WebSocketHandler = Callable[[ServerWebSocket], Awaitable[None]]


@own
async def echo_messages(ws: ServerWebSocket) -> None:
    """Send every message back with its own type until the client closes.

    A lost connection ends it too: echo has nothing to assert.
    """
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            await ws.send(message)


def _deflate_offer(request: Request) -> str | None:
    """The client's first permessage-deflate offer element, or ``None``."""
    try:
        offers = parse_extensions(request.headers.get_all("sec-websocket-extensions"))
    except ExtensionError:
        return None
    for name, params in offers:
        if name == "permessage-deflate":
            parts = [name] + [p if v is None else f"{p}={v}" for p, v in params]
            return "; ".join(parts)
    return None


class WebSocketServerProtocol(ServerProtocol):
    """WebSocket for :class:`~trio_upgrade.testing.UpgradeServer`.

    Args:
        handler: runs the connection (default :func:`echo_messages`);
            ``None`` runs nothing: the server sends ``first_message`` if
            given, then closes with ``close_code``. What it raises fails
            the test, except the :class:`~trio_upgrade.ConnectionClosed` of
            the client's close frame (see :class:`ServerWebSocket`); a
            stopping server lets it finish (see
            :meth:`UpgradeServer.stop`).
        subprotocols: subprotocols it supports; it picks the first one the
            client offers (in the client's order).
        compression: accept permessage-deflate when offered (wsproto's
            server-side negotiation).
        first_message: a message sent as soon as the connection is switched,
            before the handler runs.
        close_code: after the handler returns (or at once with
            ``handler=None``) the server closes with this code...
        close_reason: ...and this reason.
        answer_pings: ``False`` leaves the client's pings unanswered.
        headers: more fields for the 101 (to stage a server that sends an
            unoffered subprotocol or extension, say).

    It declines (the server then answers 426) a request without a valid
    ``Sec-WebSocket-Key`` or with a ``Sec-WebSocket-Version`` other than 13.
    """

    token = "websocket"

    def __init__(
        self,
        handler: WebSocketHandler | None = echo_messages,
        *,
        subprotocols: Sequence[str] = (),
        compression: bool = True,
        first_message: str | bytes | None = None,
        close_code: int = 1000,
        close_reason: str = "",
        answer_pings: bool = True,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._handler = handler
        self._subprotocols = tuple(subprotocols)
        self._compression = compression
        self._first_message = first_message
        self._close_code = close_code
        self._close_reason = close_reason
        self._answer_pings = answer_pings
        self._headers = list(headers)
        #: Every connection served so far, in order (for assertions).
        self.connections: list[ServerWebSocket] = []

    def _negotiate(
        self, request: Request
    ) -> tuple[str | None, PerMessageDeflate | None, str | None]:
        offered = list_elements(request.headers.get_all("sec-websocket-protocol"))
        subprotocol = next((s for s in offered if s in self._subprotocols), None)
        deflate: PerMessageDeflate | None = None
        element: str | None = None
        offer = _deflate_offer(request) if self._compression else None
        if offer is not None:
            candidate = PerMessageDeflate()
            accepted = candidate.accept(offer)
            if isinstance(accepted, str):
                deflate = candidate
                element = "; ".join(x for x in ("permessage-deflate", accepted) if x)
        return subprotocol, deflate, element

    def accept(self, request: Request) -> list[tuple[str, str]] | None:
        keys = request.headers.get_all("sec-websocket-key")
        if len(keys) != 1 or not valid_key(keys[0].strip()):
            return None
        if request.headers.get("sec-websocket-version") != "13":
            return None
        subprotocol, _, element = self._negotiate(request)
        fields = [("Sec-WebSocket-Accept", accept_key(keys[0].strip()))]
        if subprotocol is not None:
            fields.append(("Sec-WebSocket-Protocol", subprotocol))
        if element is not None:
            fields.append(("Sec-WebSocket-Extensions", element))
        return fields + self._headers

    @own  # the handler is marked on its own
    async def serve(self, stream: RawStream, request: Request) -> None:
        # Negotiation is a pure function of the request: computing it again
        # here gives the same answer accept() sent, without shared state.
        subprotocol, deflate, element = self._negotiate(request)
        extensions: list[Extension] = [deflate] if deflate is not None else []
        connection = Connection(ConnectionType.SERVER, extensions=extensions)
        ws = ServerWebSocket(
            stream,
            request,
            connection,
            subprotocol=subprotocol,
            extensions=[element] if element else [],
            answer_pings=self._answer_pings,
        )
        self.connections.append(ws)
        if self._first_message is not None:
            try:
                await ws.send(self._first_message)
            except ConnectionClosed:
                return  # the client went away at once: nothing to serve
        if self._handler is not None:
            try:
                await run_handler(self._handler, ws)
            except ConnectionClosed as exc:
                # The client's close frame ends the conversation: no failure.
                # Anything else (a lost connection, a ConnectionClosed of
                # the handler's own making) is the handler's error.
                if exc is not ws._closed or not ws.closed_cleanly:
                    raise
        await ws.close(self._close_code, self._close_reason)
