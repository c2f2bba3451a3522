"""One HTTP/2 connection of the test server, and what its handlers get.

:class:`H2ServerConnection` serves one connection on h2's server role: it
reads, hands each complete request (an :class:`H2Request`) to a handler in
its own task and sends the :class:`H2Reply`, with flow control both ways;
an extended CONNECT gets an :class:`~._h2_connect.H2ServerStream`. Which
handler, and how to misbehave, come from the protocol object
(:class:`ServerOptions`, which :class:`~._http2.H2CServerProtocol` is).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, cast
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import trio
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from .._sansio._h2_compat import BoundedH2Connection, send_goaway_keeping_streams
from .._sansio._limits import RECEIVE_SIZE
from .._sansio._messages import Headers, Request
from .._transport._stream import RawStream
from ._h2_connect import H2ServerStream
from ._handlers import run_handler
from ._records import Notifier

__all__ = [
    "ConnectHandler",
    "H2Handler",
    "H2Reply",
    "H2Request",
    "H2ServerConnection",
    "ServerOptions",
]


@dataclass(frozen=True)
class H2Request:
    """One request as the server received it, body included.

    Attributes:
        stream_id: its stream (1 for the upgrading HTTP/1.1 request).
        method: ``:method``.
        target: ``:path`` (path and query).
        headers: the regular header fields.
        body: the whole request body.
        connection: the connection it came on, to misbehave from a handler.
        authority: ``:authority`` (for stream 1, the upgrading request's
            ``Host``); empty when the request had none.
    """

    stream_id: int
    method: str
    target: str
    headers: Headers
    body: bytes
    connection: H2ServerConnection
    authority: str = ""

    @property
    def path(self) -> str:
        """The target without its query."""
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        """The parsed query string."""
        return parse_qs(urlsplit(self.target).query)


@dataclass(frozen=True)
class H2Reply:
    """What a handler answers; ``None`` from a handler sends nothing."""

    status: int = 200
    body: bytes = b""
    headers: Sequence[tuple[str, str]] = ()
    trailers: Sequence[tuple[str, str]] | None = None


H2Handler = Callable[[H2Request], Awaitable[H2Reply | None]]

#: Runs one extended CONNECT stream: respond, then talk.
ConnectHandler = Callable[[H2Request, H2ServerStream], Awaitable[None]]


def settings_readable(value: str) -> bool:
    """Whether h2 can take ``value`` as the ``HTTP2-Settings`` of an upgrade.

    RFC 7540 §3.2.1: base64url of a SETTINGS payload. Checked on a
    throwaway h2 connection, exactly as :meth:`H2ServerConnection.serve`
    will use it, so that a server never switches on a value it then fails
    to read (base64's ``binascii.Error``, h2's settings errors).
    """
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    try:
        conn.initiate_upgrade_connection(value.encode("ascii"))
    except Exception:  # whatever h2 or base64 reject the value with
        return False
    return True


class ServerOptions(Protocol):
    """What a connection needs of its protocol: handlers and misbehaviours.

    See :class:`~trio_upgrade.testing.H2CServerProtocol` for each.
    """

    @property
    def settings(self) -> Mapping[int, int]: ...
    @property
    def upgrade_response(self) -> Literal["before_preface", "after_preface"]: ...
    @property
    def goaway_after_upgrade(self) -> bool: ...
    @property
    def reset_upgrade_stream(self) -> int | None: ...
    @property
    def connect(self) -> Mapping[str, ConnectHandler]: ...

    async def route(self, request: H2Request) -> H2Reply | None: ...


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

    def __init__(self, protocol: ServerOptions, index: int) -> None:
        self._protocol = protocol
        self.index = index
        self.events: list[h2.events.Event] = []
        self.requests: list[H2Request] = []
        self._notifier = Notifier()
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2: h2.connection.H2Connection = BoundedH2Connection(config)
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

        Streams up to it go on being served (RFC 9113 §6.8), although h2
        would refuse to send anything after a GOAWAY (see
        ``_sansio._h2_compat.send_goaway_keeping_streams``). With an h2
        where that does not work, the connection is closed after the
        GOAWAY instead, its streams unanswered.
        """
        last = (
            self.h2.highest_inbound_stream_id
            if last_stream_id is None
            else last_stream_id
        )
        kept = send_goaway_keeping_streams(self.h2, code, last)
        self._goaway_last = last
        # Flush before cancelling: the caller may be one of those streams.
        await self.flush()
        if not kept:
            self._end()
            assert self._stream is not None
            await self._stream.aclose()
            return
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
        host = request.headers.get("host") or ""
        first: H2Request | None = H2Request(
            1, request.method, request.target, request.headers, b"", self, host
        )
        if protocol.reset_upgrade_stream is not None:
            self.h2.reset_stream(1, protocol.reset_upgrade_stream)
            first = None
        elif protocol.upgrade_response == "before_preface":
            self._stream = stream
            await self._answer(
                H2Request(
                    1, request.method, request.target, request.headers, b"", self, host
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
                # The client broke the protocol: h2 has closed the connection
                # and queued its GOAWAY. Its streams are over before anything
                # else runs, so no handler answers on the closed connection.
                self._end()
                await self.flush()
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
            # RFC 9113 §6.8: refused, unless the client's own GOAWAY came in
            # the same read and closed h2: it is leaving and reads no reset.
            with contextlib.suppress(h2.exceptions.ProtocolError):
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
            pseudo.get(b":authority", b"").decode("latin-1"),
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
