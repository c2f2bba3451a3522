"""Autobahn Testsuite echo client on trio_upgrade's public API.

Talks to a running ``wstest -m fuzzingserver`` (``run.py`` starts one and
checks the report): asks it how many cases there are (``/getCaseCount``),
runs each case by echoing every message back as it came (text as text,
binary as binary) until the connection ends, then asks the server to write
its reports (``/updateReports``). The client offers what
``WebSocket()`` offers by default (permessage-deflate with
``Deflate()``); only the limits are raised, so that the 16 MiB messages of
cases 9.x fit, and no keepalive pings are sent.

Usage: python tests/autobahn/client.py [ws://127.0.0.1:9001] [--agent NAME]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from urllib.parse import quote

import trio

import trio_upgrade
from trio_upgrade import WebSocket, WebSocketConnection

__all__ = ["AGENT", "MAX_SIZE", "CaseResult", "case_count", "run_case", "run_cases"]

AGENT = "trio_upgrade"
# Cases 9.1.6 and 9.2.6 send 16 MiB messages; 12.x/13.x up to 128 KiB.
MAX_SIZE = 32 * 1024 * 1024

# What ends a case from the client's side: the server closed or failed the
# connection, or broke the protocol (the library has then sent its close
# frame), or the socket broke.
CASE_END = (
    trio_upgrade.ConnectionClosed,
    trio_upgrade.ProtocolError,
    trio.BrokenResourceError,
)


def protocol() -> WebSocket:
    """The WebSocket offer for every case: the defaults but for the limits."""
    return WebSocket(max_size=MAX_SIZE, max_queue=None, ping_interval=None)


async def _connect(url: str) -> WebSocketConnection:
    return await trio_upgrade.upgrade(url, protocol())


async def case_count(base: str) -> int:
    """The number of cases the fuzzing server will run (its spec's cases)."""
    conn = await _connect(f"{base}/getCaseCount")
    async with conn:
        message = await conn.receive()
    return int(message)


class CaseResult:
    """How one case ended, from the client's side."""

    __slots__ = ("case", "duration", "end", "messages")

    def __init__(self, case: int, duration: float, messages: int, end: str) -> None:
        self.case = case
        self.duration = duration
        self.messages = messages
        self.end = end

    def __repr__(self) -> str:
        return (
            f"case {self.case}: {self.messages} messages echoed in "
            f"{self.duration:.2f} s, then {self.end}"
        )


async def run_case(base: str, case: int, agent: str = AGENT) -> CaseResult:
    """Run case number ``case`` (1-based): echo until the connection ends."""
    start = time.perf_counter()
    messages = 0
    url = f"{base}/runCase?case={case}&agent={quote(agent)}"
    try:
        conn = await _connect(url)
    except trio_upgrade.UpgradeError as exc:
        # The client refused the server's 101 (what some 13.x cases test
        # when the answer does not fit the offer) or could not connect.
        end = f"handshake failed: {type(exc).__name__}: {exc}"
    else:
        end = "closed"
        async with conn:  # completes the closing handshake, or aborts
            try:
                while True:
                    await conn.send(await conn.receive())
                    messages += 1
            except CASE_END as exc:
                end = f"{type(exc).__name__}: {exc}"
    return CaseResult(case, time.perf_counter() - start, messages, end)


async def update_reports(base: str, agent: str = AGENT) -> None:
    """Ask the server to write the reports of ``agent``; it closes when done."""
    conn = await _connect(f"{base}/updateReports?agent={quote(agent)}")
    async with conn:
        try:
            while True:
                await conn.receive()
        except CASE_END:
            pass


async def run_cases(
    base: str,
    agent: str = AGENT,
    *,
    case_timeout: float = 300.0,
    progress: Callable[[CaseResult, int], None] | None = None,
) -> list[CaseResult]:
    """Run every case the server has, then have it write its reports."""
    count = await case_count(base)
    results = []
    for case in range(1, count + 1):
        start = time.perf_counter()
        result: CaseResult | None = None
        with trio.move_on_after(case_timeout):
            result = await run_case(base, case, agent)
        if result is None:
            elapsed = time.perf_counter() - start
            result = CaseResult(case, elapsed, 0, "client timeout")
        results.append(result)
        if progress is not None:
            progress(result, count)
    await update_reports(base, agent)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:9001")
    parser.add_argument("--agent", default=AGENT)
    args = parser.parse_args(argv)

    def show(result: CaseResult, count: int) -> None:
        print(f"[{result.case}/{count}] {result}", flush=True)

    trio.run(partial(run_cases, args.url.rstrip("/"), args.agent, progress=show))
    return 0


if __name__ == "__main__":
    sys.exit(main())
