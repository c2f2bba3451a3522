"""WebSocket (RFC 6455) over the HTTP/1.1 upgrade, on wsproto's frame layer.

The library owns the HTTP handshake (h11, ``_sansio._handshake``); the
WebSocket offer and the strict check of its 101 (``_sansio._ws_handshake``),
permessage-deflate with bounded inflation (``_sansio._ws_deflate``), the
frame codec (``_sansio._ws_frames``) and every access to wsproto's private
state (``_sansio._wsproto_compat``) are sans-I/O. This package holds the
option object (``_protocol``) and the Trio connection, composed of parts
held by reference, from the bottom: the state they share (``_shared``), the
writer role (``_writer``), the closing handshake (``_closing``), our pings
(``_pings``), the reader role's parsing (``_reader``), the engine that holds
them and does the reader role's I/O and the background tasks (``_engine``),
and the public :class:`WebSocketConnection` (``_connection``) that holds
its engine. The reader and writer come in a fast and a plain variant,
chosen when a connection is built (``_sansio._speedups``);
:func:`connection_on_stream` builds one on a stream whose handshake was done
elsewhere: the HTTP/2 package uses it for RFC 8441, with this package's
public names only.
"""

from __future__ import annotations

from .._sansio._ws_deflate import Deflate as Deflate
from ._connection import WebSocketConnection as WebSocketConnection
from ._protocol import WebSocket as WebSocket
from ._protocol import connection_on_stream as connection_on_stream

__all__ = ["Deflate", "WebSocket", "WebSocketConnection", "connection_on_stream"]
