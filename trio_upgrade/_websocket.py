"""WebSocket (RFC 6455) over the HTTP/1.1 upgrade, on wsproto's frame layer."""

from __future__ import annotations

import trio

from ._errors import UpgradeError
from ._protocol import BuildContext, Offer, UpgradeProtocol
from ._url import Target

__all__ = ["WebSocket", "WebSocketConnection"]


class WebSocketConnection:
    """A WebSocket connection (being built; see issue 3)."""


class _WebSocketOffer(Offer[WebSocketConnection]):
    accept_missing_upgrade_header = False

    async def build(
        self, stream: trio.abc.Stream, leftover: bytes, context: BuildContext
    ) -> WebSocketConnection:
        raise UpgradeError("the websocket protocol is not supported yet")


class WebSocket(UpgradeProtocol[WebSocketConnection]):
    """The WebSocket protocol (being built; see issue 3)."""

    @property
    def token(self) -> str:
        return "websocket"

    def offer(self, target: Target) -> Offer[WebSocketConnection]:
        return _WebSocketOffer("websocket")
