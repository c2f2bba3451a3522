"""The HTTP/2 connection the caller gets: requests, streams, ping, close."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING

import trio
from h2.settings import SettingCodes

from .._errors import StreamReset, UpgradeError, UpgradeRefused
from .._sansio._messages import Headers, Request, Response
from ._core import Core
from ._state import StreamState
from ._stream import HTTP2Response, HTTP2Stream

if TYPE_CHECKING:
    from .._websocket import WebSocket, WebSocketConnection

__all__ = ["Body", "HTTP2Connection", "HeadersArg"]

HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]]
#: A request body: bytes, or pieces from a (possibly async) iterable.
Body = bytes | bytearray | memoryview | Iterable[bytes] | AsyncIterable[bytes]

# RFC 9110 §5.1 token, lower case only: RFC 9113 §8.2.1 forbids upper case.
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
# RFC 9113 §8.2.1: no NUL, CR or LF; no leading or trailing whitespace.
_VALUE = re.compile(rb"(?:[^\x00\r\n \t](?:[^\x00\r\n]*[^\x00\r\n \t])?)?")
# RFC 9112 §3.2: visible ASCII only (RFC 3986 characters, percent-encoded).
_TARGET = re.compile(r"[\x21-\x7e]+")
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9113 §8.2.2: connection-specific fields have no place in HTTP/2.
_CONNECTION_SPECIFIC = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"http2-settings",
    }
)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class HTTP2Connection:
    """A multiplexed HTTP/2 connection (RFC 9113) on h2.

    Made by an h2c upgrade (``upgrade(url, ["h2c"])``), or with prior
    knowledge by :func:`~trio_upgrade.connect_http2`. Any number of tasks may
    use it at once: each request is a stream, requests beyond the server's
    ``SETTINGS_MAX_CONCURRENT_STREAMS`` (or
    ``HTTP2Options.max_concurrent_streams``) wait for a free stream. There
    is no background task: the tasks that wait for the server take turns
    reading for everyone. So the server's PINGs are answered, and its GOAWAY
    or close seen, while some task waits on the connection; an idle
    connection reads nothing (a request sent after an unseen GOAWAY fails
    with the retryable :class:`~trio_upgrade.StreamRefused`).

    Close it with ``async with conn:`` or :meth:`aclose`.

    Attributes:
        scheme: the ``:scheme`` of requests (``"http"`` or ``"https"``).
        authority: the ``:authority`` of requests (host and port).
        protocol: ``"h2c"`` (cleartext) or ``"h2"`` (TLS).
        handshake_request: the HTTP/1.1 upgrade request that was sent, or
            ``None`` for a connection made with prior knowledge.
        handshake_response: the ``101 Switching Protocols``, or ``None``
            for a connection made with prior knowledge.
    """

    def __init__(
        self,
        core: Core,
        *,
        scheme: str,
        authority: str,
        upgrade_stream: StreamState | None = None,
        handshake_request: Request | None = None,
        handshake_response: Response | None = None,
    ) -> None:
        self._core = core
        self.scheme = scheme
        self.authority = authority
        self.protocol = "h2" if scheme == "https" else "h2c"
        self.handshake_request = handshake_request
        self.handshake_response = handshake_response
        self._upgrade_stream = upgrade_stream
        self._upgrade_response: HTTP2Response | None = None

    # -- what the server said ------------------------------------------------

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
            RuntimeError: the connection was made with prior knowledge, so
                there was no upgrading request.
        """
        if self._upgrade_response is None:
            state = self._upgrade_stream
            if state is None:
                raise RuntimeError(
                    "this connection was opened with prior knowledge: there was "
                    "no upgrading request"
                )
            if state.headers is None:
                error = state.error or self._core.error
                assert error is not None
                raise error()
            self._upgrade_response = HTTP2Response(self._core, state)
        return self._upgrade_response

    @property
    def max_concurrent_streams(self) -> int:
        """How many streams may be open at once now (the server's limit and ours)."""
        remote = self._core.h2.remote_settings.max_concurrent_streams
        return min(self._core.options.max_concurrent_streams, remote)

    @property
    def extended_connect(self) -> bool:
        """Whether the server allows extended CONNECT (RFC 8441 §3)."""
        settings = self._core.h2.remote_settings
        return settings.get(SettingCodes.ENABLE_CONNECT_PROTOCOL, 0) == 1

    @property
    def goaway(self) -> tuple[int, int] | None:
        """``(error_code, last_stream_id)`` of the server's GOAWAY, if any."""
        goaway = self._core.goaway
        return None if goaway is None else (goaway[0], goaway[1])

    @property
    def is_usable(self) -> bool:
        """Whether a new request can be sent (not closed, failed, or GOAWAY)."""
        core = self._core
        return not core.closed_locally and core.error is None and core.goaway is None

    # -- requests ------------------------------------------------------------

    def _head(
        self,
        method: str,
        target: str,
        headers: HeadersArg | None,
        *,
        protocol: str | None = None,
        content_length: int | None = None,
    ) -> list[tuple[bytes, bytes]]:
        if not isinstance(method, str) or not _METHOD.fullmatch(method):
            raise ValueError(f"invalid request method {method!r}")
        if method == "CONNECT" and protocol is None:
            raise ValueError(
                "plain CONNECT is not supported; use open_stream(protocol=...) "
                "for extended CONNECT"
            )
        if not isinstance(target, str) or not (
            target.startswith("/") or (method == "OPTIONS" and target == "*")
        ):
            raise ValueError(f"request target must start with '/', got {target!r}")
        if not _TARGET.fullmatch(target):
            raise ValueError(f"request target has whitespace or non-ASCII: {target!r}")
        authority = self.authority.encode("ascii")
        fields: list[tuple[bytes, bytes]] = []
        names: set[bytes] = set()
        pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
        for raw_name, raw_value in pairs:
            name = str(raw_name).lower().encode("latin-1")
            value = str(raw_value).encode("latin-1")
            if not _NAME.fullmatch(name):
                raise ValueError(f"invalid header name {raw_name!r}")
            if not _VALUE.fullmatch(value):
                raise ValueError(
                    f"invalid value for header {raw_name!r}: {raw_value!r}"
                )
            if name in _CONNECTION_SPECIFIC or (name == b"te" and value != b"trailers"):
                raise ValueError(
                    f"header {raw_name!r} is specific to HTTP/1.1 connections and "
                    "not allowed in HTTP/2 (RFC 9113 §8.2.2)"
                )
            if name == b"host":
                # RFC 9113 §8.3.1: :authority replaces Host.
                authority = value
                continue
            names.add(name)
            fields.append((name, value))
        if content_length is not None and b"content-length" not in names:
            fields.append((b"content-length", str(content_length).encode()))
        head = [
            (b":method", method.encode("ascii")),
            (b":scheme", self.scheme.encode("ascii")),
            (b":authority", authority),
            (b":path", target.encode("ascii")),
        ]
        if protocol is not None:
            head.append((b":protocol", protocol.encode("ascii")))
        return head + fields

    async def _send_body(self, state: StreamState, body: Body) -> None:
        core = self._core
        if isinstance(body, (bytes, bytearray, memoryview)):
            await core.send_data(state, body, end=True)
        elif isinstance(body, AsyncIterable):
            async for piece in body:
                if piece:
                    await core.send_data(state, piece, end=False)
            await core.send_data(state, b"", end=True)
        else:
            for piece in body:
                if piece:
                    await core.send_data(state, piece, end=False)
            await core.send_data(state, b"", end=True)

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
            target: the path and query, starting with ``/``.
            headers: more header fields (``Host`` becomes ``:authority``;
                connection-specific fields are refused).
            body: the request body: bytes, or an iterable or async iterable
                of bytes.

        Raises:
            ValueError: an invalid method, target or header field.
            StreamRefused: the server sent GOAWAY or refused the stream; the
                request was not processed and can be retried elsewhere.
            StreamReset: the server reset the stream.
            ConnectionClosed, ProtocolError: the connection failed.
            trio.ClosedResourceError: the connection was closed.
        """
        return self._stream(method, target, headers, body)

    async def _begin(
        self, method: str, target: str, headers: HeadersArg | None, body: Body
    ) -> StreamState:
        """Open the request's stream and send its body; the caller abandons it."""
        if isinstance(body, str):
            raise TypeError("the body must be bytes, not str: encode the text")
        length: int | None = None
        if isinstance(body, (bytes, bytearray, memoryview)):
            size = memoryview(body).nbytes
            empty = size == 0
            if size or method in _BODY_METHODS:
                length = size
        else:
            empty = False
        fields = self._head(method, target, headers, content_length=length)
        state = await self._core.open_stream(
            fields, end_stream=empty, head_request=method == "HEAD"
        )
        if not empty:
            try:
                await self._send_body(state, body)
            except BaseException:
                await self._core.abandon(state)
                raise
        return state

    @asynccontextmanager
    async def _stream(
        self, method: str, target: str, headers: HeadersArg | None, body: Body
    ) -> AsyncIterator[HTTP2Response]:
        state = await self._begin(method, target, headers, body)
        try:
            await self._core.wait_head(state)
            yield HTTP2Response(self._core, state)
        finally:
            await self._core.abandon(state)

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
        state = await self._begin(method, target, headers, body)
        try:
            await self._core.wait_head(state)
            response = HTTP2Response(self._core, state)
            await response.read()
        finally:
            await self._core.abandon(state)
        return response

    async def open_stream(
        self,
        method: str,
        target: str,
        *,
        headers: HeadersArg | None = None,
        protocol: str | None = None,
    ) -> HTTP2Stream:
        """Open a stream and use it as a byte stream both ways.

        With ``protocol``, an extended CONNECT (RFC 8441): ``method`` must be
        ``"CONNECT"``, and the server must have sent
        ``SETTINGS_ENABLE_CONNECT_PROTOCOL = 1``. Returns once the server
        answered 2xx; the caller owns the stream and must close it.

        Raises:
            UpgradeError: ``protocol`` was given but the server does not allow
                extended CONNECT.
            UpgradeRefused: the server answered with a status other than 2xx
                (its head and up to 64 KiB of body are on the error).
            ValueError, StreamRefused, StreamReset, ConnectionClosed,
            ProtocolError, trio.ClosedResourceError: as for :meth:`stream`.
        """
        return await self._open_stream(method, target, headers, protocol, fin=True)

    async def _open_stream(
        self,
        method: str,
        target: str,
        headers: HeadersArg | None,
        protocol: str | None,
        *,
        fin: bool,
    ) -> HTTP2Stream:
        if protocol is not None:
            if method != "CONNECT":
                raise ValueError("extended CONNECT (protocol=...) needs method CONNECT")
            if not self.extended_connect:
                await trio.lowlevel.checkpoint()
                self._core.check_usable()
                raise UpgradeError(
                    "the server does not allow extended CONNECT "
                    "(SETTINGS_ENABLE_CONNECT_PROTOCOL is not 1, RFC 8441 §3)"
                )
        fields = self._head(method, target, headers, protocol=protocol)
        core = self._core
        state = await core.open_stream(fields, end_stream=False)
        try:
            await core.wait_head(state)
            if not 200 <= state.status < 300:
                body = await _bounded_body(core, state)
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
            await core.abandon(state)
            raise
        return HTTP2Stream(core, state, fin=fin)

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
        from ._websocket import open_websocket

        return await open_websocket(self, target, protocol, headers)

    @property
    def close_timeout(self) -> float:
        """Seconds a clean close may take (``Limits.close_timeout``)."""
        return self._core.limits.close_timeout

    async def ping(self) -> float:
        """Send a PING and wait for the server's answer.

        Returns:
            The round-trip time in seconds.

        Raises:
            ConnectionClosed, ProtocolError: the connection failed.
            trio.ClosedResourceError: the connection was closed.
            StreamRefused: the server sent GOAWAY before answering.
        """
        return await self._core.ping()

    async def aclose(self) -> None:
        """Send GOAWAY (``NO_ERROR``) and close the transport.

        Streams still open end with :class:`trio.ClosedResourceError`. At
        most ``Limits.close_timeout`` is spent sending; cancelled, it closes
        at once. Idempotent.
        """
        await self._core.aclose()

    async def __aenter__(self) -> HTTP2Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        core = self._core
        state = "closed" if core.closed_locally or core.error else "open"
        return (
            f"<HTTP2Connection {self.scheme}://{self.authority} {state}, "
            f"{len(core.streams)} streams>"
        )


async def _bounded_body(core: Core, state: StreamState) -> bytes:
    try:
        with trio.move_on_after(core.limits.close_timeout):
            return await core.receive_all(state, 64 * 1024)
    except (StreamReset, UpgradeError):
        pass
    return b""
