"""Many HTTP/2 requests at once over one h2c connection.

Run it: ``python docs/examples/concurrent_requests.py`` (it starts its own
server).
"""

from __future__ import annotations

import trio

import trio_upgrade
from trio_upgrade.testing import (
    H2CServerProtocol,
    H2Reply,
    H2Request,
    open_upgrade_server,
)


async def fetch_all(url: str, paths: list[str], at_once: int) -> dict[str, str]:
    """GET every path, ``at_once`` at a time: what became of each."""
    results: dict[str, str] = {}
    # Our own limit on open streams; the server's SETTINGS may lower it.
    h2c = trio_upgrade.H2C(trio_upgrade.HTTP2Options(max_concurrent_streams=at_once))
    async with trio_upgrade.open_upgrade(url, h2c) as conn:
        # Stream 1, the answer to the upgrading GET, is not needed here:
        # closing it frees the stream it holds.
        await conn.upgrade_response.aclose()

        async def fetch(path: str) -> None:
            # Each request fails on its own: a reset or a timeout of one
            # stream leaves the connection and the other requests alone.
            try:
                with trio.fail_after(0.5):
                    response = await conn.request("GET", path)
            except trio.TooSlowError:
                results[path] = "no answer within 0.5 s"  # its stream reset
            except trio_upgrade.StreamReset as exc:
                results[path] = f"reset by the server (error code {exc.code})"
            else:
                # A status is an answer, not an error: 404 is a result too.
                results[path] = f"{response.status_code} {response.text!r}"

        # One task per request; requests beyond the limit wait their turn.
        async with trio.open_nursery() as nursery:
            for path in paths:
                nursery.start_soon(fetch, path)
    return results


# -- the demonstration: a server that counts the requests it serves at once --


async def main() -> tuple[list[str], int]:
    """(What became of each request, the most the server served at once.)"""
    busy = peak = 0

    async def item(request: H2Request) -> H2Reply:
        nonlocal busy, peak
        busy += 1
        peak = max(peak, busy)
        await trio.sleep(0.05)  # some work
        busy -= 1
        return H2Reply(200, f"item {request.query['id'][0]}".encode())

    protocol = H2CServerProtocol(routes={("GET", "/item"): item})
    paths = [f"/item?id={n}" for n in range(1, 13)]
    # The test server's own routes: /reset resets its stream, /hang never
    # answers; and /missing is not a route at all.
    paths += ["/missing", "/reset", "/hang"]
    async with open_upgrade_server([protocol]) as server:
        results = await fetch_all(server.url(), paths, at_once=4)
    lines = [f"{path}: {results[path]}" for path in paths]
    for line in lines:
        print(line)
    # Which requests overlapped varies from run to run; never more than 4.
    print(f"at most 4 at once on the server: {peak <= 4}")
    return lines, peak


if __name__ == "__main__":
    trio.run(main)
