"""URL parsing for upgrade targets (sans-I/O)."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._errors import InvalidURL

__all__ = ["Target", "parse_url"]

_SCHEMES = {
    "http": (80, False),
    "ws": (80, False),
    "https": (443, True),
    "wss": (443, True),
}


@dataclass(frozen=True)
class Target:
    """Where to connect and what to ask for.

    Attributes:
        scheme: ``http``, ``ws``, ``https`` or ``wss``, lower-cased.
        host: the host name or address, without IPv6 brackets.
        port: the TCP port.
        target: the request target: path and query, never empty.
        secure: whether TLS is used.
    """

    scheme: str
    host: str
    port: int
    target: str
    secure: bool

    @property
    def authority(self) -> str:
        """The ``Host`` header value: host, plus the port when not default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == _SCHEMES[self.scheme][0]:
            return host
        return f"{host}:{self.port}"

    @property
    def is_ip_literal(self) -> bool:
        """Whether ``host`` is an IP address rather than a name."""
        return _is_ip_literal(self.host)

    def with_target(self, target: str) -> Target:
        return Target(self.scheme, self.host, self.port, target, self.secure)


@functools.lru_cache(maxsize=256)
def _is_ip_literal(host: str) -> bool:
    # Asked on every connect; ipaddress parsing costs more than the rest of
    # the connect's Python code, and a client talks to few distinct hosts.
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_url(url: str) -> Target:
    """Parse ``url`` into a :class:`Target`.

    Raises:
        InvalidURL: for a scheme other than http, https, ws or wss, a missing
            host, a bad port, user info (credentials in URLs are refused
            rather than sent in the clear by accident) or a fragment-only
            oddity such as control characters.
    """
    if not isinstance(url, str):
        raise InvalidURL(f"URL must be a str, got {type(url).__name__}")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidURL(f"URL contains whitespace or control characters: {url!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"invalid URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise InvalidURL(
            f"unsupported URL scheme {parts.scheme!r} in {url!r}: "
            "expected http, https, ws or wss"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidURL(f"credentials in the URL are not supported: {url!r}")
    host = parts.hostname
    if not host:
        raise InvalidURL(f"URL has no host: {url!r}")
    default_port, secure = _SCHEMES[scheme]
    if port == 0:
        raise InvalidURL(f"port 0 is not a valid destination: {url!r}")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Target(
        scheme, host, port if port is not None else default_port, target, secure
    )
