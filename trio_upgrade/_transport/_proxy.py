"""Reaching a server through a proxy: HTTP ``CONNECT`` tunnels (RFC 9110
§9.3.6), over TLS to an ``https://`` proxy, and SOCKS 4/5 (python-socks)."""

from __future__ import annotations

import base64
import math
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

__all__ = [
    "PROXY_SCHEMES",
    "Proxy",
    "ProxyError",
    "open_socks",
    "open_tunnel",
    "parse_proxy",
]


#: The proxy URL schemes, and the port each uses when the URL gives none
#: (80 and 443 as httpx and websockets; 1080, the SOCKS port, as curl).
PROXY_SCHEMES = {
    "http": 80,
    "https": 443,
    "socks5": 1080,
    "socks5h": 1080,
    "socks4": 1080,
    "socks4a": 1080,
}


@dataclass(frozen=True)
class Proxy:
    """A proxy to connect through, parsed from its URL.

    Attributes:
        scheme: ``http`` or ``https`` (a ``CONNECT`` tunnel, over TLS to the
            proxy for ``https``), ``socks5``/``socks5h``/``socks4``/
            ``socks4a`` (SOCKS, the ``h`` and ``a`` forms resolving the
            server's name at the proxy).
        target: the proxy's host and port (``secure`` for ``https``).
        url: the URL with its credentials shown as ``***``, for messages.
        username: from the URL, percent-decoded; ``None`` when it has none.
        password: likewise. Never shown in ``repr``.
        headers: the fields sent with ``CONNECT``: ``Proxy-Authorization``
            when the URL has credentials. Never shown in ``repr``.
    """

    scheme: str
    target: Target
    url: str
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    # A tuple: parsed proxies are cached and shared between calls.
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def is_socks(self) -> bool:
        """Whether this is a SOCKS proxy rather than an HTTP one."""
        return self.scheme.startswith("socks")

    def __repr__(self) -> str:
        # The URL without its credentials, the fields with their values
        # redacted: what a log line may show.
        return f"Proxy(url={self.url!r}, headers={shown_fields(self.headers)!r})"


def parse_proxy(url: str) -> Proxy:
    """Parse ``scheme://[user:password@]host[:port]`` into a :class:`Proxy`.

    ``scheme`` is one of :data:`PROXY_SCHEMES`. For an HTTP proxy the
    credentials become a ``Proxy-Authorization: Basic`` field (RFC 7617);
    for SOCKS5 the username/password method (RFC 1929); SOCKS4 sends the
    user name as its user id. They go to the proxy only, never to the server.

    Raises:
        InvalidURL: an unsupported scheme, no host, a bad port. The message
            never shows the credentials.
    """
    shown = redacted(url)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidURL(f"invalid proxy URL {shown!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in PROXY_SCHEMES:
        raise InvalidURL(
            f"unsupported proxy URL scheme {parts.scheme!r} in {shown!r}: expected "
            f"{', '.join(PROXY_SCHEMES)}"
        )
    headers: list[tuple[str, str]] = []
    user = password = None
    if parts.username is not None:
        user = unquote(parts.username)
        password = unquote(parts.password or "")
        if scheme in ("http", "https"):
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            headers.append(("Proxy-Authorization", f"Basic {token}"))
        else:
            _check_socks_credentials(scheme, user, password, shown)
    host = parts.netloc.rpartition("@")[2]
    if port is None:
        host = f"{host.rstrip(':')}:{PROXY_SCHEMES[scheme]}"
    # The host rules of the server's URL (IDNA, IPv6, ports) apply.
    web_scheme = "https" if scheme == "https" else "http"
    try:
        target = parse_url(f"{web_scheme}://{host}/")
    except InvalidURL as exc:
        raise InvalidURL(f"invalid proxy URL {shown!r}: {exc}") from None
    return Proxy(scheme, target, shown, user, password, tuple(headers))


def _check_socks_credentials(scheme: str, user: str, password: str, shown: str) -> None:
    """Refuse credentials that python-socks cannot send as they are.

    It sends them as ASCII, and offers SOCKS5's username/password method
    (RFC 1929: 1-255 octets each) only when both are non-empty; a SOCKS4
    user id ends at a NUL.

    Raises:
        InvalidURL: saying which rule, never showing the credentials.
    """
    problem = ""
    if not (user + password).isascii():
        problem = "must be ASCII"
    elif scheme.startswith("socks5"):
        if not (0 < len(user) < 256 and 0 < len(password) < 256):
            problem = "need a user name and a password of 1 to 255 characters each"
    elif "\0" in user:
        problem = "may not hold a NUL character"
    if problem:
        raise InvalidURL(f"the SOCKS credentials of {shown!r} {problem}")


class ProxyError(ConnectError):
    """The proxy could not be reached or did not open the tunnel.

    The message names the proxy (its URL without credentials) rather than
    the server: connecting to the proxy failed, TLS to an ``https://`` proxy
    failed, it refused the tunnel, it requires credentials or refused them
    (407, or a SOCKS authentication failure), its reply was not valid, or it
    closed the connection before answering.

    Attributes:
        proxy: the proxy's URL, credentials shown as ``***``; empty when
            the error was made without it.
        response: an HTTP proxy's answer when it gave one (a 403, a 407
            asking for credentials, a 502 when it could not reach the
            server), else ``None``.
    """

    def __init__(
        self, message: str, response: Response | None = None, *, proxy: str = ""
    ) -> None:
        super().__init__(message)
        self.response = response
        self.proxy = proxy


async def open_tunnel(
    transport: trio.abc.Stream,
    target: Target,
    *,
    max_head_size: int,
    max_informational: int = 16,
    proxy: Proxy,
) -> RawStream:
    """Ask the HTTP proxy at the other end of ``transport`` for a tunnel.

    Returns the tunnel to ``target`` as a stream; bytes the proxy sent after
    its 2xx head (none in practice, but never lost) are served first.

    Raises:
        ProxyError: the proxy answered with a non-2xx status, not with
            HTTP/1.1, with more than ``max_informational`` 1xx responses
            (each head at most ``max_head_size`` bytes), or closed the
            connection before its answer.
    """
    host = f"[{target.host}]" if ":" in target.host else target.host
    authority = f"{host}:{target.port}"
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head_size)
    fields = [("Host", authority), *proxy.headers]
    request = h11.Request(method="CONNECT", target=authority, headers=fields)
    await transport.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
    where = f"the proxy {proxy.url}"
    received = eof = False
    informational = 0
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            if eof:
                raise ProxyError(
                    f"{where} closed the connection in the middle of its reply "
                    "to CONNECT",
                    proxy=proxy.url,
                ) from None
            raise ProxyError(
                f"{where} sent an invalid reply to CONNECT: {exc}", proxy=proxy.url
            ) from None
        if event is h11.NEED_DATA:
            data = await transport.receive_some(RECEIVE_SIZE)
            if not data:
                if not received:
                    break  # closed without a byte of an answer
                eof = True
            received = True
            conn.receive_data(bytes(data))
            continue
        if isinstance(event, h11.InformationalResponse):
            informational += 1
            if informational > max_informational:
                raise ProxyError(
                    f"{where} sent more than {max_informational} 1xx responses "
                    "to CONNECT",
                    proxy=proxy.url,
                )
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
                    _refusal(where, authority, response, proxy),
                    response,
                    proxy=proxy.url,
                )
            # A 2xx to CONNECT switches the connection to a tunnel; h11
            # stops parsing there and keeps what followed.
            leftover, _ = conn.trailing_data
            return RawStream(transport, bytes(leftover), protocol="connect")
        break  # ConnectionClosed
    raise ProxyError(
        f"{where} closed the connection instead of answering CONNECT",
        proxy=proxy.url,
    )


def _refusal(where: str, authority: str, response: Response, proxy: Proxy) -> str:
    status = f"{response.status_code} {response.reason}".rstrip()
    message = f"{where} refused the tunnel to {authority}: {status}"
    if response.status_code == 407:
        if proxy.headers:
            return f"{message} (it refused the credentials of the proxy URL)"
        return f"{message} (it needs credentials: put them in the proxy URL)"
    return message


async def open_socks(
    proxy: Proxy, target: Target, *, local_resolve: bool
) -> trio.SocketStream:
    """Connect to ``target`` through the SOCKS proxy ``proxy`` (python-socks).

    ``local_resolve`` resolves a name here rather than at the proxy (the
    ``socks5`` and ``socks4`` schemes; ``socks5h`` and ``socks4a`` pass the
    name on).

    Raises:
        ProxyError: python-socks is not installed (the message names the
            extra to install), the proxy cannot be reached, refused the
            credentials, the connection, or broke the protocol.
    """
    try:
        from python_socks import ProxyError as SocksError
        from python_socks import ProxyType
        from python_socks.async_.trio import Proxy as SocksProxy
    except ImportError:
        raise ProxyError(
            f"the SOCKS proxy {proxy.url} needs the python-socks package: "
            "install trio-upgrade[socks]",
            proxy=proxy.url,
        ) from None
    kind = ProxyType.SOCKS5 if proxy.scheme.startswith("socks5") else ProxyType.SOCKS4
    client = SocksProxy(
        kind,
        proxy.target.host,
        proxy.target.port,
        username=proxy.username,
        password=proxy.password,
        rdns=not local_resolve,
    )
    try:
        # The caller's scope bounds the time; python-socks wants a number.
        sock = await client.connect(target.host, target.port, timeout=math.inf)
    except SocksError as exc:
        message = (
            f"the SOCKS proxy {proxy.url} did not connect to {target.authority}: {exc}"
        )
        if "authentication" in str(exc).lower():
            message += (
                " (it refused the credentials of the proxy URL)"
                if proxy.username is not None
                else " (it needs credentials: put them in the proxy URL)"
            )
        raise ProxyError(message, proxy=proxy.url) from exc
    except (OSError, trio.BrokenResourceError) as exc:
        # python-socks says "Couldn't connect to proxy host:port [reason]";
        # errors while talking to it come as they are.
        raise ProxyError(
            f"could not talk to the SOCKS proxy {proxy.url}: {exc}", proxy=proxy.url
        ) from exc
    except UnicodeError as exc:
        # A name python-socks cannot encode for the proxy (a DNS label over
        # 63 octets, with socks5h or socks4a).
        raise ProxyError(
            f"could not ask the SOCKS proxy {proxy.url} for {target.authority}: {exc}",
            proxy=proxy.url,
        ) from exc
    return trio.SocketStream(sock)
