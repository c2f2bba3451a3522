"""An application's own upgrade code: the client of a chat service.

The how-to on testing (``docs/howto/testing.rst``) tests it with the
``upgrade_server`` fixtures, in ``test_chat_app.py`` next to this file.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

import trio_upgrade

#: The subprotocol this service speaks over WebSocket.
SUBPROTOCOL = "chat.v1"


class ChatUnavailable(Exception):
    """The service did not take the connection (its status says why)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the chat service answered {status}")
        self.status = status


async def post(
    url: str,
    room: str,
    lines: Sequence[str],
    *,
    transport: trio.abc.Stream | None = None,
) -> list[str]:
    """Join ``room``, say each line, and return what the service answered.

    ``transport`` is for tests: an already open connection to use.
    """
    protocol = trio_upgrade.WebSocket(subprotocols=[SUBPROTOCOL])
    try:
        ws = await trio_upgrade.upgrade(
            f"{url.rstrip('/')}/rooms/{room}", protocol, transport=transport
        )
    except trio_upgrade.UpgradeRefused as exc:
        raise ChatUnavailable(exc.response.status_code) from exc
    async with ws:
        answers = []
        for line in lines:
            await ws.send(line)
            answer = await ws.receive()
            assert isinstance(answer, str)
            answers.append(answer)
        return answers
