"""Requests, replies and the default routes of the test server's HTTP/2."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import trio
from h2.errors import ErrorCodes

from .._sansio._messages import Headers
from ._handlers import own

if TYPE_CHECKING:
    from ._http2 import H2ServerConnection

__all__ = [
    "DEFAULT_ROUTES",
    "H2Handler",
    "H2Reply",
    "H2Request",
    "bytes_route",
    "pattern",
]

_PATTERN = bytes(range(251))  # a prime period shows offset errors


def pattern(n: int, offset: int = 0) -> bytes:
    """Bytes ``offset`` to ``offset + n`` of the endless test pattern."""
    start = offset % len(_PATTERN)
    reps = (start + n) // len(_PATTERN) + 1
    return (_PATTERN * reps)[start : start + n]


@dataclass(frozen=True)
class H2Request:
    """One request as the server received it, body included.

    Attributes:
        stream_id: its stream (1 for the upgrading HTTP/1.1 request).
        method: ``:method``.
        target: ``:path`` (path and query).
        headers: the regular header fields.
        body: the whole request body.
        connection: the connection it came on, to misbehave from a handler.
    """

    stream_id: int
    method: str
    target: str
    headers: Headers
    body: bytes
    connection: H2ServerConnection

    @property
    def path(self) -> str:
        """The target without its query."""
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        """The parsed query string."""
        return parse_qs(urlsplit(self.target).query)


@dataclass(frozen=True)
class H2Reply:
    """What a handler answers; ``None`` from a handler sends nothing."""

    status: int = 200
    body: bytes = b""
    headers: Sequence[tuple[str, str]] = ()
    trailers: Sequence[tuple[str, str]] | None = None


H2Handler = Callable[[H2Request], Awaitable[H2Reply | None]]


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
