"""The cancellation sweep itself: it reaches every step and sees what leaks."""

from __future__ import annotations

import socket

import pytest
import trio
from cancel_support import Outcome, sweep

pytestmark = pytest.mark.timeout(30)


async def test_every_step_is_cancelled_once_then_the_operation_completes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIO_UPGRADE_CANCEL_SWEEP", "full")
    reached: list[int] = []

    async def operation() -> None:
        for i in range(5):
            await trio.lowlevel.checkpoint()
            reached.append(i)

    seen: list[Outcome] = []

    async def check(outcome: Outcome) -> None:
        seen.append(outcome)

    outcomes = await sweep(operation, check)
    assert outcomes == seen
    # The measuring run, then cancelled before any step, then before each.
    assert [(o.step, o.cancelled) for o in outcomes] == [
        (None, False),
        (0, True),
        (1, True),
        (2, True),
        (3, True),
        (4, True),
        (5, True),
        (6, False),
    ]
    assert reached.count(4) == 2  # the measuring run and the last one


async def test_a_socket_left_open_by_a_cancelled_run_fails_the_sweep() -> None:
    left: list[socket.socket] = []

    async def operation() -> None:
        sock = socket.socket()
        try:
            await trio.lowlevel.checkpoint()
            await trio.lowlevel.checkpoint()
        except trio.Cancelled:
            left.append(sock)  # the bug: not closed when cancelled
            raise
        sock.close()

    async def check(outcome: Outcome) -> None:
        pass

    try:
        with pytest.raises(AssertionError, match="sockets left open"):
            await sweep(operation, check)
    finally:
        for sock in left:
            sock.close()


async def test_a_task_left_running_by_a_cancelled_run_fails_the_sweep() -> None:
    async with trio.open_nursery() as nursery:

        async def operation() -> None:
            try:
                await trio.lowlevel.checkpoint()
            except trio.Cancelled:
                nursery.start_soon(trio.sleep_forever)  # the bug
                raise

        async def check(outcome: Outcome) -> None:
            pass

        with pytest.raises(AssertionError, match="tasks left running"):
            await sweep(operation, check)
        nursery.cancel_scope.cancel()
