"""WebSockets over HTTP/2 (RFC 8441): an extended CONNECT stream under wsproto.

The stream is an :class:`~trio_upgrade.HTTP2Stream`, a :class:`trio.abc.Stream`,
so the very :class:`~trio_upgrade.WebSocketConnection` of the HTTP/1.1
upgrade runs on it: only the handshake differs. RFC 8441 §4-5: the request is
``CONNECT`` with ``:protocol: websocket`` and ``sec-websocket-version: 13``
(no key, no accept: the stream proves the server understood), success is any
2xx, and a TCP close maps to END_STREAM (or RST_STREAM when abrupt).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from wsproto.connection import Connection, ConnectionType

from .._sansio._messages import Headers, Request, Response
from .._sansio._ws_handshake import check_negotiation
from .._websocket import WebSocket, WebSocketConnection

if TYPE_CHECKING:
    from ._connection import HeadersArg, HTTP2Connection

__all__ = ["open_websocket"]


async def open_websocket(
    conn: HTTP2Connection,
    target: str,
    protocol: WebSocket | None,
    headers: HeadersArg | None,
) -> WebSocketConnection:
    """See :meth:`HTTP2Connection.websocket`."""
    p = protocol if protocol is not None else WebSocket(compression=None)
    fields = [("sec-websocket-version", "13")]
    if p.origin is not None:
        fields.append(("origin", p.origin))
    if p.subprotocols:
        fields.append(("sec-websocket-protocol", ", ".join(p.subprotocols)))
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    fields += [(str(n), str(v)) for n, v in pairs]
    # fin=False: when the WebSocket closes before the server ended the
    # stream, only RST_STREAM CANCEL is sent, not END_STREAM first:
    # hypercorn 0.18 forgets the stream after the closing handshake and
    # drops the whole connection on an END_STREAM for it.
    stream = await conn._open_stream("CONNECT", target, fields, "websocket", fin=False)
    try:
        response = Response(
            stream.status_code, headers=stream.headers, http_version="2"
        )
        # Compression is not offered over HTTP/2: any extension is unoffered.
        switch = check_negotiation(
            response, p.subprotocols, None, require_subprotocol=p.require_subprotocol
        )
        return WebSocketConnection(
            stream,
            Connection(ConnectionType.CLIENT),
            # The same per-connection bounds the HTTP/1.1 offer hands over.
            p._settings,
            close_timeout=conn.close_timeout,
            request=Request("CONNECT", target, Headers(fields)),
            response=response,
            subprotocol=switch.subprotocol,
        )
    except BaseException:
        await stream.aclose()
        raise
