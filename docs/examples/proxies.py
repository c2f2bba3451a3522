"""Reach a WebSocket server through proxies: from the environment, by URL,
over TLS to the proxy, and SOCKS5.

Run it: ``python docs/examples/proxies.py``. It starts its own server and
stand-in proxies on loopback (a few lines each, at the end of this file);
with real ones, only the URLs change.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
import trustme

import trio_upgrade
from trio_upgrade.testing import WebSocketServerProtocol, open_upgrade_server


async def greet(url: str, **options: Any) -> str:
    """Say hello over WebSocket; ``options`` (``proxy``...) as upgrade() takes."""
    async with trio_upgrade.open_upgrade(url, ["websocket"], **options) as ws:
        await ws.send("hello")
        return str(await ws.receive())


async def main() -> list[str]:
    async with stand_ins() as (url, proxies):
        # 1. From the environment: proxy=True is the default. (Lower case:
        # curl reads only http_proxy so; every tool reads ws_proxy so.)
        os.environ["ws_proxy"] = proxies.http  # noqa: SIM112
        try:
            await greet(url)
        finally:
            del os.environ["ws_proxy"]  # noqa: SIM112

        # 2. An explicit proxy URL; the credentials go to the proxy only.
        await greet(url, proxy=proxies.http.replace("://", "://user:secret@"))

        # 3. An https:// proxy: TLS to the proxy, the tunnel inside it.
        await greet(url, proxy=proxies.https, proxy_ssl_context=proxies.trust)

        # 4. SOCKS5, the proxy resolving the name (trio-upgrade[socks]).
        await greet(url.replace("127.0.0.1", "localhost"), proxy=proxies.socks5h)

        # 5. Directly, whatever the environment says.
        await greet(url, proxy=None)
    for line in proxies.seen:
        print(line)
    return proxies.seen


# -- Stand-ins for your server and proxies, on loopback ----------------------


class Proxies:
    """The stand-ins' URLs, the context that trusts the https one, and what
    they were asked."""

    def __init__(self) -> None:
        self.http = self.https = self.socks5h = ""
        self.trust = ssl.create_default_context()
        self.seen: list[str] = []


async def _splice(a: trio.abc.Stream, b: trio.abc.Stream) -> None:
    async def copy(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
        try:
            async for data in source:
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the other direction closed both
        finally:
            await trio.aclose_forcefully(sink)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(copy, a, b)
        nursery.start_soon(copy, b, a)


def _connect_proxy(name: str, proxies: Proxies) -> Any:
    async def handler(client: trio.abc.Stream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += await client.receive_some()
        line, *fields = head.decode().split("\r\n")
        authority = line.split()[1]
        auth = any(f.lower().startswith("proxy-authorization:") for f in fields)
        host, _, port = authority.rpartition(":")
        credentials = "yes" if auth else "no"
        proxies.seen.append(
            f"{name} proxy: tunnel to {host}, credentials: {credentials}"
        )
        upstream = await trio.open_tcp_stream(host, int(port))
        await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await _splice(client, upstream)

    return handler


def _socks5_proxy(proxies: Proxies) -> Any:
    async def handler(client: trio.abc.Stream) -> None:
        data = b""
        while len(data) < 3 or len(data) < 2 + data[1]:
            data += await client.receive_some()
        await client.send_all(b"\x05\x00")  # no authentication
        data = b""
        while len(data) < 5 or len(data) < 7 + data[4]:
            data += await client.receive_some()
        assert data[3] == 3  # a name, for the proxy to resolve
        host = data[5 : 5 + data[4]].decode()
        port = int.from_bytes(data[5 + data[4] : 7 + data[4]], "big")
        proxies.seen.append(f"socks5h proxy: tunnel to {host}")
        upstream = await trio.open_tcp_stream(host, port)
        await client.send_all(b"\x05\x00\x00\x01" + bytes(6))
        await _splice(client, upstream)

    return handler


@asynccontextmanager
async def stand_ins() -> AsyncIterator[tuple[str, Proxies]]:
    proxies = Proxies()
    ca = trustme.CA()
    ca.configure_trust(proxies.trust)
    proxy_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(proxy_tls)
    async with (
        open_upgrade_server([WebSocketServerProtocol()]) as server,
        trio.open_nursery() as nursery,
    ):
        serve = partial(trio.serve_tcp, port=0, host="127.0.0.1")
        http = await nursery.start(serve, _connect_proxy("http", proxies))
        socks = await nursery.start(serve, _socks5_proxy(proxies))
        https = await nursery.start(
            partial(
                trio.serve_ssl_over_tcp,
                _connect_proxy("https", proxies),
                0,
                proxy_tls,
                host="127.0.0.1",
            )
        )
        proxies.http = f"http://127.0.0.1:{http[0].socket.getsockname()[1]}"
        proxies.socks5h = f"socks5h://127.0.0.1:{socks[0].socket.getsockname()[1]}"
        port = https[0].transport_listener.socket.getsockname()[1]
        proxies.https = f"https://127.0.0.1:{port}"
        yield server.url("/", scheme="ws"), proxies
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
