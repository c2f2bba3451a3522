"""HTTP/2 over the h2c upgrade (RFC 7540 §3.2), or with prior knowledge.

The h2c offer (RFC 7540 §3.2.1; deprecated by RFC 9113 §3.1 but widely
served) sends:

.. code-block:: text

    Connection: Upgrade, HTTP2-Settings
    Upgrade: h2c
    HTTP2-Settings: <our SETTINGS payload, base64url without padding>

After the 101 the client sends its preface (the magic string and the same
SETTINGS), and the server answers the upgrading request on stream 1.
:func:`connect_http2` skips the upgrade and starts HTTP/2 at once (RFC 9113
§3.3 on cleartext; ALPN ``h2`` over TLS).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import trio

from .._groups import lone_errors_unwrapped
from .._options import (
    CONNECT_KEYS,
    ConnectOptions,
    Unpack,
    check_keys,
    connect_settings,
)
from .._protocol import BuildContext, Offer, UpgradeProtocol
from .._sansio._errors import Attempt, ConnectError, InvalidURL
from .._sansio._h2_options import HTTP2Options, new_client_state
from .._sansio._limits import Limits
from .._sansio._url import Target, parse_url
from .._timeout import UpgradeTimeout
from .._transport._connect import open_transport
from .._transport._observed import Trace, observe
from ._connection import HTTP2Connection
from ._engine import H2Engine
from ._state import StreamState, Waiter

__all__ = [
    "H2",
    "H2C",
    "HTTP2Connection",
    "HTTP2Options",
    "connect_http2",
    "open_http2",
    "start_http2",
]


#: The options of ``"h2c"`` and of a protocol made without any: built and
#: checked once (frozen), not at every handshake.
_DEFAULT_OPTIONS = HTTP2Options()


class _H2COffer(Offer[HTTP2Connection]):
    connection_options = ("HTTP2-Settings",)

    def __init__(self, options: HTTP2Options) -> None:
        super().__init__("h2c")
        self._options = options
        self._state = new_client_state(options)
        # Also queues our preface (magic + SETTINGS) and opens stream 1 as
        # half-closed (local): the upgrading request is that stream's request.
        settings = self._state.initiate_upgrade_connection()
        assert settings is not None
        # RFC 7540 §3.2.1: token68 without padding ("=" never occurs for
        # whole 6-byte settings, but strip it in case).
        self._settings = settings.decode("ascii").rstrip("=")

    def headers(self) -> list[tuple[str, str]]:
        return [("HTTP2-Settings", self._settings)]

    async def build(
        self, stream: trio.abc.Stream, leftover: bytes, context: BuildContext
    ) -> HTTP2Connection:
        engine = H2Engine(stream, self._state, self._options, context.limits)
        conn = engine.state
        first = StreamState(1, local_ended=True)
        conn.adopt(first)
        engine.open_receive_window()
        if leftover:
            # h2o and lighttpd send SETTINGS, even the whole stream-1
            # response, in the same segment as the 101.
            engine.receive(leftover)
        # One write: preface, SETTINGS, WINDOW_UPDATE, and the ACK of the
        # server's SETTINGS if they came with the 101.
        await engine.flush()
        # Returning with the server's settings known (its stream limit) and
        # stream 1's head in hand: upgrade() then has everything a caller
        # reads first, within the handshake's deadline.
        await engine.wait(Waiter(), lambda: conn.settings_seen and first.has_head())
        if conn.error is not None:
            raise conn.error()
        if context.nursery is not None:
            engine.start_service(context.nursery)
        return HTTP2Connection(
            engine,
            scheme="https" if context.target.secure else "http",
            authority=context.target.authority,
            upgrade_stream=first,
            handshake_request=context.request,
            handshake_response=context.response,
            attempts=context.attempts,
        )


class _HTTP2Protocol(UpgradeProtocol[HTTP2Connection]):
    """What H2C and H2 share: the options of the connections they make."""

    def __init__(self, options: HTTP2Options | None = None) -> None:
        self._options = options if options is not None else _DEFAULT_OPTIONS

    @property
    def options(self) -> HTTP2Options:
        """The options every connection of this protocol gets."""
        return self._options


class H2C(_HTTP2Protocol):
    """HTTP/2 over cleartext, by the HTTP/1.1 upgrade (``Upgrade: h2c``).

    After the switch the caller gets an :class:`HTTP2Connection` whose
    :attr:`~HTTP2Connection.upgrade_response` answers the upgrading request:
    :func:`~trio_upgrade.upgrade` returns once the server's SETTINGS and the
    head of that response have arrived (within ``Limits.handshake_timeout``),
    its body still to read. Offer it on a request that is answered at once.

    Args:
        options: the connection's bounds; see :class:`HTTP2Options`.
    """

    @property
    def token(self) -> str:
        return "h2c"

    def offer(self, target: Target) -> Offer[HTTP2Connection]:
        return _H2COffer(self._options)


class H2(_HTTP2Protocol):
    """HTTP/2 over TLS, selected by ALPN (RFC 9113 §3.2), in ``upgrade()``.

    ``"h2"`` in the protocol list of :func:`~trio_upgrade.upgrade` stands for
    this with its defaults; pass ``H2(options)`` to bound the connection.
    It is no ``Upgrade`` token: for an ``https://`` or ``wss://`` URL, the
    TLS handshake offers ALPN ``h2, http/1.1``; if the server selects
    ``h2``, the call returns an :class:`HTTP2Connection` at once (as
    :func:`~trio_upgrade.connect_http2` would), else the other protocols are
    offered by HTTP/1.1 on the same connection. The URL's path is not
    requested: there is no upgrading request, so
    :attr:`~HTTP2Connection.upgrade_response` raises, and ``headers`` are
    not sent. See :doc:`/howto/http2-alpn`.

    Args:
        options: the connection's bounds; see :class:`HTTP2Options`.
    """

    @property
    def token(self) -> str:
        return "h2"

    def offer(self, target: Target) -> Offer[HTTP2Connection]:
        """Not possible: ``h2`` is selected by ALPN, never by ``Upgrade``.

        RFC 9113 §3.2 forbids ``h2`` in an ``Upgrade`` field.

        Raises:
            TypeError: always.
        """
        raise TypeError("h2 is selected by ALPN during TLS, not offered by Upgrade")


async def start_http2(
    stream: trio.abc.Stream,
    target: Target,
    options: HTTP2Options,
    limits: Limits,
    attempts: tuple[Attempt, ...] = (),
    nursery: trio.Nursery | None = None,
    trace: Trace | None = None,
) -> HTTP2Connection:
    """Speak HTTP/2 at once on ``stream``; return once the server's SETTINGS came.

    For a stream known to speak HTTP/2: prior knowledge, or TLS that
    selected ``h2`` by ALPN. No time limit of its own and ``stream`` is not
    closed on failure: the caller does both. With a ``nursery``, the
    connection's background reader runs there.
    """
    state = new_client_state(options)
    state.initiate_connection()
    # A wrapper that logs the frames, only if looked at.
    stream = observe(stream, "h2", target.url, trace=trace)
    engine = H2Engine(stream, state, options, limits)
    engine.open_receive_window()
    await engine.flush()
    await engine.wait_settings()
    if nursery is not None:
        engine.start_service(nursery)
    return HTTP2Connection(
        engine,
        scheme="https" if target.secure else "http",
        authority=target.authority,
        attempts=attempts,
    )


#: What connect_http2() offers by ALPN without an ``ssl_context``.
_H2_ALPN = ("h2",)


async def connect_http2(
    url: str,
    *,
    options: HTTP2Options | None = None,
    nursery: trio.Nursery | None = None,
    **connect: Unpack[ConnectOptions],
) -> HTTP2Connection:
    """Open an HTTP/2 connection without the upgrade.

    For ``http://``, prior knowledge (RFC 9113 §3.3): the client preface is
    sent at once, for servers known to speak HTTP/2 on that port (nghttpd,
    nginx ``listen ... http2``). For ``https://``, TLS with ALPN ``h2``.
    Returns once the server's SETTINGS arrived. The URL's path is not
    requested; send requests on the connection.

    Args:
        url: ``http://`` or ``https://`` URL.
        options: the connection's bounds; see :class:`HTTP2Options`.
        nursery: where the connection runs its background reader, which
            keeps it serviced while no task waits on it (the server's PINGs
            answered, its SETTINGS applied, its GOAWAY or close seen at
            once), and the keepalive PINGs and idle timeout of ``options``.
            Without one (the default) there is no background task: the
            server is read only while some task waits on the connection.
            :func:`open_http2` gives it one.
        **connect: ``limits``, ``ssl_context``, ``proxy``, ``transport``,
            ``unix_socket``; see :class:`ConnectOptions`. Of ``limits``,
            ``connect_timeout``, ``handshake_timeout`` (until the server's
            SETTINGS), ``close_timeout`` and, for the proxy's reply,
            ``max_head_size`` and ``max_informational`` apply. An
            ``ssl_context`` must offer ALPN ``h2``.

    Raises:
        TypeError: an option that is not one of :class:`ConnectOptions`.
        InvalidURL: not an http or https URL, or a bad ``proxy``.
        ValueError: ``unix_socket`` with ``proxy`` or ``transport``.
        ConnectError: the connection could not be made (:class:`ProxyError`
            when the proxy refused the tunnel), or TLS did not select
            ``h2``.
        UpgradeTimeout: a deadline of ``limits`` passed.
        ProtocolError: the server does not speak HTTP/2 (an HTTP/1.1 server
            answers the preface with an HTTP/1.1 error).
        ConnectionClosed: the server closed before its SETTINGS.
    """
    settings = connect_settings("connect_http2", connect, CONNECT_KEYS)
    target = parse_url(url)
    if target.scheme not in ("http", "https"):
        raise InvalidURL(f"HTTP/2 needs an http or https URL, got {url!r}")
    options = options if options is not None else _DEFAULT_OPTIONS
    limits = settings.limits
    stream = settings.transport
    if stream is None:
        stream = await open_transport(
            target,
            connect_timeout=limits.connect_timeout,
            ssl_context=settings.ssl_context,
            proxy=settings.proxy_for(target),
            proxy_ssl_context=settings.proxy_ssl_context,
            unix_socket=settings.unix_socket,
            max_head_size=limits.max_head_size,
            max_informational=limits.max_informational,
            alpn=_H2_ALPN,
            trace=settings.trace,
        )
    try:
        if settings.transport is None and isinstance(stream, trio.SSLStream):
            selected = stream.selected_alpn_protocol()
            if selected != "h2":
                raise ConnectError(
                    f"{target.authority} did not select HTTP/2 by ALPN "
                    f"(expected 'h2', got {selected!r})"
                )
        conn: HTTP2Connection | None = None
        with trio.move_on_after(limits.handshake_timeout):
            conn = await start_http2(
                stream, target, options, limits, nursery=nursery, trace=settings.trace
            )
        if conn is None:
            raise UpgradeTimeout("handshake", limits.handshake_timeout)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return conn


def open_http2(
    url: str,
    *,
    options: HTTP2Options | None = None,
    **connect: Unpack[ConnectOptions],
) -> AbstractAsyncContextManager[HTTP2Connection]:
    """:func:`connect_http2` as an async context manager that owns a nursery.

    It takes the same arguments but ``nursery``: the connection's background
    reader runs in the block's own nursery, so the connection stays
    serviced while idle, and ends with the block, which closes the
    connection (GOAWAY; when the block ends with an exception, cancellation
    and ``KeyboardInterrupt`` included, the GOAWAY is sent under a shielded
    deadline of at most 1 s: see
    :meth:`~trio_upgrade.HTTP2Connection.going_away`). An error from the
    block or the reader is raised as itself, not in an exception group,
    when it is the only one. An option that is not one of
    :class:`ConnectOptions` is a :exc:`TypeError` at once.

    ::

        import trio
        import trio_upgrade

        async def main():
            async with trio_upgrade.open_http2("http://localhost:8080/") as conn:
                response = await conn.request("GET", "/")
                print(response.status_code, response.content)

        trio.run(main)
    """
    check_keys("open_http2", connect, CONNECT_KEYS)
    return _open_http2(url, options, connect)


@asynccontextmanager
async def _open_http2(
    url: str, options: HTTP2Options | None, connect: ConnectOptions
) -> AsyncIterator[HTTP2Connection]:
    with lone_errors_unwrapped():
        async with trio.open_nursery() as nursery:
            conn = await connect_http2(url, options=options, nursery=nursery, **connect)
            try:
                yield conn
            except BaseException as exc:
                # Cancelled, interrupted or failed: GOAWAY under a short
                # shielded deadline (HTTP2Connection.__aexit__).
                await conn.__aexit__(type(exc), exc, exc.__traceback__)
                nursery.cancel_scope.cancel()
                raise
            else:
                # Bounded by limits.close_timeout; a goodbye if the scope
                # is already cancelled.
                await conn.__aexit__(None, None, None)
                nursery.cancel_scope.cancel()
