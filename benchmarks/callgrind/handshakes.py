"""Handshakes only, for instruction counts (callgrind) and sampling profiles.

N times, one after another, what the handshake figures time: for ``ws``,
``upgrade(url, [WebSocket(compression=None, ...)])`` then ``aclose()``
against Node's ``ws`` echo server (benchmarks/websocket's ``handshake``
figure); for ``h2c``, ``open_upgrade(url, ["h2c"])``, read the stream-1
response, close, against h2o (benchmarks/http2's ``hps`` figure). The server
runs in a process of its own (launched here unless a URL is given), so under
valgrind only the client is counted. Take the difference of a run with N
and one with 0 and divide by N (docs/perf/handshakes.rst)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/hs.out \\
        python -m benchmarks.callgrind.handshakes ws 200

Arguments: ``ws``, ``h2c``, ``raw`` (the WebSocket figure's floor,
``raw-trio``: a pre-built handshake on a bare Trio socket) or
``h2c-minimal`` (the h2c figure's floor: the upgrade done by hand on Trio
and h2, ``benchmarks/http2/minimal.py``); N; optionally the server's URL.
``TRIO_UPGRADE_BENCH_SLICE=0.05`` as for ``messages.py``.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack

import trio

import trio_upgrade


async def websocket(url: str, n: int) -> None:
    protocol = trio_upgrade.WebSocket(
        compression=None, max_size=64 * 1024 * 1024, ping_interval=None
    )
    for _ in range(n):
        conn = await trio_upgrade.upgrade(url, [protocol])
        await conn.aclose()


async def raw(url: str, n: int) -> None:
    from urllib.parse import urlsplit

    from benchmarks.websocket.base import Target
    from benchmarks.websocket.trio_clients import RawTrio

    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    async with RawTrio(Target(parts.hostname, parts.port, parts.path)) as client:
        for _ in range(n):
            conn = await client.connect()
            await conn.close()


async def h2c(url: str, n: int) -> None:
    for _ in range(n):
        async with trio_upgrade.open_upgrade(url, ["h2c"]) as conn:
            response = conn.upgrade_response
            if response.status_code != 200:
                raise RuntimeError(f"status {response.status_code}")
            await response.read()


async def h2c_minimal(url: str, n: int) -> None:
    from urllib.parse import urlsplit

    from benchmarks.http2.minimal import minimal_h2c_handshake

    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    for _ in range(n):
        await minimal_h2c_handshake(parts.hostname, parts.port, parts.path)


def main() -> None:
    kind, n = sys.argv[1], int(sys.argv[2])
    # As in messages.py: SLICE scaled to valgrind's pace (docs/perf/
    # schedule-points.rst); unset, a slice ends fifty times too early.
    slice_ = os.environ.get("TRIO_UPGRADE_BENCH_SLICE")
    if slice_:
        from trio_upgrade._transport import _fastio

        _fastio.SLICE = float(slice_)
    with ExitStack() as stack:
        if len(sys.argv) > 3:
            url = sys.argv[3]
        else:
            from benchmarks import servers

            if kind in ("ws", "raw"):
                url = stack.enter_context(servers.node_ws_server()).url("/", "ws")
            else:
                url = stack.enter_context(servers.h2o_server()).url("/index.html")
        run = {
            "ws": websocket,
            "raw": raw,
            "h2c": h2c,
            "h2c-minimal": h2c_minimal,
        }[kind]
        # One handshake outside the count: imports and first-call caches.
        trio.run(run, url, 1)
        trio.run(run, url, n)
    print("ok", file=sys.stderr)


if __name__ == "__main__":
    main()
