"""WebSockets over HTTP/2 (RFC 8441): an extended CONNECT stream under wsproto.

Built on the public stream API only: :meth:`HTTP2Connection.websocket
<trio_upgrade.HTTP2Connection.websocket>` calls :meth:`HTTP2Connection.open_stream
<trio_upgrade.HTTP2Connection.open_stream>` with ``protocol="websocket"``,
which gives an :class:`~trio_upgrade.HTTP2Stream`, a :class:`trio.abc.Stream`, so
the very :class:`~trio_upgrade.WebSocketConnection` of the HTTP/1.1 upgrade
runs on it: only the handshake differs. RFC 8441 §4-5: the request is
``CONNECT`` with ``:protocol: websocket`` and ``sec-websocket-version: 13``
(no key, no accept: the stream proves the server understood), success is any
2xx, whose subprotocol and extensions are checked as a 101's are
(``check_negotiation``), and a TCP close maps to END_STREAM (or RST_STREAM
when abrupt).
"""

from __future__ import annotations

from collections.abc import Mapping

from .._sansio._messages import HeadersArg, Request, Response
from .._sansio._ws_handshake import check_negotiation
from .._websocket import WebSocket, WebSocketConnection, connection_on_stream
from ._stream import HTTP2Stream

__all__ = ["websocket_on_stream", "websocket_request"]


def websocket_request(
    protocol: WebSocket | None, headers: HeadersArg | None
) -> tuple[WebSocket, list[tuple[str, str]]]:
    """The options in force and the header fields of the extended CONNECT."""
    p = protocol if protocol is not None else WebSocket(compression=None)
    fields = [("sec-websocket-version", "13")]
    if p.origin is not None:
        fields.append(("origin", p.origin))
    if p.subprotocols:
        fields.append(("sec-websocket-protocol", ", ".join(p.subprotocols)))
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    fields += [(str(n), str(v)) for n, v in pairs]
    return p, fields


async def websocket_on_stream(
    stream: HTTP2Stream,
    protocol: WebSocket,
    request: Request,
    *,
    close_timeout: float,
) -> WebSocketConnection:
    """Check the 2xx that opened ``stream``, then run WebSocket on it.

    The stream is closed if the answer does not match the offer.

    Raises:
        InvalidUpgrade: an unoffered subprotocol or extension, or none of
            the subprotocols when one is required.
    """
    try:
        response = Response(
            stream.status_code, headers=stream.headers, http_version="2"
        )
        # Compression is not offered over HTTP/2: any extension is unoffered.
        switch = check_negotiation(
            response,
            protocol.subprotocols,
            None,
            require_subprotocol=protocol.require_subprotocol,
        )
        return connection_on_stream(
            protocol,
            stream,
            close_timeout=close_timeout,
            request=request,
            response=response,
            subprotocol=switch.subprotocol,
        )
    except BaseException:
        await stream.aclose()
        raise
