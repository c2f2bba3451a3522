"""``Client``: default options for many calls, and what each server accepted.

``upgrade()`` is stateless: every call offers the caller's list in the
caller's order. A ``Client`` remembers, per origin, which protocol a server
accepted and which it refused, for a while, and offers the refused ones last
on the next call, so a server that never speaks the caller's first choice
does not cost a refused round trip on every call.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, overload

import trio

from ._http2._protocol import HTTP2Connection
from ._options import (
    UPGRADE_KEYS,
    Unpack,
    UpgradeOptions,
    check_keys,
    connect_settings,
)
from ._protocol import UpgradeProtocol
from ._raw import Raw, RawStream
from ._resolve import ProtocolSpec
from ._sansio._errors import Attempt, HTTP2NotSelected, UpgradeError
from ._sansio._handshake import check_extra_headers
from ._sansio._messages import HeadersArg
from ._sansio._url import Target
from ._upgrade import (
    BuiltinSpec,
    HTTP2Spec,
    Record,
    WebSocketSpec,
    open_with,
    parse_target,
    upgrade_with,
)
from ._websocket import WebSocketConnection

__all__ = ["Client", "Remembered"]

T = TypeVar("T")

#: An origin as remembered: security, host, port. ``ws`` and ``http`` (and
#: ``wss`` and ``https``) name the same server (RFC 6455 §3), so they share.
Origin = tuple[bool, str, int]

#: Final statuses that say the server will not switch to what was offered:
#: it ignored ``Upgrade`` (2xx), found the request bad (400), asked for
#: other protocols (426) or does not implement it (501). Others (redirects,
#: authentication, not found, overload) say nothing about the protocol.
_REFUSING = frozenset({400, 426, 501})

#: How long an observation is trusted: see Client.
DEFAULT_TTL = 600.0
#: How many origins are remembered at most: see Client.
DEFAULT_MAX_ORIGINS = 1024


@dataclass(frozen=True)
class Remembered:
    """What a :class:`Client` remembers of one origin (a snapshot).

    Attributes:
        accepted: the token (lower-case) of the protocol the server last
            accepted, or ``None``.
        refused: the tokens (lower-case) of the protocols it refused, each
            until its observation expires.
    """

    accepted: str | None
    refused: frozenset[str]


class _Entry:
    """One origin's observations: token (lower-case) -> when it was seen."""

    __slots__ = ("accepted", "refused")

    def __init__(self) -> None:
        self.accepted: tuple[str, float] | None = None
        self.refused: dict[str, float] = {}

    def expire(self, oldest: float) -> bool:
        """Drop what was seen before ``oldest``; whether anything is left."""
        if self.accepted is not None and self.accepted[1] < oldest:
            self.accepted = None
        for token in [t for t, seen in self.refused.items() if seen < oldest]:
            del self.refused[token]
        return self.accepted is not None or bool(self.refused)


def _refusals(attempts: Sequence[Attempt]) -> list[str]:
    """The tokens that ``attempts`` show refused by the server itself."""
    refused = []
    for attempt in attempts:
        status = attempt.status_code
        if isinstance(attempt.error, HTTP2NotSelected) or (
            status is not None
            and attempt.error is None
            and (200 <= status <= 299 or status in _REFUSING)
        ):
            refused += [token.lower() for token in attempt.offered]
    return refused


def _pairs(headers: HeadersArg | None) -> list[tuple[str, str]]:
    """Header fields as checked ``(name, value)`` pairs.

    Raises:
        ValueError: as ``upgrade()`` raises for its ``headers``.
    """
    return list(check_extra_headers(headers))


class Client:
    """Default options shared by many upgrades, and what each server accepted.

    ``client.upgrade(url, protocols)`` and ``client.open_upgrade(...)`` work
    as :func:`~trio_upgrade.upgrade` and :func:`~trio_upgrade.open_upgrade`
    with the client's options as defaults, and with a memory, per origin
    (scheme, host and port; ``ws`` and ``http`` are the same server), of
    which protocol the server accepted and which it refused.

    **Order.** Each call offers the caller's list in the caller's order,
    except that protocols the origin refused within ``ttl`` seconds are
    offered last (still in the caller's order). So after a server refused
    ``websocket`` and accepted ``h2c``, ``["websocket", "h2c"]`` goes
    straight to ``h2c``; a protocol preferred to it that was never tried is
    still tried first, and once the refusal expires the full order is back,
    so a server that learnt ``websocket`` is found again. Nothing is ever
    left out: if the protocol that worked is refused now, the others follow
    in the same call, and the memory is updated from what happened. A
    refusal counts when the server's final status says it will not switch:
    a 2xx (it ignored ``Upgrade``), 400, 426 or 501, or ALPN that did not
    select ``h2``. Redirects, 401, 403, 404, 5xx, timeouts and broken
    connections say nothing about the protocol and are not remembered.

    **Options.** Every :class:`UpgradeOptions` key may be given here as a
    default, and again to a call, where it wins. ``headers`` merge: a
    call's field replaces every default field of that name (compared
    without case), and the others are kept, defaults first. A
    ``transport`` is one connection, so it is a per-call option only.

    The client holds no connection and needs no closing. It may be shared
    by any number of tasks (Trio runs one at a time; each call reads the
    memory when it starts and writes it when it ends). It is not meant to
    be shared across threads.

    ::

        import trio
        import trio_upgrade

        async def main():
            client = trio_upgrade.Client(headers={"Origin": "https://example.test"})
            async with client.open_upgrade("ws://localhost:8080/", ["websocket"]) as ws:
                await ws.send("hi")
                print(await ws.receive())

        trio.run(main)

    Args:
        ttl: seconds an observation (accepted or refused) is trusted.
            Default 600: a server's set of protocols changes with its
            configuration, rarely; a stale memory only costs round trips
            (the refused protocols are still offered, last), and ten
            minutes bounds how long a server that learnt a preferred
            protocol is kept on a less preferred one.
        max_origins: how many origins are remembered; beyond it the least
            recently used is forgotten. Default 1024 (a few hundred bytes
            each).
        clock: a function returning seconds (monotonic), to read time from;
            default :func:`time.monotonic` (not Trio's clock, so the
            client may outlive one ``trio.run``).
        **defaults: default :class:`UpgradeOptions` of every call.

    Raises:
        TypeError: an option that is not one of :class:`UpgradeOptions`,
            or ``transport``.
        ValueError: ``ttl`` or ``max_origins`` is not positive, or
            ``headers`` or ``strategy`` is malformed.
        InvalidURL: ``proxy`` cannot be used.
    """

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        max_origins: int = DEFAULT_MAX_ORIGINS,
        clock: Callable[[], float] = time.monotonic,
        **defaults: Unpack[UpgradeOptions],
    ) -> None:
        check_keys("Client", defaults, UPGRADE_KEYS)
        if "transport" in defaults:
            raise TypeError(
                "Client() cannot hold a transport (one connection): pass "
                "transport= to each call instead"
            )
        if not (ttl > 0 and not math.isnan(ttl)):
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        if isinstance(max_origins, bool) or not (
            isinstance(max_origins, int) and max_origins > 0
        ):
            raise ValueError(f"max_origins must be a positive int, got {max_origins!r}")
        strategy = defaults.get("strategy", "sequential")
        if strategy not in ("sequential", "combined"):
            raise ValueError(
                f"strategy must be 'sequential' or 'combined', got {strategy!r}"
            )
        connect_settings("Client", defaults, UPGRADE_KEYS)  # a bad proxy, now
        self._headers = _pairs(defaults.get("headers"))
        self._defaults = UpgradeOptions(**defaults)
        self._defaults.pop("headers", None)
        self._ttl = float(ttl)
        self._max_origins = max_origins
        self._clock = clock
        self._origins: OrderedDict[Origin, _Entry] = OrderedDict()

    def __repr__(self) -> str:
        # No option values: headers and proxy URLs may hold credentials.
        return (
            f"<trio_upgrade.Client ttl={self._ttl:g} remembering "
            f"{len(self._origins)} of at most {self._max_origins} origins>"
        )

    # -- options ---------------------------------------------------------------

    def options(self, **options: Unpack[UpgradeOptions]) -> UpgradeOptions:
        """The options a call with ``options`` runs with: merged with the defaults.

        Raises:
            TypeError: an option that is not one of :class:`UpgradeOptions`.
            ValueError: ``headers`` is malformed.
        """
        return self._merge("options", options)

    def _merge(self, where: str, options: UpgradeOptions) -> UpgradeOptions:
        check_keys(where, options, UPGRADE_KEYS)
        merged: UpgradeOptions = {**self._defaults, **options}
        given = _pairs(options.get("headers"))
        if self._headers or given:
            names = {name.lower() for name, _ in given}
            kept = [(n, v) for n, v in self._headers if n.lower() not in names]
            merged["headers"] = kept + given
        return merged

    # -- memory ----------------------------------------------------------------

    def remembered(self, url: str) -> Remembered | None:
        """What is remembered of ``url``'s origin, or ``None``.

        Raises:
            InvalidURL: ``url`` cannot be used.
        """
        entry = self._entry(parse_target(url), create=False, touch=False)
        if entry is None:
            return None
        accepted = entry.accepted[0] if entry.accepted is not None else None
        return Remembered(accepted, frozenset(entry.refused))

    def forget(self, url: str | None = None) -> None:
        """Forget ``url``'s origin, or every origin when ``url`` is ``None``.

        Raises:
            InvalidURL: ``url`` cannot be used.
        """
        if url is None:
            self._origins.clear()
        else:
            self._origins.pop(_origin(parse_target(url)), None)

    def _entry(
        self, target: Target, *, create: bool, touch: bool = True
    ) -> _Entry | None:
        """The live entry of ``target``'s origin (expired observations dropped).

        ``create`` makes one if there is none, evicting the least recently
        used beyond the bound; ``touch`` makes it the most recently used.
        """
        key = _origin(target)
        entry = self._origins.get(key)
        if entry is not None and not entry.expire(self._clock() - self._ttl):
            del self._origins[key]
            entry = None
        if entry is None:
            if not create:
                return None
            entry = self._origins[key] = _Entry()
            while len(self._origins) > self._max_origins:
                self._origins.popitem(last=False)
        if touch:
            self._origins.move_to_end(key)
        return entry

    def _arrange(
        self, target: Target, protocols: list[UpgradeProtocol[Any]]
    ) -> list[UpgradeProtocol[Any]]:
        entry = self._entry(target, create=False)
        if entry is None or not entry.refused:
            return protocols
        refused = entry.refused
        first = [p for p in protocols if p.token.lower() not in refused]
        return first + [p for p in protocols if p.token.lower() in refused]

    def _learn(self, target: Target, record: Record) -> None:
        refused = _refusals(record.attempts)
        if not refused and record.chosen is None:
            return  # nothing said about the protocols: keep what we knew
        now = self._clock()
        entry = self._entry(target, create=True)
        assert entry is not None
        for token in refused:
            entry.refused[token] = now
            if entry.accepted is not None and entry.accepted[0] == token:
                entry.accepted = None
        if record.chosen is not None:
            chosen = record.chosen.lower()
            entry.refused.pop(chosen, None)
            entry.accepted = (chosen, now)

    async def _upgrade(
        self,
        url: str,
        protocols: ProtocolSpec | Sequence[ProtocolSpec],
        nursery: trio.Nursery | None,
        options: UpgradeOptions,
    ) -> Any:
        merged = self._merge("upgrade", options)
        target = parse_target(url)
        record = Record()
        try:
            connection = await upgrade_with(
                url, protocols, nursery, merged, arrange=self._arrange, record=record
            )
        except UpgradeError:
            self._learn(target, record)
            raise
        self._learn(target, record)
        return connection

    # -- the calls ---------------------------------------------------------------

    # The overloads of trio_upgrade.upgrade(), for the same reasons.
    @overload
    async def upgrade(  # type: ignore[overload-overlap]
        self,
        url: str,
        protocols: WebSocketSpec | Sequence[WebSocketSpec],
        *,
        nursery: trio.Nursery | None = None,
        **options: Unpack[UpgradeOptions],
    ) -> WebSocketConnection: ...
    @overload
    async def upgrade(  # type: ignore[overload-overlap]
        self,
        url: str,
        protocols: HTTP2Spec | Sequence[HTTP2Spec],
        *,
        nursery: trio.Nursery | None = None,
        **options: Unpack[UpgradeOptions],
    ) -> HTTP2Connection: ...
    @overload
    async def upgrade(
        self,
        url: str,
        protocols: Raw | Sequence[Raw],
        *,
        nursery: trio.Nursery | None = None,
        **options: Unpack[UpgradeOptions],
    ) -> RawStream: ...
    @overload
    async def upgrade(  # type: ignore[overload-overlap]
        self,
        url: str,
        protocols: Sequence[WebSocketSpec | HTTP2Spec],
        *,
        nursery: trio.Nursery | None = None,
        **options: Unpack[UpgradeOptions],
    ) -> WebSocketConnection | HTTP2Connection: ...
    @overload
    async def upgrade(  # type: ignore[overload-overlap]
        self,
        url: str,
        protocols: Sequence[WebSocketSpec | Raw],
        *,
        nursery: trio.Nursery | None = None,
        **options: Unpack[UpgradeOptions],
    ) -> WebSocketConnection | RawStream: ...
    @overload
    async def upgrade(
        self,
        url: str,
        protocols: Sequence[HTTP2Spec | Raw],
        *,
        nursery: trio.Nursery | None = None,
        **options: Unpack[UpgradeOptions],
    ) -> HTTP2Connection | RawStream: ...
    @overload
    async def upgrade(
        self,
        url: str,
        protocols: BuiltinSpec | Sequence[BuiltinSpec],
        *,
        nursery: trio.Nursery | None = None,
        **options: Unpack[UpgradeOptions],
    ) -> WebSocketConnection | HTTP2Connection | RawStream: ...
    @overload
    async def upgrade(
        self,
        url: str,
        protocols: UpgradeProtocol[T] | Sequence[UpgradeProtocol[T]],
        *,
        nursery: trio.Nursery | None = None,
        **options: Unpack[UpgradeOptions],
    ) -> T: ...
    @overload
    async def upgrade(
        self,
        url: str,
        protocols: ProtocolSpec | Sequence[ProtocolSpec],
        *,
        nursery: trio.Nursery | None = None,
        **options: Unpack[UpgradeOptions],
    ) -> Any: ...
    async def upgrade(
        self,
        url: str,
        protocols: ProtocolSpec | Sequence[ProtocolSpec],
        *,
        nursery: trio.Nursery | None = None,
        **options: Unpack[UpgradeOptions],
    ) -> Any:
        """:func:`~trio_upgrade.upgrade` with this client's defaults and memory.

        ``options`` override the client's (``headers`` merge); the
        protocols the origin refused lately are offered last. Returns and
        raises as :func:`~trio_upgrade.upgrade` does; what the call saw is
        remembered either way.
        """
        return await self._upgrade(url, protocols, nursery, options)

    # The overloads of trio_upgrade.open_upgrade().
    @overload
    def open_upgrade(  # type: ignore[overload-overlap]
        self,
        url: str,
        protocols: WebSocketSpec | Sequence[WebSocketSpec],
        **options: Unpack[UpgradeOptions],
    ) -> AbstractAsyncContextManager[WebSocketConnection]: ...
    @overload
    def open_upgrade(  # type: ignore[overload-overlap]
        self,
        url: str,
        protocols: HTTP2Spec | Sequence[HTTP2Spec],
        **options: Unpack[UpgradeOptions],
    ) -> AbstractAsyncContextManager[HTTP2Connection]: ...
    @overload
    def open_upgrade(
        self,
        url: str,
        protocols: Raw | Sequence[Raw],
        **options: Unpack[UpgradeOptions],
    ) -> AbstractAsyncContextManager[RawStream]: ...
    @overload
    def open_upgrade(  # type: ignore[overload-overlap]
        self,
        url: str,
        protocols: Sequence[WebSocketSpec | HTTP2Spec],
        **options: Unpack[UpgradeOptions],
    ) -> AbstractAsyncContextManager[WebSocketConnection | HTTP2Connection]: ...
    @overload
    def open_upgrade(  # type: ignore[overload-overlap]
        self,
        url: str,
        protocols: Sequence[WebSocketSpec | Raw],
        **options: Unpack[UpgradeOptions],
    ) -> AbstractAsyncContextManager[WebSocketConnection | RawStream]: ...
    @overload
    def open_upgrade(
        self,
        url: str,
        protocols: Sequence[HTTP2Spec | Raw],
        **options: Unpack[UpgradeOptions],
    ) -> AbstractAsyncContextManager[HTTP2Connection | RawStream]: ...
    @overload
    def open_upgrade(
        self,
        url: str,
        protocols: BuiltinSpec | Sequence[BuiltinSpec],
        **options: Unpack[UpgradeOptions],
    ) -> AbstractAsyncContextManager[
        WebSocketConnection | HTTP2Connection | RawStream
    ]: ...
    @overload
    def open_upgrade(
        self,
        url: str,
        protocols: UpgradeProtocol[T] | Sequence[UpgradeProtocol[T]],
        **options: Unpack[UpgradeOptions],
    ) -> AbstractAsyncContextManager[T]: ...
    @overload
    def open_upgrade(
        self,
        url: str,
        protocols: ProtocolSpec | Sequence[ProtocolSpec],
        **options: Unpack[UpgradeOptions],
    ) -> AbstractAsyncContextManager[Any]: ...
    def open_upgrade(
        self,
        url: str,
        protocols: ProtocolSpec | Sequence[ProtocolSpec],
        **options: Unpack[UpgradeOptions],
    ) -> AbstractAsyncContextManager[Any]:
        """:func:`~trio_upgrade.open_upgrade` with this client's defaults and memory.

        Raises:
            TypeError: at once, for an option that is not one of
                :class:`UpgradeOptions`; the rest as :meth:`upgrade` raises
                them, on entering the block.
        """
        check_keys("open_upgrade", options, UPGRADE_KEYS)
        return open_with(partial(self._upgrade, url, protocols, options=options))


def _origin(target: Target) -> Origin:
    return (target.secure, target.host.lower(), target.port)
