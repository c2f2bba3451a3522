"""The soak's checks catch what they claim to (benchmarks/soak).

The soak (``nox -s soak``) is only worth its figures if a lost, reordered,
duplicated or corrupted message, a descriptor left open or a growing RSS
would fail it. Here its echo workload runs against the test server with
handlers that misbehave in each of those ways, on loopback, in well under
a second each.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Awaitable, Callable

import pytest
import trio

from benchmarks.soak import ledger as soak_ledger
from benchmarks.soak import phases, probe, workloads
from benchmarks.soak.ledger import SMALL_SIZES, Ledger, message
from trio_upgrade.testing import (
    ServerWebSocket,
    WebSocketServerProtocol,
    open_upgrade_server,
)

Handler = Callable[[ServerWebSocket], Awaitable[None]]


async def run_echo(handler: Handler | None, count: int = 12) -> Ledger:
    """The soak's echo session against the test server, as the soak runs it."""
    ledger = Ledger()
    protocol = (
        WebSocketServerProtocol(handler) if handler else WebSocketServerProtocol()
    )
    async with open_upgrade_server([protocol]) as server:
        plan = workloads.Echo(SMALL_SIZES, window=4, count=count)
        url = server.url(scheme="ws")
        with trio.fail_after(10):
            await workloads.guarded(
                ledger, "test", workloads.echo_session(url, 7, ledger, plan)
            )
    return ledger


def misbehaving(change: Callable[[int, str | bytes], list[str | bytes]]) -> Handler:
    """An echo handler that sends ``change(n, message)`` for the n-th message."""

    async def handler(ws: ServerWebSocket) -> None:
        # receive() rather than async for: the client may fail the
        # connection mid-stream (that is what is tested), which would leave
        # the iterator unfinished.
        for n in itertools.count():
            received = await ws.receive()
            for reply in change(n, received):
                await ws.send(reply)

    return handler


async def test_a_faithful_server_passes_every_message() -> None:
    ledger = await run_echo(None)
    assert ledger.ok
    assert ledger.sent == ledger.verified == 12
    assert not ledger.failures


async def test_swapped_messages_are_caught_at_the_first() -> None:
    held: list[str | bytes] = []

    def swap(n: int, received: str | bytes) -> list[str | bytes]:
        if n == 3:
            held.append(received)
            return []
        return [received, *held] if n == 4 else [received]

    ledger = await run_echo(misbehaving(swap))
    assert ledger.failures == {"skipped": 1}
    assert not ledger.ok


async def test_a_repeated_message_is_duplicated() -> None:
    ledger = await run_echo(misbehaving(lambda n, m: [m, m] if n == 2 else [m]))
    assert ledger.failures == {"duplicated": 1}


@pytest.mark.parametrize("kind", ["flipped byte", "text for binary", "truncated"])
async def test_changed_content_is_corrupted(kind: str) -> None:
    def corrupt(n: int, received: str | bytes) -> list[str | bytes]:
        if n != 4:  # message 4 is binary, 12 + 500 bytes
            return [received]
        assert isinstance(received, bytes)
        if kind == "flipped byte":
            return [received[:-1] + bytes([received[-1] ^ 1])]
        if kind == "text for binary":
            return [received.decode("latin-1")]
        return [received[:-1]]

    ledger = await run_echo(misbehaving(corrupt))
    assert ledger.failures == {"corrupted": 1}


async def test_a_dropped_message_is_skipped() -> None:
    ledger = await run_echo(misbehaving(lambda n, m: [] if n == 5 else [m]))
    assert ledger.failures == {"skipped": 1}
    assert ledger.sent > ledger.verified


async def test_a_dropped_last_message_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workloads, "STALL", 0.3)
    ledger = await run_echo(misbehaving(lambda n, m: [] if n == 11 else [m]))
    assert ledger.failures == {"lost": 1}
    assert (ledger.sent, ledger.verified) == (12, 11)


async def test_a_close_code_other_than_1000_fails() -> None:
    async def close_early(ws: ServerWebSocket) -> None:
        await ws.send(await ws.receive())
        await ws.close(1011, "oops")

    ledger = await run_echo(close_early)
    assert "error" in ledger.failures or "close" in ledger.failures
    assert not ledger.ok


def test_every_message_names_its_connection_and_place() -> None:
    for seq in range(2 * len(SMALL_SIZES)):
        sent = message(9, seq, SMALL_SIZES)
        assert soak_ledger.sequence_of(sent) == (9, seq)
        assert isinstance(sent, bytes if seq % 2 == 0 else str)
    assert message(9, 1, SMALL_SIZES) != message(10, 1, SMALL_SIZES)


async def test_a_descriptor_left_open_fails_the_phase() -> None:
    ledger = Ledger()
    base = phases.Baseline.take()
    leaked = socket.socket()
    try:
        figures: phases.Figures = {}
        await base.compare(figures, ledger)
    finally:
        leaked.close()
    assert ledger.failures == {"fds": 1}
    assert figures["fds_after"] == figures["fds_before"] + 1


def test_the_rss_slope_is_per_minute_after_the_warmup() -> None:
    sampler = probe.Sampler(interval=1.0)
    # Flat for a minute (warm-up growth before it), then 100 KiB a minute.
    sampler.samples = [
        probe.Sample(
            t, 1000.0 + (50.0 if t < 10 else 0) + max(0, t - 60) * 100 / 60, 9, {}
        )
        for t in range(121)
    ]
    assert sampler.slope_after(60) == pytest.approx(100.0)
    assert probe.slope([(0, 0.0), (1, 2.0), (2, 4.0)]) == pytest.approx(2.0)
