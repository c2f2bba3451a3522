"""The server side of h2c, on h2's server role, with a small router.

:class:`H2CServerProtocol` answers the upgrading request on stream 1 (RFC
7540 §3.2) and then serves requests on further streams, each in its own
task, with flow control both ways. Options make it misbehave the ways real
servers do (answer stream 1 before the client's preface, GOAWAY right after
stream 1, reset stream 1); :meth:`H2CServerProtocol.script` stages a server
whose first HTTP/2 bytes arrive in the same write as the 101.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Literal, cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import trio
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from .._sansio._messages import Headers, Request
from .._transport._stream import RawStream
from ._h2_connect import ConnectHandler, H2ServerStream, websocket_over_h2
from ._h2_routes import (
    DEFAULT_ROUTES,
    H2Handler,
    H2Reply,
    H2Request,
    bytes_route,
    pattern,
)
from ._handlers import own, run_handler
from ._protocols import ServerProtocol
from ._records import Notifier
from ._script import Handle, Script, Send
from ._wire import switching_response

__all__ = [
    "DEFAULT_ROUTES",
    "ConnectHandler",
    "H2CServerProtocol",
    "H2Handler",
    "H2Reply",
    "H2Request",
    "H2ServerConnection",
    "H2ServerStream",
    "pattern",
    "websocket_over_h2",
]

RECEIVE_SIZE = 65536
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)

#: Seconds one write may take even when the handler that made it is
#: cancelled: 5 s, half the shared server's connection_timeout, so a client
#: that stops reading cannot keep the server from shutting down.
WRITE_TIMEOUT = 5.0


class H2ServerConnection:
    """One h2c connection on the server side: what it saw, what it can do.

    Attributes:
        index: 0 for the protocol's first connection, then 1, 2...
        events: every h2 event received from the client, in order.
        requests: every request, stream 1 included, once its body ended.
    """

    def __init__(self, protocol: H2CServerProtocol, index: int) -> None:
        self._protocol = protocol
        self.index = index
        self.events: list[h2.events.Event] = []
        self.requests: list[H2Request] = []
        self._notifier = Notifier()
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config)
        # h2's own server defaults, then the protocol's.
        values: dict[int, int] = {
            SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            **protocol.settings,
        }
        self.h2.local_settings = h2.settings.Settings(
            client=False, initial_values=cast("dict[SettingCodes, int]", values)
        )
        self._stream: trio.abc.Stream | None = None
        self._send_lock = trio.StrictFIFOLock()
        self._window = trio.Event()
        self._heads: dict[int, list[tuple[bytes, bytes]]] = {}
        self._bodies: dict[int, bytearray] = {}
        self._scopes: dict[int, trio.CancelScope] = {}
        self._tunnels: dict[int, H2ServerStream] = {}
        self._reset_by_client: set[int] = set()
        self._gone = False  # the client closed or broke the connection
        self._goaway_last: int | None = None
        self._nursery: trio.Nursery | None = None

    # -- what tests look at --------------------------------------------------

    def resets(self) -> list[tuple[int, int]]:
        """``(stream_id, error_code)`` of every RST_STREAM from the client."""
        return [
            (e.stream_id, int(e.error_code))
            for e in self.events
            if isinstance(e, h2.events.StreamReset)
        ]

    @property
    def goaway_received(self) -> h2.events.ConnectionTerminated | None:
        """The client's GOAWAY, if it sent one."""
        for event in self.events:
            if isinstance(event, h2.events.ConnectionTerminated):
                return event
        return None

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; re-checked after each event."""
        await self._notifier.wait_until(predicate)

    # -- what handlers can do ------------------------------------------------

    async def reset(self, stream_id: int, code: int = ErrorCodes.CANCEL) -> None:
        """Send RST_STREAM on ``stream_id``."""
        self.h2.reset_stream(stream_id, code)
        await self.flush()

    async def goaway(
        self, *, last_stream_id: int | None = None, code: int = ErrorCodes.NO_ERROR
    ) -> None:
        """Send GOAWAY; streams above ``last_stream_id`` are dropped unanswered.

        Streams up to it go on being served: h2's state machine is reopened
        after sending, since it would refuse every frame after a GOAWAY.
        """
        last = (
            self.h2.highest_inbound_stream_id
            if last_stream_id is None
            else last_stream_id
        )
        machine = self.h2.state_machine
        state = machine.state
        self.h2.close_connection(code, last_stream_id=last)
        machine.state = state
        self._goaway_last = last
        # Flush before cancelling: the caller may be one of those streams.
        await self.flush()
        for sid, scope in list(self._scopes.items()):
            if sid > last:
                scope.cancel()

    async def send_body(self, sid: int, data: bytes, *, end: bool) -> None:
        """Send DATA on ``sid`` as flow control allows (``end``: END_STREAM)."""
        view = memoryview(data)
        while view:
            if self._gone:
                await trio.lowlevel.checkpoint()
                raise trio.BrokenResourceError("the client closed the connection")
            window = self.h2.local_flow_control_window(sid)
            if window <= 0:
                await self._window.wait()
                continue
            step = min(window, self.h2.max_outbound_frame_size, len(view))
            last = end and step == len(view)
            self.h2.send_data(sid, bytes(view[:step]), end_stream=last)
            view = view[step:]
            await self.flush()
        if end and not data:
            self.h2.end_stream(sid)
            await self.flush()

    async def flush(self) -> None:
        """Write what h2 has queued."""
        assert self._stream is not None
        async with self._send_lock:
            data = self.h2.data_to_send()
            if data:
                # Shielded: these bytes are out of h2 already, and may hold
                # other streams' frames; dropping or cutting them (a handler
                # cancelled by the client's RST_STREAM) would desynchronise
                # the framing and HPACK. The shield's own deadline bounds a
                # client that stops reading.
                with trio.CancelScope(shield=True) as shield:
                    shield.deadline = trio.current_time() + WRITE_TIMEOUT
                    try:
                        await self._stream.send_all(data)
                    except trio.BrokenResourceError:
                        self._gone = True
                        raise

    # -- serving -------------------------------------------------------------

    async def serve(self, stream: RawStream, request: Request) -> None:
        """Serve the connection that ``request`` upgraded, until it ends."""
        protocol = self._protocol
        settings = request.headers.get("http2-settings")
        self.h2.initiate_upgrade_connection(
            settings.encode("ascii") if settings else None
        )
        first: H2Request | None = H2Request(
            1, request.method, request.target, request.headers, b"", self
        )
        if protocol.reset_upgrade_stream is not None:
            self.h2.reset_stream(1, protocol.reset_upgrade_stream)
            first = None
        elif protocol.upgrade_response == "before_preface":
            self._stream = stream
            await self._answer(
                H2Request(
                    1, request.method, request.target, request.headers, b"", self
                ),
                protocol.route,
            )
            first = None
        await self.run(stream, first, protocol.route)

    async def run(
        self,
        stream: trio.abc.Stream,
        first: H2Request | None,
        stream_one: Callable[[H2Request], Awaitable[H2Reply | None]],
    ) -> None:
        """Read and serve; answer ``first`` (with ``stream_one``) after the
        client's preface, unless it is ``None`` (already answered)."""
        self._stream = stream
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await self.flush()
                await self._read_loop(first, stream_one)
            except _GONE:
                pass  # the client went away: nothing to serve any more
            self._end()

    def _end(self) -> None:
        """The connection is over: its streams end as if the client reset them."""
        self._gone = True
        for sid in list(self._scopes):
            self._stream_over(sid)
        self._wake_senders()

    def _stream_over(self, sid: int) -> None:
        """The client reset ``sid``, or left: stop or tell its handler.

        A request's handler is cancelled (its answer can no longer be
        delivered), as is a tunnel's that never read its stream (it would
        not notice). A tunnel's handler that reads its stream sees the
        reset there, as a socket's reader would, and finishes on its own:
        it may be one step from asserting on what it received.
        """
        tunnel = self._tunnels.get(sid)
        if tunnel is not None:
            tunnel._abort()
            if tunnel._read_by_handler:
                return
        scope = self._scopes.get(sid)
        if scope is not None:
            scope.cancel()

    async def _read_loop(
        self,
        first: H2Request | None,
        stream_one: Callable[[H2Request], Awaitable[H2Reply | None]],
    ) -> None:
        assert self._stream is not None and self._nursery is not None
        while data := await self._stream.receive_some(RECEIVE_SIZE):
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError:
                await self.flush()  # h2 queued its GOAWAY
                return
            for event in events:
                self.events.append(event)
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    if first is not None:
                        self._nursery.start_soon(self._answer, first, stream_one)
                        first = None
                elif isinstance(event, h2.events.RequestReceived):
                    self._on_request(event)
                elif isinstance(event, h2.events.DataReceived):
                    tunnel = self._tunnels.get(event.stream_id)
                    if tunnel is not None:
                        tunnel._feed(event.data)
                    else:
                        self._bodies.setdefault(event.stream_id, bytearray()).extend(
                            event.data
                        )
                    if event.flow_controlled_length:
                        self.h2.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    if event.stream_ended is not None:
                        self._dispatch(event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    tunnel = self._tunnels.get(event.stream_id)
                    if tunnel is not None:
                        tunnel._end()
                elif isinstance(event, h2.events.StreamReset):
                    self._reset_by_client.add(event.stream_id)
                    self._stream_over(event.stream_id)
                    self._wake_senders()
                elif isinstance(event, (h2.events.WindowUpdated,)):
                    self._wake_senders()
                elif isinstance(event, h2.events.ConnectionTerminated):
                    # The client's GOAWAY: it is leaving.
                    for sid in list(self._scopes):
                        self._stream_over(sid)
            self._notifier.notify()
            await self.flush()

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        if self._goaway_last is not None and sid > self._goaway_last:
            self.h2.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            return
        self._heads[sid] = list(event.headers)
        self._bodies[sid] = bytearray()
        pseudo = dict(h for h in event.headers if h[0].startswith(b":"))
        if pseudo.get(b":method") == b"CONNECT":
            self._connect(sid, pseudo.get(b":protocol", b"").decode("latin-1"))
        elif event.stream_ended is not None:
            self._dispatch(sid)

    def _connect(self, sid: int, protocol: str) -> None:
        """An extended CONNECT: hand the stream to its handler at once."""
        request = self._request(sid)
        handler = self._protocol.connect.get(protocol)
        if handler is None:
            self.h2.send_headers(sid, [(b":status", b"501")], end_stream=True)
            return
        tunnel = H2ServerStream(self, sid)
        self._tunnels[sid] = tunnel

        async def run(request: H2Request) -> None:
            tunnel._handler_task = trio.lowlevel.current_task()
            await run_handler(handler, request, tunnel)
            await tunnel.aclose()

        assert self._nursery is not None
        self._nursery.start_soon(self._answer, request, run)

    def _dispatch(self, sid: int) -> None:
        if sid not in self._heads:
            return
        request = self._request(sid)
        assert self._nursery is not None
        self._nursery.start_soon(self._answer, request, self._protocol.route)

    def _request(self, sid: int) -> H2Request:
        head = self._heads.pop(sid)
        pseudo = {n: v for n, v in head if n.startswith(b":")}
        return H2Request(
            sid,
            pseudo.get(b":method", b"").decode("latin-1"),
            pseudo.get(b":path", b"").decode("latin-1"),
            Headers([(n, v) for n, v in head if not n.startswith(b":")]),
            bytes(self._bodies.pop(sid, b"")),
            self,
        )

    def _wake_senders(self) -> None:
        self._window.set()
        self._window = trio.Event()

    async def _answer(
        self,
        request: H2Request,
        handler: Callable[[H2Request], Awaitable[H2Reply | None]],
    ) -> None:
        self.requests.append(request)
        self._notifier.notify()
        sid = request.stream_id
        with trio.CancelScope() as scope:
            self._scopes[sid] = scope
            try:
                reply = await handler(request)
                if reply is not None:
                    await self._respond(sid, reply)
            except (h2.exceptions.ProtocolError, *_GONE):
                # Sending on a stream the client reset, or on a connection
                # it closed or is leaving (its GOAWAY closes h2's state
                # machine, so sending the rest of a response fails before the
                # close is read), fails; that is the client's doing. Anything
                # else is a handler's mistake, and fails the test.
                leaving = self.goaway_received is not None
                if not (self._gone or leaving or sid in self._reset_by_client):
                    raise
            finally:
                del self._scopes[sid]
        if sid == 1 and self._protocol.goaway_after_upgrade:
            with contextlib.suppress(*_GONE):
                await self.goaway(last_stream_id=1)

    async def _respond(self, sid: int, reply: H2Reply) -> None:
        head = [(":status", str(reply.status)), *reply.headers]
        names = {name.lower() for name, _ in reply.headers}
        if "content-length" not in names:
            head.append(("content-length", str(len(reply.body))))
        end = not reply.body and reply.trailers is None
        self.h2.send_headers(sid, [(n.encode(), v.encode()) for n, v in head], end)
        await self.flush()
        if reply.body:
            await self.send_body(sid, reply.body, end=reply.trailers is None)
        if reply.trailers is not None:
            fields = [(n.encode(), v.encode()) for n, v in reply.trailers]
            self.h2.send_headers(sid, fields, end_stream=True)
            await self.flush()


class H2CServerProtocol(ServerProtocol):
    """``h2c`` for the test server: HTTP/2 after the 101, with a router.

    Args:
        routes: ``(method, path) -> handler`` added to (or replacing) the
            defaults: see :data:`DEFAULT_ROUTES`; ``GET /bytes/N`` is built
            in. Unknown paths get 404.
        settings: the server's SETTINGS (code -> value), e.g.
            ``{SettingCodes.MAX_CONCURRENT_STREAMS: 5}`` or
            ``{SettingCodes.ENABLE_CONNECT_PROTOCOL: 1}``.
        upgrade_response: answer stream 1 right after the 101, before the
            client's preface arrived (``"before_preface"``), or only once
            it has (``"after_preface"``): servers do both.
        goaway_after_upgrade: send GOAWAY (last stream 1) once stream 1 is
            answered.
        reset_upgrade_stream: reset stream 1 with this error code instead of
            answering it.
        require_settings: decline an offer without exactly one
            ``HTTP2-Settings`` field (RFC 7540 §3.2.1); hypercorn does not.
        connect: extended CONNECT (RFC 8441) handlers by ``:protocol``, e.g.
            ``{"websocket": websocket_over_h2()}``; the server then sends
            ``SETTINGS_ENABLE_CONNECT_PROTOCOL = 1``. Other protocols get 501.
            What a connect handler raises fails the test. The client's
            RST_STREAM, or the end of the connection, shows on its stream
            as a reset (see :class:`H2ServerStream`): a handler that reads
            its stream finishes on its own; one that never read it is
            cancelled.

    Attributes:
        connections: one :class:`H2ServerConnection` per switched connection.
    """

    token = "h2c"

    def __init__(
        self,
        routes: Mapping[tuple[str, str], H2Handler] | None = None,
        *,
        settings: Mapping[int, int] | None = None,
        upgrade_response: Literal["before_preface", "after_preface"] = "after_preface",
        goaway_after_upgrade: bool = False,
        reset_upgrade_stream: int | None = None,
        require_settings: bool = True,
        connect: Mapping[str, ConnectHandler] | None = None,
    ) -> None:
        self.routes: dict[tuple[str, str], H2Handler] = dict(DEFAULT_ROUTES)
        self.routes.update(routes or {})
        self.settings = dict(settings or {})
        self.upgrade_response = upgrade_response
        self.goaway_after_upgrade = goaway_after_upgrade
        self.reset_upgrade_stream = reset_upgrade_stream
        self.require_settings = require_settings
        self.connect = dict(connect or {})
        if self.connect:
            # RFC 8441 §3: extended CONNECT only once the server allows it.
            self.settings.setdefault(SettingCodes.ENABLE_CONNECT_PROTOCOL, 1)
        self.connections: list[H2ServerConnection] = []
        self._notifier = Notifier()

    async def route(self, request: H2Request) -> H2Reply | None:
        """The handler's reply for ``request`` (404 when none matches).

        What a handler raises fails the test; a stopping server lets it
        finish (see :meth:`UpgradeServer.stop`). A client's RST_STREAM for
        its stream, or the end of the connection, cancels it, as a real
        server would: the answer can no longer be delivered.
        """
        handler = self.routes.get((request.method, request.path))
        if handler is None and request.method == "GET":
            tail = request.path.removeprefix("/bytes/")
            if tail != request.path and tail.isdigit():
                handler = bytes_route
        if handler is None:
            return H2Reply(404, b"not found")
        return await run_handler(handler, request)

    def accept(self, request: Request) -> list[tuple[str, str]] | None:
        if (
            self.require_settings
            and len(request.headers.get_all("http2-settings")) != 1
        ):
            return None
        return []

    def _new_connection(self) -> H2ServerConnection:
        conn = H2ServerConnection(self, len(self.connections))
        self.connections.append(conn)
        self._notifier.notify()
        return conn

    async def wait_connections(self, count: int = 1) -> list[H2ServerConnection]:
        """Wait until at least ``count`` connections were switched to h2c."""
        await self._notifier.wait_until(lambda: len(self.connections) >= count)
        return list(self.connections)

    @own  # routes and connect handlers are marked one by one
    async def serve(self, stream: RawStream, request: Request) -> None:
        await self._new_connection().serve(stream, request)

    async def serve_prior_knowledge(self, stream: trio.abc.Stream) -> None:
        """Serve a connection that starts with HTTP/2 at once (RFC 9113 §3.3).

        No HTTP/1.1 and no stream 1: for clients with prior knowledge, e.g.
        ``await nursery.start(trio.serve_tcp, protocol.serve_prior_knowledge, 0)``.
        The stream is closed when the client is done.
        """
        conn = self._new_connection()
        conn.h2.initiate_connection()
        async with stream:
            await conn.run(stream, None, self.route)

    def script(
        self,
        first_write: Literal["settings", "response"] = "settings",
        reply: H2Reply | None = None,
    ) -> Callable[[int], Script]:
        """A script for ``UpgradeServer(script=...)``: 101 and HTTP/2 in one write.

        The 101 head and the server's SETTINGS (``"settings"``, like h2o), or
        SETTINGS and the whole stream-1 response (``"response"``, like
        lighttpd), go out in the same ``send_all``; then the connection is
        served as usual. The client's ``HTTP2-Settings`` are not applied
        (the script runs before the request is seen), so the server assumes
        the client's defaults. Stream 1 is answered with ``reply`` (default
        200 ``"ok"``), as if the upgrading request were ``GET /``.
        """
        answer = reply if reply is not None else H2Reply(200, b"ok")

        def make(index: int) -> Script:
            conn = self._new_connection()
            conn.h2.initiate_upgrade_connection()
            if first_write == "response":
                head = [(b":status", str(answer.status).encode())]
                head += [(n.encode(), v.encode()) for n, v in answer.headers]
                conn.h2.send_headers(1, head, end_stream=not answer.body)
                if answer.body:
                    conn.h2.send_data(1, answer.body, end_stream=True)
            trailing = conn.h2.data_to_send()
            return Script(
                [
                    Send(switching_response("h2c", trailing=trailing)),
                    Handle(own(partial(_serve_scripted, conn, answer, first_write))),
                ]
            )

        return make


async def _serve_scripted(
    conn: H2ServerConnection, reply: H2Reply, first_write: str, stream: RawStream
) -> None:
    async def answer(request: H2Request) -> H2Reply:
        return reply

    first = None
    if first_write == "settings":
        first = H2Request(1, "GET", "/", Headers(), b"", conn)
    await conn.run(stream, first, answer)
