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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, TypeVar, overload

import trio

from ._ending import close_after
from ._groups import lone_errors_unwrapped
from ._http2._protocol import H2, H2C, HTTP2Connection, start_http2
from ._options import (
    UPGRADE_KEYS,
    ConnectSettings,
    Strategy,
    Unpack,
    UpgradeOptions,
    check_keys,
    connect_settings,
)
from ._protocol import BuildContext, Offer, UpgradeProtocol
from ._raw import TLS, Raw, RawStream
from ._resolve import ProtocolSpec, resolve_protocols
from ._sansio._auth import BasicAuth, check_auth
from ._sansio._errors import (
    Attempt,
    HTTP2NotSelected,
    InvalidResponse,
    InvalidURL,
    RedirectError,
    UpgradeError,
    UpgradeRefused,
)
from ._sansio._handshake import (
    NEED_DATA,
    CheckedFields,
    Handshake,
    Informational,
    Refused,
    Switched,
    build_request,
    check_extra_headers,
    select_offer,
)
from ._sansio._limits import RECEIVE_SIZE
from ._sansio._messages import Request, Response
from ._sansio._redirect import RedirectChain
from ._sansio._url import Target, parse_url, redacted, split_userinfo
from ._timeout import UpgradeTimeout
from ._transport._connect import connect_transport, deadline_from
from ._transport._fastio import ConnectionIO
from ._transport._observed import HANDSHAKE_LOG, Trace, emit, observe
from ._transport._proxy import Proxy
from ._transport._tls import H2_UPGRADE_ALPN, HTTP11_ALPN
from ._websocket import WebSocket, WebSocketConnection

__all__ = [
    "Arrange",
    "Record",
    "open_upgrade",
    "open_with",
    "parse_target",
    "upgrade",
    "upgrade_with",
]

logger = logging.getLogger("trio_upgrade")

T = TypeVar("T")

WebSocketSpec = Literal["websocket"] | WebSocket
#: HTTP/2 either way: by the h2c upgrade, or selected by ALPN over TLS.
HTTP2Spec = Literal["h2c", "h2"] | H2C | H2
BuiltinSpec = str | WebSocket | H2C | H2 | Raw


@functools.lru_cache(maxsize=64)
def _parse_url_cached(url: str) -> Target:
    # Target is frozen and parse_url a pure function of the string; errors
    # are not cached, so a bad URL raises every time.
    return parse_url(url)


async def _exchange(
    stream: trio.abc.Stream,
    handshake: Handshake,
    request_bytes: bytes,
    *,
    connected: bool,
) -> Switched | Refused:
    try:
        # Right after our connect (a schedule point), on a socket that takes
        # the request at once, sending it needs no schedule point of its
        # own: the read of the response that follows waits.
        io = ConnectionIO(stream, after_schedule_point=connected)
        if io.sock is not None:
            await trio.lowlevel.checkpoint_if_cancelled()
            await io.send_all(request_bytes)
        else:
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


#: One tuple per distinct list of offered tokens, kept by every Attempt
#: that offers it (and so by every connection): bounded, cleared when full.
_OFFERED: dict[tuple[str, ...], tuple[str, ...]] = {}


def _offered(group: Sequence[UpgradeProtocol[Any]]) -> tuple[str, ...]:
    tokens = tuple([p.token for p in group])
    shared = _OFFERED.get(tokens)
    if shared is None:
        if len(_OFFERED) >= 64:
            _OFFERED.clear()
        shared = _OFFERED[tokens] = tokens
    return shared


@dataclass
class Record:
    """What one negotiation did, for callers that learn from it (``Client``).

    ``attempts`` is the list ``_negotiate`` appends its attempts to (the
    same objects its errors carry); ``chosen`` the token of the protocol the
    connection was built for, once one was.
    """

    attempts: list[Attempt] = field(default_factory=list)
    chosen: str | None = None


def _plan(
    protocols: Sequence[UpgradeProtocol[Any]], strategy: Strategy
) -> list[list[UpgradeProtocol[Any]]]:
    """The groups of protocols to offer in turn, one request (or ALPN) each."""
    if strategy == "sequential":
        return [[p] for p in protocols]
    if strategy == "combined":
        # ALPN happens before any request: h2 is offered first, alone, and
        # the rest in one request if the server does not select it.
        alpn: list[list[UpgradeProtocol[Any]]]
        alpn = [[p] for p in protocols if isinstance(p, H2)]
        rest = [p for p in protocols if not isinstance(p, H2)]
        return alpn + ([rest] if rest else [])
    raise ValueError(f"strategy must be 'sequential' or 'combined', got {strategy!r}")


def _selected_alpn(stream: trio.abc.Stream | None) -> str | None:
    if stream is None or type(stream) is trio.SocketStream:
        return None  # no TLS: spares an isinstance() against the ABC
    if isinstance(stream, trio.SSLStream):
        selected: str | None = stream.selected_alpn_protocol()
        return selected
    return None


def _sent(
    request: Request, target: Target, offered: list[str], trace: Trace | None
) -> None:
    """Log (``trio_upgrade.handshake``, DEBUG) and trace a request sent."""
    if HANDSHAKE_LOG.isEnabledFor(logging.DEBUG):
        for line in str(request).splitlines():
            HANDSHAKE_LOG.debug("%s > %s", target.url, line)
    if trace is not None:
        emit(trace, "request.sent", {"url": target.url, "offered": offered})


def _answered(response: Response, target: Target, trace: Trace | None) -> None:
    """Log and trace the head of the final response to a request."""
    if HANDSHAKE_LOG.isEnabledFor(logging.DEBUG):
        for line in str(response).splitlines():
            HANDSHAKE_LOG.debug("%s < %s", target.url, line)
    if trace is not None:
        emit(
            trace, "response.head", {"url": target.url, "status": response.status_code}
        )


async def _negotiate(
    target: Target,
    protocols: Sequence[UpgradeProtocol[Any]],
    *,
    headers: CheckedFields,
    strategy: Strategy,
    settings: ConnectSettings,
    nursery: trio.Nursery | None,
    record: Record | None = None,
    redirects: RedirectChain | None = None,
) -> Any:
    limits, transport = settings.limits, settings.transport
    trace = settings.trace
    observed = trace is not None or HANDSHAKE_LOG.isEnabledFor(logging.DEBUG)
    plan = _plan(protocols, strategy)[: limits.max_attempts]
    h2 = next((p for p in protocols if isinstance(p, H2)), None)
    if redirects is None:
        redirects = RedirectChain(
            target, follow=False, max_redirects=0, fields=headers, auth=None
        )
    attempts: list[Attempt] = record.attempts if record is not None else []
    last: Refused | HTTP2NotSelected | None = None
    # Why the last refusal's Location was not followed, if it was bad.
    bad_location: ValueError | None = None
    stream: trio.abc.Stream | None = transport
    handshake = Handshake(limits) if transport is not None else None
    selected = _selected_alpn(transport)  # the ALPN protocol of the connection
    # The attempt under way, for the error that may end it.
    failing: Attempt | None = None
    # The proxy of the latest connection made (for a connect timeout's
    # message): chosen for each hop, as a redirect may change the scheme or
    # the host, and so the variable or the no_proxy entry that applies.
    proxy: Proxy | None = None
    try:
        index = 0
        while index < len(plan):
            group = plan[index]
            by_alpn = isinstance(group[0], H2)
            if by_alpn and transport is None and stream is not None:
                # ALPN happens in the TLS handshake, once: h2 needs a new
                # connection (one that carried HTTP/1.1 selected something
                # else already).
                previous, stream, handshake = stream, None, None
                await trio.aclose_forcefully(previous)
            connect = stream is None or handshake is None
            if connect and transport is not None:
                break  # the given transport is spent; we cannot reconnect
            outcome: Switched | Refused | HTTP2NotSelected | None = None
            phase, timeout = "handshake", limits.handshake_timeout
            if connect:
                phase, timeout = "connect", limits.connect_timeout
            failing = Attempt(_offered(group), None, None, url=target.url)
            # One cancel scope for connect and handshake, its deadline moved
            # from one limit to the other: a scope costs about as much as a
            # scheduler pass.
            with trio.CancelScope(deadline=deadline_from(timeout)) as scope:
                if connect:
                    # The target of this hop: after a redirect, the proxy
                    # decision and TLS are made for the new one.
                    proxy = settings.proxy_for(target)
                    stream = await connect_transport(
                        target,
                        ssl_context=settings.ssl_context,
                        proxy=proxy,
                        proxy_ssl_context=settings.proxy_ssl_context,
                        unix_socket=settings.unix_socket,
                        max_head_size=limits.max_head_size,
                        max_informational=limits.max_informational,
                        alpn=H2_UPGRADE_ALPN if by_alpn else HTTP11_ALPN,
                        trace=trace,
                    )
                    handshake = Handshake(limits)
                    selected = _selected_alpn(stream)
                    if not scope.cancel_called:
                        phase, timeout = "handshake", limits.handshake_timeout
                        scope.deadline = deadline_from(timeout)
                    # else connect_timeout passed as the connection completed:
                    # a cancelled scope stays cancelled, so the next
                    # checkpoint ends the attempt as a connect timeout.
                assert stream is not None and handshake is not None
                if h2 is not None and selected == "h2":
                    # The server chose HTTP/2 (a caller's ssl_context may
                    # offer h2 on any connection): no HTTP/1.1 is possible.
                    failing = Attempt([h2.token], None, None, url=target.url)
                    connection = await start_http2(
                        stream,
                        target,
                        h2.options,
                        limits,
                        (*attempts, failing),
                        nursery=nursery,
                        trace=trace,
                    )
                    stream = None  # the connection owns it now
                    if record is not None:
                        record.chosen = h2.token
                    return connection
                if by_alpn:
                    outcome = HTTP2NotSelected(target.authority, selected)
                else:
                    offers: list[Offer[Any]] = [p.offer(target) for p in group]
                    request = build_request(
                        target,
                        offers,
                        [pair for offer in offers for pair in offer.headers()],
                        CheckedFields(redirects.fields),
                    )
                    request_bytes = handshake.send_request(request)
                    failing.request = request
                    if observed:
                        _sent(request, target, [o.token for o in offers], trace)
                    outcome = await _exchange(
                        stream, handshake, request_bytes, connected=connect
                    )
                    failing.status_code = outcome.response.status_code
                    failing.response = outcome.response
                    if observed:
                        _answered(outcome.response, target, trace)
                    if isinstance(outcome, Switched):
                        offer = offers[select_offer(outcome.response, offers)]
                        offer.validate(outcome.response)
                        context = BuildContext(
                            target,
                            request,
                            outcome.response,
                            limits,
                            nursery,
                            (*attempts, failing),
                        )
                        leftover = outcome.leftover
                        if trace is not None:
                            emit(
                                trace,
                                "switched",
                                {"url": target.url, "protocol": offer.token},
                            )
                        # A wrapper that logs the frames, only if looked at.
                        switched = observe(
                            stream,
                            offer.token,
                            target.url,
                            leftover=leftover,
                            trace=trace,
                        )
                        connection = await offer.build(switched, leftover, context)
                        stream = None  # the connection owns it now
                        if record is not None:
                            record.chosen = offer.token
                        return connection
            if isinstance(outcome, HTTP2NotSelected):
                # The HTTP/1.1 path goes on, on the same connection.
                failing.error = outcome
                attempts.append(failing)
                last, failing = outcome, None
                logger.debug("ALPN h2 not selected (selected %r)", selected)
                index += 1
                continue
            if scope.cancelled_caught and outcome is None and handshake is not None:
                # The deadline passed while a refusal's body was being read:
                # the status and headers came, so the server did answer.
                outcome = handshake.cut_short()
            if not isinstance(outcome, Refused):
                through = proxy.url if proxy is not None and connect else ""
                raise UpgradeTimeout(phase, timeout, proxy=through)
            failing.status_code = outcome.response.status_code
            failing.response = outcome.response
            attempts.append(failing)
            last, failing, bad_location = outcome, None, None
            try:
                hop = redirects.next_target(target, outcome.response)
            except ValueError as exc:  # InvalidURL, or not for these offers
                hop, bad_location = None, exc
            except RedirectError as exc:
                exc.attempts = tuple(attempts)
                raise
            if hop is None:
                index += 1
                logger.debug(
                    "offer of %s declined with %s",
                    ", ".join(p.token for p in group),
                    outcome.response.status_code,
                )
            else:
                logger.debug(
                    "following redirect %s from %s to %s",
                    outcome.response.status_code,
                    target.url,
                    hop.url,
                )
            # A redirect to the same origin goes on the same connection when
            # the server keeps it; another origin needs its own.
            same_connection = hop is None or hop.origin == target.origin
            if not outcome.reusable or not same_connection:
                closing, stream, handshake = stream, None, None
                assert closing is not None
                await trio.aclose_forcefully(closing)
            if hop is not None:
                if transport is not None and stream is None:
                    raise RedirectError(
                        "transport",
                        response=outcome.response,
                        location=hop.url,
                        chain=redirects.urls,
                        attempts=attempts,
                    )
                target = hop
        if isinstance(last, HTTP2NotSelected):
            last.attempts = tuple(attempts)
            raise last
        assert last is not None
        raise UpgradeRefused(
            last.response,
            last.body,
            body_truncated=last.truncated,
            attempts=attempts,
        ) from bad_location
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


# The return type follows the offer; the options are the same in every
# overload. The built-in kinds get one overload each and one per pair because
# mypy types a list display by joining its elements: in the generic
# overload, [WebSocket(), H2C()] would be list[UpgradeProtocol[object]] and
# the result ``object``, where a concrete union as the expected type keeps
# each element's own type (and reads "websocket" and "h2c" as their Literal
# types). Lists of several custom protocols still join (pyright, which
# solves to a union, does better).
@overload
async def upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: WebSocketSpec | Sequence[WebSocketSpec],
    *,
    nursery: trio.Nursery | None = None,
    **options: Unpack[UpgradeOptions],
) -> WebSocketConnection: ...
@overload
async def upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: HTTP2Spec | Sequence[HTTP2Spec],
    *,
    nursery: trio.Nursery | None = None,
    **options: Unpack[UpgradeOptions],
) -> HTTP2Connection: ...
@overload
async def upgrade(
    url: str,
    protocols: Raw | Sequence[Raw],
    *,
    nursery: trio.Nursery | None = None,
    **options: Unpack[UpgradeOptions],
) -> RawStream: ...
@overload
async def upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: Sequence[WebSocketSpec | HTTP2Spec],
    *,
    nursery: trio.Nursery | None = None,
    **options: Unpack[UpgradeOptions],
) -> WebSocketConnection | HTTP2Connection: ...
@overload
async def upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: Sequence[WebSocketSpec | Raw],
    *,
    nursery: trio.Nursery | None = None,
    **options: Unpack[UpgradeOptions],
) -> WebSocketConnection | RawStream: ...
@overload
async def upgrade(
    url: str,
    protocols: Sequence[HTTP2Spec | Raw],
    *,
    nursery: trio.Nursery | None = None,
    **options: Unpack[UpgradeOptions],
) -> HTTP2Connection | RawStream: ...
@overload
async def upgrade(
    url: str,
    protocols: BuiltinSpec | Sequence[BuiltinSpec],
    *,
    nursery: trio.Nursery | None = None,
    **options: Unpack[UpgradeOptions],
) -> WebSocketConnection | HTTP2Connection | RawStream: ...
@overload
async def upgrade(
    url: str,
    protocols: UpgradeProtocol[T] | Sequence[UpgradeProtocol[T]],
    *,
    nursery: trio.Nursery | None = None,
    **options: Unpack[UpgradeOptions],
) -> T: ...
@overload
async def upgrade(
    url: str,
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    *,
    nursery: trio.Nursery | None = None,
    **options: Unpack[UpgradeOptions],
) -> Any: ...
async def upgrade(
    url: str,
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    *,
    nursery: trio.Nursery | None = None,
    **options: Unpack[UpgradeOptions],
) -> Any:
    """Connect to ``url``, upgrade to one of ``protocols``, return the connection.

    Args:
        url: ``http://``, ``ws://``, ``https://`` or ``wss://`` URL. User
            info in it (``ws://user:pass@host/``, percent-encoded) is sent as
            Basic credentials to that origin only, never as part of the URL.
        protocols: the protocols to offer, most preferred first: tokens
            (``"websocket"``, ``"h2c"``, ``"h2"``, anything else is raw) or
            protocol objects carrying options (``WebSocket(...)``,
            ``H2C(...)``, ``H2(...)``, ``Raw(...)``, or your own
            :class:`UpgradeProtocol`). ``"h2"`` (``https``/``wss`` only)
            is HTTP/2 selected by ALPN in the TLS handshake; see
            :doc:`/howto/http2-alpn`.
        nursery: where connections that need background tasks (keepalive
            pings) run them. Without one they run none; see
            :func:`open_upgrade`.
        **options: ``headers``, ``strategy``, ``limits``, ``ssl_context``,
            ``proxy``, ``transport``, ``unix_socket``; see
            :class:`UpgradeOptions`.

    Returns:
        The connection of the protocol the server chose (a
        :class:`WebSocketConnection`, an :class:`HTTP2Connection`, a
        :class:`RawStream`, or what a custom protocol builds). The caller
        owns it and must close it (``async with conn:`` or ``aclose()``).

    Raises:
        TypeError: an option that is not one of :class:`UpgradeOptions`, or
            of the wrong type (``auth``, ``follow_redirects``).
        InvalidURL: ``url`` or ``proxy`` cannot be used.
        ValueError: ``protocols``, ``headers``, ``strategy`` or ``auth`` is
            malformed, credentials are given twice (URL, ``auth``, an
            ``Authorization`` field), ``"h2"`` is offered for a cleartext
            URL or ``"h2c"`` for a TLS one, or ``unix_socket`` is given with
            ``proxy`` or ``transport``.
        ConnectError: the connection could not be opened
            (:class:`ProxyError` when the proxy refused the tunnel); for a
            ``unix_socket`` that is missing, not a socket or not permitted,
            the message names its path.
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
        HTTP2NotSelected: ``"h2"`` was offered by ALPN, the server selected
            something else, and no other protocol remained.
        ProtocolError: the server selected ``h2`` by ALPN but does not
            speak HTTP/2 (:class:`ConnectionClosed` if it closed before its
            SETTINGS).
        RedirectError: a redirect that is not followed: one too many
            (``Limits.max_redirects``), a loop, from TLS to cleartext, or
            away from the given ``transport``.

    Every :class:`UpgradeError` raised here lists the requests made, in
    ``attempts`` (each with its URL, so a redirect chain shows hop by hop),
    as the connection returned does in its own ``attempts``. No message,
    ``repr()`` or log line shows a password or an ``Authorization`` value.
    """
    return await upgrade_with(url, protocols, nursery, options)


#: Puts the resolved protocols in the order to offer them (a Client's memory).
Arrange = Callable[[Target, list[UpgradeProtocol[Any]]], list[UpgradeProtocol[Any]]]


async def upgrade_with(
    url: str,
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    nursery: trio.Nursery | None,
    options: UpgradeOptions,
    *,
    arrange: Arrange | None = None,
    record: Record | None = None,
) -> Any:
    """:func:`upgrade`, with ``arrange`` reordering the offers and ``record``
    filled in with the attempts and the chosen protocol (for ``Client``)."""
    settings = connect_settings("upgrade", options, UPGRADE_KEYS)
    credentials: BasicAuth | None = None
    if type(url) is str and "@" in url:
        url, credentials = _credentials_from(url)
    target = parse_target(url)
    resolved = resolve_protocols(protocols, target)
    if arrange is not None:
        resolved = arrange(target, resolved)
    headers = check_extra_headers(options.get("headers"))
    auth = options.get("auth")
    if auth is not None:
        if credentials is not None:
            raise ValueError(
                "credentials given twice, in the URL and as auth=: give them once"
            )
        credentials = check_auth(auth)
    if credentials is not None and any(
        n.lower() == "authorization" for n, _ in headers
    ):
        raise ValueError(
            "an Authorization header and credentials (auth= or in the URL) "
            "were both given: give one"
        )
    follow = options.get("follow_redirects", True)
    if not isinstance(follow, bool):
        raise TypeError(f"follow_redirects must be a bool, got {follow!r}")
    redirects = RedirectChain(
        target,
        follow=follow,
        max_redirects=settings.limits.max_redirects,
        fields=headers,
        auth=credentials,
        check=_offers_check(resolved),
    )
    return await _negotiate(
        target,
        resolved,
        headers=headers,
        strategy=options.get("strategy", "sequential"),
        settings=settings,
        nursery=nursery,
        record=record,
        redirects=redirects,
    )


def _offers_check(
    protocols: Sequence[UpgradeProtocol[Any]],
) -> Callable[[Target], None] | None:
    """What a redirect's target must pass for ``protocols`` to be offered there.

    An upgrade to TLS (RFC 2817) cannot be sent over TLS: a redirect from
    ``http`` to ``https`` ends the offer as a refusal rather than in a
    ``ValueError`` from the middle of the negotiation.
    """
    tls = [p for p in protocols if isinstance(p, TLS)]
    if not tls:
        return None

    def check(target: Target) -> None:
        for protocol in tls:
            protocol.check_target(target)

    return check


def _credentials_from(url: str) -> tuple[str, BasicAuth | None]:
    """``url`` without its user info, and that user info as Basic credentials.

    Raises:
        InvalidURL: the decoded user info cannot be Basic credentials (a
            control character, a ``:`` in the user name).
    """
    bare, userinfo = split_userinfo(url)
    if userinfo is None:
        return url, None
    try:
        return bare, BasicAuth(*userinfo)
    except ValueError as exc:
        # BasicAuth's messages name the rule broken, never the value.
        raise InvalidURL(
            f"the credentials in {redacted(url)!r} cannot be sent: {exc}"
        ) from None


def parse_target(url: str) -> Target:
    """``parse_url``, cached for strings (a ``Target`` is frozen)."""
    return _parse_url_cached(url) if type(url) is str else parse_url(url)


# The same overloads as upgrade()'s, for the same reason.
@overload
def open_upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: WebSocketSpec | Sequence[WebSocketSpec],
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[WebSocketConnection]: ...
@overload
def open_upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: HTTP2Spec | Sequence[HTTP2Spec],
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[HTTP2Connection]: ...
@overload
def open_upgrade(
    url: str,
    protocols: Raw | Sequence[Raw],
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[RawStream]: ...
@overload
def open_upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: Sequence[WebSocketSpec | HTTP2Spec],
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[WebSocketConnection | HTTP2Connection]: ...
@overload
def open_upgrade(  # type: ignore[overload-overlap]
    url: str,
    protocols: Sequence[WebSocketSpec | Raw],
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[WebSocketConnection | RawStream]: ...
@overload
def open_upgrade(
    url: str,
    protocols: Sequence[HTTP2Spec | Raw],
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[HTTP2Connection | RawStream]: ...
@overload
def open_upgrade(
    url: str,
    protocols: BuiltinSpec | Sequence[BuiltinSpec],
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[WebSocketConnection | HTTP2Connection | RawStream]: ...
@overload
def open_upgrade(
    url: str,
    protocols: UpgradeProtocol[T] | Sequence[UpgradeProtocol[T]],
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[T]: ...
@overload
def open_upgrade(
    url: str,
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[Any]: ...
def open_upgrade(
    url: str,
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[Any]:
    """Like :func:`upgrade`, as an async context manager that owns a nursery.

    It takes the same ``options`` (:class:`UpgradeOptions`). Connections
    that run background tasks (WebSocket keepalive pings, an HTTP/2 reader)
    run them in this nursery. On exit the connection is closed and its tasks
    end: with the connection's ``aclose()`` when the block ends normally;
    when it ends with an exception (cancellation and ``KeyboardInterrupt``
    included), as the connection's own ``async with`` would (a WebSocket
    sends close code 1001 "going away", HTTP/2 a GOAWAY, under a shielded
    deadline of at most 1 s), and the exception goes on. An error from
    those tasks, or from the body, is raised as itself, not wrapped in an
    exception group, when it is the only one.

    ::

        import trio
        import trio_upgrade

        async def main():
            url = "ws://localhost:8080/"
            async with trio_upgrade.open_upgrade(url, ["websocket"]) as ws:
                await ws.send("hi")
                print(await ws.receive())

        trio.run(main)

    Raises:
        TypeError: at once, for an option that is not one of
            :class:`UpgradeOptions`; the rest as :func:`upgrade` raises them,
            on entering the block.
    """
    check_keys("open_upgrade", options, UPGRADE_KEYS)
    return open_with(partial(upgrade_with, url, protocols, options=options))


@asynccontextmanager
async def open_with(
    connect: Callable[[trio.Nursery], Awaitable[Any]],
) -> AsyncIterator[Any]:
    """The body of ``open_upgrade``: ``connect(nursery)`` gives the connection."""
    with lone_errors_unwrapped():
        async with trio.open_nursery() as nursery:
            connection = await connect(nursery)
            try:
                yield connection
            except BaseException as exc:
                # Cancelled, interrupted or failed: the connection's own
                # __aexit__ says goodbye (WebSocket 1001, HTTP/2 GOAWAY)
                # under a short shielded deadline; the exception goes on.
                await close_after(connection, exc)
                nursery.cancel_scope.cancel()
                raise
            else:
                # Bounded by limits.close_timeout; a goodbye if the scope
                # is already cancelled.
                await close_after(connection, None)
                nursery.cancel_scope.cancel()
