"""Strings to protocol objects: the one place that knows the built-in names.

The overloads of ``upgrade``, the CLI and the docs all rely on this mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._http2._protocol import H2, H2C
from ._protocol import UpgradeProtocol, check_token
from ._raw import TLS, Raw, is_tls_token
from ._sansio._url import Target
from ._websocket import WebSocket

__all__ = ["BUILTIN_PROTOCOLS", "ProtocolSpec", "resolve_protocols"]

#: Token (lower-case) → what a bare string offer means.
BUILTIN_PROTOCOLS: dict[str, type[UpgradeProtocol[Any]]] = {
    "websocket": WebSocket,
    "h2c": H2C,
    "h2": H2,
}

ProtocolSpec = str | UpgradeProtocol[Any]


def resolve_protocols(
    protocols: ProtocolSpec | Sequence[ProtocolSpec],
    target: Target | None = None,
) -> list[UpgradeProtocol[Any]]:
    """Turn the caller's offer list into protocol objects, in order.

    A lone string or protocol object is a one-element list. ``"websocket"``,
    ``"h2c"`` and ``"h2"`` (any case) become :class:`WebSocket`,
    :class:`H2C` and :class:`H2` with their defaults; ``TLS`` and ``TLS/x.y``
    (RFC 2817) become :class:`TLS`; any other token becomes :class:`Raw`.

    Raises:
        ValueError: the list is empty, a token is malformed, the same
            token is offered twice, :class:`TLS` or :class:`H2C` is offered
            for a ``target`` that is TLS already, or :class:`H2` for one
            that is not (checked before connecting).
        TypeError: an element is neither a string nor an UpgradeProtocol.
    """
    items: Sequence[ProtocolSpec]
    if type(protocols) is list:
        items = protocols  # the usual form: no isinstance() against the ABC
    elif isinstance(protocols, (str, UpgradeProtocol)):
        items = [protocols]
    else:
        items = protocols
    resolved: list[UpgradeProtocol[Any]] = []
    seen: set[str] = set()
    for item in items:
        if type(item) is WebSocket:
            # The usual offer, on every call: a WebSocket object needs no
            # target check (only TLS, H2 and H2C have one), so the four
            # isinstance() tests against abstract classes below are skipped.
            key = "websocket"
            if key in seen:
                raise ValueError(f"protocol {item.token!r} is offered twice")
            seen.add(key)
            resolved.append(item)
            continue
        if isinstance(item, str):
            check_token(item)
            builtin = BUILTIN_PROTOCOLS.get(item.lower())
            protocol: UpgradeProtocol[Any]
            if builtin is not None:
                protocol = builtin()
            elif is_tls_token(item):
                protocol = TLS(item)
            else:
                protocol = Raw(item)
        elif isinstance(item, UpgradeProtocol):
            protocol = item
        else:
            raise TypeError(
                f"expected a protocol token (str) or an UpgradeProtocol, got "
                f"{type(item).__name__}"
            )
        if isinstance(protocol, TLS) and target is not None:
            protocol.check_target(target)
        if target is not None:
            _check_http2(protocol, target)
        key = protocol.token.lower()
        if key in seen:
            raise ValueError(f"protocol {protocol.token!r} is offered twice")
        seen.add(key)
        resolved.append(protocol)
    if not resolved:
        raise ValueError("offer at least one protocol")
    return resolved


def _check_http2(protocol: UpgradeProtocol[Any], target: Target) -> None:
    """h2 by ALPN needs TLS; h2c by Upgrade is for cleartext only (RFC 9113 §3)."""
    if isinstance(protocol, H2) and not target.secure:
        raise ValueError(
            f"'h2' is selected by ALPN during TLS, and {target.scheme}:// has no "
            f"TLS: offer 'h2c' to upgrade this connection to HTTP/2, or use "
            f"connect_http2() for a server that speaks HTTP/2 with prior knowledge"
        )
    if isinstance(protocol, H2C) and target.secure:
        raise ValueError(
            f"'h2c' is HTTP/2 over cleartext; over TLS ({target.scheme}://) "
            f"HTTP/2 is selected by ALPN: offer 'h2' instead (RFC 9113 §3.2)"
        )
