"""The measurements, and the worker process that runs them for one client.

Every figure is written once against :class:`~benchmarks.websocket.base.Client` and runs
under the client's own event loop. Timed figures warm up for
``Params.warmup`` seconds, then run ``Params.rounds`` rounds of at least
``Params.duration`` seconds each (whole operations only; the clock is read
after each one) and report the best round's rate (and the lowest CPU time
per item), as ``timeit`` reports its minimum: other work on the machine
only ever slows a round down, so the best round is the least disturbed.
The median and every round are kept too. ``gc.collect()`` runs before each
round, never inside one.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import random
import resource
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..harness.processes import describe, raise_fd_limit
from ..harness.profiler import Profiler, active
from ..harness.profiler import finish as finish_profiler
from ..harness.profiler import start as start_profiler
from ..harness.report import rounds_summary
from .base import Client, Conn, Skip, Target

#: Name -> (module, class), in the order of the table.
CLIENTS: dict[str, tuple[str, str]] = {
    "raw-trio": ("benchmarks.websocket.trio_clients", "RawTrio"),
    "raw-trio-stream": ("benchmarks.websocket.trio_clients", "RawTrioStream"),
    "trio_upgrade": ("benchmarks.websocket.trio_clients", "TrioUpgrade"),
    "trio-websocket": ("benchmarks.websocket.trio_clients", "TrioWebsocket"),
    "websockets-trio": ("benchmarks.websocket.trio_clients", "WebsocketsTrio"),
    "httpx-ws": ("benchmarks.websocket.trio_clients", "HttpxWs"),
    "websockets-asyncio": ("benchmarks.websocket.asyncio_clients", "WebsocketsAsyncio"),
    "aiohttp": ("benchmarks.websocket.asyncio_clients", "Aiohttp"),
    "picows": ("benchmarks.websocket.asyncio_clients", "Picows"),
}
FLOOR = "raw-trio"

SMALL = random.Random(16).randbytes(16)
LARGE = random.Random(1 << 20).randbytes(1 << 20)
MB = 1e6

#: Seconds for the first connection, one echo and the close.
PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Params:
    warmup: float = 0.4
    rounds: int = 5
    duration: float = 0.6
    pipeline: int = 1000  # messages per pipelined batch
    connections: int = 1000  # memory figure


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    unit: str
    higher_is_better: bool
    #: What the client CPU time is given per (timed figures only).
    cpu_per: str = ""


FIGURES: dict[str, Figure] = {
    f.key: f
    for f in (
        Figure("handshake", "handshakes", "/s", True, "handshake"),
        Figure("echo16", "16 B echo", "round trips/s", True, "round trip"),
        Figure("pipelined16", "16 B pipelined", "msg/s", True, "message"),
        Figure("echo1m", "1 MiB echo", "MB/s", True, "MiB round trip"),
        Figure("memory_rss", "RSS per idle conn", "KiB", False),
        Figure("memory_traced", "traced per idle conn", "KiB", False),
    )
}
TIMED = ("handshake", "echo16", "pipelined16", "echo1m")
MEMORY = ("memory_rss", "memory_traced")

Op = Callable[[], Awaitable[None]]


async def _timed(
    op: Op, units_per_op: float, params: Params, items_per_op: int = 1
) -> dict[str, Any]:
    """Rate of ``op`` in units/s, and the client's CPU time per item.

    ``units_per_op`` converts operations into the figure's unit (MB for the
    1 MiB echo, messages for a pipelined batch); ``items_per_op`` is what
    the CPU time is divided by (messages in a batch, else 1). CPU time is
    this process's (``time.process_time``: user + system, all threads):
    the server's share of a round trip is not in it, so it shows a
    client's own cost even where waiting for the server dominates the rate.
    """
    deadline = time.perf_counter() + params.warmup
    await op()
    while time.perf_counter() < deadline:
        await op()
    rates = []
    cpu = []
    total_ops = 0
    for _ in range(params.rounds):
        gc.collect()
        count = 0
        cpu_start = time.process_time()
        start = time.perf_counter()
        deadline = start + params.duration
        while True:
            await op()
            count += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        cpu_used = time.process_time() - cpu_start
        rates.append(count * units_per_op / (now - start))
        cpu.append(cpu_used / (count * items_per_op) * 1e6)
        total_ops += count
    return {**rounds_summary(rates, cpu), "ops": total_ops}


async def _echo_once(conn: Conn, message: bytes) -> None:
    await conn.send(message)
    reply = await conn.receive()
    if reply != message:
        raise AssertionError(f"bad echo: {len(reply)} bytes for {len(message)}")


async def handshake(client: Client, params: Params) -> dict[str, Any]:
    async def op() -> None:
        conn = await client.connect()
        await conn.close()

    return await _timed(op, 1, params)


async def _echo(
    client: Client, params: Params, message: bytes, per_op: float
) -> dict[str, Any]:
    conn = await client.connect()
    try:
        await _echo_once(conn, message)  # checked byte for byte once
        size = len(message)

        async def op() -> None:
            await conn.send(message)
            if len(await conn.receive()) != size:
                raise AssertionError("bad echo length")

        return await _timed(op, per_op, params)
    finally:
        await conn.close()


async def echo16(client: Client, params: Params) -> dict[str, Any]:
    return await _echo(client, params, SMALL, 1)


async def echo1m(client: Client, params: Params) -> dict[str, Any]:
    return await _echo(client, params, LARGE, len(LARGE) / MB)


async def pipelined16(client: Client, params: Params) -> dict[str, Any]:
    conn = await client.connect()
    k = params.pipeline
    try:
        await _echo_once(conn, SMALL)

        async def sender() -> None:
            for _ in range(k):
                await conn.send(SMALL)

        async def receiver() -> None:
            for _ in range(k):
                if len(await conn.receive()) != 16:
                    raise AssertionError("bad echo length")

        async def op() -> None:
            await client.gather(sender, receiver)

        return await _timed(op, k, params, items_per_op=k)
    finally:
        await conn.close()


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


async def _memory(client: Client, params: Params, traced: bool) -> dict[str, Any]:
    n = params.connections
    # One connection first: lazy imports, caches and first-use allocations
    # belong to the baseline, not to the connections.
    conn = await client.connect()
    await _echo_once(conn, SMALL)
    await conn.close()
    gc.collect()
    if traced:
        tracemalloc.start()
    before_rss = _rss()
    before_traced = tracemalloc.get_traced_memory()[0] if traced else 0
    conns: list[Conn] = []
    start = time.perf_counter()
    try:
        for _ in range(n):
            conn = await client.connect()
            conns.append(conn)
            # Used once, then idle: receive buffers exist, readers wait.
            await _echo_once(conn, SMALL)
        opened = time.perf_counter() - start
        await client.sleep(0.2)  # let background tasks settle
        gc.collect()
        rss = _rss() - before_rss
        traced_bytes = tracemalloc.get_traced_memory()[0] - before_traced
        if traced:
            tracemalloc.stop()
    finally:
        # Reverse order: connections that own nurseries must nest.
        for conn in reversed(conns):
            await conn.close()
    value = (traced_bytes if traced else rss) / n / 1024
    return {
        "value": value,
        "connections": n,
        "rss_delta_bytes": rss,
        "traced_delta_bytes": traced_bytes if traced else None,
        "open_seconds": opened,
    }


async def memory_rss(client: Client, params: Params) -> dict[str, Any]:
    return await _memory(client, params, traced=False)


async def memory_traced(client: Client, params: Params) -> dict[str, Any]:
    return await _memory(client, params, traced=True)


RUNNERS: dict[str, Callable[[Client, Params], Awaitable[dict[str, Any]]]] = {
    "handshake": handshake,
    "echo16": echo16,
    "pipelined16": pipelined16,
    "echo1m": echo1m,
    "memory_rss": memory_rss,
    "memory_traced": memory_traced,
}


# ------------------------------------------------------------------ worker --


def load_client(name: str) -> type[Client]:
    module_name, class_name = CLIENTS[name]
    cls: type[Client] = getattr(importlib.import_module(module_name), class_name)
    return cls


async def _run_figures(
    cls: type[Client],
    target: Target,
    figures: list[str],
    params: Params,
    profiler: Profiler | None,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    try:
        async with cls(target) as client:
            # The probe: a client that cannot connect is skipped, whole.
            async def probe() -> None:
                conn = await client.connect()
                await _echo_once(conn, SMALL)
                await conn.close()

            try:
                await client.within(PROBE_TIMEOUT, probe)
            except Exception as exc:
                return {"skipped": f"connect failed: {describe(exc)}"}
            for key in figures:
                try:
                    # The warm-up is profiled too: the same code path.
                    with active(profiler):
                        results[key] = await RUNNERS[key](client, params)
                except Exception as exc:
                    results[key] = {"error": describe(exc)}
    except Skip as exc:
        return {"skipped": str(exc)}
    return {"figures": results}


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``spec["figures"]`` for ``spec["client"]`` in this process."""
    params = Params(**spec["params"])
    raise_fd_limit(params.connections + 256)
    target = Target(spec["host"], int(spec["port"]))
    try:
        cls = load_client(spec["client"])
    except ImportError as exc:
        return {"skipped": f"cannot import the adapter: {describe(exc)}"}
    figures = list(spec["figures"])
    mode = spec.get("profile")
    profiler = start_profiler(mode)
    if cls.loop == "trio":
        import trio

        result = trio.run(_run_figures, cls, target, figures, params, profiler)
    else:
        result = asyncio.run(_run_figures(cls, target, figures, params, profiler))
    profile = finish_profiler(profiler, mode)
    if profile is not None:
        result["profile"] = profile
    return result


def params_dict(params: Params) -> dict[str, Any]:
    return asdict(params)
