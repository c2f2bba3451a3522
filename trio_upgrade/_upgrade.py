"""``upgrade()`` and ``open_upgrade()``: the trio code that moves the bytes.

Everything protocol-specific happens in the offers (``_protocol``); everything
HTTP/1.1-specific happens in the sans-I/O ``Handshake``. This module connects
them to sockets, applies the time limits, walks the negotiation plan and
makes sure that whatever happens, including cancellation, no socket is left
open.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, TypeVar, overload

import trio

from ._errors import Attempt, InvalidResponse, UpgradeError, UpgradeRefused
from ._groups import lone_errors_unwrapped
from ._http2._protocol import H2C, HTTP2Connection
from ._limits import Limits
from ._protocol import BuildContext, Offer, UpgradeProtocol
from ._raw import Raw, RawStream
from ._resolve import ProtocolSpec, resolve_protocols
from ._sansio._handshake import (
    NEED_DATA,
    Handshake,
    Informational,
    Refused,
    Switched,
    build_request,
    check_extra_headers,
    select_offer,
)
from ._sansio._url import Target, parse_url
from ._timeout import UpgradeTimeout
from ._transport._connect import connect_transport, deadline_from
from ._transport._proxy import Proxy, parse_proxy
from ._websocket import WebSocket, WebSocketConnection

__all__ = ["Strategy", "open_upgrade", "upgrade"]

logger = logging.getLogger("trio_upgrade")

T = TypeVar("T")

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

WebSocketSpec = Literal["websocket"] | WebSocket
H2CSpec = Literal["h2c"] | H2C
BuiltinSpec = str | WebSocket | H2C | Raw
HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]]

#: One read's size. 64 KiB: the most a loopback or LAN read usually yields,
#: and wsproto/h2 parse large messages several times faster when fed big
#: chunks (measured: 8x for 1 MiB WebSocket messages, 64 KiB vs 4 KiB reads).
RECEIVE_SIZE = 65536


#: The limits used when the caller gives none (Limits is frozen).
_DEFAULT_LIMITS = Limits()


@functools.lru_cache(maxsize=64)
def _parse_url_cached(url: str) -> Target:
    # Target is frozen and parse_url a pure function of the string; errors
    # are not cached, so a bad URL raises every time.
    return parse_url(url)


def _header_pairs(headers: HeadersArg | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


async def _exchange(
    stream: trio.abc.Stream, handshake: Handshake, request_bytes: bytes
) -> Switched | Refused:
    try:
        await stream.send_all(request_bytes)
        while True:
            event = handshake.next_event()
            if event is NEED_DATA:
                handshake.receive_data(await stream.receive_some(RECEIVE_SIZE))
            elif isinstance(event, Informational):
                status = event.response.status_code
                logger.debug("skipping informational response %s", status)
            else:
                assert isinstance(event, (Switched, Refused))
                return event
    except trio.BrokenResourceError as exc:
        # A reset (or a write to a closed peer) mid-handshake: the reply is
        # as cut short as if the server had closed cleanly.
        refused = handshake.cut_short()
        if refused is not None:
            return refused  # a refusal, whatever became of its body
        cause = exc.__cause__ or exc
        raise InvalidResponse(
            f"the connection broke after {handshake.received} bytes of the "
            f"response: {cause}",
            received=handshake.received,
        ) from exc


async def _negotiate(
    target: Target,
    protocols: Sequence[UpgradeProtocol[Any]],
    *,
    headers: list[tuple[str, str]],
    strategy: Strategy,
    limits: Limits,
    ssl_context: ssl.SSLContext | None,
    nursery: trio.Nursery | None,
    transport: trio.abc.Stream | None,
    proxy: Proxy | None,
) -> Any:
    if strategy == "combined":
        plan = [list(protocols)]
    elif strategy == "sequential":
        plan = [[p] for p in protocols]
    else:
        raise ValueError(
            f"strategy must be 'sequential' or 'combined', got {strategy!r}"
        )
    plan = plan[: limits.max_attempts]
    attempts: list[Attempt] = []
    last: Refused | None = None
    stream: trio.abc.Stream | None = transport
    handshake = Handshake(limits) if transport is not None else None
    # The attempt under way, for the error that may end it.
    failing: Attempt | None = None
    try:
        for group in plan:
            connect = stream is None or handshake is None
            if connect and transport is not None:
                break  # the given transport is spent; we cannot reconnect
            outcome: Switched | Refused | None = None
            phase, timeout = "handshake", limits.handshake_timeout
            if connect:
                phase, timeout = "connect", limits.connect_timeout
            failing = Attempt([p.token for p in group], None, None)
            # One cancel scope for connect and handshake, its deadline moved
            # from one limit to the other: a scope costs about as much as a
            # scheduler pass.
            with trio.CancelScope(deadline=deadline_from(timeout)) as scope:
                if connect:
                    stream = await connect_transport(
                        target,
                        ssl_context=ssl_context,
                        proxy=proxy,
                        max_head_size=limits.max_head_size,
                    )
                    handshake = Handshake(limits)
                    if not scope.cancel_called:
                        phase, timeout = "handshake", limits.handshake_timeout
                        scope.deadline = deadline_from(timeout)
                    # else connect_timeout passed as the connection completed:
                    # a cancelled scope stays cancelled, so the next
                    # checkpoint ends the attempt as a connect timeout.
                assert stream is not None and handshake is not None
                offers: list[Offer[Any]] = [p.offer(target) for p in group]
                request = build_request(
                    target,
                    offers,
                    [field for offer in offers for field in offer.headers()],
                    headers,
                )
                request_bytes = handshake.send_request(request)
                outcome = await _exchange(stream, handshake, request_bytes)
                failing.status_code = outcome.response.status_code
                if isinstance(outcome, Switched):
                    offer = offers[select_offer(outcome.response, offers)]
                    offer.validate(outcome.response)
                    context = BuildContext(
                        target, request, outcome.response, limits, nursery
                    )
                    connection = await offer.build(stream, outcome.leftover, context)
                    stream = None  # the connection owns it now
                    return connection
            if scope.cancelled_caught and outcome is None and handshake is not None:
                # The deadline passed while a refusal's body was being read:
                # the status and headers came, so the server did answer.
                outcome = handshake.cut_short()
            if not isinstance(outcome, Refused):
                raise UpgradeTimeout(phase, timeout)
            failing.status_code = outcome.response.status_code
            attempts.append(failing)
            last, failing = outcome, None
            logger.debug(
                "offer of %s declined with %s",
                ", ".join(o.token for o in offers),
                outcome.response.status_code,
            )
            if not outcome.reusable:
                closing, stream, handshake = stream, None, None
                assert closing is not None
                await trio.aclose_forcefully(closing)
        assert last is not None
        raise UpgradeRefused(
            last.response,
            last.body,
            body_truncated=last.truncated,
            attempts=attempts,
        )
    except UpgradeError as exc:
        # An attempt failed otherwise than by a refusal: the error still
        # says what the earlier attempts got, and what this one got.
        if failing is not None:
            attempts.append(failing)
            failing.error = exc
            exc.attempts = tuple(attempts)
        raise
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)


# The return type follows the offer. The built-in kinds get one overload
# each and one per pair because mypy types a list display by joining its
# elements: in the generic overload, [WebSocket(), H2C()] would be
# list[UpgradeProtocol[object]] and the result ``object``, where a concrete
# union as the expected type keeps each element's own type (and reads
# "websocket" and "h2c" as their Literal types). Lists of several custom
# protocols still join (pyright, which solves to a union, does better).
@overload
async def upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: WebSocketSpec | Sequence[WebSocketSpec],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    nursery: trio.Nursery | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> WebSocketConnection: ...
@overload
async def upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: H2CSpec | Sequence[H2CSpec],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    nursery: trio.Nursery | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> HTTP2Connection: ...
@overload
async def upgrade(
    url: str,
    protocols: Raw | Sequence[Raw],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    nursery: trio.Nursery | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> RawStream: ...
@overload
async def upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: Sequence[WebSocketSpec | H2CSpec],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    nursery: trio.Nursery | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> WebSocketConnection | HTTP2Connection: ...
@overload
async def upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: Sequence[WebSocketSpec | Raw],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    nursery: trio.Nursery | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> WebSocketConnection | RawStream: ...
@overload
async def upgrade(
    url: str,
    protocols: Sequence[H2CSpec | Raw],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    nursery: trio.Nursery | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> HTTP2Connection | RawStream: ...
@overload
async def upgrade(
    url: str,
    protocols: BuiltinSpec | Sequence[BuiltinSpec],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    nursery: trio.Nursery | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> WebSocketConnection | HTTP2Connection | RawStream: ...
@overload
async def upgrade(
    url: str,
    protocols: UpgradeProtocol[T] | Sequence[UpgradeProtocol[T]],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    nursery: trio.Nursery | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> T: ...
@overload
async def upgrade(
    url: str,
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    nursery: trio.Nursery | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> Any: ...
async def upgrade(
    url: str,
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    nursery: trio.Nursery | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> Any:
    """Connect to ``url``, upgrade to one of ``protocols``, return the connection.

    Args:
        url: ``http://``, ``ws://``, ``https://`` or ``wss://`` URL.
        protocols: the protocols to offer, most preferred first: tokens
            (``"websocket"``, ``"h2c"``, anything else is raw) or protocol
            objects carrying options (``WebSocket(...)``, ``H2C(...)``,
            ``Raw(...)``, or your own :class:`UpgradeProtocol`).
        headers: extra request header fields (``Authorization``, ``Origin``,
            cookies...). ``Upgrade``, ``Connection`` and framing fields are
            the handshake's and may not be set.
        strategy: how several protocols are offered; see :data:`Strategy`.
        limits: time and size limits; see :class:`Limits`.
        ssl_context: for ``https``/``wss``; the default verifies
            certificates and offers ALPN ``http/1.1`` only.
        nursery: where connections that need background tasks (keepalive
            pings) run them. Without one they run none; see
            :func:`open_upgrade`.
        transport: an already open stream to send the request on instead of
            connecting to ``url`` (which then only gives the ``Host`` field
            and the request target): a proxy tunnel, a Unix socket, or one
            end of ``trio.testing.memory_stream_pair()`` in tests. It is
            closed on failure like any connection; when a declined offer
            leaves it unusable, no other connection is opened.
        proxy: an ``http://[user:password@]host:port`` HTTP proxy to reach
            the server through, with a ``CONNECT`` tunnel (TLS, for https and
            wss, runs inside the tunnel). Environment variables such as
            ``HTTP_PROXY`` are not read: pass them here if you want them.

    Returns:
        The connection of the protocol the server chose (a
        :class:`WebSocketConnection`, an :class:`HTTP2Connection`, a
        :class:`RawStream`, or what a custom protocol builds). The caller
        owns it and must close it (``async with conn:`` or ``aclose()``).

    Raises:
        InvalidURL: ``url`` cannot be used.
        ValueError: ``protocols`` or ``headers`` is malformed.
        ConnectError: the connection could not be opened
            (:class:`ProxyError` when the proxy refused the tunnel).
        UpgradeTimeout: ``limits.connect_timeout`` or
            ``limits.handshake_timeout`` passed before a final status came.
        UpgradeRefused: the server answered every offer with a final status
            other than 101; carries the last response, its bounded body and
            every attempt. A refusal whose body was cut short (by
            ``limits.handshake_timeout``, a close or a reset) is still one,
            with ``body_truncated`` set.
        InvalidResponse: the server's reply is not valid HTTP/1.1, too large,
            or cut short.
        InvalidUpgrade: the 101 breaks the contract (names a protocol that
            was not offered, several, a bad ``Sec-WebSocket-Accept``...).

    Every :class:`UpgradeError` raised here lists the requests made, in
    ``attempts``.
    """
    target = _parse_url_cached(url) if type(url) is str else parse_url(url)
    resolved = resolve_protocols(protocols)
    extra = check_extra_headers(_header_pairs(headers))
    return await _negotiate(
        target,
        resolved,
        headers=extra,
        strategy=strategy,
        limits=limits if limits is not None else _DEFAULT_LIMITS,
        ssl_context=ssl_context,
        nursery=nursery,
        transport=transport,
        proxy=parse_proxy(proxy) if proxy is not None else None,
    )


# The same overloads as upgrade()'s, for the same reason.
@overload
def open_upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: WebSocketSpec | Sequence[WebSocketSpec],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> AbstractAsyncContextManager[WebSocketConnection]: ...
@overload
def open_upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: H2CSpec | Sequence[H2CSpec],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> AbstractAsyncContextManager[HTTP2Connection]: ...
@overload
def open_upgrade(
    url: str,
    protocols: Raw | Sequence[Raw],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> AbstractAsyncContextManager[RawStream]: ...
@overload
def open_upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: Sequence[WebSocketSpec | H2CSpec],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> AbstractAsyncContextManager[WebSocketConnection | HTTP2Connection]: ...
@overload
def open_upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: Sequence[WebSocketSpec | Raw],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> AbstractAsyncContextManager[WebSocketConnection | RawStream]: ...
@overload
def open_upgrade(
    url: str,
    protocols: Sequence[H2CSpec | Raw],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> AbstractAsyncContextManager[HTTP2Connection | RawStream]: ...
@overload
def open_upgrade(
    url: str,
    protocols: BuiltinSpec | Sequence[BuiltinSpec],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> AbstractAsyncContextManager[WebSocketConnection | HTTP2Connection | RawStream]: ...
@overload
def open_upgrade(
    url: str,
    protocols: UpgradeProtocol[T] | Sequence[UpgradeProtocol[T]],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> AbstractAsyncContextManager[T]: ...
@overload
def open_upgrade(
    url: str,
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> AbstractAsyncContextManager[Any]: ...
def open_upgrade(
    url: str,
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    *,
    headers: HeadersArg | None = None,
    strategy: Strategy = "sequential",
    limits: Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    transport: trio.abc.Stream | None = None,
    proxy: str | None = None,
) -> AbstractAsyncContextManager[Any]:
    """Like :func:`upgrade`, as an async context manager that owns a nursery.

    Connections that run background tasks (WebSocket keepalive pings, an
    HTTP/2 reader) run them in this nursery. On exit the connection is
    closed and its tasks end. An error from those tasks, or from the body,
    is raised as itself, not wrapped in an exception group, when it is the
    only one.

    ::

        import trio
        import trio_upgrade

        async def main():
            url = "ws://localhost:8080/"
            async with trio_upgrade.open_upgrade(url, ["websocket"]) as ws:
                await ws.send("hi")
                print(await ws.receive())

        trio.run(main)
    """
    return _open_upgrade(
        url,
        protocols,
        headers=headers,
        strategy=strategy,
        limits=limits,
        ssl_context=ssl_context,
        transport=transport,
        proxy=proxy,
    )


@asynccontextmanager
async def _open_upgrade(
    url: str,
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    **options: Any,
) -> AsyncIterator[Any]:
    with lone_errors_unwrapped():
        async with trio.open_nursery() as nursery:
            connection = await upgrade(url, protocols, nursery=nursery, **options)
            try:
                yield connection
            finally:
                # aclose() is bounded by limits.close_timeout and, per Trio's
                # contract, closes forcefully if it is cancelled.
                await connection.aclose()
                nursery.cancel_scope.cancel()
