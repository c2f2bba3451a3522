"""A fixed workload for instruction counts (callgrind), not for timing.

In memory, client and ``trio_upgrade.testing`` server in one process: S
WebSocket echoes of 16 bytes, B echoes of 256 KiB, then H HTTP/2 GETs on
one h2c connection. Run it under ``valgrind --tool=callgrind`` with
``PYTHONHASHSEED=0`` once with ``0 0 0`` and once with the work, and take
the difference (docs/benchmarks.rst, "Before and after the restructure"):

    PYTHONHASHSEED=0 valgrind --tool=callgrind \\
        python benchmarks/callgrind/workload.py 2000 0 0

It uses only public names, so an older checkout can be measured through
``PYTHONPATH``. A fourth argument ``1`` runs the HTTP/2 GETs on a connection
with a nursery (``open_upgrade``), whose background reader services it while
idle (issue 11), instead of one without (``upgrade``).
"""

from __future__ import annotations

import math
import sys

import trio

import trio_upgrade
from trio_upgrade.testing import (
    H2CServerProtocol,
    WebSocketServerProtocol,
    open_upgrade_server,
)

N_SMALL, N_BIG, N_H2 = (int(a) for a in sys.argv[1:4])
SERVICED = sys.argv[4:5] == ["1"]


async def main() -> None:
    protocols = [WebSocketServerProtocol(), H2CServerProtocol()]
    # No connection_timeout: under valgrind the run is 50 times slower.
    async with open_upgrade_server(
        protocols, tcp=False, connection_timeout=math.inf
    ) as server:
        ws = await trio_upgrade.upgrade(
            "http://test/", "websocket", transport=await server.connect_in_memory()
        )
        async with ws:
            for _ in range(N_SMALL):
                await ws.send("0123456789abcdef")
                await ws.receive()
            big = b"x" * 262144
            for _ in range(N_BIG):
                await ws.send(big)
                await ws.receive()
        transport = await server.connect_in_memory()
        if SERVICED:
            async with trio_upgrade.open_upgrade(
                "http://test/", "h2c", transport=transport
            ) as conn:
                for _ in range(N_H2):
                    await conn.request("GET", "/")
        else:
            conn = await trio_upgrade.upgrade(
                "http://test/", "h2c", transport=transport
            )
            async with conn:
                for _ in range(N_H2):
                    await conn.request("GET", "/")
        print("ok", file=sys.stderr)


trio.run(main)
