"""Fault injection against real servers: ``websockets`` and hypercorn.

The same sweep as tests/test_faults.py (see tests/fault_cases.py for the
rules every case keeps), through the fault proxy to third-party servers:
WebSocket to the ``websockets`` library's server, h2c to hypercorn (its
h2 stack, not ours, answers the upgrade and the streams after it).
``TRIO_UPGRADE_FAULTS=all`` (``nox -s faults``) sweeps every offset.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import servers
from fault_cases import Scenario, h2c_scenario, sweep, websocket_scenario

pytestmark = [
    pytest.mark.interop,
    pytest.mark.timeout(0 if os.environ.get("TRIO_UPGRADE_FAULTS") else 60),
]

RunningServer = servers.RunningServer


@pytest.fixture(scope="module")
def websockets_srv() -> Iterator[RunningServer]:
    yield from servers.started(servers.websockets_server)


@pytest.fixture(scope="module")
def hypercorn() -> Iterator[RunningServer]:
    yield from servers.started(servers.hypercorn_server)


async def _sweep(scenario: Scenario, server: RunningServer) -> None:
    fired, problems = await sweep(scenario, (servers.HOST, server.port))
    assert not problems, "\n".join(problems)
    assert fired > 0


async def test_websocket_faults_against_websockets(
    websockets_srv: RunningServer,
) -> None:
    await _sweep(websocket_scenario(), websockets_srv)


async def test_h2c_faults_against_hypercorn(hypercorn: RunningServer) -> None:
    await _sweep(h2c_scenario(), hypercorn)
