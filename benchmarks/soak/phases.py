"""The four phases of the soak, each a Trio function returning its figures.

Each phase takes its descriptor and task counts and a settled RSS (after a
full garbage collection) before it starts, samples RSS and descriptors while
it runs, and takes them again once every connection is closed. ``ok`` is
false when the :class:`~.ledger.Ledger` holds a failure or an unverified
message, or when descriptors or tasks are not back to where they were.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

import trio_upgrade

from . import probe, workloads
from .ledger import MIXED_SIZES, SMALL_SIZES, Ledger, body

Figures = dict[str, Any]

#: Handshakes in progress at once while a phase opens its connections: a
#: listen backlog (Node: 511) overrun by a thousand SYNs at once costs
#: retransmissions of a second each, which says nothing about the client.
OPENING = 64


#: Memory blocks a request may leave behind on a long-lived HTTP/2 connection
#: once the closed-stream bookkeeping is full (measured: 0.01; 2 before).
MAX_BLOCKS_PER_REQUEST = 0.1


class Gate:
    """Opens once ``total`` parties have arrived (or failed on the way)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.arrived = 0
        self.event = trio.Event()
        if total <= 0:
            self.event.set()

    def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.total:
            self.event.set()


@dataclass
class Baseline:
    """Descriptors, tasks and settled RSS before a phase."""

    fds: int
    tasks: int
    rss_kib: float

    @classmethod
    def take(cls) -> Baseline:
        return cls(probe.fd_count(), probe.task_count(), probe.settled_rss_kib())

    async def compare(self, figures: Figures, ledger: Ledger) -> None:
        """Add the after-figures; record descriptors or tasks left behind."""
        # Closed sockets are closed at once; a checkpoint lets the tasks of
        # the phase's nurseries finish being torn down.
        await trio.sleep(0.1)
        after = Baseline.take()
        figures.update(
            fds_before=self.fds,
            fds_after=after.fds,
            tasks_before=self.tasks,
            tasks_after=after.tasks,
            rss_before_kib=round(self.rss_kib),
            rss_after_kib=round(after.rss_kib),
        )
        if after.fds != self.fds:
            ledger.fail("fds", f"{after.fds} descriptors open after, {self.fds} before")
        if after.tasks != self.tasks:
            ledger.fail(
                "tasks", f"{after.tasks} tasks alive after, {self.tasks} before"
            )


def _finish(figures: Figures, ledger: Ledger, sampler: probe.Sampler) -> Figures:
    figures.update(
        peak_rss_kib=round(sampler.peak_kib()),
        peak_fds=sampler.fds_range()[1],
        ledger=ledger.summary(),
        ok=ledger.ok,
    )
    return figures


# ---------------------------------------------------------------- WebSocket --


async def websocket_load(
    url: str, connections: int, messages: int, *, window: int = 16, deadline: float
) -> Figures:
    """``connections`` open at once, each echoing ``messages`` checked messages."""
    ledger = Ledger()
    base = Baseline.take()
    sampler = probe.Sampler(interval=1.0, counters={"ws_messages": 0})
    opening = trio.CapacityLimiter(OPENING)
    ready = Gate(connections)
    go = trio.Event()
    plan = workloads.Echo(
        SMALL_SIZES, window, count=messages, counters=sampler.counters
    )
    figures: Figures = {
        "connections": connections,
        "messages_per_connection": messages,
        "window": window,
        "sizes": list(SMALL_SIZES),
    }

    async def session(ident: int) -> None:
        arrived = False
        try:
            async with contextlib.AsyncExitStack() as stack:
                async with opening:
                    ws = await stack.enter_async_context(
                        trio_upgrade.open_upgrade(url, workloads.websocket())
                    )
                ready.arrive()
                arrived = True
                await go.wait()
                await workloads.echo(ws, ident, ledger, plan)
                await workloads.close_checked(ws, ident, ledger)
        finally:
            if not arrived:
                ready.arrive()

    with trio.fail_after(deadline):
        async with trio.open_nursery() as outer:
            outer.start_soon(sampler.run)
            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for ident in range(connections):
                    nursery.start_soon(
                        workloads.guarded, ledger, f"connection {ident}", session(ident)
                    )
                await ready.event.wait()
                connected = time.perf_counter()
                rss_connected = probe.settled_rss_kib()
                figures.update(
                    seconds_to_connect=round(connected - start, 2),
                    rss_connected_kib=round(rss_connected),
                    fds_connected=probe.fd_count(),
                    kib_per_connection=round(
                        (rss_connected - base.rss_kib) / connections, 1
                    ),
                )
                echo_start = time.perf_counter()
                go.set()
            seconds = time.perf_counter() - echo_start
            sampler.sample()
            outer.cancel_scope.cancel()
    figures.update(
        seconds_to_echo=round(seconds, 2),
        messages_per_s=round(ledger.verified / seconds),
    )
    await base.compare(figures, ledger)
    return _finish(figures, ledger, sampler)


# ------------------------------------------------------------------- HTTP/2 --


async def http2_streams(url: str, streams: int, *, deadline: float) -> Figures:
    """``streams`` ``POST /echo`` streams open at once, over as few
    connections as the server's ``SETTINGS_MAX_CONCURRENT_STREAMS`` allows."""
    ledger = Ledger()
    base = Baseline.take()
    sampler = probe.Sampler(interval=0.5)
    heads = Gate(streams)
    release = trio.Event()
    sizes = (0, 1, 1000, 4096, 16_384)
    figures: Figures = {"streams": streams, "sizes": list(sizes)}
    open_now = [0, 0]  # streams with their response head, the most at once

    async def one(conn: trio_upgrade.HTTP2Connection, ident: int) -> None:
        sent = body(ident, 0, sizes[ident % len(sizes)])
        ledger.sent += 1
        arrived = False
        try:
            async with conn.stream("POST", "/echo", body=sent) as response:
                open_now[0] += 1
                open_now[1] = max(open_now)
                heads.arrive()
                arrived = True
                await release.wait()
                got = await response.read()
                open_now[0] -= 1
            if response.status_code != 200:
                ledger.fail("error", f"stream {ident}: status {response.status_code}")
            else:
                ledger.check(ident, 0, got, sent)
        finally:
            if not arrived:
                heads.arrive()

    with trio.fail_after(deadline):
        async with trio.open_nursery() as outer, contextlib.AsyncExitStack() as stack:
            outer.start_soon(sampler.run)
            start = time.perf_counter()

            async def connect() -> trio_upgrade.HTTP2Connection:
                conn = await stack.enter_async_context(
                    trio_upgrade.open_upgrade(url, workloads.h2c(streams))
                )
                # The upgrade request's own response (stream 1), checked too.
                await workloads.check_upgrade_response(conn, ledger)
                return conn

            conns = [await connect()]
            per_connection = conns[0].max_concurrent_streams
            for _ in range(math.ceil(streams / per_connection) - 1):
                conns.append(await connect())
            rss_connected = probe.settled_rss_kib()
            async with trio.open_nursery() as nursery:
                for ident in range(streams):
                    nursery.start_soon(
                        workloads.guarded,
                        ledger,
                        f"stream {ident}",
                        one(conns[ident % len(conns)], ident),
                    )
                await heads.event.wait()
                rss_open = probe.settled_rss_kib()
                figures.update(
                    connections=len(conns),
                    streams_per_connection=per_connection,
                    most_open_at_once=open_now[1],
                    seconds_to_open=round(time.perf_counter() - start, 2),
                    kib_per_stream=round((rss_open - rss_connected) / streams, 1),
                    rss_open_kib=round(rss_open),
                )
                release.set()
            figures["seconds"] = round(time.perf_counter() - start, 2)
            await stack.aclose()  # the connections, before the sampler stops
            sampler.sample()
            outer.cancel_scope.cancel()
    await base.compare(figures, ledger)
    if figures.get("most_open_at_once") != streams:
        ledger.fail("error", f"only {figures.get('most_open_at_once')} streams at once")
    return _finish(figures, ledger, sampler)


async def http2_sequential(
    url: str, requests: int, *, every: int = 1000, deadline: float
) -> Figures:
    """One long-lived connection, ``requests`` requests one after another.

    After every ``every`` requests, a full collection, then the RSS and the
    number of memory blocks Python has allocated: what each request leaves
    behind on a connection that never closes (h2 keeps how its last closed
    streams ended). The RSS shows it only in a fresh process, before
    memory freed by other phases is there to be reused: the phase runs
    first. The block count shows it in any case.
    """
    ledger = Ledger()
    base = Baseline.take()
    sampler = probe.Sampler(interval=1.0)
    points: list[tuple[int, float, int]] = []

    def measure(done: int) -> None:
        points.append((done, probe.settled_rss_kib(), sys.getallocatedblocks()))

    with trio.fail_after(deadline):
        async with trio.open_nursery() as outer:
            outer.start_soon(sampler.run)
            start = time.perf_counter()
            async with trio_upgrade.open_upgrade(url, workloads.h2c()) as conn:
                await workloads.check_upgrade_response(conn, ledger)
                measure(0)
                await workloads.sequential_requests(
                    conn, 0, ledger, count=requests, every=every, at_every=measure
                )
            seconds = time.perf_counter() - start
            outer.cancel_scope.cancel()
    # The first half shows what the closed-stream bookkeeping costs while it
    # fills (1,024 streams with the library's bound, 65,536 with h2's); by
    # the second half it is full, and a request must leave nothing behind.
    half = requests // 2

    def per_request(column: int, scale: float, second: bool) -> float | None:
        chosen = [
            (row[0], row[column] * scale)
            for row in points
            if (row[0] >= half if second else row[0] <= half)
        ]
        return round(probe.slope(chosen), 2) if len(chosen) > 2 else None

    figures: Figures = {
        "requests": requests,
        "seconds": round(seconds, 2),
        "requests_per_s": round(requests / seconds),
        "rss_growth_kib": round(points[-1][1] - points[0][1]),
        "bytes_per_request_first_half": per_request(1, 1024, False),
        "bytes_per_request_second_half": per_request(1, 1024, True),
        "blocks_per_request_first_half": per_request(2, 1, False),
        "blocks_per_request_second_half": per_request(2, 1, True),
        "points": [[n, round(kib), blocks] for n, kib, blocks in points],
    }
    after = figures["blocks_per_request_second_half"]
    if after is not None and after > MAX_BLOCKS_PER_REQUEST:
        ledger.fail("rss", f"{after} memory blocks kept per request, second half")
    await base.compare(figures, ledger)
    return _finish(figures, ledger, sampler)


# -------------------------------------------------------------------- mixed --


@dataclass
class MixedPlan:
    """What runs at once in the mixed phase."""

    seconds: float
    interval: float
    warmup: float
    max_slope_kib: float
    ws_long: int = 50
    ws_churn: int = 2
    h2_churn: int = 1
    h2_long: int = 1


async def mixed(ws_url: str, h2_url: str, plan: MixedPlan) -> Figures:
    """Long-lived and short-lived WebSocket and HTTP/2 sessions, all at once.

    Long-lived WebSocket connections echo checked messages of every size
    class (up to 200 kB) until the end; others connect, echo 20 messages and
    close, again and again; a long-lived HTTP/2 connection sends requests
    one after another; others open, run 50 concurrent streams and close.
    """
    ledger = Ledger()
    base = Baseline.take()
    counters = {"ws_messages": 0, "h2_requests": 0, "ws_sessions": 0, "h2_sessions": 0}
    sampler = probe.Sampler(interval=plan.interval, counters=counters)
    stop = trio.Event()
    idents = iter(range(1, 2**31))

    async def ws_long() -> None:
        plan = workloads.Echo(MIXED_SIZES, 4, stop=stop, counters=counters)
        await workloads.echo_session(ws_url, next(idents), ledger, plan)

    async def ws_churn() -> None:
        while not stop.is_set():
            plan = workloads.Echo(SMALL_SIZES, 4, count=20, counters=counters)
            await workloads.echo_session(ws_url, next(idents), ledger, plan)
            counters["ws_sessions"] += 1

    async def h2_long() -> None:
        async with trio_upgrade.open_upgrade(h2_url, workloads.h2c()) as conn:
            await workloads.check_upgrade_response(conn, ledger)
            await workloads.sequential_requests(
                conn, next(idents), ledger, stop=stop, counters=counters
            )

    async def h2_churn() -> None:
        while not stop.is_set():
            async with trio_upgrade.open_upgrade(h2_url, workloads.h2c()) as conn:
                await workloads.check_upgrade_response(conn, ledger)
                ident = next(idents)
                async with trio.open_nursery() as nursery:
                    for seq in range(50):
                        nursery.start_soon(
                            workloads.checked_post, conn, ident, seq, seq * 331, ledger
                        )
                counters["h2_requests"] += 50
            counters["h2_sessions"] += 1

    tasks: list[tuple[str, int, Callable[[], Awaitable[None]]]] = [
        ("ws long", plan.ws_long, ws_long),
        ("ws churn", plan.ws_churn, ws_churn),
        ("h2 long", plan.h2_long, h2_long),
        ("h2 churn", plan.h2_churn, h2_churn),
    ]
    finished = Gate(sum(count for _, count, _ in tasks))

    async def finishing(what: str, task: Callable[[], Awaitable[None]]) -> None:
        try:
            await workloads.guarded(ledger, what, task())
        finally:
            finished.arrive()

    async with trio.open_nursery() as outer:
        outer.start_soon(sampler.run)
        async with trio.open_nursery() as nursery:
            for name, count, task in tasks:
                for n in range(count):
                    nursery.start_soon(finishing, f"{name} {n}", task)
            await trio.sleep(plan.seconds)
            stop.set()
            # Every session finishes its last message and closes.
            with trio.fail_after(workloads.STALL * 2):
                await finished.event.wait()
        seconds = sampler.sample().t
        outer.cancel_scope.cancel()
    slope = sampler.slope_after(plan.warmup)
    figures: Figures = {
        "plan": {k: None if v == math.inf else v for k, v in plan.__dict__.items()},
        "seconds": round(seconds, 1),
        **counters,
        "ws_messages_per_s": round(counters["ws_messages"] / seconds),
        "h2_requests_per_s": round(counters["h2_requests"] / seconds),
        "rss_at_warmup_kib": round(
            next((s.rss_kib for s in sampler.samples if s.t >= plan.warmup), 0.0)
        ),
        "rss_slope_kib_per_min": round(slope, 1),
        "fds_min_max": list(sampler.fds_range()),
        "samples": sampler.series(),
    }
    if slope > plan.max_slope_kib:
        ledger.fail(
            "rss",
            f"RSS grew {slope:.0f} KiB/min after {plan.warmup:.0f} s of warm-up "
            f"(limit {plan.max_slope_kib:.0f})",
        )
    await base.compare(figures, ledger)
    return _finish(figures, ledger, sampler)
