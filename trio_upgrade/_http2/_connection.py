"""The HTTP/2 connection the caller gets: requests, streams, ping, close."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType

import trio
from h2.settings import SettingCodes

from .._ending import cancelled, goodbye_scope
from .._sansio._errors import Attempt, UpgradeError, UpgradeRefused
from .._sansio._messages import Headers, Request, Response
from .._websocket import WebSocket, WebSocketConnection
from ._engine import H2Engine
from ._request import Body, HeadersArg, begin, bounded_body, request_head
from ._state import StreamState
from ._stream import HTTP2Response, HTTP2Stream
from ._websocket import websocket_on_stream, websocket_request

__all__ = ["Body", "HTTP2Connection", "HeadersArg"]


class HTTP2Connection:
    """A multiplexed HTTP/2 connection (RFC 9113) on h2.

    Made by an h2c upgrade (``upgrade(url, ["h2c"])``), by ALPN over TLS
    (``upgrade(url, ["h2"])``), or with prior knowledge by
    :func:`~trio_upgrade.connect_http2`. Any number of tasks may
    use it at once: each request is a stream, requests beyond the server's
    ``SETTINGS_MAX_CONCURRENT_STREAMS`` (or
    ``HTTP2Options.max_concurrent_streams``) wait for a free stream. The
    tasks that wait for the server take turns reading for everyone.

    With a nursery (:func:`~trio_upgrade.open_upgrade`,
    :func:`~trio_upgrade.open_http2`, or ``nursery=``), a background reader
    also services the connection while no task uses it: the server's PINGs
    are answered, its SETTINGS applied, its GOAWAY or close seen within a
    tenth of a second, and ``HTTP2Options`` may add keepalive PINGs and an
    idle timeout. Without one there is no background task: an idle
    connection reads nothing, and a request sent after an unseen GOAWAY
    fails with the retryable :class:`~trio_upgrade.StreamRefused`.

    Close it with ``async with conn:`` or :meth:`aclose`.

    Attributes:
        scheme: the ``:scheme`` of requests (``"http"`` or ``"https"``).
        authority: the ``:authority`` of requests (host and port).
        protocol: ``"h2c"`` (cleartext) or ``"h2"`` (TLS).
        handshake_request: the HTTP/1.1 upgrade request that was sent, or
            ``None`` for a connection made with prior knowledge or by ALPN.
        handshake_response: the ``101 Switching Protocols``, or ``None``
            for a connection made with prior knowledge or by ALPN.
    """

    def __init__(
        self,
        engine: H2Engine,
        *,
        scheme: str,
        authority: str,
        upgrade_stream: StreamState | None = None,
        handshake_request: Request | None = None,
        handshake_response: Response | None = None,
        attempts: tuple[Attempt, ...] = (),
    ) -> None:
        self._engine = engine
        self.scheme = scheme
        self.authority = authority
        self.protocol = "h2" if scheme == "https" else "h2c"
        self.handshake_request = handshake_request
        self.handshake_response = handshake_response
        self._attempts = attempts
        self._upgrade_stream = upgrade_stream
        self._upgrade_response: HTTP2Response | None = None

    # -- what the server said ------------------------------------------------

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every upgrade request the call made, in order, redirects included.

        The last one is the request that switched (status 101). Empty for a
        connection made with prior knowledge.
        """
        return self._attempts

    @property
    def upgrade_response(self) -> HTTP2Response:
        """The response to the upgrading HTTP/1.1 request (stream 1).

        Its head has arrived when :func:`~trio_upgrade.upgrade` returns; its
        body is read from it like any :meth:`stream` response. Read it or
        :meth:`~HTTP2Response.aclose` it: until then it holds a stream.

        Raises:
            StreamReset: the server reset stream 1 instead of answering
                (:class:`StreamRefused` if it refused it or a GOAWAY
                excluded it).
            ConnectionClosed: the connection ended before the answer.
            RuntimeError: the connection was made with prior knowledge or
                selected by ALPN (``"h2"``), so there was no upgrading
                request.
        """
        if self._upgrade_response is None:
            state = self._upgrade_stream
            if state is None:
                raise RuntimeError(
                    "this connection was opened with prior knowledge or by ALPN "
                    "h2: there was no upgrading request"
                )
            if state.headers is None:
                error = state.error or self._engine.state.error
                assert error is not None
                raise error()
            self._upgrade_response = HTTP2Response(self._engine, state)
        return self._upgrade_response

    @property
    def max_concurrent_streams(self) -> int:
        """How many streams may be open at once now (the server's limit and ours)."""
        return self._engine.state.limit()

    @property
    def extended_connect(self) -> bool:
        """Whether the server allows extended CONNECT (RFC 8441 §3)."""
        settings = self._engine.h2.remote_settings
        return settings.get(SettingCodes.ENABLE_CONNECT_PROTOCOL, 0) == 1

    @property
    def goaway(self) -> tuple[int, int] | None:
        """``(error_code, last_stream_id)`` of the server's GOAWAY, if any."""
        goaway = self._engine.state.goaway
        return None if goaway is None else (goaway[0], goaway[1])

    @property
    def is_usable(self) -> bool:
        """Whether a new request can be sent (not closed, failed, or GOAWAY)."""
        conn = self._engine.state
        return not conn.closed_locally and conn.error is None and conn.goaway is None

    # -- requests ------------------------------------------------------------

    def stream(
        self,
        method: str,
        target: str,
        *,
        headers: HeadersArg | None = None,
        body: Body = b"",
    ) -> AbstractAsyncContextManager[HTTP2Response]:
        """Send a request; the response, with its body still to read.

        ::

            import trio
            import trio_upgrade

            async def main():
                async with trio_upgrade.open_http2("http://localhost:8080/") as conn:
                    async with conn.stream("GET", "/bytes/1000000") as response:
                        async for chunk in response:
                            print(len(chunk), "bytes")

            trio.run(main)

        The request body is sent whole (flow control permitting) before the
        response head is awaited; a ``content-length`` is added for a bytes
        body. Leaving the block resets the stream (``RST_STREAM CANCEL``) if
        the response has not ended, so an abandoned download costs nothing
        more; so does cancellation at any point.

        Args:
            method: the request method, e.g. ``"GET"``.
            target: the path and query, starting with ``/``, or an
                absolute URL on the connection's origin (its
                :attr:`scheme` and :attr:`authority`), e.g.
                ``"https://example.com/a"``: its path and query are sent.
            headers: more header fields (``Host`` becomes ``:authority``;
                connection-specific fields are refused).
            body: the request body: bytes, or an iterable or async iterable
                of bytes.

        Raises:
            ValueError: an invalid method, target or header field, or an
                absolute URL of another origin.
            StreamRefused: the server sent GOAWAY or refused the stream; the
                request was not processed and can be retried elsewhere.
            StreamReset: the server reset the stream.
            ConnectionClosed, ProtocolError: the connection failed.
            trio.ClosedResourceError: the connection was closed.
        """
        return _stream(self, method, target, headers, body)

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: HeadersArg | None = None,
        body: Body = b"",
    ) -> HTTP2Response:
        """Send a request and read the whole response.

        The body is kept in memory (at most ``HTTP2Options.max_body_size``
        bytes): it is :attr:`HTTP2Response.content`, and ``read()`` or
        ``async for`` on the response give it again. Arguments and errors
        are those of :meth:`stream`, plus:

        Raises:
            BodyTooLarge: the body is over ``HTTP2Options.max_body_size``.
        """
        # The same steps as stream(), without the async context manager's
        # generator machinery: this is the hot path for small requests.
        engine = self._engine
        state = await begin(
            engine,
            method,
            target,
            headers,
            body,
            scheme=self.scheme,
            authority=self.authority,
        )
        try:
            waited = await engine.wait_head(state)
            response = HTTP2Response(engine, state)
            # Having waited for the head, the task has been through a
            # schedule point: a body that came with the head is taken
            # without another pass of the run loop (one checkpoint per
            # request, as Trio asks, not two). No other task can hold the
            # response yet, so no guard against a second reader either.
            limit = engine.state.options.max_body_size
            response._content = await engine.receive_all(state, limit, yielded=waited)
        finally:
            if not state.closed:
                await engine.abandon(state)
        return response

    async def open_stream(
        self,
        method: str,
        target: str,
        *,
        headers: HeadersArg | None = None,
        protocol: str | None = None,
        end_before_reset: bool = True,
    ) -> HTTP2Stream:
        """Open a stream and use it as a byte stream both ways.

        With ``protocol``, an extended CONNECT (RFC 8441): ``method`` must be
        ``"CONNECT"``, the server must have sent
        ``SETTINGS_ENABLE_CONNECT_PROTOCOL = 1``, and ``protocol`` is sent as
        the ``:protocol`` pseudo-header field (``"websocket"``, or any
        protocol the server knows). Returns once the server answered 2xx;
        the caller owns the stream and must close it.

        Args:
            method: the request method.
            target: the path and query, starting with ``/`` (or an absolute
                URL on the connection's origin, as for :meth:`stream`).
            headers: more header fields, as for :meth:`stream`.
            protocol: the ``:protocol`` of an extended CONNECT.
            end_before_reset: what :meth:`HTTP2Stream.aclose` sends when
                the server has not ended its side: ``END_STREAM`` then
                ``RST_STREAM CANCEL`` (the default, as a socket closed with
                input pending: the server reads the end of what was sent),
                or with ``False`` only ``RST_STREAM CANCEL``, for servers
                that drop the connection on an ``END_STREAM`` after their
                protocol's own close.

        Raises:
            UpgradeError: ``protocol`` was given but the server does not allow
                extended CONNECT.
            UpgradeRefused: the server answered with a status other than 2xx
                (its head and up to 64 KiB of body are on the error).
            ValueError, StreamRefused, StreamReset, ConnectionClosed,
            ProtocolError, trio.ClosedResourceError: as for :meth:`stream`.
        """
        engine = self._engine
        if protocol is not None:
            if method != "CONNECT":
                raise ValueError("extended CONNECT (protocol=...) needs method CONNECT")
            if not self.extended_connect:
                await trio.lowlevel.checkpoint()
                engine.state.check_usable()
                raise UpgradeError(
                    "the server does not allow extended CONNECT "
                    "(SETTINGS_ENABLE_CONNECT_PROTOCOL is not 1, RFC 8441 §3)"
                )
        fields = request_head(
            method,
            target,
            headers,
            scheme=self.scheme,
            authority=self.authority,
            protocol=protocol,
        )
        state = await engine.open_stream(fields, end_stream=False)
        try:
            await engine.wait_head(state)
            if not 200 <= state.status < 300:
                body = await bounded_body(engine, state)
                assert state.headers is not None
                response = Response(
                    state.status, headers=Headers(state.headers), http_version="2"
                )
                refusal = UpgradeRefused(response, body)
                what = f"extended CONNECT for {protocol!r}" if protocol else method
                refusal.args = (
                    f"{what} {target} refused: expected a 2xx response, got "
                    f"{state.status}",
                )
                raise refusal
        except BaseException:
            await engine.abandon(state)
            raise
        return HTTP2Stream(engine, state, fin=end_before_reset)

    async def websocket(
        self,
        target: str = "/",
        *,
        protocol: WebSocket | None = None,
        headers: HeadersArg | None = None,
    ) -> WebSocketConnection:
        """Open a WebSocket on a stream of this connection (RFC 8441).

        The server must allow extended CONNECT (:attr:`extended_connect`).
        The result is the same :class:`~trio_upgrade.WebSocketConnection` as
        an HTTP/1.1 upgrade gives; closing it ends only its stream.

        Args:
            target: the path and query, starting with ``/``.
            protocol: the WebSocket options (subprotocols, origin, size
                limits). Compression is not offered over HTTP/2, whatever
                ``protocol.compression`` says. Keepalive pings need a
                nursery, which this connection has none of.
            headers: more request header fields (cookies, authorization).

        Raises:
            UpgradeError: the server does not allow extended CONNECT.
            UpgradeRefused: the server answered with a status other than 2xx.
            InvalidUpgrade: the answer breaks the WebSocket handshake (an
                unoffered subprotocol or extension).
            ValueError, StreamRefused, StreamReset, ConnectionClosed,
            ProtocolError, trio.ClosedResourceError: as for :meth:`stream`.
        """
        options, fields = websocket_request(protocol, headers)
        # end_before_reset=False: when the WebSocket closes before the server
        # ended the stream, only RST_STREAM CANCEL is sent, not END_STREAM
        # first: hypercorn 0.18 forgets the stream after the closing
        # handshake and drops the whole connection on an END_STREAM for it.
        stream = await self.open_stream(
            "CONNECT",
            target,
            headers=fields,
            protocol="websocket",
            end_before_reset=False,
        )
        request = Request("CONNECT", target, Headers(fields))
        return await websocket_on_stream(
            stream, options, request, close_timeout=self.close_timeout
        )

    @property
    def close_timeout(self) -> float:
        """Seconds a clean close may take (``Limits.close_timeout``)."""
        return self._engine.state.limits.close_timeout

    async def ping(self) -> float:
        """Send a PING and wait for the server's answer.

        Returns:
            The round-trip time in seconds.

        Raises:
            ConnectionClosed, ProtocolError: the connection failed.
            trio.ClosedResourceError: the connection was closed.
            StreamRefused: the server sent GOAWAY before answering.
        """
        return await self._engine.ping()

    async def aclose(self) -> None:
        """Send GOAWAY (``NO_ERROR``) and close the transport.

        Streams still open end with :class:`trio.ClosedResourceError`. At
        most ``Limits.close_timeout`` is spent sending; cancelled, it closes
        at once. Idempotent.
        """
        await self._engine.aclose()

    async def __aenter__(self) -> HTTP2Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close at the end of ``async with``: :meth:`aclose` when the block
        ends normally, :meth:`going_away` when it ends with an exception
        (cancellation and ``KeyboardInterrupt`` included), which is not
        suppressed, or in a scope that is already cancelled."""
        if exc is None and not cancelled():
            await self.aclose()
        else:
            await self.going_away()

    async def going_away(self) -> None:
        """Send GOAWAY (``NO_ERROR``) under a short shielded deadline, then
        close the transport.

        What the ``async with`` block does when it ends with an exception:
        unlike :meth:`aclose` in a cancelled scope, which closes the socket
        at once, the server is told that the connection ends on purpose
        (RFC 9113 §6.8), so it does not count a lost connection. It always
        finishes, within the smaller of ``Limits.close_timeout`` and 1 s: a
        GOAWAY that cannot be written by then (the server stopped reading)
        is given up.
        """
        with goodbye_scope(self.close_timeout):
            await self._engine.aclose()

    def __repr__(self) -> str:
        conn = self._engine.state
        state = "closed" if conn.closed_locally or conn.error else "open"
        return (
            f"<HTTP2Connection {self.scheme}://{self.authority} {state}, "
            f"{len(conn.streams)} streams>"
        )


@asynccontextmanager
async def _stream(
    conn: HTTP2Connection,
    method: str,
    target: str,
    headers: HeadersArg | None,
    body: Body,
) -> AsyncIterator[HTTP2Response]:
    engine = conn._engine
    state = await _begin(conn, method, target, headers, body)
    try:
        await engine.wait_head(state)
        yield HTTP2Response(engine, state)
    finally:
        await engine.abandon(state)


async def _begin(
    conn: HTTP2Connection,
    method: str,
    target: str,
    headers: HeadersArg | None,
    body: Body,
) -> StreamState:
    return await begin(
        conn._engine,
        method,
        target,
        headers,
        body,
        scheme=conn.scheme,
        authority=conn.authority,
    )
