"""Cancellation at every await of an HTTP/2 session leaves no open socket.

An instrument cancels the test's scope right before the N-th step of the
test task, for N = 1, 2, ... until the whole session runs uncancelled. After
each run, the server must see the client close every connection it opened.
"""

from __future__ import annotations

import pytest
import trio
from h2_helpers import h2c_server

import trio_upgrade
from trio_upgrade.testing import UpgradeServer
from trio_upgrade.testing._http2 import pattern

pytestmark = pytest.mark.timeout(60)


class CancelAtStep(trio.abc.Instrument):
    """Cancel ``scope`` just before ``task`` runs its ``step``-th step."""

    def __init__(self, task: trio.lowlevel.Task, step: int, scope: trio.CancelScope):
        self.task = task
        self.step = step
        self.scope = scope
        self.count = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.count += 1
            if self.count == self.step:
                self.scope.cancel()


async def session(server: UpgradeServer) -> None:
    async with trio_upgrade.open_upgrade(server.url(), "h2c") as conn:
        assert await conn.upgrade_response.read() == b"ok"
        echoed = await conn.request("POST", "/echo", body=pattern(200_000))
        assert echoed.content == pattern(200_000)
        async with conn.stream("GET", "/bytes/150000") as response:
            async for _ in response:
                pass
        await conn.ping()


async def test_cancel_at_every_step_leaves_no_socket_open() -> None:
    async with h2c_server() as (server, _):
        step = 0
        while True:
            step += 1
            assert step < 5000, "the session never ran to its end"
            with trio.CancelScope() as scope:
                instrument = CancelAtStep(trio.lowlevel.current_task(), step, scope)
                trio.lowlevel.add_instrument(instrument)
                try:
                    await session(server)
                finally:
                    trio.lowlevel.remove_instrument(instrument)
            with trio.fail_after(5):
                for record in server.connections:
                    await record.wait_client_closed()
            if not scope.cancelled_caught:
                break
        assert step > 20, step  # it did cancel a lot of different awaits


async def test_cancelling_one_task_at_every_step_never_stalls_another() -> None:
    # Task A is cancelled at its N-th step while task B, never cancelled,
    # uses the same connection: whatever A held (the reader or sender role,
    # a stream, frames B queued for A to write) must pass on, so B finishes.
    async with (
        h2c_server() as (server, _),
        trio_upgrade.open_upgrade(server.url(), "h2c") as conn,
    ):
        await conn.upgrade_response.read()
        step = 0
        while True:
            step += 1
            assert step < 5000
            b_done = 0

            async def task_b() -> None:
                nonlocal b_done
                for i in range(5):
                    response = await conn.request("GET", f"/bytes/{i * 1000}")
                    assert response.content == pattern(i * 1000)
                    b_done += 1

            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(task_b)
                    with trio.CancelScope() as scope:
                        task = trio.lowlevel.current_task()
                        instrument = CancelAtStep(task, step, scope)
                        trio.lowlevel.add_instrument(instrument)
                        try:
                            await conn.ping()
                            body = pattern(300_000)
                            echoed = await conn.request("POST", "/echo", body=body)
                            assert echoed.content == body
                            async with conn.stream("GET", "/bytes/200000") as r:
                                await r.receive_some()
                        finally:
                            trio.lowlevel.remove_instrument(instrument)
            assert b_done == 5
            assert conn.is_usable
            if not scope.cancelled_caught:
                break
        assert step > 10
