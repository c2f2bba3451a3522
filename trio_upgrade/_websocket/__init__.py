"""WebSocket (RFC 6455) over the HTTP/1.1 upgrade, on wsproto's frame layer.

The library owns the HTTP handshake (h11, ``_sansio._handshake``); the
WebSocket offer and the strict check of its 101 (``_sansio._ws_handshake``),
permessage-deflate with bounded inflation (``_sansio._ws_deflate``) and the
frame codec (``_sansio._ws_frames``) are sans-I/O; this package holds the
option object (``_protocol``) and the Trio connection (``_connection``).
"""

from __future__ import annotations

from .._sansio._ws_deflate import Deflate as Deflate
from ._connection import WebSocketConnection as WebSocketConnection
from ._protocol import WebSocket as WebSocket

__all__ = ["Deflate", "WebSocket", "WebSocketConnection"]
