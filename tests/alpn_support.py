"""A TLS server on loopback that selects h2 or http/1.1 by ALPN, for the tests.

After the TLS handshake, a connection that selected ``h2`` is served by an
:class:`H2CServerProtocol` (HTTP/2 with prior knowledge, its routes), any
other by an :class:`UpgradeServer` (the HTTP/1.1 upgrade path). Every TCP
connection accepted is counted, with what ALPN selected on it.
"""

from __future__ import annotations

import contextlib
import pathlib
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import pytest
import trio
import trustme

from trio_upgrade._transport import _tls
from trio_upgrade.testing import (
    H2CServerProtocol,
    ServerProtocol,
    UpgradeServer,
    open_upgrade_server,
)

#: What a connection that selected h2 gets: see alpn_server.
H2Behaviour = Literal["serve", "silent", "close", "http1"]


async def misbehave(tls: trio.SSLStream[trio.SocketStream], how: H2Behaviour) -> None:
    with contextlib.suppress(trio.BrokenResourceError):
        async with tls:
            if how == "http1":
                await tls.send_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
            if how == "silent":
                while await tls.receive_some():
                    pass


@dataclass
class ALPNServer:
    port: int
    upgrade: UpgradeServer
    h2: H2CServerProtocol
    #: What ALPN selected on each TLS connection, in the order accepted.
    selected: list[str | None] = field(default_factory=list)
    #: Set once a misbehaving h2 connection is over.
    closed: trio.Event = field(default_factory=trio.Event)

    def url(self, path: str = "/", *, scheme: str = "https") -> str:
        return f"{scheme}://localhost:{self.port}{path}"


def trust_by_default(
    ca: trustme.CA, directory: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Body of a fixture: the library's default contexts made meanwhile trust ``ca``.

    ``SSL_CERT_FILE`` names a bundle of ``ca`` alone, and the cache of
    default contexts is emptied before and after.
    """
    bundle = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    _tls.client_context.cache_clear()
    yield
    _tls.client_context.cache_clear()


def server_context(ca: trustme.CA, alpn: Sequence[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def client_context(ca: trustme.CA, alpn: Sequence[str]) -> ssl.SSLContext:
    """A caller's own context: trusts ``ca``, offers ``alpn``."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


@asynccontextmanager
async def alpn_server(
    ca: trustme.CA,
    alpn: Sequence[str] = ("h2", "http/1.1"),
    protocols: Sequence[ServerProtocol | str] = ("echo",),
    *,
    keep_alive: bool = True,
    h2: H2Behaviour = "serve",
) -> AsyncIterator[ALPNServer]:
    """Serve TLS on 127.0.0.1 (certificate for ``localhost``) selecting from ``alpn``.

    ``protocols`` and ``keep_alive`` go to the :class:`UpgradeServer` of the
    HTTP/1.1 connections. ``h2`` says what a connection that selected h2
    gets: HTTP/2 (``"serve"``); nothing at all until the client closes it
    (``"silent"``); a close right after the TLS handshake (``"close"``); an
    HTTP/1.1 error response, as a misconfigured server would send
    (``"http1"``). ``closed`` is set once a misbehaving connection is over.
    """
    context = server_context(ca, alpn)
    async with (
        open_upgrade_server(protocols, tcp=False, keep_alive=keep_alive) as upgrade,
        trio.open_nursery() as nursery,
    ):
        server = ALPNServer(0, upgrade, H2CServerProtocol())

        async def handle(tls: trio.SSLStream[trio.SocketStream]) -> None:
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError:
                server.selected.append("<handshake failed>")
                await trio.aclose_forcefully(tls)
                return
            server.selected.append(tls.selected_alpn_protocol())
            if tls.selected_alpn_protocol() != "h2":
                await upgrade.serve_stream(tls)
            elif h2 == "serve":
                await server.h2.serve_prior_knowledge(tls)
            else:
                await misbehave(tls, h2)
                server.closed.set()

        serve = partial(trio.serve_ssl_over_tcp, handle, 0, context, host="127.0.0.1")
        listeners = await nursery.start(serve)
        server.port = listeners[0].transport_listener.socket.getsockname()[1]
        yield server
        nursery.cancel_scope.cancel()
