"""The protocols the demo (``python -m trio_upgrade``) server speaks."""

from __future__ import annotations

from ._http2 import H2CServerProtocol
from ._protocols import RawServerProtocol, ServerProtocol
from ._websocket import WebSocketServerProtocol

__all__ = ["demo_protocols"]


def demo_protocols() -> list[ServerProtocol]:
    """WebSocket echo, h2c (stream 1 and later requests) and raw ``echo``."""
    return [WebSocketServerProtocol(), H2CServerProtocol(), RawServerProtocol("echo")]
