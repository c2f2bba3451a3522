"""The canned handlers of the test server's HTTP/2: default routes, WebSocket."""

from __future__ import annotations

from collections.abc import Mapping

import trio
from h2.errors import ErrorCodes

from .._sansio._messages import Headers, Request
from .._transport._stream import RawStream
from ._h2_connect import H2ServerStream
from ._h2_server import ConnectHandler, H2Handler, H2Reply, H2Request
from ._handlers import own
from ._websocket import WebSocketServerProtocol

__all__ = [
    "DEFAULT_ROUTES",
    "bytes_route",
    "pattern",
    "websocket_over_h2",
]

_PATTERN = bytes(range(251))  # a prime period shows offset errors


def pattern(n: int, offset: int = 0) -> bytes:
    """Bytes ``offset`` to ``offset + n`` of the endless test pattern."""
    start = offset % len(_PATTERN)
    reps = (start + n) // len(_PATTERN) + 1
    return (_PATTERN * reps)[start : start + n]


@own
async def _root(request: H2Request) -> H2Reply:
    return H2Reply(200, b"ok", [("content-type", "text/plain")])


@own
async def bytes_route(request: H2Request) -> H2Reply:
    n = int(request.path[len("/bytes/") :])
    return H2Reply(200, pattern(n), [("content-type", "application/octet-stream")])


@own
async def _echo(request: H2Request) -> H2Reply:
    length = [("x-body-length", str(len(request.body)))]
    return H2Reply(200, request.body, length)


@own
async def _trailers(request: H2Request) -> H2Reply:
    return H2Reply(200, b"ok", trailers=[("x-trailer", "yes")])


@own
async def _reset(request: H2Request) -> None:
    # int() first: on Python 3.10, str() of an IntEnum is its name.
    code = int(request.query.get("code", [str(int(ErrorCodes.INTERNAL_ERROR))])[0])
    await request.connection.reset(request.stream_id, code)


@own
async def _hang(request: H2Request) -> None:
    await trio.sleep_forever()


@own
async def _goaway(request: H2Request) -> H2Reply:
    last = int(request.query.get("last", [str(request.stream_id)])[0])
    await request.connection.goaway(last_stream_id=last)
    return H2Reply(200, b"bye")


#: ``GET /`` ``"ok"``; ``GET /bytes/N`` N bytes of :func:`pattern`; ``POST
#: /echo`` the body; ``GET /trailers`` ``"ok"`` and a trailer; ``GET
#: /reset?code=C`` resets its stream; ``GET /hang`` never answers;
#: ``GET /goaway?last=N`` GOAWAY (last stream N, default its own) then 200.
DEFAULT_ROUTES: Mapping[tuple[str, str], H2Handler] = {
    ("GET", "/"): _root,
    ("POST", "/echo"): _echo,
    ("GET", "/trailers"): _trailers,
    ("GET", "/reset"): _reset,
    ("GET", "/hang"): _hang,
    ("GET", "/goaway"): _goaway,
}


# RFC 6455's sample key: the WebSocket protocol's accept() wants one, and
# RFC 8441 has none (the stream itself proves the server understood).
_SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def websocket_over_h2(
    protocol: WebSocketServerProtocol | None = None,
) -> ConnectHandler:
    """A :data:`ConnectHandler` for ``:protocol websocket`` (RFC 8441).

    The handshake is the request's ``sec-websocket-version`` and
    ``sec-websocket-protocol``, answered with 200 and the chosen
    subprotocol; then ``protocol`` (default: echo) serves the frames.
    Compression is not negotiated over HTTP/2 here.
    """
    if protocol is None:
        protocol = WebSocketServerProtocol(compression=False)
    ws = protocol

    @own  # the WebSocket protocol runs the user's handler, if any
    async def handler(request: H2Request, stream: H2ServerStream) -> None:
        skip = {"sec-websocket-extensions", "sec-websocket-key"}
        fields = [(n, v) for n, v in request.headers if n.lower() not in skip]
        if request.headers.get("sec-websocket-version") == "13":
            fields.append(("sec-websocket-key", _SAMPLE_KEY))
        http11 = Request("GET", request.target, Headers(fields))
        accepted = ws.accept(http11)
        if accepted is None:
            await stream.respond(400)
            await stream.aclose()
            return
        chosen = [
            (n.lower(), v) for n, v in accepted if n.lower() == "sec-websocket-protocol"
        ]
        await stream.respond(200, chosen)
        await ws.serve(RawStream(stream), http11)

    return handler
