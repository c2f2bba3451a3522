"""The sessions the soak runs, on trio_upgrade's public API only.

``echo`` pipelines checked messages over one WebSocket connection;
``echo_bodies`` sends checked ``POST /echo`` bodies over one HTTP/2
connection. Failures go to the :class:`~.ledger.Ledger` rather than up the
stack (:func:`guarded`), so one bad session is counted and the others run on.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

import trio_upgrade

from .. import servers
from .ledger import Ledger, Mismatch, body, message

#: Seconds without the next expected echo before it counts as lost.
STALL = 60.0


def websocket() -> trio_upgrade.WebSocket:
    """The WebSocket offer: no compression (every byte crosses the wire as
    sent), 1 MiB messages, the default keepalive."""
    return trio_upgrade.WebSocket(compression=None)


def h2c(max_concurrent_streams: int = 100) -> trio_upgrade.H2C:
    return trio_upgrade.H2C(
        trio_upgrade.HTTP2Options(max_concurrent_streams=max_concurrent_streams)
    )


async def guarded(ledger: Ledger, what: str, session: Awaitable[None]) -> None:
    """Run ``session``; record an exception as a failure instead of raising."""
    try:
        await session
    except Mismatch:
        pass  # already recorded by the ledger
    except trio.TooSlowError:
        ledger.fail("lost", f"{what}: no echo within {STALL:.0f} s")
    except Exception as exc:
        ledger.fail("error", f"{what}: {exc!r}")


@dataclass(frozen=True)
class Echo:
    """How a connection echoes: sizes of its messages, how many in flight,
    and when to stop (after ``count`` messages, or once ``stop`` is set)."""

    sizes: Sequence[int]
    window: int
    count: int | None = None
    stop: trio.Event | None = None
    counters: dict[str, int] | None = None


async def echo(
    ws: trio_upgrade.WebSocketConnection, ident: int, ledger: Ledger, plan: Echo
) -> None:
    """Send checked messages, ``plan.window`` in flight, and check every echo.

    Returns when every message sent has come back (in order, byte for byte).
    """
    in_flight = trio.Semaphore(plan.window)
    expected: deque[bytes | str] = deque()

    async def receive() -> None:
        for seq in itertools.count():
            with trio.fail_after(STALL):
                got = await ws.receive()
            ledger.check(ident, seq, got, expected.popleft())
            if plan.counters is not None:
                plan.counters["ws_messages"] += 1
            in_flight.release()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        for seq in itertools.count():
            if seq == plan.count or (plan.stop is not None and plan.stop.is_set()):
                break
            await in_flight.acquire()
            outgoing = message(ident, seq, plan.sizes)
            expected.append(outgoing)
            await ws.send(outgoing)
            ledger.sent += 1
        # Every token back means every echo was checked.
        with trio.fail_after(STALL):
            for _ in range(plan.window):
                await in_flight.acquire()
        nursery.cancel_scope.cancel()


async def close_checked(
    ws: trio_upgrade.WebSocketConnection, ident: int, ledger: Ledger
) -> None:
    """Close; the server must answer with 1000 too."""
    await ws.aclose()
    if ws.close_code != 1000:
        ledger.fail("close", f"connection {ident}: close code {ws.close_code}")


async def echo_session(url: str, ident: int, ledger: Ledger, plan: Echo) -> None:
    """Connect, :func:`echo`, close cleanly."""
    async with trio_upgrade.open_upgrade(url, websocket()) as ws:
        await echo(ws, ident, ledger, plan)
        await close_checked(ws, ident, ledger)


async def checked_post(
    conn: trio_upgrade.HTTP2Connection,
    ident: int,
    seq: int,
    size: int,
    ledger: Ledger,
) -> None:
    """One ``POST /echo``: the response must be 200 with the same body."""
    sent = body(ident, seq, size)
    ledger.sent += 1
    response = await conn.request("POST", "/echo", body=sent)
    if response.status_code != 200:
        ledger.fail("error", f"stream {ident}/{seq}: status {response.status_code}")
        return
    ledger.check(ident, seq, response.content, sent)


async def checked_get(conn: trio_upgrade.HTTP2Connection, ledger: Ledger) -> None:
    """``GET /index.html``: the file the launcher wrote, byte for byte."""
    ledger.sent += 1
    response = await conn.request("GET", "/index.html")
    if response.status_code != 200 or response.content != servers.INDEX_HTML:
        ledger.fail("corrupted", f"GET /index.html: {response.status_code}")
        return
    ledger.verified += 1
    ledger.bytes_verified += len(response.content)


async def check_upgrade_response(
    conn: trio_upgrade.HTTP2Connection, ledger: Ledger
) -> None:
    """Stream 1, the answer to the upgrade request for ``/index.html``."""
    ledger.sent += 1
    response = conn.upgrade_response
    content = await response.read()
    if response.status_code != 200 or content != servers.INDEX_HTML:
        ledger.fail("corrupted", f"upgrade response: {response.status_code}")
        return
    ledger.verified += 1
    ledger.bytes_verified += len(content)


async def sequential_requests(
    conn: trio_upgrade.HTTP2Connection,
    ident: int,
    ledger: Ledger,
    *,
    count: int | None = None,
    stop: trio.Event | None = None,
    counters: dict[str, int] | None = None,
    every: int = 0,
    at_every: Callable[[int], None] | None = None,
) -> None:
    """Requests one after another on one connection: a GET, then a POST.

    ``at_every(n)`` is called after every ``every`` requests (the memory
    probe of the sequential figure).
    """
    for seq in itertools.count():
        if seq == count or (stop is not None and stop.is_set()):
            return
        if seq % 2:
            await checked_post(conn, ident, seq, 100 + seq % 900, ledger)
        else:
            await checked_get(conn, ledger)
        if counters is not None:
            counters["h2_requests"] += 1
        if at_every is not None and every and (seq + 1) % every == 0:
            at_every(seq + 1)
