"""The fault proxy does what each fault says, and the sweep's rules can fail.

The fault-injection tests are only as good as their proxy and their
judge: here the proxy relays a known byte stream from a plain loopback echo
server and each fault is checked on the bytes that came through, and
:func:`fault_cases.check` is shown broken scenarios (one that reports data
the wire did not carry, one that lets a bare ``OSError`` out, one that waits
without a stall) and must reject each.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
from fault_cases import Case, Scenario, check, raw_scenario, run_case
from fault_proxy import DUPLICATE_BYTES, TRICKLE_BYTES, Fault, open_fault_proxy

pytestmark = pytest.mark.timeout(30)

DATA = bytes(range(256)) * 2
N = 100


@asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    """A plain TCP echo server on loopback that half-closes after EOF."""

    async def echo(stream: trio.SocketStream) -> None:
        async with stream:
            try:
                async for chunk in stream:
                    await stream.send_all(chunk)
                await stream.send_eof()
            except trio.BrokenResourceError:
                pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, echo, 0, host="127.0.0.1")
        )
        try:
            yield listeners[0].socket.getsockname()[1]
        finally:
            nursery.cancel_scope.cancel()


async def exchange(fault: Fault, wait: float = 1.0) -> tuple[bytes, list[int], str]:
    """Send DATA through the proxy, half-close, read what comes back.

    Returns the bytes read, the size of each read, and how it ended.
    """
    sizes: list[int] = []
    received = bytearray()
    how = "eof"
    async with (
        echo_server() as port,
        open_fault_proxy(("127.0.0.1", port), fault) as proxy,
    ):
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            with trio.move_on_after(wait) as scope:
                try:
                    await stream.send_all(DATA)
                    await stream.send_eof()
                    while chunk := await stream.receive_some(65536):
                        sizes.append(len(chunk))
                        received += chunk
                except trio.BrokenResourceError as exc:
                    how = f"broken: {type(exc.__cause__).__name__}"
            if scope.cancelled_caught:
                how = "waiting"
    return bytes(received), sizes, how


@pytest.mark.parametrize("direction", ["up", "down"])
async def test_truncate_closes_cleanly_after_n_bytes(direction: str) -> None:
    received, _, how = await exchange(Fault("truncate", direction, N))  # type: ignore[arg-type]
    # Up: the server had N bytes to echo, but the close of both connections
    # may come before the echo.
    assert DATA[:N].startswith(received) and how == "eof"
    if direction == "down":
        assert received == DATA[:N]


@pytest.mark.parametrize("direction", ["up", "down"])
async def test_reset_sends_an_rst_after_n_bytes(direction: str) -> None:
    received, _, how = await exchange(Fault("reset", direction, N))  # type: ignore[arg-type]
    assert DATA.startswith(received) and len(received) <= N
    assert how == "broken: ConnectionResetError"


async def test_stall_keeps_the_connection_open_and_silent() -> None:
    received, _, how = await exchange(Fault("stall", "down", N), wait=0.3)
    assert (received, how) == (DATA[:N], "waiting")


async def test_half_close_ends_one_direction_only() -> None:
    # The server's bytes stop at N with an EOF; ours still reach it (the
    # proxy's record of the up direction is checked in the sweep).
    received, _, how = await exchange(Fault("half-close", "down", N))
    assert (received, how) == (DATA[:N], "eof")


async def test_duplicate_repeats_a_chunk_at_n() -> None:
    received, _, how = await exchange(Fault("duplicate", "down", N))
    chunk = DATA[N : N + DUPLICATE_BYTES]
    assert (received, how) == (DATA[:N] + chunk + DATA[N:], "eof")


async def test_trickle_delivers_every_byte_in_its_own_read() -> None:
    received, sizes, how = await exchange(Fault("trickle", "down", N))
    assert (received, how) == (DATA, "eof")
    assert sizes.count(1) >= TRICKLE_BYTES - 1  # the first may join the head


# -- the judge ------------------------------------------------------------------


def _lying(scenario: Scenario) -> Scenario:
    """``scenario``, but reporting the expected data whatever arrives."""

    async def run(url: str, received: list[object]) -> None:
        with contextlib.suppress(Exception):
            await scenario.run(url, [])
        received.extend(scenario.expected)

    return Scenario("lying", scenario.path, run, scenario.expected, scenario.decode)


def _leaking(scenario: Scenario) -> Scenario:
    async def run(url: str, received: list[object]) -> None:
        try:
            await scenario.run(url, received)
        except Exception as exc:
            raise ConnectionResetError("bare") from exc

    return Scenario("leaking", scenario.path, run, scenario.expected, scenario.decode)


def _waiting(scenario: Scenario) -> Scenario:
    async def run(url: str, received: list[object]) -> None:
        await trio.sleep_forever()

    return Scenario("waiting", scenario.path, run, scenario.expected, scenario.decode)


async def _judge(scenario: Scenario, fault: Fault) -> str | None:
    """The judge's verdict on one case, run to an echo server."""
    async with echo_server() as port:
        # The echo server does no HTTP: every scenario here stops before
        # parsing or lies about it, which is the point.
        case: Case = await run_case(scenario, ("127.0.0.1", port), fault, 1.0)
    return check(scenario, case)


async def test_the_judge_rejects_data_the_wire_did_not_carry() -> None:
    problem = await _judge(_lying(raw_scenario()), Fault("truncate", "down", 5))
    assert problem is not None and "the wire carried" in problem


async def test_the_judge_rejects_a_bare_oserror() -> None:
    problem = await _judge(_leaking(raw_scenario()), Fault("reset", "down", 5))
    assert problem is not None and "undocumented error" in problem


async def test_the_judge_rejects_waiting_without_a_stall() -> None:
    problem = await _judge(_waiting(raw_scenario()), Fault("truncate", "down", 0))
    assert problem is not None and "still waiting" in problem
