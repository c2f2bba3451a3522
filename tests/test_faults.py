"""Fault injection against the in-repo server: WebSocket, h2c and raw.

Every connection goes through :mod:`fault_proxy`, which resets, stalls,
trickles, truncates, duplicates or half-closes one direction at a byte
offset; :mod:`fault_cases` sweeps the offsets through the handshake and the
first messages and states the rules every case must keep (it ends within
its deadline, in success or a documented error, and reports only what the
wire carried). The default run takes a representative set of offsets, all
cases of a protocol at once; ``TRIO_UPGRADE_FAULTS=all`` (``nox -s
faults``) takes every offset.
"""

from __future__ import annotations

import os
from contextlib import AbstractAsyncContextManager

import pytest
import trio
from fault_cases import (
    CONCURRENCY,
    Scenario,
    h2c_scenario,
    raw_scenario,
    sweep,
    websocket_scenario,
)

from trio_upgrade.testing import (
    H2CServerProtocol,
    RawServerProtocol,
    UpgradeServer,
    WebSocketServerProtocol,
    open_upgrade_server,
)

pytestmark = pytest.mark.timeout(0 if os.environ.get("TRIO_UPGRADE_FAULTS") else 60)


def _server() -> AbstractAsyncContextManager[UpgradeServer]:
    return open_upgrade_server(
        [WebSocketServerProtocol(), H2CServerProtocol(), RawServerProtocol("echo")],
        connection_timeout=30,
    )


async def test_every_fault_ends_in_time_in_success_or_a_documented_error() -> None:
    # The three protocols at once: the sweep's time is that of its slowest
    # cases (the stalls, which wait for the library's deadlines).
    problems: list[str] = []
    limiter = trio.CapacityLimiter(CONCURRENCY)

    async def one(scenario: Scenario) -> None:
        fired, found = await sweep(scenario, ("127.0.0.1", server.port), limiter)
        problems.extend(f"{scenario.name} {p}" for p in found)
        assert fired > 0, scenario.name

    async with _server() as server, trio.open_nursery() as nursery:
        for scenario in (websocket_scenario(), h2c_scenario(), raw_scenario()):
            nursery.start_soon(one, scenario)
    assert not problems, "\n".join(problems)
