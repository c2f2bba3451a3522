"""What a run of ``probe`` or ``connect`` needs: options, output, input."""

from __future__ import annotations

import argparse
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._http2._protocol import HTTP2Connection
from .._options import Strategy
from .._raw import Raw, RawStream
from .._sansio._limits import Limits
from .._upgrade import upgrade
from .._websocket import WebSocket, WebSocketConnection
from ._console import Console, Input

__all__ = ["Connection", "ContextFactory", "Settings", "ssl_factory"]

#: What ``upgrade()`` gives for the protocols the commands offer.
Connection = WebSocketConnection | HTTP2Connection | RawStream

ContextFactory = Callable[[list[str]], "ssl.SSLContext | None"]


@dataclass
class Settings:
    """What a subcommand needs of the command line, checked."""

    args: argparse.Namespace
    console: Console
    stdin: Input
    limits: Limits
    #: The TLS context for an ALPN offer; ``None``: the library's own.
    ssl_context_for: ContextFactory

    def protocol(self, token: str) -> WebSocket | Raw | str:
        """The protocol object to offer for ``token``."""
        if token == "websocket":
            return WebSocket(self.args.subprotocol, origin=self.args.origin)
        if token in ("h2c", "h2"):
            return token
        return Raw(token)

    async def upgrade(
        self, url: str, tokens: Sequence[str], *, strategy: Strategy = "sequential"
    ) -> Connection:
        """``upgrade(url, tokens)`` with the command line's options."""
        alpn = ["h2", "http/1.1"] if tokens[:1] == ["h2"] else ["http/1.1"]
        return await upgrade(
            url,
            [self.protocol(token) for token in tokens],
            strategy=strategy,
            headers=self.args.header,
            limits=self.limits,
            proxy=self.args.proxy,
            ssl_context=self.ssl_context_for(alpn),
            follow_redirects=self.args.command != "probe",
            unix_socket=self.args.unix_socket,
        )


def ssl_factory(args: argparse.Namespace) -> ContextFactory:
    """Contexts for ``-k``/``--cacert``; ``None`` (the library's) without."""
    if not args.insecure and args.cacert is None:
        return lambda alpn: None
    # Loaded now, so that a bad file is a usage error before connecting.
    ssl.create_default_context(cafile=args.cacert)

    def make(alpn: list[str]) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=args.cacert)
        if args.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(alpn)
        return context

    return make
