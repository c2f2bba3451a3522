"""The chat client's tests (chat_app.py), with trio_upgrade's fixtures.

Run with ``trio_mode = true`` in the pytest configuration; installing
trio_upgrade is all it takes to have the fixtures.
"""

from __future__ import annotations

import pytest
from chat_app import SUBPROTOCOL, ChatUnavailable, post

from trio_upgrade.testing import (
    ServerWebSocket,
    UpgradeServer,
    WebSocketServerProtocol,
)


async def shout(ws: ServerWebSocket) -> None:
    """A stand-in for the chat service: every line comes back in capitals."""
    async for message in ws:
        assert isinstance(message, str)
        await ws.send(message.upper())


chat_service = pytest.mark.upgrade_server(
    [WebSocketServerProtocol(shout, subprotocols=[SUBPROTOCOL])]
)


@chat_service
async def test_post(upgrade_server: UpgradeServer) -> None:
    answers = await post(upgrade_server.url(), "lobby", ["hello", "bye"])
    assert answers == ["HELLO", "BYE"]
    # What the application sent, as the service saw it:
    (request,) = upgrade_server.requests
    assert request.target == "/rooms/lobby"
    assert request.headers.get("sec-websocket-protocol") == SUBPROTOCOL
    (connection,) = await upgrade_server.wait_closed()
    assert connection.client_closed  # the application closed cleanly


@pytest.mark.upgrade_server(["echo"])  # no WebSocket: a 426 refusal
async def test_post_when_the_service_refuses(upgrade_server: UpgradeServer) -> None:
    with pytest.raises(ChatUnavailable) as caught:
        await post(upgrade_server.url(), "lobby", ["hello"])
    assert caught.value.status == 426


@chat_service
async def test_post_in_memory(upgrade_server_in_memory: UpgradeServer) -> None:
    server = upgrade_server_in_memory
    transport = await server.connect_in_memory()
    answers = await post("http://chat.test/", "lobby", ["hi"], transport=transport)
    assert answers == ["HI"]
    assert server.requests[0].headers.get("host") == "chat.test"
