"""``open_reconnecting()``: a fresh connection each time the last one ended.

The shape follows Trio's rules. A connection may need background tasks
(keepalive pings, the HTTP/2 reader), so something must own a nursery for
them; an async generator must not yield from inside a nursery or cancel
scope it opened (the body would run inside the generator's scope, and an
error or a cancellation would land in the wrong task). So the nursery
belongs to an async context manager, whose ``yield`` is the documented
safe place, and the iteration is a plain async iterator object: each
``__anext__`` is an ordinary call that closes the previous connection,
waits out the backoff and connects, all in the caller's own task and
scopes. Leaving the block closes the current connection and ends the
nursery; nothing runs after it.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar, overload

import trio

from ._ending import close_after
from ._groups import lone_errors_unwrapped
from ._http2._protocol import HTTP2Connection
from ._options import UPGRADE_KEYS, Unpack, UpgradeOptions, connect_settings
from ._protocol import UpgradeProtocol
from ._raw import Raw, RawStream
from ._resolve import ProtocolSpec, resolve_protocols
from ._sansio._errors import (
    ConnectError,
    ConnectionClosed,
    InvalidResponse,
    ResponseTooLarge,
    UpgradeRefused,
)
from ._sansio._messages import Response
from ._timeout import UpgradeTimeout
from ._transport._proxy import ProxyError
from ._upgrade import (
    BuiltinSpec,
    HTTP2Spec,
    WebSocketSpec,
    _credentials_from,
    parse_target,
    upgrade,
)
from ._websocket import WebSocketConnection

__all__ = ["Backoff", "Reconnecting", "open_reconnecting", "retryable"]

logger = logging.getLogger("trio_upgrade")

T = TypeVar("T")

#: Refusals worth another try: the server or a gateway is overloaded,
#: restarting or timed out (408 Request Timeout, 429 Too Many Requests, 500,
#: 502 Bad Gateway, 503 Service Unavailable, 504 Gateway Timeout). Other 4xx
#: say the request itself is wrong (401, 403, 404, 426...), and 501 and 505
#: that the server never will: asking again changes nothing.
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# TLS failures that mean the connection ended during the handshake (a
# server restarting), not that the peer or its certificate is wrong.
_TLS_CUT_SHORT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


def _tls_rejected(exc: BaseException) -> bool:
    """Whether a TLS error that will not go away is in ``exc``'s causes."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and not isinstance(seen, _TLS_CUT_SHORT):
            return True  # certificate verification, no shared protocol...
        seen = seen.__cause__ or seen.__context__
    return False


def retryable(exc: BaseException) -> bool:
    """Whether :func:`open_reconnecting` tries again after ``exc`` by default.

    Retried, as failures that another attempt may not meet:

    * :class:`ConnectError`: refused, reset, unreachable, a DNS failure, a
      missing Unix socket; also a TLS handshake cut short. Not a TLS
      rejection (a certificate that does not verify, no common protocol
      version): that needs a fix, not time.
    * :class:`ProxyError` only when the proxy answered one of the statuses
      below (a 502 when it could not reach the server): not 407.
    * :class:`UpgradeTimeout`: connect or handshake too slow.
    * :class:`InvalidResponse` (the server closed or reset the connection
      during the handshake, or sent something else than HTTP), but not
      :class:`ResponseTooLarge`.
    * :class:`UpgradeRefused` with status 408, 429, 500, 502, 503 or 504:
      the server or a gateway is overloaded, restarting or timed out.
    * :class:`ConnectionClosed`: the connection ended as it was being set
      up (before the HTTP/2 server's SETTINGS).

    Anything else is raised at once: :class:`InvalidURL`,
    :exc:`ValueError` and :exc:`TypeError` (the call is wrong), other
    refusals, :class:`RedirectError` (a loop, too many, TLS to cleartext),
    :class:`HTTP2NotSelected`, :class:`InvalidUpgrade` (the server breaks
    the protocol), :class:`ProtocolError`, and every exception that is not
    an :class:`UpgradeError`.

    Pass your own rule as ``retry_on``; it can build on this one (see
    :doc:`/howto/reconnecting`).
    """
    if isinstance(exc, ProxyError):
        response = exc.response
        return response is not None and response.status_code in RETRIED_STATUSES
    if isinstance(exc, ConnectError):
        return not _tls_rejected(exc)
    if isinstance(exc, UpgradeRefused):
        return exc.status_code in RETRIED_STATUSES
    if isinstance(exc, InvalidResponse):
        return not isinstance(exc, ResponseTooLarge)
    return isinstance(exc, (UpgradeTimeout, ConnectionClosed))


def _retry_after(response: Response) -> float | None:
    """Seconds from now that a ``Retry-After`` field asks for (RFC 9110
    §10.2.3: delay-seconds or an HTTP-date), or ``None`` if it has none."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # malformed: the backoff alone decides
    if when.tzinfo is None:
        return None  # HTTP-dates are GMT; a date without a zone is invalid
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class Backoff:
    """How long :func:`open_reconnecting` waits before trying again.

    Exponential backoff with full jitter: after ``n`` failures in a row the
    wait is a random fraction of ``min(max_delay, initial * factor **
    (n - 1))``. Jitter over the whole range spreads out clients that lost
    the same server at the same moment, so their retries do not arrive
    together when it comes back (AWS's "Exponential Backoff and Jitter"
    measured this variant as the one that finishes soonest under
    contention).

    The defaults: a first retry within 1 s, the bound doubling each time, up
    to a minute from the seventh on. gRPC's connection backoff is of the
    same order (1 s, times 1.6, up to 120 s); the ``websockets`` library
    waits up to 5 s at first, then from 3.1 s growing by 1.618 up to 90 s.

    Attributes:
        initial: the bound of the first wait, in seconds. Default 1.0.
        factor: how much the bound grows with each further failure
            (>= 1). Default 2.0.
        max_delay: the largest bound, in seconds; also the most that a
            server's ``Retry-After`` can make it wait. Default 60.0.
        reset_after: a connection that stayed open this many seconds
            counts as a success: when it ends, the next one is made at once
            and the next failure waits from ``initial`` again. One that
            ended sooner counts as a failure, so a server that accepts and
            then drops at once is not hammered. Default 10.0: far longer
            than a handshake on any working network, short enough that a
            server dropping sessions every minute is still reconnected to
            at once.
        jitter: a function returning the random fraction, in [0, 1], of
            the bound to wait (values outside are clamped). Default
            ``random.random``; pass ``lambda: 1.0`` for no jitter, or
            a seeded ``random.Random(...).random`` for a reproducible one.
    """

    initial: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0
    reset_after: float = 10.0
    # A factory keeps random.random off the class: as a class attribute it
    # would look like a method of Backoff to introspection (autodoc, the
    # docs tests) while being the random module's.
    jitter: Callable[[], float] = field(
        default_factory=lambda: random.random, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name in ("initial", "max_delay", "reset_after"):
            value = getattr(self, name)
            if not 0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 1 <= self.factor < math.inf:
            raise ValueError(
                f"factor must be a finite number >= 1, got {self.factor!r}"
            )

    def bound(self, failures: int) -> float:
        """The longest wait after ``failures`` (>= 1) failures in a row."""
        exponent = max(failures - 1, 0)
        # factor ** exponent overflows a float long before a client could
        # fail that often; the cap applies from there on.
        try:
            grown = self.initial * self.factor**exponent
        except OverflowError:
            return self.max_delay
        return min(self.max_delay, grown)

    def delay(self, failures: int) -> float:
        """A wait after ``failures`` failures in a row: ``bound`` times the
        jitter fraction."""
        fraction = min(max(self.jitter(), 0.0), 1.0)
        return self.bound(failures) * fraction


class Reconnecting(Generic[T]):
    """The connections of :func:`open_reconnecting`, one per iteration.

    ``async for conn in connections:`` gets a connected ``conn`` each time
    round. Asking for the next one (the body ended, or ``continue``) closes
    the current one first, then waits as :class:`Backoff` says and connects
    again, retrying the failures that ``retry_on`` accepts. ``break`` (or an
    exception out of the body) ends the loop; the block's end closes the
    connection still open.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[T]],
        *,
        backoff: Backoff,
        retry_on: Callable[[Exception], bool],
        max_failures: int | None,
    ) -> None:
        self._connect = connect
        self._backoff = backoff
        self._retry_on = retry_on
        self._max_failures = max_failures
        self._current: T | None = None
        self._opened_at = 0.0
        # Failures and short-lived connections since the last connection
        # that lasted reset_after: the exponent of the backoff.
        self._streak = 0
        self._connecting = False
        self._ended = False

    @property
    def connection(self) -> T | None:
        """The connection of the current iteration, until it is closed."""
        return self._current

    def __aiter__(self) -> Reconnecting[T]:
        return self

    async def __anext__(self) -> T:
        """Close the current connection, then connect again.

        Raises:
            Exception: the error of a connection attempt that ``retry_on``
                does not retry, or the last one after ``max_failures``
                attempts in a row failed.
            RuntimeError: the ``open_reconnecting()`` block has ended, or
                another task is waiting for a connection already.
        """
        if self._ended:
            raise RuntimeError("the open_reconnecting() block has ended")
        if self._connecting:
            raise RuntimeError("another task is already waiting for a connection")
        self._connecting = True
        try:
            return await self._next()
        finally:
            self._connecting = False

    async def _next(self) -> T:
        delay = 0.0
        if self._current is not None:
            lived = trio.current_time() - self._opened_at
            await self._close_current()
            if lived >= self._backoff.reset_after:
                self._streak = 0
            else:
                self._streak += 1
                delay = self._backoff.delay(self._streak)
        failures = 0
        while True:
            if delay > 0:
                await trio.sleep(delay)
            try:
                connection = await self._connect()
            except Exception as exc:
                failures += 1
                if not self._retry_on(exc):
                    raise
                if self._max_failures is not None and failures >= self._max_failures:
                    raise
                self._streak += 1
                delay = self._backoff.delay(self._streak)
                if isinstance(exc, UpgradeRefused):
                    asked = _retry_after(exc.response)
                    if asked is not None:
                        delay = max(delay, min(asked, self._backoff.max_delay))
                logger.info(
                    "connection attempt %d failed, retrying in %.3g s: %s",
                    failures,
                    delay,
                    exc,
                )
                continue
            self._current = connection
            self._opened_at = trio.current_time()
            return connection

    async def _close_current(self, exc: BaseException | None = None) -> None:
        current, self._current = self._current, None
        if current is not None:
            # As its own ``async with`` would: bounded by
            # limits.close_timeout, or a shielded goodbye (WebSocket 1001,
            # HTTP/2 GOAWAY) when the block ended with ``exc`` or cancelled.
            await close_after(current, exc)

    async def _end(self, exc: BaseException | None) -> None:
        self._ended = True
        await self._close_current(exc)


# The return type follows the offer, as upgrade()'s overloads explain.
@overload
def open_reconnecting(  # type: ignore[overload-overlap]
    url: str,
    protocols: WebSocketSpec | Sequence[WebSocketSpec],
    *,
    backoff: Backoff | None = None,
    retry_on: Callable[[Exception], bool] | None = None,
    max_failures: int | None = None,
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[Reconnecting[WebSocketConnection]]: ...
@overload
def open_reconnecting(
    url: str,
    protocols: HTTP2Spec | Sequence[HTTP2Spec],
    *,
    backoff: Backoff | None = None,
    retry_on: Callable[[Exception], bool] | None = None,
    max_failures: int | None = None,
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[Reconnecting[HTTP2Connection]]: ...
@overload
def open_reconnecting(
    url: str,
    protocols: Raw | Sequence[Raw],
    *,
    backoff: Backoff | None = None,
    retry_on: Callable[[Exception], bool] | None = None,
    max_failures: int | None = None,
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[Reconnecting[RawStream]]: ...
@overload
def open_reconnecting(
    url: str,
    protocols: BuiltinSpec | Sequence[BuiltinSpec],
    *,
    backoff: Backoff | None = None,
    retry_on: Callable[[Exception], bool] | None = None,
    max_failures: int | None = None,
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[
    Reconnecting[WebSocketConnection | HTTP2Connection | RawStream]
]: ...
@overload
def open_reconnecting(
    url: str,
    protocols: UpgradeProtocol[T] | Sequence[UpgradeProtocol[T]],
    *,
    backoff: Backoff | None = None,
    retry_on: Callable[[Exception], bool] | None = None,
    max_failures: int | None = None,
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[Reconnecting[T]]: ...
@overload
def open_reconnecting(
    url: str,
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    *,
    backoff: Backoff | None = None,
    retry_on: Callable[[Exception], bool] | None = None,
    max_failures: int | None = None,
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[Reconnecting[Any]]: ...
def open_reconnecting(
    url: str,
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    *,
    backoff: Backoff | None = None,
    retry_on: Callable[[Exception], bool] | None = None,
    max_failures: int | None = None,
    **options: Unpack[UpgradeOptions],
) -> AbstractAsyncContextManager[Reconnecting[Any]]:
    """Upgrade again each time the connection ends, for long-lived clients.

    An async context manager giving a :class:`Reconnecting`: iterate it
    for a connection per iteration, as :func:`upgrade` makes them (same
    ``url``, ``protocols`` and ``options``). The body decides when a
    connection is over: when it ends an iteration (reaches the end of the
    body or ``continue``) the connection is closed and a fresh one made;
    ``break`` stops. An exception out of the body ends the loop as in any
    ``for``, so catch the connection's loss (:class:`ConnectionClosed`, or
    an empty read on a :class:`RawStream`) and ``continue``::

        import trio
        import trio_upgrade

        async def main():
            url = "ws://localhost:8080/"
            reconnecting = trio_upgrade.open_reconnecting(url, ["websocket"])
            async with reconnecting as connections:
                async for ws in connections:
                    try:
                        await ws.send("subscribe")
                        print(await ws.receive())
                    except trio_upgrade.ConnectionClosed:
                        continue  # lost: reconnect
                    break  # done

        trio.run(main)

    A connection attempt that fails with an error ``retry_on`` accepts is
    made again after a wait (see :class:`Backoff`; a 429 or 503's
    ``Retry-After`` is honoured up to ``backoff.max_delay``); another
    error comes out of the ``async for`` at once. The same wait comes
    before reconnecting after a connection that lasted less than
    ``backoff.reset_after``; after a longer one, the next is made at once.
    Cancellation stops everything at once: a wait, an attempt, the body.
    Leaving the block closes the current connection (with a goodbye when
    the block ends with an exception, as :func:`open_upgrade` does), whose
    background tasks (keepalive pings, the HTTP/2 reader) run in a nursery
    of the block.

    Args:
        url: as for :func:`upgrade`.
        protocols: as for :func:`upgrade`; each connection offers them
            anew, so the server may choose differently from one to the next.
        backoff: the waits; default ``Backoff()``.
        retry_on: which failed attempts are tried again; default
            :func:`retryable`.
        max_failures: give up after this many failed attempts in a row (the
            last error is raised); ``None`` (default) retries for as long
            as the failures are retryable, as a long-lived client should.
        **options: as for :func:`upgrade`, but not ``transport`` (a given
            stream cannot be opened again).

    Raises:
        TypeError: at once, for an unknown option.
        ValueError: at once, for ``transport``, a ``max_failures`` below 1,
            malformed ``protocols``, or a conflict between options (see
            :func:`upgrade`).
        InvalidURL: at once, ``url`` or ``proxy`` cannot be used.
    """
    connect_settings("open_reconnecting", options, UPGRADE_KEYS)
    if options.get("transport") is not None:
        raise ValueError(
            "open_reconnecting() cannot reconnect a given transport: pass the "
            "URL (and unix_socket or proxy) to connect to instead"
        )
    if max_failures is not None and max_failures < 1:
        raise ValueError(f"max_failures must be at least 1, got {max_failures}")
    # What can be wrong with the call is wrong every time: say so now, as
    # upgrade() would (credentials in the URL included).
    bare = url
    if isinstance(url, str) and "@" in url:
        bare, _ = _credentials_from(url)
    resolve_protocols(protocols, parse_target(bare))
    return _open_reconnecting(
        url,
        protocols,
        backoff if backoff is not None else Backoff(),
        retry_on if retry_on is not None else retryable,
        max_failures,
        options,
    )


@asynccontextmanager
async def _open_reconnecting(
    url: str,
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    backoff: Backoff,
    retry_on: Callable[[Exception], bool],
    max_failures: int | None,
    options: UpgradeOptions,
) -> AsyncIterator[Reconnecting[Any]]:
    with lone_errors_unwrapped():
        async with trio.open_nursery() as nursery:
            connect = partial(upgrade, url, protocols, nursery=nursery, **options)
            connections: Reconnecting[Any] = Reconnecting(
                connect, backoff=backoff, retry_on=retry_on, max_failures=max_failures
            )
            try:
                yield connections
            except BaseException as exc:
                await connections._end(exc)
                nursery.cancel_scope.cancel()
                raise
            else:
                await connections._end(None)
                nursery.cancel_scope.cancel()
