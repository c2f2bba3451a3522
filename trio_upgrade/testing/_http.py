"""The server side of HTTP/1.1 on h11: reading requests, writing responses."""

from __future__ import annotations

from collections.abc import Sequence

import h11
import trio

from .._sansio._limits import RECEIVE_SIZE
from .._sansio._messages import Headers, Request, Response
from ._records import ConnectionRecord
from ._wire import status_phrase

__all__ = [
    "RECEIVE_SIZE",
    "informational",
    "read_request",
    "send_client_error",
    "send_response",
    "to_response",
]

HeaderList = Sequence[tuple[str, str]]


async def _next_event(stream: trio.abc.Stream, conn: h11.Connection) -> h11.Event:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(RECEIVE_SIZE)))
        elif isinstance(event, h11.Event):
            return event
        else:  # pragma: no cover - PAUSED: never called after a whole request
            raise RuntimeError("h11 paused: the request was already read whole")


async def read_request(
    stream: trio.abc.Stream, conn: h11.Connection, *, body: bytearray | None = None
) -> Request | None:
    """Read the next request head and its body, if any, into ``body``.

    Without ``body`` the request's body is read and discarded.

    The bytes after the request's end stay in ``conn`` (its
    ``trailing_data`` after a switch, or the next request after a refusal).

    Returns:
        The request, or ``None`` if the client closed the connection cleanly
        before starting one.

    Raises:
        h11.RemoteProtocolError: the client sent something that is not an
            HTTP/1.1 request, one too large, or closed in the middle of it.
    """
    event = await _next_event(stream, conn)
    if isinstance(event, h11.ConnectionClosed):
        return None
    if not isinstance(event, h11.Request):  # pragma: no cover - h11 guarantees
        raise h11.RemoteProtocolError(f"expected a request, got {event!r}")
    request = Request(
        event.method.decode("ascii"),
        event.target.decode("ascii"),
        Headers(event.headers.raw_items()),
    )
    # A body (h2c allows one on the upgrade request) is read and dropped, so
    # that what follows it is the next protocol or the next request. It is
    # bounded by the connection timeout, not by size: dropping costs nothing.
    while not isinstance(part := await _next_event(stream, conn), h11.EndOfMessage):
        if body is not None and isinstance(part, h11.Data):
            body += part.data
    return request


def to_response(event: h11.InformationalResponse | h11.Response) -> Response:
    """The library's view of a response head that h11 produced or parsed."""
    return Response(
        status_code=event.status_code,
        reason=event.reason.decode("latin-1"),
        headers=Headers(event.headers.raw_items()),
        http_version=event.http_version.decode("ascii"),
    )


def informational(status_code: int, headers: HeaderList) -> h11.InformationalResponse:
    """A 1xx response with its standard reason phrase."""
    return h11.InformationalResponse(
        status_code=status_code,
        headers=list(headers),
        reason=status_phrase(status_code).encode("latin-1"),
    )


async def send_response(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    status_code: int,
    headers: HeaderList,
    body: bytes,
    *,
    reason: str | None = None,
    include_body: bool = True,
) -> None:
    """Send a whole final response in one write, framed by ``Content-Length``.

    ``include_body=False`` is for HEAD requests: the head still announces the
    body's length, but no body follows (h11 refuses to send one).
    """
    fields = list(headers)
    if not {n.lower() for n, _ in fields} & {"content-length", "transfer-encoding"}:
        fields.append(("Content-Length", str(len(body))))
    phrase = status_phrase(status_code) if reason is None else reason
    head = h11.Response(
        status_code=status_code, headers=fields, reason=phrase.encode("latin-1")
    )
    data = conn.send(head) or b""
    if body and include_body:
        data += conn.send(h11.Data(data=body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


async def send_client_error(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    error: h11.RemoteProtocolError,
    record: ConnectionRecord,
) -> None:
    """Record a client's HTTP error and answer it (400, 431...) if still possible.

    Nothing is sent when the client already closed (the error is then the
    end of stream in the middle of a request) or when a response was
    already under way.
    """
    record.error = str(error)
    if record.client_closed or conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    status = error.error_status_hint
    body = f"{status} {status_phrase(status)}: {error}\n".encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close")]
    await send_response(stream, conn, status, headers, body)
