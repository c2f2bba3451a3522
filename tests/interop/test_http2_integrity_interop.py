"""Many concurrent HTTP/2 downloads and uploads from hypercorn, every byte checked.

The reproduction of a lost-data bug: the end of a body read by another task
while the body's reader wrote a window update. Random sizes, random reading
styles, several connections with several requests in flight each, streamed
uploads beside the downloads; a body that is short, long or different fails
the test with the seed that produced it.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Iterator

import pytest
import servers
import trio

import trio_upgrade
from trio_upgrade import HTTP2Connection

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

MiB = 1024 * 1024
#: Downloads per run; TRIO_UPGRADE_STRESS_ROUNDS raises it for a long run.
ROUNDS = int(os.environ.get("TRIO_UPGRADE_STRESS_ROUNDS", "240"))


@pytest.fixture(scope="module")
def hypercorn() -> Iterator[servers.RunningServer]:
    yield from servers.started(servers.hypercorn_server)


async def pieces(data: bytes, rng: random.Random) -> AsyncIterator[bytes]:
    pos = 0
    while pos < len(data):
        step = rng.randrange(1, 256 * 1024)
        yield data[pos : pos + step]
        pos += step
        await trio.lowlevel.checkpoint()


async def test_concurrent_bodies_arrive_whole(
    hypercorn: servers.RunningServer,
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    failures: list[str] = []
    jobs = iter(range(ROUNDS))

    async def worker(conn: HTTP2Connection) -> None:
        for _ in jobs:
            size = rng.randrange(0, 2 * MiB)
            if rng.random() < 0.25:
                body = servers.payload(size, 7)
                echoed = await conn.request("POST", "/echo", body=pieces(body, rng))
                if echoed.content != body:
                    failures.append(f"echo of {size}: {len(echoed.content)} back")
                continue
            if rng.random() < 0.5:
                got = (await conn.request("GET", f"/bytes/{size}")).content
            else:
                async with conn.stream("GET", f"/bytes/{size}") as response:
                    got = b"".join([piece async for piece in response])
            if got != servers.payload(size):
                failures.append(f"download of {size}: {len(got)} bytes")

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                conn = await trio_upgrade.upgrade(hypercorn.url("/"), "h2c")
                await conn.upgrade_response.read()

                async def run(conn: HTTP2Connection = conn) -> None:
                    async with conn, trio.open_nursery() as inner:
                        for _ in range(8):
                            inner.start_soon(worker, conn)

                nursery.start_soon(run)
    assert not failures, f"seed {seed}: {failures}"
