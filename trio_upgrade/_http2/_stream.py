"""What the application holds of one HTTP/2 stream.

:class:`HTTP2Response` is a response head with a body read on demand;
:class:`HTTP2Stream` is a stream used as a :class:`trio.abc.Stream` of bytes
both ways (DATA frames), for extended CONNECT (RFC 8441 WebSockets, tunnels)
and full-duplex exchanges. Both are thin views over the connection's
:class:`~trio_upgrade._http2._state.StreamState`.
"""

from __future__ import annotations

import codecs
import json as _json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import trio

from .._sansio._errors import UpgradeError
from .._sansio._messages import Headers
from .._transport._stream import check_max_bytes
from ._engine import H2Engine
from ._state import StreamState

__all__ = ["HTTP2Response", "HTTP2Stream"]


class HTTP2Response:
    """The response on one HTTP/2 stream: a head, then a body read on demand.

    From :meth:`HTTP2Connection.request` the body has already been read;
    from :meth:`HTTP2Connection.stream` (and for
    :attr:`HTTP2Connection.upgrade_response`) it arrives as it is read, with
    ``async for chunk in response`` or :meth:`read`. The server can send at
    most ``HTTP2Options.stream_window`` bytes ahead of what is read.

    Attributes:
        stream_id: the HTTP/2 stream (1 for the answer to an h2c upgrade).
        status_code: the response status.
        http_version: always ``"2"``.
    """

    http_version = "2"

    def __init__(self, engine: H2Engine, state: StreamState) -> None:
        assert state.headers is not None
        self._engine = engine
        self._state = state
        self.stream_id = state.stream_id
        self.status_code = state.status
        self._headers: Headers | None = None
        self._content: bytes | None = None
        self._receiving = False
        self._closed = False

    @property
    def headers(self) -> Headers:
        """The header fields, without pseudo-header fields."""
        # Built on first use: many callers look at the status and body only.
        if self._headers is None:
            assert self._state.headers is not None
            self._headers = Headers(self._state.headers)
        return self._headers

    @property
    def trailers(self) -> Headers | None:
        """The trailer fields, once the body has been read to its end.

        ``None`` while the body is not finished, or when the server sent no
        trailers.
        """
        trailers = self._state.trailers
        return None if trailers is None else Headers(trailers)

    @property
    def complete(self) -> bool:
        """Whether the whole body arrived (it may not all be read yet)."""
        return self._state.remote_ended

    @property
    def content(self) -> bytes:
        """The body, after :meth:`read` (or :meth:`HTTP2Connection.request`).

        Raises:
            RuntimeError: the body has not been read with :meth:`read`.
        """
        if self._content is None:
            raise RuntimeError("the body has not been read: await response.read()")
        return self._content

    @property
    def encoding(self) -> str:
        """The character encoding :attr:`text` decodes with.

        The ``charset`` parameter of ``content-type`` when it names a codec
        Python knows; otherwise ``"utf-8"``: RFC 9110 gives text no default
        charset any more, JSON is UTF-8 (RFC 8259 §8.1), and UTF-8 is what
        the web sends (httpx makes the same choice).
        """
        charset = _charset(self.headers.get("content-type"))
        if charset is not None:
            try:
                return codecs.lookup(charset).name
            except LookupError:
                pass
        return "utf-8"

    @property
    def text(self) -> str:
        """The body decoded as :attr:`encoding`, after :meth:`read`.

        Bytes that do not decode become U+FFFD (``errors="replace"``): a
        body is for reading, and a server that mislabels one should not make
        it unreadable; decode :attr:`content` yourself to be strict.

        Raises:
            RuntimeError: the body has not been read with :meth:`read`.
        """
        return self.content.decode(self.encoding, errors="replace")

    def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON (:func:`json.loads`), after :meth:`read`.

        The bytes are given to :func:`json.loads`, which detects UTF-8,
        UTF-16 and UTF-32 (RFC 8259 §8.1 asks for UTF-8); ``content-type``
        is not checked.

        Args:
            **kwargs: passed to :func:`json.loads` (``parse_float``...).

        Raises:
            RuntimeError: the body has not been read with :meth:`read`.
            json.JSONDecodeError: the body is not JSON (a :class:`ValueError`).
        """
        return _json.loads(self.content, **kwargs)

    async def read(self) -> bytes:
        """The whole body (what is left of it), kept as :attr:`content`.

        Raises:
            BodyTooLarge: the body is larger than
                ``HTTP2Options.max_body_size``; the stream is reset.
            StreamReset: the server reset the stream.
            ConnectionClosed, ProtocolError: the connection failed.
            trio.ClosedResourceError: the response was closed.
            trio.BusyResourceError: another task is reading this body.
        """
        if self._content is not None:
            await trio.lowlevel.checkpoint()
            return self._content
        with self._reading():
            limit = self._engine.state.options.max_body_size
            self._content = await self._engine.receive_all(self._state, limit)
        return self._content

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The next piece of the body, or ``b""`` at its end.

        Raises:
            StreamReset, ConnectionClosed, ProtocolError: as :meth:`read`.
            trio.ClosedResourceError, trio.BusyResourceError: as :meth:`read`.
        """
        with self._reading():
            return await self._engine.receive_data(self._state, max_bytes)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The body in the pieces it arrives in (the content, if read)."""
        if self._content is not None:
            await trio.lowlevel.checkpoint()
            if self._content:
                yield self._content
            return
        while chunk := await self.receive_some():
            yield chunk

    async def aclose(self) -> None:
        """Stop reading: reset the stream if the body is not finished.

        Idempotent; the rest of the body is dropped (``RST_STREAM``
        ``CANCEL`` tells the server to stop sending it).
        """
        self._closed = True
        await self._engine.abandon(self._state)
        await trio.lowlevel.checkpoint()

    def _reading(self) -> _Guard:
        if self._closed:
            raise trio.ClosedResourceError("the response was closed")
        return _Guard(self, "_receiving", "reading this body")

    def __repr__(self) -> str:
        return f"<HTTP2Response [{self.status_code}] stream={self.stream_id}>"


def _charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a ``content-type`` value, unquoted."""
    if content_type is None:
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value or None
    return None


class _Guard:
    """Raise BusyResourceError when two tasks use one direction at once."""

    __slots__ = ("_name", "_owner", "_what")

    def __init__(self, owner: object, name: str, what: str) -> None:
        self._owner = owner
        self._name = name
        self._what = what

    def __enter__(self) -> None:
        if getattr(self._owner, self._name):
            raise trio.BusyResourceError(f"another task is already {self._what}")
        setattr(self._owner, self._name, True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        setattr(self._owner, self._name, False)


@contextmanager
def _as_stream_errors(stream_id: int) -> Iterator[None]:
    # The trio.abc.Stream contract: a stream that broke raises
    # BrokenResourceError, so code written for any Trio stream (the WebSocket
    # layer) handles a reset stream or a lost connection as it would a lost
    # socket. The HTTP/2 error stays on __cause__.
    try:
        yield
    except UpgradeError as exc:
        raise trio.BrokenResourceError(f"HTTP/2 stream {stream_id}: {exc}") from exc


class HTTP2Stream(trio.abc.HalfCloseableStream):
    """One HTTP/2 stream as a byte stream: DATA frames both ways.

    Made by :meth:`HTTP2Connection.open_stream` once the server answered
    with a 2xx head, typically to an extended CONNECT (RFC 8441): what
    :meth:`send_all` sends the server receives as the request body, what the
    server sends as its response body :meth:`receive_some` returns.
    :meth:`send_eof` ends the request body (``END_STREAM``); :meth:`aclose`
    resets the stream unless both sides had ended it.

    As for any Trio stream, a stream the server reset, or whose connection
    failed, raises :class:`trio.BrokenResourceError`; the HTTP/2 error
    (:class:`~trio_upgrade.StreamReset`, :class:`~trio_upgrade.ConnectionClosed`)
    is its ``__cause__``.

    Attributes:
        stream_id: the HTTP/2 stream.
        status_code: the response status.
        headers: the response header fields.
    """

    def __init__(
        self, engine: H2Engine, state: StreamState, *, fin: bool = True
    ) -> None:
        assert state.headers is not None
        self._engine = engine
        self._state = state
        self._fin = fin
        self.stream_id = state.stream_id
        self.status_code = state.status
        self.headers = Headers(state.headers)
        self._sending = False
        self._receiving = False
        self._closed = False

    @property
    def trailers(self) -> Headers | None:
        """The server's trailer fields, after the end of what it sent."""
        trailers = self._state.trailers
        return None if trailers is None else Headers(trailers)

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream was closed")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` in DATA frames, as flow control allows."""
        with _Guard(self, "_sending", "sending on this stream"):
            self._check_open()
            if not data:
                await trio.lowlevel.checkpoint()
                return
            with _as_stream_errors(self.stream_id):
                await self._engine.send_data(self._state, data, end=False)
            # A Trio stream's send_all is a schedule point; the connection's
            # writes on a socket make one only once a millisecond
            # (_transport/_fastio.py), so this one is explicit.
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until flow control lets :meth:`send_all` send."""
        with _Guard(self, "_sending", "sending on this stream"):
            self._check_open()
            with _as_stream_errors(self.stream_id):
                await self._engine.wait_writable(self._state)

    async def send_eof(self) -> None:
        """End the request body (``END_STREAM``); again, it does nothing."""
        with _Guard(self, "_sending", "sending on this stream"):
            self._check_open()
            if self._state.local_ended:
                await trio.lowlevel.checkpoint()
                return
            with _as_stream_errors(self.stream_id):
                await self._engine.send_data(self._state, b"", end=True)
            await trio.lowlevel.cancel_shielded_checkpoint()  # as send_all

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The next piece of the server's DATA, or ``b""`` once it ended."""
        check_max_bytes(max_bytes)
        with _Guard(self, "_receiving", "receiving on this stream"):
            self._check_open()
            with _as_stream_errors(self.stream_id):
                return await self._engine.receive_data(self._state, max_bytes)

    async def aclose(self) -> None:
        """Close as a socket closes: END_STREAM (the server reads the end),
        then RST_STREAM ``CANCEL`` if the server had not ended its side (its
        further sends fail). Idempotent; closes even when cancelled."""
        self._closed = True
        await self._engine.close_stream(self._state, fin=self._fin)
        await trio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        return f"<HTTP2Stream stream={self.stream_id} status={self.status_code}>"
