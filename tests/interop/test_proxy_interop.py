"""Upgrades through tinyproxy (Debian's package), a real CONNECT proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import servers
import trio

import trio_upgrade
from trio_upgrade.testing import open_upgrade_server

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def tinyproxy() -> Iterator[servers.RunningServer]:
    yield from servers.started(servers.tinyproxy_server)


async def test_raw_upgrade_through_tinyproxy(tinyproxy: servers.RunningServer) -> None:
    async with open_upgrade_server(["echo"]) as server:
        with trio.fail_after(20):
            conn = await trio_upgrade.upgrade(
                server.url("/via-proxy"), "echo", proxy=tinyproxy.url()
            )
            async with conn:
                payload = bytes(range(256)) * 1024
                await conn.send_all(payload)
                received = b""
                while len(received) < len(payload):
                    received += await conn.receive_some()
                assert received == payload
        assert server.requests[0].target == "/via-proxy"


async def test_tinyproxy_reports_an_unreachable_server(
    tinyproxy: servers.RunningServer,
) -> None:
    port = servers.free_port()  # nothing listens there
    with trio.fail_after(20), pytest.raises(trio_upgrade.ProxyError) as info:
        await trio_upgrade.upgrade(
            f"http://127.0.0.1:{port}/", "echo", proxy=tinyproxy.url()
        )
    assert info.value.response is not None
    assert info.value.response.status_code >= 500
