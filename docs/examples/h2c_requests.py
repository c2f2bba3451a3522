"""HTTP/2 over an h2c upgrade: stream 1, then more requests, text and JSON.

Run it: ``python docs/examples/h2c_requests.py`` (it starts its own server).
"""

from __future__ import annotations

import json

import trio

import trio_upgrade
from trio_upgrade.testing import (
    H2CServerProtocol,
    H2Reply,
    H2Request,
    open_upgrade_server,
)


async def fetch(url: str) -> list[str]:
    lines = []
    async with await trio_upgrade.upgrade(url, ["h2c"]) as conn:
        # The upgrading GET was stream 1: its answer is already on its way.
        # Read it (or aclose() it): until then it holds a stream.
        first = conn.upgrade_response
        await first.read()
        lines.append(f"stream {first.stream_id}: {first.status_code} {first.text!r}")
        # More requests on the same connection: a path, or an absolute URL
        # on the connection's own origin.
        data = await conn.request("GET", url + "api/status")
        lines.append(f"stream {data.stream_id}: {data.json()}")
        return lines


async def status(request: H2Request) -> H2Reply:
    body = json.dumps({"healthy": True}).encode()
    return H2Reply(200, body, [("content-type", "application/json")])


async def main() -> list[str]:
    protocol = H2CServerProtocol(routes={("GET", "/api/status"): status})
    async with open_upgrade_server([protocol]) as server:
        lines = await fetch(server.url())
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    trio.run(main)
