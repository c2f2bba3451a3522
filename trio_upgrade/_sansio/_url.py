"""URL parsing for upgrade targets (sans-I/O).

The rules for hosts, ports and request targets are documented in
``docs/explanation/hosts.rst``; in short:

* a name is sent as its ASCII form: a Unicode name becomes its A-label
  (IDNA 2008 with the UTS #46 mapping, the ``idna`` package that trio
  itself depends on);
* an IPv6 literal is sent in brackets, in its canonical text form; a zone
  id (RFC 6874, ``[fe80::1%25eth0]``) is used to connect but never sent,
  neither in ``Host`` nor in ``:authority`` nor to a proxy (RFC 6874 §4);
* the port is left out of ``Host`` when it is the scheme's default, given
  or not (as curl, httpx, websockets and the WHATWG URL standard do);
* the path and query are sent as written (non-ASCII characters are
  percent-encoded as UTF-8, RFC 3987 §3.1); the fragment is never sent;
* user info is never part of ``Host``: :func:`split_userinfo` takes it out
  of the URL (``upgrade()`` sends it as Basic credentials), and
  :func:`parse_url` refuses a URL that still holds it.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urljoin

import idna

from ._errors import InvalidURL
from ._redact import URI as _URI
from ._redact import redacted

__all__ = ["Target", "parse_url", "redacted", "resolve_location", "split_userinfo"]

_SCHEMES = {
    "http": (80, False),
    "ws": (80, False),
    "https": (443, True),
    "wss": (443, True),
}

# RFC 3986 reg-name without pct-encoded: unreserved / sub-delims.
_REG_NAME = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=]+$")
# RFC 6874 ZoneID = 1*( unreserved / pct-encoded ).
_ZONE_ID = re.compile(r"^(?:[A-Za-z0-9\-._~]|%[0-9A-Fa-f]{2})+$")
# Every printable ASCII character, "%" included: the target is sent as the
# URL writes it (escapes stay as written, whitespace never gets this far);
# only non-ASCII characters are encoded.
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


@dataclass(frozen=True)
class Target:
    """Where to connect and what to ask for.

    Attributes:
        scheme: ``http``, ``ws``, ``https`` or ``wss``, lower-cased.
        host: the host as sent: an ASCII name (an A-label for an
            internationalised name), an IPv4 address or an IPv6 address
            without brackets and without zone id.
        port: the TCP port.
        target: the request target: path and query, never empty.
        secure: whether TLS is used.
        zone: the IPv6 zone id (interface) to connect through, decoded;
            empty when the URL has none. Never sent.
    """

    scheme: str
    host: str
    port: int
    target: str
    secure: bool
    zone: str = ""

    # Kept once computed (in the instance's dict, beside the frozen fields):
    # targets are cached per URL, so connections to one URL share the
    # string rather than each keeping its own.
    @functools.cached_property
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
        return Target(self.scheme, self.host, self.port, target, self.secure, self.zone)

    @property
    def origin(self) -> tuple[bool, str, int]:
        """What decides where credentials may go: TLS or not, host, port.

        ``ws`` and ``http`` (and ``wss`` and ``https``) are one origin here:
        an upgrade request is an HTTP request, whatever the URL calls it.
        """
        return (self.secure, self.host, self.port)

    @functools.cached_property
    def url(self) -> str:
        """The URL as requested: scheme, authority and request target.

        Never holds credentials (a :class:`Target` has none). Computed once:
        every attempt records it, and ``upgrade()`` reuses parsed targets.
        """
        return f"{self.scheme}://{self.authority}{self.target}"


@functools.lru_cache(maxsize=256)
def _is_ip_literal(host: str) -> bool:
    # Asked on every connect; ipaddress parsing costs more than the rest of
    # the connect's Python code, and a client talks to few distinct hosts.
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its user info, and that user info, percent-decoded.

    ``("ws://h/", ("user", "pass"))`` from ``ws://user:pass@h/``; a user
    info without ``:`` has an empty password; ``None`` when there is none.
    The decoding is UTF-8 (RFC 3986 §2.5, RFC 7617 §2.1). Anything else in
    the URL is left for :func:`parse_url` to judge.
    """
    match = _URI.match(url)
    authority = match.group(2) if match else None
    if authority is None or "@" not in authority:
        return url, None
    userinfo, _, rest = authority.rpartition("@")
    user, _, password = userinfo.partition(":")
    start = url.index(authority)
    bare = f"{url[:start]}{rest}{url[start + len(authority) :]}"
    return bare, (unquote(user), unquote(password))


#: The scheme a Location's scheme stands for, by the request's scheme:
#: servers think in HTTP, so ``http://`` in answer to a ``ws://`` request
#: means ``ws://`` (and ``https://``, ``wss://``).
_SAME_KIND = {
    ("ws", "http"): "ws",
    ("ws", "https"): "wss",
    ("wss", "http"): "ws",
    ("wss", "https"): "wss",
    ("http", "ws"): "http",
    ("http", "wss"): "https",
    ("https", "ws"): "http",
    ("https", "wss"): "https",
}


def resolve_location(base: Target, location: str) -> Target:
    """The target a redirect's ``Location`` leads to, from ``base``.

    ``location`` may be absolute or relative (RFC 9110 §10.2.2, resolved as
    RFC 3986 §5.2 says). Its scheme is read as the kind of ``base``'s:
    ``http``/``https`` for a ``ws``/``wss`` request are ``ws``/``wss``, and
    the other way round. User info in it is dropped: a server cannot choose
    the credentials that are sent. Its fragment, if any, is never sent.

    Raises:
        InvalidURL: the result is not a URL :func:`parse_url` accepts.
    """
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in location):
        raise InvalidURL(
            f"Location contains whitespace or control characters: "
            f"{redacted(location)!r}"
        )
    # urljoin knows the hierarchical schemes by name, and ws/wss not on
    # every Python: resolve against the http form of the base.
    http_base = "https" if base.secure else "http"
    try:
        joined = urljoin(f"{http_base}://{base.authority}{base.target}", location)
    except ValueError as exc:  # an unclosed "[", say
        raise InvalidURL(f"invalid Location {redacted(location)!r}: {exc}") from None
    joined, _ = split_userinfo(joined)
    scheme, _, rest = joined.partition(":")
    kind = _SAME_KIND.get((base.scheme, scheme.lower()))
    if kind is not None:
        joined = f"{kind}:{rest}"
    target = parse_url(joined)
    if base.zone and target.host == base.host:
        # The zone id is never sent, so the Location cannot carry it: the
        # same link-local host is reached through the same interface.
        target = dataclasses.replace(target, zone=base.zone)
    return target


def _parse_ipv6(literal: str, url: str) -> tuple[str, str]:
    """``(address, zone)`` from what is between the brackets."""
    address, percent, zone = literal.partition("%")
    if percent:
        # RFC 6874 writes the "%" as "%25"; curl and RFC 6874bis also take a
        # bare "%". The zone id itself may be percent-encoded.
        if zone.startswith("25"):
            zone = zone[2:]
        if not _ZONE_ID.match(zone):
            raise InvalidURL(
                f"invalid IPv6 zone id {zone!r} in {url!r}: expected "
                "letters, digits, '-', '.', '_', '~' (as in [fe80::1%25eth0])"
            )
        zone = unquote(zone)
    try:
        parsed = ipaddress.IPv6Address(address)
    except ValueError as exc:
        raise InvalidURL(
            f"invalid IPv6 address [{literal}] in {url!r}: {exc}"
        ) from None
    return str(parsed), zone


def _parse_name(name: str, url: str) -> str:
    """The ASCII form of a host name (A-labels for Unicode), lower-cased."""
    if name.isascii():
        if "%" in name:
            raise InvalidURL(
                f"percent-encoded host {name!r} in {url!r} is not supported: "
                "write the name itself (Unicode names are fine)"
            )
        if not _REG_NAME.match(name):
            raise InvalidURL(f"invalid character in host {name!r} of {url!r}")
        lowered = name.lower()
        if not any(label.startswith("xn--") for label in lowered.split(".")):
            return lowered
    try:
        # uts46: the mapping browsers apply first (case, full-width dots);
        # non-transitional, so "ß" stays itself, as in IDNA 2008.
        return idna.encode(name, uts46=True).decode("ascii")
    except UnicodeError as exc:
        # IDNAError is one; older idna releases (3.0, the lowest we allow)
        # also let the punycode codec's own UnicodeError out, for a bad
        # "xn--" label ("xn--*").
        raise InvalidURL(
            f"host {name!r} in {url!r} is not a valid internationalised "
            f"domain name (IDNA 2008): {exc}"
        ) from None


def _parse_port(text: str, default: int, url: str) -> int:
    if not text:
        # RFC 3986 §3.2.3: an empty port is the scheme's default.
        return default
    if not text.isascii() or not text.isdigit():
        raise InvalidURL(f"port {text!r} in {url!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise InvalidURL(f"port {port} in {url!r} is out of range 1-65535")
    return port


def _encode_target(target: str) -> str:
    # RFC 3987 §3.1: an IRI's non-ASCII characters become the percent-encoded
    # UTF-8 of the URI; every ASCII character is kept byte for byte.
    return target if target.isascii() else quote(target, safe=_TARGET_SAFE)


def parse_url(url: str) -> Target:
    """Parse ``url`` into a :class:`Target`.

    Raises:
        InvalidURL: for a scheme other than http, https, ws or wss; a missing
            or malformed host (an empty name, a bad character, an IPv6
            address without brackets, a name that is not valid IDNA 2008);
            a port that is not a number in 1-65535; user info (credentials
            in URLs are refused rather than sent in the clear by accident);
            whitespace or control characters anywhere. The message never
            shows a password from the URL.
    """
    if not isinstance(url, str):
        raise InvalidURL(f"URL must be a str, got {type(url).__name__}")
    shown = redacted(url)
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidURL(f"URL contains whitespace or control characters: {shown!r}")
    match = _URI.match(url)
    assert match is not None  # every group is optional
    scheme_text, authority, path, query = match.groups()
    scheme = (scheme_text or "").lower()
    if scheme not in _SCHEMES:
        raise InvalidURL(
            f"unsupported URL scheme {scheme_text or ''!r} in {shown!r}: "
            "expected http, https, ws or wss"
        )
    default_port, secure = _SCHEMES[scheme]
    if authority is None:
        raise InvalidURL(f"URL has no host: {shown!r}")
    if "@" in authority:
        raise InvalidURL(f"credentials in the URL are not supported: {shown!r}")
    zone = ""
    if authority.startswith("["):
        literal, bracket, after = authority[1:].partition("]")
        if not bracket:
            raise InvalidURL(f"unclosed '[' in the host of {shown!r}")
        if after and not after.startswith(":"):
            raise InvalidURL(f"unexpected {after!r} after the host in {shown!r}")
        if literal[:1].lower() == "v":
            raise InvalidURL(
                f"IPvFuture address [{literal}] in {shown!r} is not supported"
            )
        host, zone = _parse_ipv6(literal, shown)
        port_text = after[1:]
    else:
        name, _, port_text = authority.partition(":")
        if ":" in port_text:
            raise InvalidURL(
                f"an IPv6 address in a URL must be in brackets, as in "
                f"http://[::1]:8080/: {shown!r}"
            )
        if not name:
            raise InvalidURL(f"URL has no host: {shown!r}")
        host = _parse_name(name, shown)
    port = _parse_port(port_text, default_port, shown)
    target = path or "/"
    if query is not None:
        target += "?" + query
    return Target(scheme, host, port, _encode_target(target), secure, zone)
