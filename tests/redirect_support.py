"""A loopback HTTP/1.1 server whose answer depends on the request path.

For the redirect tests: each path gets a redirect (or any final status), or
a 101 to a raw ``echo``. It records every request as received and counts
connections opened and closed, so a test can assert on what a server
actually got (credentials!) and that no connection was left open. TLS is
optional (an ``ssl.SSLContext`` for ``https``/``wss`` servers).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import h11
import trio

#: Answer to a request target: ``None`` switches to ``echo``; else the
#: status and header fields of a final response (its body is empty).
Answer = Callable[[str], tuple[int, list[tuple[str, str]]] | None]

SWITCH = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"
)


@dataclass
class Seen:
    """One request as the server received it."""

    target: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None


@dataclass
class RouteServer:
    answer: Answer
    port: int = 0
    scheme: str = "http"
    host: str = "127.0.0.1"
    requests: list[Seen] = field(default_factory=list)
    opened: int = 0
    closed: int = 0
    _change: trio.Event = field(default_factory=trio.Event)

    def url(self, path: str = "/", scheme: str | None = None) -> str:
        return f"{scheme or self.scheme}://{self.host}:{self.port}{path}"

    async def wait_all_closed(self) -> None:
        while self.closed < self.opened:
            await self._change.wait()

    async def handle(self, stream: trio.abc.Stream) -> None:
        self.opened += 1
        try:
            await self._serve(stream)
        except (trio.BrokenResourceError, h11.RemoteProtocolError):
            pass
        finally:
            self.closed += 1
            self._change.set()
            self._change = trio.Event()
            await trio.aclose_forcefully(stream)

    async def _serve(self, stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            request: h11.Request | None = None
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return
            assert request is not None
            target = request.target.decode()
            self.requests.append(
                Seen(
                    target,
                    [(n.decode(), v.decode()) for n, v in request.headers.raw_items()],
                )
            )
            answer = self.answer(target)
            if answer is None:
                await stream.send_all(SWITCH + conn.trailing_data[0])
                while data := await stream.receive_some(65536):
                    await stream.send_all(data)
                return
            status, fields = answer
            fields = [*fields, ("Content-Length", "0")]
            await stream.send_all(
                conn.send(h11.Response(status_code=status, headers=fields))
                + (conn.send(h11.EndOfMessage()) or b"")
            )
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()


async def start_routes(
    nursery: trio.Nursery,
    answer: Answer,
    *,
    ssl_context: ssl.SSLContext | None = None,
    host: str = "127.0.0.1",
) -> RouteServer:
    """A :class:`RouteServer` listening on loopback port 0, served in ``nursery``."""
    server = RouteServer(answer, scheme="https" if ssl_context else "http", host=host)
    if ssl_context is None:
        listeners = await nursery.start(
            partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1")
        )
        sock = listeners[0].socket
    else:
        listeners = await nursery.start(
            partial(
                trio.serve_ssl_over_tcp,
                server.handle,
                0,
                ssl_context,
                host="127.0.0.1",
            )
        )
        sock = listeners[0].transport_listener.socket
    server.port = sock.getsockname()[1]
    return server


def redirect(status: int, location: str) -> tuple[int, list[tuple[str, str]]]:
    return status, [("Location", location)]
