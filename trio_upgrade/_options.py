"""The keyword options of the entry points, defined once.

:func:`~trio_upgrade.upgrade`, :func:`~trio_upgrade.open_upgrade`,
:func:`~trio_upgrade.connect_http2` and :func:`~trio_upgrade.open_http2`
take their options as ``**options`` typed by these ``TypedDict`` s (PEP 692),
so each option is declared, documented and defaulted here only, and every
entry point accepts every connection option.
"""

from __future__ import annotations

import functools
import os
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypedDict

import trio

from ._sansio._auth import AuthArg
from ._sansio._errors import InvalidURL
from ._sansio._limits import Limits
from ._sansio._messages import HeadersArg
from ._sansio._proxy_env import PROCESS_ENVIRONMENT, environment_proxy
from ._sansio._url import Target
from ._transport._connect import HAS_UNIX
from ._transport._observed import Trace
from ._transport._proxy import Proxy, parse_proxy

if sys.version_info >= (3, 11):
    from typing import Unpack
else:
    from typing_extensions import Unpack

__all__ = [
    "CONNECT_KEYS",
    "UPGRADE_KEYS",
    "ConnectOptions",
    "ConnectSettings",
    "Strategy",
    "Unpack",
    "UpgradeOptions",
    "check_keys",
    "connect_settings",
]

#: How several protocols are offered:
#:
#: ``"sequential"`` (default): one request per protocol, in the caller's
#: order, until one is accepted. The caller gets the most preferred protocol
#: the server supports, whatever the server's own taste; a declined offer
#: costs one round trip (on the same connection when the server keeps it
#: open, else on a new one).
#:
#: ``"combined"``: one request listing every protocol in the ``Upgrade``
#: header, with every protocol's header fields. One round trip, but the
#: server chooses (servers were seen to pick their own favourite whatever the
#: order) and many WebSocket servers refuse or ignore such a request.
Strategy = Literal["sequential", "combined"]


class ConnectOptions(TypedDict, total=False):
    """How a connection is made: the options every entry point takes.

    Pass them as keyword arguments; each may be left out (its default is
    given below) and an unknown one is a :exc:`TypeError`. A dict built
    ahead can be passed as ``**options``.

    Attributes:
        limits (Limits | None): time and size limits; see :class:`Limits`.
            Default: ``Limits()``.
        ssl_context (ssl.SSLContext | None): for ``https``/``wss``, used as
            given. Default: a context that verifies certificates against the
            system's CA bundle and offers by ALPN ``http/1.1`` (upgrades) or
            ``h2`` (HTTP/2 with prior knowledge), made once and shared by
            every connection that uses it.
        proxy (str | bool | None): the proxy to reach the server through.
            ``True``: the one the environment names for the URL
            (``ws_proxy``, ``wss_proxy``, ``http_proxy``, ``https_proxy``,
            ``all_proxy``, ``no_proxy``, as curl and Python's ``urllib``
            read them; see :doc:`/howto/proxies`), read at each call; none
            when no variable applies. A URL: that proxy, the environment
            not read: ``http://`` (a ``CONNECT`` tunnel), ``https://`` (the
            same over TLS to the proxy), ``socks5://``, ``socks5h://``,
            ``socks4://``, ``socks4a://`` (with the ``socks`` extra);
            ``user:password@`` in it goes to the proxy only. TLS to the
            server (https, wss) runs inside the tunnel. ``None`` or
            ``False``: connect directly, the environment not read.
            Default: ``True``, as in websockets and httpx.
        proxy_ssl_context (ssl.SSLContext | None): for TLS to an
            ``https://`` proxy. Default: a context that verifies the proxy's
            certificate against the system's CA bundle and offers
            ``http/1.1`` by ALPN (``ssl_context`` is the server's, not the
            proxy's).
        transport (trio.abc.Stream | None): an already open stream to use
            instead of connecting to the URL (which then only gives the
            ``Host`` field or ``:authority`` and the request target): a
            proxy tunnel, a Unix socket, or one end of
            ``trio.testing.memory_stream_pair()`` in tests. It is used as
            given (no TLS is added, ``proxy`` is not used) and closed on
            failure like any connection; when a declined offer leaves it
            unusable, no other connection is opened. Default: ``None``.
        unix_socket (str | os.PathLike[str] | None): the path of a Unix
            domain socket to connect to instead of the URL's host and port,
            as ``curl --unix-socket`` does (the Docker Engine API listens on
            ``/var/run/docker.sock``). The URL still gives the ``Host``
            field (or ``:authority``) and the request target; for
            ``https``/``wss``, TLS runs over the socket with the URL's host
            as the server name. On Linux, a path that starts with a NUL
            byte (``"\\0name"``) names an abstract-namespace socket. When a
            declined offer leaves the connection unusable, the next offer
            connects to the same socket again, as does a redirect, to any
            origin (as curl does). Not with a ``proxy`` URL nor
            ``transport``; the environment's proxies (``proxy=True``) are
            not used for it. Linux, macOS and the BSDs only. Default:
            ``None``, connect to the URL's host.
        trace (Callable[[str, Mapping[str, Any]], None] | None): called,
            synchronously, at each step of the call with the step's name
            and details (``time`` and ``elapsed`` are in seconds of trio's
            clock): ``"connect.started"`` (``host``, ``port``, ``via``),
            ``"connect.complete"`` (``peer``, ``elapsed`` since the start),
            ``"tls.complete"`` (``version``, ``alpn``, ``elapsed``),
            ``"request.sent"`` (``url``, ``offered``),
            ``"response.head"`` (``url``, ``status``),
            ``"switched"`` (``url``, ``protocol``), and
            ``"first_byte"`` (``url``, ``protocol``, ``elapsed`` since the
            switch) when the new protocol's first byte arrives. Like
            httpcore's ``trace`` extension, for timings and debugging; it
            must not raise or block. Default: ``None``.
    """

    limits: Limits | None
    ssl_context: ssl.SSLContext | None
    proxy: str | bool | None
    transport: trio.abc.Stream | None
    proxy_ssl_context: ssl.SSLContext | None
    unix_socket: str | os.PathLike[str] | None
    trace: Trace | None


class UpgradeOptions(ConnectOptions, total=False):
    """The options of :func:`upgrade` and :func:`open_upgrade`.

    Every :class:`ConnectOptions` key, and:

    Attributes:
        headers (HeadersArg | None): extra request header fields
            (``Authorization``, ``Origin``, cookies...), as a mapping or as
            ``(name, value)`` pairs. ``Upgrade``, ``Connection`` and framing
            fields are the handshake's and may not be set. Default: none.
        strategy (Strategy): how several protocols are offered; see
            :data:`Strategy`. Default: ``"sequential"``.
        follow_redirects (bool): follow a ``301``, ``302``, ``303``, ``307``
            or ``308`` answer to the upgrade request, up to
            ``Limits.max_redirects``, never from TLS to cleartext, dropping
            credentials when the origin changes (see
            :class:`RedirectError`). Default: ``True``, as ``websockets``
            and browsers' ``fetch`` do: the call returns a connection, not a
            response, so a redirect has no use to the caller but as a
            pointer to the endpoint. ``False`` raises the redirect as
            :class:`UpgradeRefused` (its ``location`` says where to).
        auth (BasicAuth | tuple[str, str] | None): Basic credentials
            (RFC 7617) sent as ``Authorization`` to the URL's origin only.
            Credentials in the URL (``ws://user:pass@host/``) do the same;
            giving both, or ``auth`` with an ``Authorization`` field in
            ``headers``, is a :exc:`ValueError`. Default: ``None``.
    """

    headers: HeadersArg | None
    strategy: Strategy
    follow_redirects: bool
    auth: AuthArg | None


#: The keys each entry point accepts, read from the TypedDicts themselves.
CONNECT_KEYS: frozenset[str] = ConnectOptions.__optional_keys__
UPGRADE_KEYS: frozenset[str] = UpgradeOptions.__optional_keys__

#: The limits used when the caller gives none (Limits is frozen).
_DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class ConnectSettings:
    """The connection options of one call, checked, defaults applied."""

    limits: Limits
    ssl_context: ssl.SSLContext | None
    proxy: Proxy | None
    transport: trio.abc.Stream | None
    #: ``proxy=True``: :meth:`proxy_for` reads the environment.
    proxy_from_environment: bool = False
    proxy_ssl_context: ssl.SSLContext | None = None
    unix_socket: str | None = None
    trace: Trace | None = None

    def proxy_for(self, target: Target) -> Proxy | None:
        """The proxy to reach ``target`` through, ``None`` for none.

        Raises:
            InvalidURL: the environment names a proxy URL that cannot be used.
        """
        if not self.proxy_from_environment:
            return self.proxy
        # os.environ itself, unless something replaced it since import.
        environ: Mapping[str, str] = os.environ
        if environ is PROCESS_ENVIRONMENT.environ:
            environ = PROCESS_ENVIRONMENT
        url = environment_proxy(target, environ)
        if url is None:
            return None
        try:
            return _parse_proxy_cached(url)
        except InvalidURL as exc:
            raise InvalidURL(f"{exc} (from the environment)") from None


def check_keys(where: str, options: ConnectOptions, accepted: frozenset[str]) -> None:
    """Refuse an option that the entry point named ``where`` does not take.

    ``options`` is that entry point's ``**options``; ``accepted`` is every
    key it takes.

    Raises:
        TypeError: as Python itself says of an unexpected keyword argument.
    """
    if not accepted.issuperset(options):
        unknown = sorted(set(options) - accepted)[0]
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown!r}")


def connect_settings(
    where: str, options: ConnectOptions, accepted: frozenset[str]
) -> ConnectSettings:
    """:func:`check_keys`, then the :class:`ConnectOptions` of ``options``.

    Raises:
        TypeError: as for :func:`check_keys`; ``proxy`` is not a string,
            a bool or ``None``.
        InvalidURL: ``proxy`` is not a proxy URL that can be used.
        ValueError: ``unix_socket`` with a ``proxy`` URL or ``transport``,
            an empty ``unix_socket``, or one on a platform without Unix
            sockets.
    """
    if not options:
        # No option given, the usual call: the one settings object of the
        # defaults (frozen), not a new one checked field by field.
        return _DEFAULT_SETTINGS
    check_keys(where, options, accepted)
    limits = options.get("limits")
    proxy = options.get("proxy", True)
    if proxy is not None and not isinstance(proxy, (str, bool)):
        raise TypeError(
            f"proxy must be a URL, True, False or None, got {type(proxy).__name__}"
        )
    transport = options.get("transport")
    unix_socket = _unix_socket_path(options.get("unix_socket"), proxy, transport)
    return ConnectSettings(
        limits if limits is not None else _DEFAULT_LIMITS,
        options.get("ssl_context"),
        _parse_proxy_cached(proxy) if isinstance(proxy, str) else None,
        transport,
        # A Unix socket is local: the environment's proxies are not for it.
        proxy is True and unix_socket is None,
        options.get("proxy_ssl_context"),
        unix_socket,
        _check_trace(options.get("trace")),
    )


#: The settings of a call that gives no option: direct or through the proxy
#: the environment names for the URL (read at each call by ``proxy_for``).
_DEFAULT_SETTINGS = ConnectSettings(
    _DEFAULT_LIMITS, None, None, None, proxy_from_environment=True
)


def _check_trace(trace: object) -> Trace | None:
    if trace is not None and not callable(trace):
        raise TypeError(f"trace must be callable, got {type(trace).__name__}")
    return trace


# Proxy is frozen and parse_proxy a pure function of the string: the same
# few proxy URLs come back on every call. Bounded, as URLs come from callers.
@functools.lru_cache(maxsize=32)
def _parse_proxy_cached(url: str) -> Proxy:
    return parse_proxy(url)


def _unix_socket_path(
    unix_socket: str | os.PathLike[str] | None,
    proxy: str | bool | None,
    transport: trio.abc.Stream | None,
) -> str | None:
    # Conflicting options are a ValueError, as subprocess.run() makes
    # ``capture_output`` with ``stdout``: each is valid, not both at once.
    if unix_socket is None:
        return None
    path = os.fspath(unix_socket)
    if not isinstance(path, str):
        raise TypeError(f"unix_socket must be a str path, got {unix_socket!r}")
    if not path:
        raise ValueError("unix_socket must not be empty")
    if isinstance(proxy, str):
        raise ValueError(
            "unix_socket and proxy cannot be used together: the connection "
            "goes to the Unix socket, not through a proxy"
        )
    if transport is not None:
        raise ValueError(
            "unix_socket and transport cannot be used together: transport "
            "is an already open connection"
        )
    if not HAS_UNIX:
        raise ValueError(
            "unix_socket is not supported on this platform (no socket.AF_UNIX)"
        )
    return path
