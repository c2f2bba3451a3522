"""Debug a refused upgrade: the log of the exchange, then the error's story.

Run it: ``python docs/examples/debugging_refusal.py`` (it starts its own
server, one that takes WebSocket only, and asks it for h2c).
"""

from __future__ import annotations

import logging
import sys

import trio

import trio_upgrade
from trio_upgrade.testing import WebSocketServerProtocol, open_upgrade_server


async def diagnose(url: str) -> None:
    try:
        conn = await trio_upgrade.upgrade(url, ["h2c"])
    except trio_upgrade.UpgradeRefused as exc:
        print("refused:", exc)
        # Every request the call made, and what came back for each.
        for attempt in exc.attempts:
            print(f"attempt: offered {attempt.offered} -> {attempt.status_code}")
        print("the server offers:", exc.response.headers.get("upgrade"))
        print("its body says:", exc.body.decode(errors="replace").strip())
    else:
        await conn.aclose()
        print("switched to", conn.protocol)


async def main() -> None:
    # The library's loggers, all at DEBUG, to stdout here.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger("trio_upgrade")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        async with open_upgrade_server([WebSocketServerProtocol()]) as server:
            await diagnose(server.url("/chat"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


if __name__ == "__main__":
    trio.run(main)
