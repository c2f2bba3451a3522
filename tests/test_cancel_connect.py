"""Connecting and upgrading, cancelled at any checkpoint, leaves nothing open.

Each case is a whole short session, from the TCP (or TLS) connect through
the upgrade handshake to a first exchange and the close, swept with
:func:`cancel_support.sweep`: cancelled before its N-th step for every N
until it completes. After each run, every connection the server accepted
is over, with the client's side closed, and no socket or task is left.
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
import trustme
from alpn_support import alpn_server, trust_by_default
from cancel_support import Outcome, sweep
from proxy_support import SocksLog, socks_proxy, start_proxy, tunnelling_proxy
from redirect_support import redirect, start_routes
from unix_support import needs_unix, socket_path

import trio_upgrade
from trio_upgrade import HTTP2Connection, RawStream, WebSocketConnection
from trio_upgrade.testing import (
    H2CServerProtocol,
    ServerProtocol,
    UpgradeServer,
    WebSocketServerProtocol,
    open_upgrade_server,
)

pytestmark = pytest.mark.timeout(120)

__all__ = ["socket_path"]  # the fixture, re-exported for pytest


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusted(
    ca: trustme.CA, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The library's own TLS contexts (which offer ALPN) trust ``ca``."""
    yield from trust_by_default(ca, tmp_path, monkeypatch)


async def websocket_session(conn: WebSocketConnection) -> None:
    async with conn:
        await conn.send("hello")
        assert await conn.receive() == "hello"


async def h2_session(conn: HTTP2Connection) -> None:
    async with conn:
        response = await conn.request("GET", "/")
        assert response.content == b"ok"


async def raw_session(conn: RawStream) -> None:
    async with conn:
        await conn.send_all(b"hello")
        assert await conn.receive_some() == b"hello"


Session = Callable[[Any], Awaitable[None]]

#: name: (what the server serves, what the client offers, upgrade options,
#: what to do on the connection).
CASES: dict[str, tuple[list[Any], Any, dict[str, Any], Session]] = {
    "websocket": (
        ["echo", WebSocketServerProtocol()],
        "websocket",
        {},
        websocket_session,
    ),
    "h2c": ([H2CServerProtocol()], "h2c", {}, h2_session),
    "raw": (["echo"], "echo", {}, raw_session),
    # The server refuses websocket (426), the client goes on with echo.
    "declined-then-accepted": (
        ["echo"],
        ["websocket", "echo"],
        {"strategy": "sequential"},
        raw_session,
    ),
}


async def _all_over(server: UpgradeServer) -> None:
    """Every connection the server accepted is over.

    Client and server run in this process: the sweep's check that no
    socket opened during the run is still open covers the client's side.
    """
    for record in server.connections:
        await record.wait_done()


@pytest.mark.parametrize("case", CASES)
async def test_cancelled_connect_and_handshake_leave_nothing_open(case: str) -> None:
    protocols, offer, options, session = CASES[case]
    async with open_upgrade_server(protocols) as server:

        async def operation() -> None:
            conn = await trio_upgrade.upgrade(server.url(), offer, **options)
            await session(conn)

        async def check(outcome: Outcome) -> None:
            await _all_over(server)

        await sweep(operation, check)


@pytest.mark.parametrize("case", ["websocket", "h2c"])
async def test_cancelled_open_upgrade_ends_its_tasks(case: str) -> None:
    # open_upgrade() runs background tasks (keepalive, the reader) in a
    # nursery of its own: cancelled anywhere, none of them outlives it.
    protocols, offer, _, _ = CASES[case]
    async with open_upgrade_server(protocols) as server:

        async def operation() -> None:
            async with trio_upgrade.open_upgrade(server.url(), offer) as conn:
                if isinstance(conn, WebSocketConnection):
                    await conn.send("hello")
                    assert await conn.receive() == "hello"
                else:
                    assert (await conn.request("GET", "/")).content == b"ok"

        async def check(outcome: Outcome) -> None:
            await _all_over(server)

        await sweep(operation, check)


@contextlib.asynccontextmanager
async def tls_server(ca: trustme.CA, alpn: tuple[str, ...]) -> AsyncIterator[Any]:
    protocols: list[ServerProtocol | str] = ["echo", WebSocketServerProtocol()]
    async with alpn_server(ca, alpn, protocols) as server:
        yield server


@pytest.mark.parametrize(
    ("offer", "alpn", "session"),
    [
        ("websocket", ("http/1.1",), websocket_session),
        ("h2", ("h2", "http/1.1"), h2_session),
    ],
    ids=["wss", "h2-alpn"],
)
@pytest.mark.usefixtures("trusted")
async def test_cancelled_tls_connect_leaves_nothing_open(
    ca: trustme.CA, offer: str, alpn: tuple[str, ...], session: Session
) -> None:
    async with tls_server(ca, alpn) as server:

        async def operation() -> None:
            conn = await trio_upgrade.upgrade(server.url(), offer)
            await session(conn)

        async def check(outcome: Outcome) -> None:
            await _all_over(server.upgrade)

        await sweep(operation, check)


@pytest.mark.parametrize("hop", ["same-server", "other-server"])
async def test_cancelled_redirect_leaves_nothing_open(hop: str) -> None:
    # A 307 then the 101: cancelled anywhere, on the first connection, the
    # second, or between the two, neither is left open.
    async with trio.open_nursery() as nursery:
        final = await start_routes(
            nursery, lambda target: None if target == "/there" else (404, [])
        )

        def first_answer(target: str) -> tuple[int, list[tuple[str, str]]] | None:
            if target == "/there":
                return None
            return redirect(
                307, (first if hop == "same-server" else final).url("/there")
            )

        first = await start_routes(nursery, first_answer)

        async def operation() -> None:
            conn = await trio_upgrade.upgrade(first.url("/here"), "echo")
            await raw_session(conn)

        async def check(outcome: Outcome) -> None:
            await first.wait_all_closed()
            await final.wait_all_closed()

        await sweep(operation, check)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("kind", ["http-connect", "socks5"])
async def test_cancelled_connect_through_a_proxy_leaves_nothing_open(
    kind: str,
) -> None:
    # The proxy runs here too: its tunnels to the server are sockets of
    # this process, so a tunnel the client left open would show.
    async with (
        trio.open_nursery() as nursery,
        open_upgrade_server(["echo", WebSocketServerProtocol()]) as server,
    ):
        if kind == "http-connect":
            proxy = await start_proxy(nursery, tunnelling_proxy([]))
        else:
            handler = socks_proxy(SocksLog(), ("user", "pass"))
            proxy = await start_proxy(nursery, handler, scheme="socks5")
            proxy = proxy.replace("://", "://user:pass@")

        async def operation() -> None:
            conn = await trio_upgrade.upgrade(server.url(), "websocket", proxy=proxy)
            await websocket_session(conn)

        async def check(outcome: Outcome) -> None:
            await _all_over(server)

        await sweep(operation, check)
        nursery.cancel_scope.cancel()


@needs_unix
async def test_cancelled_connect_over_a_unix_socket_leaves_nothing_open(
    socket_path: str,
) -> None:
    async with open_upgrade_server(
        [H2CServerProtocol()], unix_socket=socket_path
    ) as server:

        async def operation() -> None:
            conn = await trio_upgrade.upgrade(
                "http://localhost/", "h2c", unix_socket=socket_path
            )
            await h2_session(conn)

        async def check(outcome: Outcome) -> None:
            await _all_over(server)

        await sweep(operation, check)
