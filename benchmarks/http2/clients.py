"""The clients as the measurements drive them: ``get()`` for the request
figure, one handshake for the handshake figure. trio_upgrade and httpx are
imported here only, in the worker that measures them, through their public
API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from ..harness.processes import BenchFailure
from .minimal import minimal_h2c_handshake, open_minimal
from .plan import PATH

Get = Callable[[], Awaitable[bytes]]


@asynccontextmanager
async def rps_client(
    name: str, host: str, port: int, path: str = PATH
) -> AsyncIterator[Get]:
    """``get()`` for one client: one GET of ``path`` on one shared connection."""
    url = f"http://{host}:{port}"
    if name == "minimal":
        async with open_minimal(host, port) as minimal:
            raw_path = path.encode("ascii")

            async def get_minimal() -> bytes:
                return await minimal.get(raw_path)

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
                response = await conn.request("GET", path)
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
            target = url + path

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
