"""HTTP CONNECT tunnels (RFC 9110 §9.3.6) to reach a server through a proxy."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import h11
import trio

from .._sansio._errors import ConnectError, InvalidURL
from .._sansio._limits import RECEIVE_SIZE
from .._sansio._messages import Headers, Response
from .._sansio._redact import shown_fields
from .._sansio._url import Target, parse_url, redacted
from ._stream import RawStream

__all__ = ["Proxy", "ProxyError", "open_tunnel", "parse_proxy"]


@dataclass(frozen=True)
class Proxy:
    """Where the HTTP proxy is, and the fields sent with ``CONNECT``.

    Its ``repr()`` never shows the ``Proxy-Authorization`` credentials.
    """

    target: Target
    headers: list[tuple[str, str]] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Proxy(target={self.target!r}, headers={shown_fields(self.headers)!r})"


def parse_proxy(url: str) -> Proxy:
    """Parse ``http://[user:password@]host:port`` into a :class:`Proxy`.

    Credentials in the URL become a ``Proxy-Authorization: Basic`` field
    (RFC 7617), sent to the proxy only, never to the server.

    Raises:
        InvalidURL: not an ``http://`` URL with a host.
    """
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidURL(f"invalid proxy URL {redacted(url)!r}: {exc}") from None
    if parts.scheme.lower() != "http":
        raise InvalidURL(f"proxy URL must be http://host:port, got {redacted(url)!r}")
    headers: list[tuple[str, str]] = []
    if parts.username is not None:
        user = unquote(parts.username)
        password = unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers.append(("Proxy-Authorization", f"Basic {token}"))
    bare = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return Proxy(parse_url(bare), headers)


class ProxyError(ConnectError):
    """The proxy did not open the tunnel.

    Attributes:
        response: the proxy's answer when it gave one (a 403, a 407 asking
            for credentials, a 502 when it could not reach the server), else
            ``None`` when its reply was not valid HTTP.
    """

    def __init__(self, message: str, response: Response | None = None) -> None:
        super().__init__(message)
        self.response = response


async def open_tunnel(
    transport: trio.abc.Stream,
    target: Target,
    *,
    max_head_size: int,
    headers: list[tuple[str, str]] | None = None,
) -> RawStream:
    """Ask the proxy at the other end of ``transport`` for a tunnel to ``target``.

    Returns the tunnel as a stream; bytes the proxy sent after its 2xx head
    (none in practice, but never lost) are served first.

    Raises:
        ProxyError: the proxy answered with a non-2xx status, or not with
            HTTP/1.1.
    """
    host = f"[{target.host}]" if ":" in target.host else target.host
    authority = f"{host}:{target.port}"
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head_size)
    fields = [("Host", authority), *(headers or [])]
    request = h11.Request(method="CONNECT", target=authority, headers=fields)
    await transport.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProxyError(
                f"the proxy's reply to CONNECT is not valid: {exc}"
            ) from None
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await transport.receive_some(RECEIVE_SIZE)))
            continue
        if isinstance(event, h11.InformationalResponse):
            continue
        if isinstance(event, h11.Response):
            response = Response(
                event.status_code,
                event.reason.decode("latin-1"),
                Headers(event.headers.raw_items()),
                event.http_version.decode("ascii"),
            )
            if not 200 <= event.status_code < 300:
                raise ProxyError(
                    f"the proxy refused the tunnel to {authority}: "
                    f"{event.status_code} {response.reason}".rstrip(),
                    response,
                )
            # A 2xx to CONNECT switches the connection to a tunnel; h11
            # stops parsing there and keeps what followed.
            leftover, _ = conn.trailing_data
            return RawStream(transport, bytes(leftover), protocol="connect")
        raise ProxyError("the proxy closed the connection instead of answering")
