"""Compare HTTP/2 clients against one native cleartext HTTP/2 server, in one run.

Usage (from the repository root, in a venv with the bench dependencies)::

    python benchmarks/h2_bench.py                    # full run, about 2 minutes
    python benchmarks/h2_bench.py --quick            # smoke run, under 30 s
    python benchmarks/h2_bench.py --server h2o --json out.json
    python benchmarks/h2_bench.py --only trio_upgrade,minimal
    python benchmarks/h2_bench.py --profile trio_upgrade   # where CPU goes
    python benchmarks/h2_bench.py --profile trio_upgrade-h2c:hps

Figures:

* ``rps``: requests/s for ``GET /index.html`` (60 bytes) from 100 tasks
  sharing ONE connection (as many on the wire as the server's
  ``SETTINGS_MAX_CONCURRENT_STREAMS`` allows: lighttpd 8, h2o 100), for
  trio_upgrade (prior knowledge, and after an h2c upgrade), httpx
  (``http2=True``, on Trio), a minimal Trio + h2 client written here (one
  reader task, one writer task sending all h2 has queued in one
  ``send_all``), and ``h2load -c 1 -m 100`` as the native ceiling. A
  sans-I/O row gives h2's own CPU cost per request, the floor of any client
  built on h2.
* ``hps``: h2c upgrade handshakes/s, one after another: connect, send
  ``GET /index.html`` with ``Upgrade: h2c``, read the 101 and the stream-1
  response, close (GOAWAY); trio_upgrade and the minimal client by hand.

Each round of each client runs in a fresh subprocess (``--worker``): a
new connection, a warm-up, then one timed round; the rounds of all clients
are interleaved, and the median round is reported with the client
process's CPU time per request. By default the server and the clients
share one CPU (``--cpus``, ``--cpu``). A client that fails, hangs
(``trio.fail_after``, and a watchdog that gives up when no request
completes for ``STALL`` seconds) or answers wrongly is skipped with the
reason. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import datetime
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import platform
import pstats
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import trio

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INTEROP = ROOT / "tests" / "interop"
RESULT_PREFIX = "H2BENCH-RESULT "
PATH = "/index.html"
#: Seconds without one completed request (or handshake) before a worker
#: gives up on a client as hung.
STALL = 5.0
CONCURRENCY = 100

#: Where the server and the client processes run (``--cpus``, ``--cpu N``).
#: "shared" (the default) puts both on CPU N: each request then costs the
#: client's CPU time plus the server's (1-2 us for lighttpd and h2o, the
#: same for every client), and a wake-up is a switch on one CPU. "split"
#: puts the server on CPU N and the clients on another: on this kind of VM
#: (2 vCPUs) a cross-CPU wake-up costs tens of microseconds, so with 8
#: streams in flight the clients idle 20-40% of the time and the figure
#: measures the machine (h2load drops from ~350k to ~90k req/s). "free"
#: leaves placement to the kernel.
CPU_MODES = ("shared", "split", "free")


def placement(mode: str, cpu: int) -> tuple[set[int] | None, set[int] | None]:
    """The (server, client) CPU sets of a ``--cpus`` mode."""
    count = os.cpu_count() or 1
    if mode == "free" or count < 2:
        return None, None
    if mode == "shared":
        return {cpu}, {cpu}
    return {cpu}, {(cpu + 1) % count}


@dataclasses.dataclass(frozen=True)
class Params:
    """Durations (seconds) and sizes of one run.

    Every client runs ``rounds`` times, the rounds of all clients
    interleaved (A B C A B C ...), each in a fresh process with its own
    connection and warm-up, so that a change of background load touches
    every client alike; the median round is reported.
    """

    rounds: int = 5
    warmup: float = 0.5
    duration: float = 2.0
    hs_warmup: float = 0.3
    hs_duration: float = 1.5
    sansio_requests: int = 10_000
    #: Re-runs of a round that shared its CPU with other processes, while
    #: the run has taken less than ``retry_until`` seconds.
    retries: int = 2
    retry_until: float = 150.0

    def budget(self, figure: str) -> float:
        """The longest one worker round may take before it is called hung."""
        if figure == "hps":
            return self.hs_warmup + self.hs_duration + 20.0
        return self.warmup + self.duration + 20.0


FULL = Params()
QUICK = Params(
    rounds=2,
    warmup=0.3,
    duration=0.6,
    hs_warmup=0.2,
    hs_duration=0.5,
    sansio_requests=3_000,
    retries=0,
)
PROFILE = Params(rounds=1, warmup=0.5, duration=6.0, hs_duration=6.0)

#: (figure, client, label), in the order they run and are printed.
PLAN: list[tuple[str, str, str]] = [
    ("rps", "h2load", "h2load -c1 -m100 (native ceiling)"),
    ("rps", "h2-sansio", "h2 alone, sans-I/O (CPU floor)"),
    ("rps", "minimal", "minimal Trio + h2 (reference)"),
    ("rps", "trio_upgrade", "trio_upgrade, prior knowledge"),
    ("rps", "trio_upgrade-h2c", "trio_upgrade, after h2c upgrade"),
    ("rps", "httpx", "httpx http2=True on Trio"),
    ("hps", "minimal-h2c", "minimal Trio + h2 (reference)"),
    ("hps", "trio_upgrade-h2c", "trio_upgrade upgrade(url, ['h2c'])"),
]
REFERENCE = {"rps": "minimal", "hps": "minimal-h2c"}
HTTPX = "httpx"


# ======================================================== worker side ======
# Everything from here to "parent side" runs in the worker subprocess; the
# client libraries (trio_upgrade, httpx) are imported there only, so that a
# broken one fails its own rows and nothing else.


class BenchFailure(Exception):
    """A client answered wrongly, or stopped making progress."""


Get = Callable[[], Awaitable[bytes]]


def _expected_body() -> bytes:
    sys.path.insert(0, str(INTEROP))
    import servers  # tests/interop/servers.py

    return bytes(servers.INDEX_HTML)


# ------------------------------------------------ the minimal client ------


class _Pending:
    __slots__ = ("body", "done", "error", "status")

    def __init__(self) -> None:

        self.done = trio.Event()
        self.status = 0
        self.body = bytearray()
        self.error: str | None = None


def _h2_config() -> Any:

    # Configured like trio_upgrade's state machine (bytes headers, no second
    # validation pass over our own request headers), so that the ratio of
    # the two measures everything around h2, not h2's configuration.
    return h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


class MinimalH2:
    """The reference client: Trio and h2 and nothing else.

    One reader task feeds h2 and completes the waiting requests; one writer
    task sends everything h2 has queued in one ``send_all`` whenever it is
    woken. A request takes a slot (the server's stream limit), queues its
    HEADERS in h2, wakes the writer and waits for its stream to end.
    """

    def __init__(self, stream: Any, conn: Any, authority: str) -> None:

        self._stream = stream
        self._h2 = conn
        self._pending: dict[int, _Pending] = {}
        self._wake = trio.Event()
        self._settings = trio.Event()
        self._slots = trio.CapacityLimiter(CONCURRENCY)
        self._head = [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", authority.encode("ascii")),
        ]

    def flush(self) -> None:
        self._wake.set()

    async def get(self, path: bytes) -> bytes:
        async with self._slots:
            sid = self._h2.get_next_available_stream_id()
            pending = self._pending[sid] = _Pending()
            self._h2.send_headers(sid, [*self._head, (b":path", path)], end_stream=True)
            self._wake.set()
            await pending.done.wait()
        if pending.error is not None:
            raise BenchFailure(pending.error)
        if pending.status != 200:
            raise BenchFailure(f"status {pending.status}")
        return bytes(pending.body)

    async def writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            data = self._h2.data_to_send()
            if data:
                await self._stream.send_all(data)

    async def reader(self) -> None:
        conn = self._h2
        pending = self._pending
        while True:
            data = await self._stream.receive_some(65536)
            if not data:
                raise BenchFailure("the server closed the connection")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    p = pending.get(event.stream_id)
                    if p is not None:
                        p.body += event.data
                    conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.ResponseReceived):
                    p = pending.get(event.stream_id)
                    if p is not None:
                        p.status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.StreamEnded):
                    p = pending.pop(event.stream_id, None)
                    if p is not None:
                        p.done.set()
                elif isinstance(event, h2.events.StreamReset):
                    p = pending.pop(event.stream_id, None)
                    if p is not None:
                        p.error = f"stream reset with {event.error_code!r}"
                        p.done.set()
                elif isinstance(event, h2.events.RemoteSettingsChanged):
                    limit = conn.remote_settings.max_concurrent_streams
                    self._slots.total_tokens = max(1, min(CONCURRENCY, limit))
                    self._settings.set()
                elif isinstance(event, h2.events.ConnectionTerminated):
                    raise BenchFailure(f"GOAWAY {event.error_code!r}")
            self._wake.set()  # SETTINGS/PING acks, WINDOW_UPDATEs

    @property
    def server_streams(self) -> int:
        return int(self._h2.remote_settings.max_concurrent_streams)


@asynccontextmanager
async def open_minimal(host: str, port: int) -> AsyncIterator[MinimalH2]:

    stream = await trio.open_tcp_stream(host, port)
    conn = h2.connection.H2Connection(config=_h2_config())
    conn.initiate_connection()
    client = MinimalH2(stream, conn, f"{host}:{port}")
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.reader)
            nursery.start_soon(client.writer)
            client.flush()
            await client._settings.wait()
            yield client
            nursery.cancel_scope.cancel()
        conn.close_connection()
        await stream.send_all(conn.data_to_send())
    finally:
        await trio.aclose_forcefully(stream)


async def minimal_h2c_handshake(host: str, port: int, path: str) -> bytes:
    """Connect, upgrade to h2c by hand, read stream 1's response, close."""
    stream = await trio.open_tcp_stream(host, port)
    try:
        conn = h2.connection.H2Connection(config=_h2_config())
        # Queues the preface and SETTINGS (sent after the 101), opens stream 1.
        settings = conn.initiate_upgrade_connection()
        assert settings is not None
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            f"HTTP2-Settings: {settings.decode('ascii').rstrip('=')}\r\n\r\n"
        ).encode("ascii")
        await stream.send_all(request)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise BenchFailure("closed before the 101")
            buffer += chunk
        head, _, data = buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise BenchFailure(f"no 101: {head[:40]!r}")
        await stream.send_all(conn.data_to_send())
        body = bytearray()
        status = 0
        ended = False
        while True:
            if data:
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = int(dict(event.headers)[b":status"])
                    elif isinstance(event, h2.events.DataReceived):
                        body += event.data
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        ended = event.stream_id == 1 or ended
                    elif isinstance(event, h2.events.StreamReset):
                        raise BenchFailure("stream 1 was reset")
            if ended:
                break
            out = conn.data_to_send()
            if out:
                await stream.send_all(out)
            data = await stream.receive_some(65536)
            if not data:
                raise BenchFailure("closed before the end of stream 1")
        if status != 200:
            raise BenchFailure(f"status {status}")
        conn.close_connection()
        await stream.send_all(conn.data_to_send())
        return bytes(body)
    finally:
        await trio.aclose_forcefully(stream)


# ------------------------------------------------------ client adapters ---


@asynccontextmanager
async def rps_client(name: str, host: str, port: int) -> AsyncIterator[Get]:
    """``get()`` for one client: one GET of PATH on one shared connection."""
    url = f"http://{host}:{port}"
    if name == "minimal":
        async with open_minimal(host, port) as minimal:
            path = PATH.encode("ascii")

            async def get_minimal() -> bytes:
                return await minimal.get(path)

            yield get_minimal
    elif name in ("trio_upgrade", "trio_upgrade-h2c"):
        import trio_upgrade

        if name == "trio_upgrade":
            conn = await trio_upgrade.connect_http2(url)
        else:
            conn = await trio_upgrade.upgrade(url + PATH, ["h2c"])
            first = conn.upgrade_response
            if first.status_code != 200 or not await first.read():
                raise BenchFailure(f"upgrade response {first.status_code}")
        async with conn:

            async def get_tu() -> bytes:
                response = await conn.request("GET", PATH)
                if response.status_code != 200:
                    raise BenchFailure(f"status {response.status_code}")
                return response.content

            yield get_tu
    elif name == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        # http1=False: HTTP/2 with prior knowledge on http:// (httpcore).
        async with httpx.AsyncClient(
            http1=False, http2=True, limits=limits, timeout=30.0
        ) as client:
            target = url + PATH

            async def get_httpx() -> bytes:
                response = await client.get(target)
                if response.status_code != 200:
                    raise BenchFailure(f"status {response.status_code}")
                if response.http_version != "HTTP/2":
                    raise BenchFailure(f"spoke {response.http_version}")
                return response.content

            yield get_httpx
    else:
        raise ValueError(f"unknown client {name!r}")


async def hps_once(name: str, host: str, port: int) -> bytes:
    """One h2c handshake: connect, upgrade, stream-1 response, close."""
    if name == "minimal-h2c":
        return await minimal_h2c_handshake(host, port, PATH)
    if name == "trio_upgrade-h2c":
        import trio_upgrade

        url = f"http://{host}:{port}{PATH}"
        async with trio_upgrade.open_upgrade(url, ["h2c"]) as conn:
            response = conn.upgrade_response
            if response.status_code != 200:
                raise BenchFailure(f"status {response.status_code}")
            return await response.read()
    raise ValueError(f"unknown client {name!r}")


# ------------------------------------------------------------ profiling ---


def package_of(filename: str) -> str:
    """Which package a code object belongs to, for the profile breakdown."""
    path = filename.replace(os.sep, "/")
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/trio_upgrade/" in path:
        return "trio_upgrade"
    if path.endswith("/h2_bench.py"):
        return "benchmark"
    if path.startswith("<"):
        return "builtins"
    name = path.rsplit("/", 1)[-1].removesuffix(".py")
    parent = path.rsplit("/", 2)[-2] if path.count("/") >= 2 else ""
    return f"stdlib {parent if parent not in ('lib', 'python3.11') else name}"


class Sampler:
    """A statistical CPU profiler: SIGPROF every ``interval`` s of CPU time.

    Each sample charges the running function (self time, which includes the
    C calls it made: ``socket.send`` is charged to its caller) and every
    function on the stack once (inclusive time). Unlike cProfile it adds no
    cost per call, so the shares are those of the unprofiled code.
    """

    def __init__(self, interval: float = 0.0005) -> None:
        self.interval = interval
        self.total = 0
        self.self_counts: dict[tuple[str, int, str], int] = {}
        self.inclusive: dict[tuple[str, int, str], int] = {}

    def _sample(self, signum: int, frame: types.FrameType | None) -> None:
        self.total += 1
        if frame is None:
            return
        code = frame.f_code
        key = (code.co_filename, code.co_firstlineno, code.co_name)
        self.self_counts[key] = self.self_counts.get(key, 0) + 1
        seen = set()
        walk: types.FrameType | None = frame
        while walk is not None:
            code = walk.f_code
            key = (code.co_filename, code.co_firstlineno, code.co_name)
            if key not in seen:
                seen.add(key)
                self.inclusive[key] = self.inclusive.get(key, 0) + 1
            walk = walk.f_back

    def enable(self) -> None:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def disable(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)

    def report(self) -> dict[str, Any]:
        def label(key: tuple[str, int, str]) -> str:
            filename, line, name = key
            return f"{package_of(filename)}: {name} ({Path(filename).name}:{line})"

        packages: dict[str, int] = {}
        for key, count in self.self_counts.items():
            package = package_of(key[0])
            packages[package] = packages.get(package, 0) + count
        ranked = sorted(self.self_counts.items(), key=lambda kv: -kv[1])
        ours = [
            (key, count)
            for key, count in self.inclusive.items()
            if package_of(key[0]) == "trio_upgrade"
        ]
        ours.sort(key=lambda kv: -kv[1])
        own = [
            (key, count)
            for key, count in ranked
            if package_of(key[0]) == "trio_upgrade"
        ]
        return {
            "samples": self.total,
            "packages": sorted(packages.items(), key=lambda kv: -kv[1]),
            "self": [(label(k), c) for k, c in ranked[:40]],
            "trio_upgrade_inclusive": [(label(k), c) for k, c in ours[:25]],
            "trio_upgrade_self": [(label(k), c) for k, c in own[:25]],
        }


# ------------------------------------------------------------ measuring ---


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


def _round_result(count: int, wall: float, cpu: float) -> dict[str, float]:
    return {"count": count, "wall": wall, "cpu": cpu, "rate": count / wall}


async def _measure_rps(
    get: Get, expected: bytes, params: Params, progress: Progress, prof: Any
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
        return _round_result(
            count, time.perf_counter() - t0, time.process_time() - cpu0
        )

    progress.phase = "the warm-up"
    await run(params.warmup)
    progress.phase = "the measured round"
    if prof is not None:
        prof.enable()
    try:
        return [await run(params.duration)]
    finally:
        if prof is not None:
            prof.disable()


async def _measure_hps(
    name: str,
    host: str,
    port: int,
    expected: bytes,
    params: Params,
    progress: Progress,
    prof: Any,
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
        return _round_result(
            count, time.perf_counter() - t0, time.process_time() - cpu0
        )

    progress.phase = "the warm-up"
    await run(params.hs_warmup)
    progress.phase = "the measured round"
    if prof is not None:
        prof.enable()
    try:
        return [await run(params.hs_duration)]
    finally:
        if prof is not None:
            prof.disable()


async def _worker_async(spec: dict[str, Any], prof: Any) -> dict[str, Any]:
    params = Params(**spec["params"])
    figure, name = spec["figure"], spec["client"]
    host, port = spec["host"], spec["port"]
    expected = _expected_body()
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
                async with rps_client(name, host, port) as get:
                    progress.phase = "the first request"
                    if await get() != expected:
                        raise BenchFailure("wrong body on the first request")
                    out["rounds"] = await _measure_rps(
                        get, expected, params, progress, prof
                    )
            nursery.cancel_scope.cancel()
    return out


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in exc.exceptions:
            found += _leaves(inner)
        return found
    return [exc]


def _describe_failure(exc: BaseException) -> tuple[str, str]:
    leaves = _leaves(exc)
    first = leaves[0]
    kinds = {f"{type(e).__module__}.{type(e).__qualname__}: {e}" for e in leaves}
    text = f"{type(first).__qualname__}: {first}"
    if type(first).__name__ == "TooSlowError":
        text = "hung: trio.fail_after expired (TooSlowError)"
    if len(leaves) > 1:
        text += f" (x{len(leaves)} tasks, {len(kinds)} distinct)"
    detail = "".join(traceback.format_exception(first))
    return text, detail


def sansio_floor(requests: int, batch: int, rounds: int) -> list[dict[str, float]]:
    """h2's own CPU per request, client side, with no I/O and no Trio.

    A server-side h2 connection first answers ``requests`` GETs (in batches
    of ``batch``, like a server with that stream limit) with lighttpd's
    response head and the 60-byte body; its bytes are recorded. Then a
    fresh client does exactly what a client does per request (send_headers,
    data_to_send, receive_data of the recorded answers, event dispatch,
    acknowledge_received_data), timed. Both runs make the same frames in
    the same order, so the replay parses what the server really sent.
    """
    body = _expected_body()
    head = [(b":method", b"GET"), (b":scheme", b"http")]
    head += [(b":authority", b"127.0.0.1:8080"), (b":path", PATH.encode())]
    answer = [
        (b":status", b"200"),
        (b"content-type", b"text/html"),
        (b"etag", b'"1751042536"'),
        (b"last-modified", b"Sat, 28 Jun 2025 16:42:16 GMT"),
        (b"content-length", str(len(body)).encode()),
        (b"accept-ranges", b"bytes"),
        (b"date", b"Sat, 28 Jun 2025 16:42:17 GMT"),
        (b"server", b"lighttpd/1.4.69"),
    ]
    server = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    server.initiate_connection()
    recorder = h2.connection.H2Connection(config=_h2_config())
    recorder.initiate_connection()
    recorded: list[bytes] = []
    server.receive_data(recorder.data_to_send())
    recorded.append(server.data_to_send())
    recorder.receive_data(recorded[0])
    server.receive_data(recorder.data_to_send())
    for _ in range(requests // batch):
        for _ in range(batch):
            sid = recorder.get_next_available_stream_id()
            recorder.send_headers(sid, head, end_stream=True)
        for event in server.receive_data(recorder.data_to_send()):
            if isinstance(event, h2.events.RequestReceived):
                server.send_headers(event.stream_id, answer)
                server.send_data(event.stream_id, body, end_stream=True)
        recorded.append(server.data_to_send())
        for event in recorder.receive_data(recorded[-1]):
            if isinstance(event, h2.events.DataReceived):
                recorder.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
        server.receive_data(recorder.data_to_send())

    results = []
    for _ in range(rounds):
        client = h2.connection.H2Connection(config=_h2_config())
        cpu0, t0 = time.process_time(), time.perf_counter()
        client.initiate_connection()
        client.data_to_send()
        client.receive_data(recorded[0])
        count = 0
        for chunk in recorded[1:]:
            for _ in range(batch):
                sid = client.get_next_available_stream_id()
                client.send_headers(sid, head, end_stream=True)
            client.data_to_send()
            for event in client.receive_data(chunk):
                if isinstance(event, h2.events.DataReceived):
                    client.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    count += 1
            client.data_to_send()
        results.append(
            _round_result(count, time.perf_counter() - t0, time.process_time() - cpu0)
        )
        # No I/O and no server: the rate is what the CPU allows, whatever
        # else the machine is doing.
        results[-1]["rate"] = count / results[-1]["cpu"]
    return results


def source_fingerprint(package_dir: Path) -> str:
    """A short hash of a package's Python sources: which code was measured."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(str(path.relative_to(package_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def worker_main(spec_text: str) -> int:
    spec = json.loads(spec_text)
    if spec.get("cpus") is not None:
        os.sched_setaffinity(0, set(spec["cpus"]))
    result: dict[str, Any] = {"ok": True}
    mode = spec.get("profile")
    prof: Sampler | cProfile.Profile | None = None
    if mode == "sample":
        prof = Sampler()
    elif mode is not None:
        prof = cProfile.Profile()
    try:
        if spec["client"] == "h2-sansio":
            params = Params(**spec["params"])
            result["rounds"] = sansio_floor(
                params.sansio_requests, spec["batch"], params.rounds
            )
        else:
            if spec["client"].startswith("trio_upgrade"):
                import trio_upgrade

                package = Path(trio_upgrade.__file__).parent
                result["fingerprint"] = source_fingerprint(package)
            result.update(trio.run(_worker_async, spec, prof))
    except BaseException as exc:  # report everything, including hangs
        if isinstance(exc, KeyboardInterrupt):
            raise
        text, detail = _describe_failure(exc)
        result = {"ok": False, "error": text, "traceback": detail}
    if isinstance(prof, Sampler):
        result["profile"] = prof.report()
    elif prof is not None:
        prof.dump_stats(mode)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# ======================================================== parent side ======


@dataclasses.dataclass
class Series:
    """What one client measured for one figure, round by round."""

    figure: str
    client: str
    label: str
    rounds: list[dict[str, float]] = dataclasses.field(default_factory=list)
    error: str | None = None
    detail: str = ""
    fingerprints: set[str] = dataclasses.field(default_factory=set)
    profile: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.rounds)

    def add(self, result: dict[str, Any]) -> None:
        if not result.get("ok"):
            self.error = str(result.get("error", "?"))
            self.detail = str(result.get("traceback", ""))
            return
        self.rounds += result["rounds"]
        if "fingerprint" in result:
            self.fingerprints.add(result["fingerprint"])
        if result.get("profile") is not None:
            self.profile = result["profile"]

    @property
    def rate(self) -> float:
        return statistics.median(r["rate"] for r in self.rounds)

    @property
    def cpu_us(self) -> float:
        """Client CPU time per request (handshake), over all rounds."""
        count = sum(r["count"] for r in self.rounds)
        return sum(r["cpu"] for r in self.rounds) / count * 1e6 if count else 0.0

    @property
    def cpu_share(self) -> float:
        wall = sum(r["wall"] for r in self.rounds)
        return sum(r["cpu"] for r in self.rounds) / wall if wall else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "figure": self.figure,
            "client": self.client,
            "label": self.label,
            "ok": self.ok,
        }
        if self.ok:
            rates = [r["rate"] for r in self.rounds]
            out.update(
                rate=self.rate,
                rate_min=min(rates),
                rate_max=max(rates),
                cpu_us=self.cpu_us,
                cpu_share=self.cpu_share,
            )
        else:
            out.update(error=self.error or "no result", traceback=self.detail)
        if self.fingerprints:
            out["trio_upgrade_fingerprints"] = sorted(self.fingerprints)
        out["rounds"] = self.rounds
        return out


def _affinity(cpus: set[int] | None) -> Callable[[], None] | None:
    if cpus is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def run_worker(
    figure: str,
    client: str,
    server: Any,
    params: Params,
    cpus: set[int] | None,
    *,
    batch: int,
    profile: str | None = None,
) -> dict[str, Any]:
    """One round of ``client`` in a fresh process; its result dict."""
    spec = {
        "figure": figure,
        "client": client,
        "host": server.host,
        "port": server.port,
        "params": dataclasses.asdict(params),
        "cpus": sorted(cpus) if cpus is not None else None,
        "batch": batch,
        "profile": profile,
    }
    timeout = params.budget(figure) + 30.0
    if client == "h2-sansio":
        timeout += params.rounds * params.sansio_requests * 1e-3
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=_affinity(cpus),  # pinned from its first instruction
        )
    except subprocess.TimeoutExpired:
        return {
            "ok": False,
            "error": f"hung: the worker did not end in {timeout:.0f} s",
        }
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {
        "ok": False,
        "error": f"worker exited with {proc.returncode}: " + " | ".join(tail),
    }


_H2LOAD_RATE = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_H2LOAD_DONE = re.compile(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succ")


def h2load_round(
    binary: str, url: str, n: int, cpus: set[int] | None
) -> dict[str, float]:
    """``h2load -n N -c 1 -m 100``: its req/s, and its CPU time (rusage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    argv = [binary, "-n", str(n), "-c", "1", "-m", str(CONCURRENCY), "-t", "1", url]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, preexec_fn=_affinity(cpus)
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rate = _H2LOAD_RATE.search(proc.stdout)
    done = _H2LOAD_DONE.search(proc.stdout)
    if proc.returncode or rate is None or done is None:
        raise BenchFailure(f"h2load failed: {proc.stdout[-300:]}{proc.stderr[-300:]}")
    if done.group(1) != done.group(2):
        raise BenchFailure(f"h2load: {done.group(0)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"count": n, "wall": wall, "cpu": cpu, "rate": float(rate.group(1))}


class H2Load:
    """h2load rounds, sized from a first (warm-up) run to about ``duration``."""

    def __init__(self, server: Any, duration: float, cpus: set[int] | None) -> None:
        self.binary = shutil.which("h2load")
        self.url = server.url(PATH)
        self.duration = duration
        self.cpus = cpus
        self.n = 0

    def round(self) -> dict[str, Any]:
        if self.binary is None:
            return {"ok": False, "error": "h2load is not installed (nghttp2-client)"}
        try:
            if not self.n:
                first = h2load_round(self.binary, self.url, 20_000, self.cpus)
                self.n = max(20_000, int(first["rate"] * self.duration))
            return {
                "ok": True,
                "rounds": [h2load_round(self.binary, self.url, self.n, self.cpus)],
            }
        except (BenchFailure, subprocess.TimeoutExpired, OSError) as exc:
            return {"ok": False, "error": str(exc)}


def pin_server(pgid: int, cpus: set[int] | None) -> None:
    """Pin every thread of every process in the server's process group."""
    if cpus is None:
        return
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for task in (stat.parent / "task").iterdir():
                os.sched_setaffinity(int(task.name), cpus)
        except (OSError, IndexError, ValueError):
            continue


def cpu_busy(seconds: float = 0.5) -> dict[int, float]:
    """How busy each CPU is (share of non-idle time) while we sleep."""

    def read() -> dict[int, tuple[int, int]]:
        out = {}
        with contextlib.suppress(OSError):
            for line in Path("/proc/stat").read_text().splitlines():
                if line.startswith("cpu") and line[3:4].isdigit():
                    name, *values = line.split()
                    ticks = [int(v) for v in values]
                    idle = ticks[3] + ticks[4]  # idle + iowait
                    out[int(name[3:])] = (sum(ticks[:8]), idle)
        return out

    before = read()
    time.sleep(seconds)
    after = read()
    busy = {}
    for cpu, (total, idle) in after.items():
        total0, idle0 = before.get(cpu, (total, idle))
        if total > total0:
            busy[cpu] = 1.0 - (idle - idle0) / (total - total0)
    return busy


def _format_busy(busy: dict[int, float]) -> str:
    return ", ".join(f"cpu{cpu} {share * 100:.0f}%" for cpu, share in busy.items())


async def _probe_async(host: str, port: int) -> int:
    async with open_minimal(host, port) as client:
        return client.server_streams


def probe_streams(server: Any) -> int:
    """The server's SETTINGS_MAX_CONCURRENT_STREAMS."""
    return trio.run(_probe_async, server.host, server.port)


def trio_upgrade_fingerprint() -> str:
    """The fingerprint of the trio_upgrade a worker would import, or "?"."""
    spec = importlib.util.find_spec("trio_upgrade")
    if spec is None or spec.origin is None:
        return "?"
    return source_fingerprint(Path(spec.origin).parent)


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0]


def versions(server_name: str) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("trio", "h2", "hpack", "hyperframe", "httpx", "httpcore", "anyio"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    git = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
    )
    found["trio_upgrade"] = (
        f"{importlib.metadata.version('trio_upgrade')} (git "
        f"{git.stdout.strip() or '?'}, sources {trio_upgrade_fingerprint()})"
    )
    found["h2load"] = _version(["h2load", "--version"])
    found[server_name] = _version(
        ["lighttpd", "-v"] if server_name == "lighttpd" else ["h2o", "--version"]
    )
    found["kernel"] = platform.release()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                found["cpu"] = line.split(":", 1)[1].strip()
                break
    found["cpus"] = str(os.cpu_count())
    return found


# ------------------------------------------------------------- printing ---


def _ratio(value: Series, base: Series | None, by_cpu: bool = False) -> str:
    if base is None or not base.ok or not value.ok:
        return "-"
    if by_cpu:
        return f"{base.cpu_us / value.cpu_us:.2f}" if value.cpu_us else "-"
    return f"{value.rate / base.rate:.2f}" if base.rate else "-"


def format_table(series: list[Series], server: str, streams: int) -> str:
    by_key = {(s.figure, s.client): s for s in series}
    titles = {
        "rps": (
            f"Small GETs: GET {PATH} (60 B), {CONCURRENCY} tasks on one "
            f"connection ({server} allows {streams} streams at once)",
            "req/s",
        ),
        "hps": (
            "h2c handshakes, one after another: connect, Upgrade: h2c, "
            "stream-1 response, close",
            "hs/s",
        ),
    }
    lines: list[str] = []
    for figure in ("rps", "hps"):
        rows = [s for s in series if s.figure == figure]
        if not rows:
            continue
        title, unit = titles[figure]
        ref = by_key.get((figure, REFERENCE[figure]))
        httpx = by_key.get((figure, HTTPX)) if figure == "rps" else None
        header = (
            f"  {'client':<34} {unit:>8} {'(min-max)':>16} {'CPU us':>6} "
            f"{'CPU%':>4} {'xMIN':>6} {'xMINc':>6}"
        )
        if figure == "rps":
            header += f" {'xHTTPX':>6} {'xHTTPXc':>7}"
        lines += ["", title, header, "  " + "-" * (len(header) - 2)]
        for row in rows:
            if not row.ok:
                lines.append(f"  {row.label:<34} SKIPPED: {row.error}")
                continue
            rates = [r["rate"] for r in row.rounds]
            spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
            text = (
                f"  {row.label:<34} {row.rate:>8,.0f} {spread:>16} "
                f"{row.cpu_us:>6.1f} {row.cpu_share * 100:>3.0f}% "
                f"{_ratio(row, ref):>6} {_ratio(row, ref, True):>6}"
            )
            if figure == "rps":
                text += f" {_ratio(row, httpx):>6} {_ratio(row, httpx, True):>7}"
            lines.append(text)
    lines += [
        "",
        "  Median round (min-max). CPU us: the client process's CPU time per",
        "  request (handshake); CPU%: that CPU time over wall time. xMIN, xHTTPX:",
        "  rate over the minimal client's, httpx's; xMINc, xHTTPXc: the same from",
        "  CPU us (their CPU us over this one), which background load leaves alone.",
        "  The sans-I/O row's rate is 1/CPU: h2's own cost, the ceiling of h2",
        "  clients.",
    ]
    return "\n".join(lines)


def format_rst(series: list[Series]) -> str:
    """The tables as reStructuredText list-tables (docs/benchmarks.rst)."""
    by_key = {(s.figure, s.client): s for s in series}
    out: list[str] = []
    for figure, unit in (("rps", "req/s"), ("hps", "handshakes/s")):
        rows = [s for s in series if s.figure == figure]
        if not rows:
            continue
        ref = by_key.get((figure, REFERENCE[figure]))
        httpx = by_key.get((figure, HTTPX)) if figure == "rps" else None
        head = ["client", unit, "CPU µs", "vs minimal", "vs minimal (CPU)"]
        if figure == "rps":
            head += ["vs httpx", "vs httpx (CPU)"]
        out += [".. list-table::", "   :header-rows: 1", ""]
        out.append("   * - " + "\n     - ".join(head))
        for row in rows:
            if not row.ok:
                cells = [row.label, f"skipped: {row.error}"] + [""] * (len(head) - 2)
            else:
                cells = [
                    row.label,
                    f"{row.rate:,.0f}",
                    f"{row.cpu_us:.1f}" if row.cpu_us < 10 else f"{row.cpu_us:.0f}",
                    _ratio(row, ref),
                    _ratio(row, ref, True),
                ]
                if figure == "rps":
                    cells += [_ratio(row, httpx), _ratio(row, httpx, True)]
            out.append("   * - " + "\n     - ".join(cells))
        out.append("")
    return "\n".join(out)


def print_cprofile(path: str, limit: int = 30) -> None:
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(r"trio_upgrade|_h2_", limit)
    print(out.getvalue())


def print_samples(report: dict[str, Any], cpu_us: float) -> None:
    total = max(1, sum(count for _, count in report["packages"]))

    def line(name: str, count: int) -> str:
        share = count / total
        return f"  {share * 100:5.1f}%  {share * cpu_us:6.1f} us/req  {name}"

    print(f"\nCPU by package (self time; {report['samples']} samples):")
    for name, count in report["packages"]:
        print(line(name, count))
    print("\nTop functions (self time, including the C calls they make):")
    for name, count in report["self"][:30]:
        print(line(name, count))
    if report["trio_upgrade_inclusive"]:
        print("\ntrio_upgrade functions (inclusive time):")
        for name, count in report["trio_upgrade_inclusive"]:
            print(line(name, count))
        print("\ntrio_upgrade functions (self time):")
        for name, count in report["trio_upgrade_self"]:
            print(line(name, count))


def profile_client(
    client: str, profiler: str, server: Any, cpus: set[int] | None, batch: int
) -> int:
    figure = (
        "hps" if client.endswith("-h2c") and client.startswith("minimal") else "rps"
    )
    if client.endswith(":hps"):
        client, figure = client.removesuffix(":hps"), "hps"
    path = f"h2_bench-{client}-{figure}.pstats"
    mode = "sample" if profiler == "sample" else path
    series = Series(figure, client, client)
    series.add(
        run_worker(figure, client, server, PROFILE, cpus, batch=batch, profile=mode)
    )
    if not series.ok:
        print(f"{client} failed: {series.error}\n{series.detail}")
        return 1
    print(
        f"{client} ({figure}): {series.rate:,.0f}/s under {profiler} "
        f"({series.cpu_us:.1f} us CPU each, CPU {series.cpu_share * 100:.0f}%)"
    )
    if series.profile is not None:
        print_samples(series.profile, series.cpu_us)
    else:
        print_cprofile(path)
        print(f"(stats kept in {path})")
    return 0


# ----------------------------------------------------------------- main ---


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="HTTP/2 (h2c) client benchmark against lighttpd or h2o.",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run, < 30 s")
    parser.add_argument("--json", metavar="PATH", help="also write results here")
    parser.add_argument(
        "--server",
        choices=("lighttpd", "h2o"),
        default="lighttpd",
        help="the server (tests/interop/servers.py launchers; default lighttpd)",
    )
    parser.add_argument(
        "--only",
        metavar="CLIENTS",
        help="comma-separated clients: " + ", ".join(sorted({c for _, c, _ in PLAN})),
    )
    parser.add_argument(
        "--cpus",
        choices=CPU_MODES,
        default="shared",
        help="server/client placement: shared (default: both on CPU N), "
        "split (server on CPU N, clients on the next), free",
    )
    parser.add_argument(
        "--cpu",
        metavar="N",
        default="auto",
        help="the CPU of --cpus shared/split (default auto: the least busy one "
        "over a second before the run)",
    )
    parser.add_argument(
        "--profile",
        metavar="CLIENT[:hps]",
        help="instead of the table: profile CLIENT's rps figure (with :hps, "
        "its handshakes) and print where its CPU time goes",
    )
    parser.add_argument(
        "--profiler",
        choices=("sample", "cprofile"),
        default="sample",
        help="sample: SIGPROF sampling, shares by package and function "
        "(default); cprofile: exact call counts, but its per-call cost "
        "inflates call-heavy code (stats kept in h2_bench-CLIENT-FIGURE.pstats)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="print tracebacks of failures"
    )
    parser.add_argument(
        "--rst", action="store_true", help="also print the tables as rst list-tables"
    )
    parser.add_argument("--worker", metavar="SPEC", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


@contextlib.contextmanager
def started_server(name: str) -> Iterator[Any]:
    sys.path.insert(0, str(INTEROP))
    import servers  # tests/interop/servers.py

    launcher = servers.lighttpd_server if name == "lighttpd" else servers.h2o_server
    with launcher() as server:
        yield server


class LoadMeter:
    """How much of our CPUs' time other processes took, between two reads.

    Busy time of the CPUs we use (``/proc/stat``, steal included) minus what
    we spent there ourselves: this process and its children (the workers,
    h2load, started pinned) and the server's process group. Per round, so
    that a round that shared its CPU with someone else is seen and re-run.
    """

    def __init__(self, cpus: set[int] | None, server_pgid: int) -> None:
        self.cpus = cpus
        self.pgid = server_pgid
        self.tick = os.sysconf("SC_CLK_TCK")

    def _busy(self) -> tuple[float, int]:
        busy = 0
        used = 0
        with contextlib.suppress(OSError):
            for line in Path("/proc/stat").read_text().splitlines():
                if not (line.startswith("cpu") and line[3:4].isdigit()):
                    continue
                name, *values = line.split()
                if self.cpus is not None and int(name[3:]) not in self.cpus:
                    continue
                ticks = [int(v) for v in values[:8]]
                busy += sum(ticks) - ticks[3] - ticks[4]  # minus idle, iowait
                used += 1
        return busy / self.tick, used

    def _own(self) -> float:
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.pgid:
                    total += (int(fields[11]) + int(fields[12])) / self.tick
        return total

    def read(self) -> tuple[float, float, float, int]:
        busy, used = self._busy()
        return time.perf_counter(), busy, self._own(), used

    @staticmethod
    def foreign(
        before: tuple[float, float, float, int], after: tuple[float, float, float, int]
    ) -> float:
        """The share of our CPUs' time that went to other processes."""
        wall = (after[0] - before[0]) * max(1, after[3])
        other = (after[1] - before[1]) - (after[2] - before[2])
        return max(0.0, other / wall) if wall > 0 else 0.0


def wait_quiet(cpus: set[int] | None, deadline: float) -> None:
    """Wait (until ``deadline``) for our CPUs to be idle for half a second."""
    while time.monotonic() < deadline:
        busy = cpu_busy(0.5)
        if all(
            share < FOREIGN_LIMIT / 2
            for cpu, share in busy.items()
            if not cpus or cpu in cpus
        ):
            return


#: A round whose CPUs were busier than this with other processes is re-run
#: (``Params.retries``); the last attempt is kept, flagged.
FOREIGN_LIMIT = 0.10


def run_rounds(
    plan: list[tuple[str, str, str]],
    server: Any,
    params: Params,
    cpus: set[int] | None,
    batch: int,
    verbose: bool,
    meter: LoadMeter,
) -> list[Series]:
    """Every client's rounds, interleaved; failures skip the client."""
    series = [Series(figure, client, label) for figure, client, label in plan]
    h2load = H2Load(server, params.duration, cpus)
    one = dataclasses.replace(params, rounds=1)
    start = time.monotonic()
    for index in range(params.rounds):
        print(f"round {index + 1}/{params.rounds}:", flush=True)
        for row in series:
            if row.error is not None:
                continue
            if row.client == "h2-sansio" and index:
                continue  # one worker ran all its rounds (its rate is 1/CPU)
            for attempt in range(params.retries + 1):
                before = meter.read()
                if row.client == "h2-sansio":
                    result = run_worker(
                        "rps", row.client, server, params, cpus, batch=batch
                    )
                elif row.client == "h2load":
                    result = h2load.round()
                else:
                    result = run_worker(
                        row.figure, row.client, server, one, cpus, batch=batch
                    )
                foreign = meter.foreign(before, meter.read())
                if (
                    not result.get("ok")
                    or foreign <= FOREIGN_LIMIT
                    or row.client == "h2-sansio"
                    or attempt == params.retries
                    or time.monotonic() - start > params.retry_until
                ):
                    break
                print(
                    f"  {row.figure} {row.client:<18} other processes took "
                    f"{foreign * 100:.0f}% of the CPU: again when it is quiet",
                    flush=True,
                )
                wait_quiet(meter.cpus, deadline=start + params.retry_until)
            for measured in result.get("rounds", []):
                measured["foreign"] = foreign
            row.add(result)
            if not row.ok:
                print(f"  {row.figure} {row.client:<18} SKIPPED: {row.error}")
                if verbose and row.detail:
                    print(row.detail)
            else:
                last = row.rounds[-1]
                print(
                    f"  {row.figure} {row.client:<18} {last['rate']:>10,.0f}/s "
                    f"{last['cpu'] / last['count'] * 1e6:7.1f} us CPU"
                    f"  (others {foreign * 100:.0f}%)",
                    flush=True,
                )
    return series


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    params = QUICK if args.quick else FULL
    plan = PLAN
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {c for _, c, _ in PLAN}
        if unknown:
            print(f"unknown clients: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        plan = [p for p in PLAN if p[1] in wanted]
    allowed = os.sched_getaffinity(0)
    if args.cpu != "auto" and not (args.cpu.isdigit() and int(args.cpu) in allowed):
        print(
            f"--cpu takes auto or one of {sorted(allowed)}, not {args.cpu!r}",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    busy_before = cpu_busy(1.0)
    print(f"background load before: {_format_busy(busy_before)}")
    if args.cpu == "auto":
        cpu = min(busy_before, key=lambda n: busy_before[n]) if busy_before else 0
    else:
        cpu = int(args.cpu)
    server_cpus, client_cpus = placement(args.cpus, cpu)
    fingerprint = trio_upgrade_fingerprint()
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(started_server(args.server))
        except Exception as exc:  # ServerUnavailable, ServerStartError
            print(f"cannot start {args.server}: {exc}", file=sys.stderr)
            return 2
        pin_server(server.pgid, server_cpus)
        streams = probe_streams(server)
        print(
            f"{args.server} on {server.host}:{server.port}, "
            f"SETTINGS_MAX_CONCURRENT_STREAMS={streams}; CPUs ({args.cpus}): "
            f"server {sorted(server_cpus) if server_cpus else 'any'}, "
            f"clients {sorted(client_cpus) if client_cpus else 'any'}",
            flush=True,
        )
        batch = min(CONCURRENCY, streams)
        if args.profile:
            return profile_client(
                args.profile, args.profiler, server, client_cpus, batch
            )
        meter = LoadMeter(
            (server_cpus or set()) | (client_cpus or set()) or None, server.pgid
        )
        series = run_rounds(
            plan, server, params, client_cpus, batch, args.verbose, meter
        )
    busy_after = cpu_busy()
    elapsed = time.monotonic() - started
    table = format_table(series, args.server, streams)
    print(table)
    if args.rst:
        print("\n" + format_rst(series))
    warnings: list[str] = []
    flagged = [
        f"{row.client} ({row.figure})"
        for row in series
        for measured in row.rounds
        if measured.get("foreign", 0.0) > FOREIGN_LIMIT and row.client != "h2-sansio"
    ]
    if flagged:
        warnings.append(
            f"{len(flagged)} round{'s' if len(flagged) > 1 else ''} shared "
            "their CPU with other processes "
            f"(> {FOREIGN_LIMIT:.0%} of it) after {params.retries} retries: "
            f"{', '.join(sorted(set(flagged)))}. Their rates are low; CPU us per "
            "request moves much less (the xMINc, xHTTPXc ratios)"
        )
    seen = {f for row in series for f in row.fingerprints} | {fingerprint}
    if len(seen) > 1:
        warnings.append(
            f"trio_upgrade's sources changed during the run: {sorted(seen)}"
        )
    for warning in warnings:
        print(f"\n  WARNING: {warning}")
    mode = "--quick" if args.quick else "full run"
    print(f"\n  ({elapsed:.0f} s; {mode}; trio_upgrade sources {fingerprint})")
    if args.json:
        document = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "argv": sys.argv,
            "server": args.server,
            "server_max_concurrent_streams": streams,
            "cpus": {
                "mode": args.cpus,
                "server": sorted(server_cpus) if server_cpus else None,
                "client": sorted(client_cpus) if client_cpus else None,
            },
            "background_load": {"before": busy_before, "after": busy_after},
            "concurrency": CONCURRENCY,
            "path": PATH,
            "params": dataclasses.asdict(params),
            "versions": versions(args.server),
            "results": [row.summary() for row in series],
            "warnings": warnings,
            "table": table,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
