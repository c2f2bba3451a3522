"""WebSocket (RFC 6455) over the HTTP/1.1 upgrade, on wsproto's frame layer.

The library owns the HTTP handshake (h11, in ``_handshake`` of the package
root); this package adds the WebSocket offer and the strict check of its 101
(``_handshake``), permessage-deflate with bounded inflation (``_deflate``)
and the Trio connection object (``_connection``).
"""

from __future__ import annotations

from ._connection import WebSocketConnection as WebSocketConnection
from ._deflate import Deflate as Deflate
from ._protocol import WebSocket as WebSocket

__all__ = ["Deflate", "WebSocket", "WebSocketConnection"]
