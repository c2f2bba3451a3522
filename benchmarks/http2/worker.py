"""The worker: one round of one client in a fresh process."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..harness import profiler
from ..harness.processes import BenchFailure
from ..servers import INDEX_HTML, MEDIUM_FILE_SIZE, payload
from .clients import Get, hps_once, rps_client
from .plan import BIG_PATH, CONCURRENCY, PATH, STALL, Params
from .sansio import round_result, sansio_floor


class Progress:
    """Completions, watched for stalls."""

    def __init__(self) -> None:
        self.done = 0
        self.phase = "connecting"


async def _watchdog(progress: Progress) -> None:

    seen = -1
    while True:
        await trio.sleep(STALL)
        if progress.done == seen:
            raise BenchFailure(
                f"hung: no request completed in {STALL:.0f} s during "
                f"{progress.phase} ({progress.done} completed before)"
            )
        seen = progress.done


async def _warm_then_measure(
    run: Callable[[float], Awaitable[dict[str, float]]],
    warmup: float,
    duration: float,
    progress: Progress,
    prof: profiler.Profiler | None,
) -> list[dict[str, float]]:
    """A warm-up of ``warmup`` s, then the measured (and profiled) round."""
    progress.phase = "the warm-up"
    await run(warmup)
    progress.phase = "the measured round"
    with profiler.active(prof):
        return [await run(duration)]


async def _measure_rps(
    get: Get,
    expected: bytes,
    params: Params,
    progress: Progress,
    prof: profiler.Profiler | None,
) -> list[dict[str, float]]:

    async def run(duration: float) -> dict[str, float]:
        count = 0
        deadline = trio.current_time() + duration

        async def loop() -> None:
            nonlocal count
            while trio.current_time() < deadline:
                body = await get()
                if body != expected:
                    raise BenchFailure(f"wrong body: {body[:40]!r}")
                count += 1
                progress.done += 1

        cpu0, t0 = time.process_time(), time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(CONCURRENCY):
                nursery.start_soon(loop)
        return round_result(count, time.perf_counter() - t0, time.process_time() - cpu0)

    return await _warm_then_measure(run, params.warmup, params.duration, progress, prof)


async def _measure_hps(
    name: str,
    host: str,
    port: int,
    expected: bytes,
    params: Params,
    progress: Progress,
    prof: profiler.Profiler | None,
) -> list[dict[str, float]]:

    async def run(duration: float) -> dict[str, float]:
        count = 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        deadline = trio.current_time() + duration
        while trio.current_time() < deadline:
            body = await hps_once(name, host, port)
            if body != expected:
                raise BenchFailure(f"wrong body: {body[:40]!r}")
            count += 1
            progress.done += 1
        return round_result(count, time.perf_counter() - t0, time.process_time() - cpu0)

    return await _warm_then_measure(
        run, params.hs_warmup, params.hs_duration, progress, prof
    )


async def _worker_async(
    spec: dict[str, Any], prof: profiler.Profiler | None
) -> dict[str, Any]:
    params = Params(**spec["params"])
    figure, name = spec["figure"], spec["client"]
    host, port = spec["host"], spec["port"]
    # mbps: the same loop as rps (100 tasks, one connection), 64 KiB bodies.
    path = BIG_PATH if figure == "mbps" else PATH
    expected = payload(MEDIUM_FILE_SIZE) if figure == "mbps" else INDEX_HTML
    progress = Progress()
    out: dict[str, Any] = {}
    with trio.fail_after(params.budget(figure)):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watchdog, progress)
            if figure == "hps":
                out["rounds"] = await _measure_hps(
                    name, host, port, expected, params, progress, prof
                )
            else:
                async with rps_client(name, host, port, path) as get:
                    progress.phase = "the first request"
                    if await get() != expected:
                        raise BenchFailure("wrong body on the first request")
                    out["rounds"] = await _measure_rps(
                        get, expected, params, progress, prof
                    )
            nursery.cancel_scope.cancel()
    return out


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One round of ``spec["client"]``'s ``spec["figure"]`` (every round of
    the sans-I/O floor); the profiler's report when one ran."""
    params = Params(**spec["params"])
    if spec["client"] == "h2-sansio":
        rounds = sansio_floor(params.sansio_requests, spec["batch"], params.rounds)
        return {"ok": True, "rounds": rounds}
    mode = spec.get("profile")
    prof = profiler.start(mode)
    result: dict[str, Any] = {"ok": True}
    try:
        result.update(trio.run(_worker_async, spec, prof))
    finally:
        profile = profiler.finish(prof, mode)
    if profile is not None:
        result["profile"] = profile
    return result
