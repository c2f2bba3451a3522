"""Where an idle trio_upgrade WebSocket connection's bytes go.

``python -m benchmarks.websocket.breakdown [--connections N] [--nursery]
[--deflate]`` opens N connections (1,000 by default) to Node's ``ws`` echo
server, in its own process so that only the client is measured, uses each
once (one 16-byte echo), and prints what they hold, per connection: the
traced bytes by source line and by traceback (:mod:`tracemalloc`), and the
objects gc tracks, by type. The figures of ``docs/perf/memory.rst`` come
from it; the benchmark's ``memory_rss`` and ``memory_traced`` give the
totals.
"""

from __future__ import annotations

import argparse
import collections
import gc
import tracemalloc
from typing import Any

import trio

import trio_upgrade

from ..harness.processes import raise_fd_limit
from ..servers import node_ws_server

#: Lines and tracebacks holding less than this per connection are left out.
SHOWN_BYTES = 30


def _types() -> collections.Counter[str]:
    return collections.Counter(type(o).__name__ for o in gc.get_objects())


async def _measure(url: str, n: int, nursery: bool, deflate: bool) -> None:
    offer = trio_upgrade.WebSocket(
        compression="deflate" if deflate else None,
        ping_interval=None,
    )
    # The first connection's one-time allocations (imports, caches) are
    # not the connections'.
    first = await trio_upgrade.upgrade(url, [offer])
    await first.send(b"x" * 16)
    await first.receive()
    await first.aclose()
    gc.collect()
    connections: list[Any] = []
    async with trio.open_nursery() as tasks:
        tracemalloc.start(16)
        types_before = _types()
        before = tracemalloc.take_snapshot()
        try:
            for _ in range(n):
                ws = await trio_upgrade.upgrade(
                    url, [offer], nursery=tasks if nursery else None
                )
                connections.append(ws)
                await ws.send(b"x" * 16)
                await ws.receive()
            await trio.sleep(0.3)  # background readers settle
            gc.collect()
            after = tracemalloc.take_snapshot()
            types_after = _types()
        finally:
            tracemalloc.stop()
        total = sum(s.size_diff for s in after.compare_to(before, "filename"))
        print(f"{n} connections, nursery={nursery}, deflate={deflate}")
        print(f"traced: {total / n:.0f} bytes per connection\n")
        print("bytes  objects  source line (per connection)")
        for stat in after.compare_to(before, "lineno"):
            if stat.size_diff / n >= SHOWN_BYTES:
                print(
                    f"{stat.size_diff / n:5.0f}  {stat.count_diff / n:7.1f}"
                    f"  {stat.traceback[0]}"
                )
        print("\nby traceback (innermost last)")
        for stat in after.compare_to(before, "traceback"):
            if stat.size_diff / n >= 2 * SHOWN_BYTES:
                print(f"{stat.size_diff / n:5.0f} bytes, {stat.count_diff / n:.1f}")
                for line in list(stat.traceback)[-5:]:
                    print(f"         {line}")
        print("\nobjects gc tracks, per connection")
        for name, count in (types_after - types_before).most_common():
            if count / n >= 0.5:
                print(f"{count / n:5.1f}  {name}")
        for ws in reversed(connections):
            await ws.aclose()
        tasks.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument(
        "--nursery", action="store_true", help="with a background reader each"
    )
    parser.add_argument(
        "--deflate", action="store_true", help="offer permessage-deflate"
    )
    args = parser.parse_args(argv)
    raise_fd_limit(args.connections + 256)
    with node_ws_server() as server:
        trio.run(
            _measure,
            server.url(scheme="ws"),
            args.connections,
            args.nursery,
            args.deflate,
        )


if __name__ == "__main__":
    main()
