"""The errors an upgrade can end with, each met on purpose.

Run it: ``python docs/examples/handling_errors.py`` (it starts its own
servers).
"""

from __future__ import annotations

import trio

import trio_upgrade
from trio_upgrade.testing import Hang, Reply, Script, open_upgrade_server


async def connect(url: str, limits: trio_upgrade.Limits | None = None) -> str:
    try:
        # The upgrade happens on entering the block: its errors come from here.
        async with trio_upgrade.open_upgrade(url, ["websocket"], limits=limits) as conn:
            return f"switched to {conn.protocol}"
    except trio_upgrade.UpgradeRefused as exc:
        return f"server said {exc.status_code} {exc.body[:100]!r}"
    except trio_upgrade.UpgradeTimeout:
        return "too slow"  # also a trio.TooSlowError
    except trio_upgrade.UpgradeError as exc:
        return f"could not upgrade: {exc}"


async def main() -> list[str]:
    results = []
    # A server without WebSocket, which refuses with a page of its own.
    refusal = Reply(403, b"no WebSocket here")
    async with open_upgrade_server(["echo"], fallback=refusal) as server:
        results.append(await connect(server.url()))
    # A server that never answers, and a short handshake deadline.
    async with open_upgrade_server(script=Script([Hang()])) as server:
        short = trio_upgrade.Limits(handshake_timeout=0.1)
        results.append(await connect(server.url(), short))
    # A URL the library cannot use.
    results.append(await connect("ftp://127.0.0.1/"))
    for result in results:
        print(result)
    return results


if __name__ == "__main__":
    trio.run(main)
