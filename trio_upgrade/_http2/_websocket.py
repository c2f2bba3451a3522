"""WebSockets over HTTP/2 (RFC 8441): an extended CONNECT stream under wsproto.

Built on the public stream API only: :meth:`HTTP2Connection.open_stream
<trio_upgrade.HTTP2Connection.open_stream>` with ``protocol="websocket"``
gives an :class:`~trio_upgrade.HTTP2Stream`, a :class:`trio.abc.Stream`, so
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
from typing import Protocol

import trio
from wsproto.connection import Connection, ConnectionType

from .._sansio._messages import Headers, Request, Response
from .._sansio._ws_handshake import check_negotiation
from .._websocket import WebSocket, WebSocketConnection
from ._request import HeadersArg
from ._stream import HTTP2Stream

__all__ = ["StreamOpener", "open_websocket"]


class StreamOpener(Protocol):
    """What RFC 8441 needs of a connection: the public stream opener."""

    @property
    def close_timeout(self) -> float: ...

    async def open_stream(
        self,
        method: str,
        target: str,
        *,
        headers: HeadersArg | None = None,
        protocol: str | None = None,
        end_before_reset: bool = True,
    ) -> HTTP2Stream: ...


async def open_websocket(
    conn: StreamOpener,
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
    # end_before_reset=False: when the WebSocket closes before the server
    # ended the stream, only RST_STREAM CANCEL is sent, not END_STREAM
    # first: hypercorn 0.18 forgets the stream after the closing handshake
    # and drops the whole connection on an END_STREAM for it.
    stream = await conn.open_stream(
        "CONNECT",
        target,
        headers=fields,
        protocol="websocket",
        end_before_reset=False,
    )
    try:
        response = Response(
            stream.status_code, headers=stream.headers, http_version="2"
        )
        # Compression is not offered over HTTP/2: any extension is unoffered.
        switch = check_negotiation(
            response, p.subprotocols, None, require_subprotocol=p.require_subprotocol
        )
        return _websocket_on(
            stream,
            p,
            close_timeout=conn.close_timeout,
            request=Request("CONNECT", target, Headers(fields)),
            response=response,
            subprotocol=switch.subprotocol,
        )
    except BaseException:
        await stream.aclose()
        raise


def _websocket_on(
    stream: trio.abc.Stream,
    protocol: WebSocket,
    *,
    close_timeout: float,
    request: Request,
    response: Response,
    subprotocol: str | None,
) -> WebSocketConnection:
    # The one place that builds the connection: its constructor belongs to
    # the WebSocket package, which may change it.
    return WebSocketConnection(
        stream,
        Connection(ConnectionType.CLIENT),
        # The same per-connection bounds the HTTP/1.1 offer hands over.
        protocol._settings,
        close_timeout=close_timeout,
        request=request,
        response=response,
        subprotocol=subprotocol,
    )
