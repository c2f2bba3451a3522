"""A real server on a Unix socket: hypercorn bound to one (``fd://``).

Every protocol trio_upgrade speaks, over the socket: WebSocket, the h2c
upgrade, HTTP/2 with prior knowledge, a declined offer and
open_reconnecting() across a server restart.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator

import pytest
import servers
import trio

import trio_upgrade
from trio_upgrade import HTTP2Connection

pytestmark = [
    pytest.mark.interop,
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets"),
]

RunningServer = servers.RunningServer


@pytest.fixture(scope="module")
def hypercorn_unix() -> Iterator[RunningServer]:
    yield from servers.started(servers.hypercorn_unix_server)


def socket_of(server: RunningServer) -> str:
    return str(server.workdir / servers.HYPERCORN_SOCKET)


async def test_websocket(hypercorn_unix: RunningServer) -> None:
    with trio.fail_after(20):
        async with trio_upgrade.open_upgrade(
            "ws://app.test/greet", ["websocket"], unix_socket=socket_of(hypercorn_unix)
        ) as ws:
            assert await ws.receive() == "hello"
            await ws.send(b"\x00binary")
            assert await ws.receive() == b"\x00binary"


async def test_h2c_upgrade_and_more_streams(hypercorn_unix: RunningServer) -> None:
    with trio.fail_after(20):
        conn = await trio_upgrade.upgrade(
            "http://app.test/", "h2c", unix_socket=socket_of(hypercorn_unix)
        )
        async with conn:
            assert isinstance(conn, HTTP2Connection)
            assert await conn.upgrade_response.read() == b"ok"
            seen = await conn.request("GET", "/headers")
            assert json.loads(seen.content)["http_version"] == "2"
            body = servers.payload(300_000)
            echoed = await conn.request("POST", "/echo", body=body)
            assert echoed.content == body


async def test_prior_knowledge(hypercorn_unix: RunningServer) -> None:
    with trio.fail_after(20):
        async with trio_upgrade.open_http2(
            "http://app.test/", unix_socket=socket_of(hypercorn_unix)
        ) as conn:
            response = await conn.request("GET", "/headers")
            headers = dict(json.loads(response.content)["headers"])
            # The URL gave the authority; the socket gave the connection.
            assert headers.get(":authority", headers.get("host")) == "app.test"


async def test_host_and_target_come_from_the_url(
    hypercorn_unix: RunningServer,
) -> None:
    # hypercorn answers an upgrade to a token it does not serve as plain
    # HTTP; the refusal's body is the /headers JSON: what it was asked.
    with trio.fail_after(20):
        with pytest.raises(trio_upgrade.UpgradeRefused) as info:
            await trio_upgrade.upgrade(
                "http://app.test:8080/headers?x=1",
                "no-such-protocol",
                unix_socket=socket_of(hypercorn_unix),
            )
    assert info.value.status_code == 200
    seen = json.loads(info.value.body)
    assert seen["path"] == "/headers"
    assert dict(seen["headers"])["host"] == "app.test:8080"


async def test_reconnecting_across_a_restart(hypercorn_unix: RunningServer) -> None:
    # The daemon dies and is restarted on the same path: open_reconnecting
    # retries the refused, then missing socket until the new one answers.
    # (hypercorn_unix, running for the module anyway, is the availability
    # check: it skips where hypercorn is missing, as a skip raised inside
    # this Trio test cannot: it would come out in an exception group.)
    directory = tempfile.mkdtemp(prefix="tu-", dir="/tmp")
    path = f"{directory}/app.sock"
    running = [servers.hypercorn_unix_server(path)]
    backoff = trio_upgrade.Backoff(initial=0.05, max_delay=0.2)
    greetings: list[str | bytes] = []

    async def restart_later() -> None:
        await trio.sleep(0.3)  # a few failed attempts meanwhile
        server = await trio.to_thread.run_sync(servers.hypercorn_unix_server, path)
        running.append(server)

    try:
        with trio.fail_after(30):
            async with (
                trio.open_nursery() as nursery,
                trio_upgrade.open_reconnecting(
                    "ws://app.test/greet",
                    ["websocket"],
                    unix_socket=path,
                    backoff=backoff,
                ) as connections,
            ):
                async for ws in connections:
                    greetings.append(await ws.receive())
                    if len(greetings) == 2:
                        break
                    await trio.to_thread.run_sync(running[0].stop)
                    os.unlink(path)  # the stale socket file, as a supervisor would
                    nursery.start_soon(restart_later)
    finally:
        for server in running:
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    assert greetings == ["hello", "hello"]
    for server in running:
        assert not servers.group_exists(server.pgid), f"{server} left processes"
