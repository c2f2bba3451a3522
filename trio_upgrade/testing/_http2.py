"""The server side of h2c, on h2's server role, with a small router.

:class:`H2CServerProtocol` answers the upgrading request on stream 1 (RFC
7540 §3.2) and then serves requests on further streams, each in its own
task, with flow control both ways. Options make it misbehave the ways real
servers do (answer stream 1 before the client's preface, GOAWAY right after
stream 1, reset stream 1); :meth:`H2CServerProtocol.script` stages a server
whose first HTTP/2 bytes arrive in the same write as the 101.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Literal

import trio
from h2.settings import SettingCodes

from .._sansio._messages import Headers, Request
from .._transport._stream import RawStream
from ._h2_connect import H2ServerStream
from ._h2_routes import DEFAULT_ROUTES, bytes_route, pattern, websocket_over_h2
from ._h2_server import (
    ConnectHandler,
    H2Handler,
    H2Reply,
    H2Request,
    H2ServerConnection,
    settings_readable,
)
from ._handlers import own, run_handler
from ._protocols import ServerProtocol
from ._records import Notifier
from ._script import Handle, Script, Send
from ._wire import switching_response

__all__ = [
    "DEFAULT_ROUTES",
    "ConnectHandler",
    "H2CServerProtocol",
    "H2Handler",
    "H2Reply",
    "H2Request",
    "H2ServerConnection",
    "H2ServerStream",
    "pattern",
    "websocket_over_h2",
]


class H2CServerProtocol(ServerProtocol):
    """``h2c`` for the test server: HTTP/2 after the 101, with a router.

    Args:
        routes: ``(method, path) -> handler`` added to (or replacing) the
            defaults: see :data:`DEFAULT_ROUTES`; ``GET /bytes/N`` is built
            in. Unknown paths get 404.
        settings: the server's SETTINGS (code -> value), e.g.
            ``{SettingCodes.MAX_CONCURRENT_STREAMS: 5}`` or
            ``{SettingCodes.ENABLE_CONNECT_PROTOCOL: 1}``.
        upgrade_response: answer stream 1 right after the 101, before the
            client's preface arrived (``"before_preface"``), or only once
            it has (``"after_preface"``): servers do both.
        goaway_after_upgrade: send GOAWAY (last stream 1) once stream 1 is
            answered.
        reset_upgrade_stream: reset stream 1 with this error code instead of
            answering it.
        require_settings: decline an offer without exactly one
            ``HTTP2-Settings`` field (RFC 7540 §3.2.1); hypercorn does not.
        connect: extended CONNECT (RFC 8441) handlers by ``:protocol``, e.g.
            ``{"websocket": websocket_over_h2()}``; the server then sends
            ``SETTINGS_ENABLE_CONNECT_PROTOCOL = 1``. Other protocols get 501.
            What a connect handler raises fails the test. The client's
            RST_STREAM, or the end of the connection, shows on its stream
            as a reset (see :class:`H2ServerStream`): a handler that reads
            its stream finishes on its own; one that never read it is
            cancelled.

    Attributes:
        connections: one :class:`H2ServerConnection` per switched connection.
    """

    token = "h2c"

    def __init__(
        self,
        routes: Mapping[tuple[str, str], H2Handler] | None = None,
        *,
        settings: Mapping[int, int] | None = None,
        upgrade_response: Literal["before_preface", "after_preface"] = "after_preface",
        goaway_after_upgrade: bool = False,
        reset_upgrade_stream: int | None = None,
        require_settings: bool = True,
        connect: Mapping[str, ConnectHandler] | None = None,
    ) -> None:
        self.routes: dict[tuple[str, str], H2Handler] = dict(DEFAULT_ROUTES)
        self.routes.update(routes or {})
        self.settings = dict(settings or {})
        self.upgrade_response = upgrade_response
        self.goaway_after_upgrade = goaway_after_upgrade
        self.reset_upgrade_stream = reset_upgrade_stream
        self.require_settings = require_settings
        self.connect = dict(connect or {})
        if self.connect:
            # RFC 8441 §3: extended CONNECT only once the server allows it.
            self.settings.setdefault(SettingCodes.ENABLE_CONNECT_PROTOCOL, 1)
        self.connections: list[H2ServerConnection] = []
        self._notifier = Notifier()

    async def route(self, request: H2Request) -> H2Reply | None:
        """The handler's reply for ``request`` (404 when none matches).

        What a handler raises fails the test; a stopping server lets it
        finish (see :meth:`UpgradeServer.stop`). A client's RST_STREAM for
        its stream, or the end of the connection, cancels it, as a real
        server would: the answer can no longer be delivered.
        """
        handler = self.routes.get((request.method, request.path))
        if handler is None and request.method == "GET":
            tail = request.path.removeprefix("/bytes/")
            if tail != request.path and tail.isdigit():
                handler = bytes_route
        if handler is None:
            return H2Reply(404, b"not found")
        return await run_handler(handler, request)

    def accept(self, request: Request) -> list[tuple[str, str]] | None:
        fields = request.headers.get_all("http2-settings")
        if self.require_settings and len(fields) != 1:
            return None
        # A value that cannot be read is declined rather than switched on
        # (serve() reads the fields joined, as here).
        value = request.headers.get("http2-settings")
        if value is not None and not settings_readable(value):
            return None
        return []

    def _new_connection(self) -> H2ServerConnection:
        conn = H2ServerConnection(self, len(self.connections))
        self.connections.append(conn)
        self._notifier.notify()
        return conn

    async def wait_connections(self, count: int = 1) -> list[H2ServerConnection]:
        """Wait until at least ``count`` connections were switched to h2c."""
        await self._notifier.wait_until(lambda: len(self.connections) >= count)
        return list(self.connections)

    @own  # routes and connect handlers are marked one by one
    async def serve(self, stream: RawStream, request: Request) -> None:
        await self._new_connection().serve(stream, request)

    async def serve_prior_knowledge(self, stream: trio.abc.Stream) -> None:
        """Serve a connection that starts with HTTP/2 at once (RFC 9113 §3.3).

        No HTTP/1.1 and no stream 1: for clients with prior knowledge, e.g.
        ``await nursery.start(trio.serve_tcp, protocol.serve_prior_knowledge, 0)``.
        The stream is closed when the client is done.
        """
        conn = self._new_connection()
        conn.h2.initiate_connection()
        async with stream:
            await conn.run(stream, None, self.route)

    def script(
        self,
        first_write: Literal["settings", "response"] = "settings",
        reply: H2Reply | None = None,
    ) -> Callable[[int], Script]:
        """A script for ``UpgradeServer(script=...)``: 101 and HTTP/2 in one write.

        The 101 head and the server's SETTINGS (``"settings"``, like h2o), or
        SETTINGS and the whole stream-1 response (``"response"``, like
        lighttpd), go out in the same ``send_all``; then the connection is
        served as usual. The client's ``HTTP2-Settings`` are not applied
        (the script runs before the request is seen), so the server assumes
        the client's defaults. Stream 1 is answered with ``reply`` (default
        200 ``"ok"``), as if the upgrading request were ``GET /``.
        """
        answer = reply if reply is not None else H2Reply(200, b"ok")

        def make(index: int) -> Script:
            conn = self._new_connection()
            conn.h2.initiate_upgrade_connection()
            if first_write == "response":
                head = [(b":status", str(answer.status).encode())]
                head += [(n.encode(), v.encode()) for n, v in answer.headers]
                conn.h2.send_headers(1, head, end_stream=not answer.body)
                if answer.body:
                    conn.h2.send_data(1, answer.body, end_stream=True)
            trailing = conn.h2.data_to_send()
            return Script(
                [
                    Send(switching_response("h2c", trailing=trailing)),
                    Handle(own(partial(_serve_scripted, conn, answer, first_write))),
                ]
            )

        return make


async def _serve_scripted(
    conn: H2ServerConnection, reply: H2Reply, first_write: str, stream: RawStream
) -> None:
    async def answer(request: H2Request) -> H2Reply:
        return reply

    first = None
    if first_write == "settings":
        first = H2Request(1, "GET", "/", Headers(), b"", conn)
    await conn.run(stream, first, answer)
