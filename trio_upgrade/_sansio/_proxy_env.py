"""Which proxy the environment names for a URL (sans-I/O, pure).

The rules, documented for users in ``docs/howto/proxies.rst``, follow what
Python's ``urllib.request`` (and so httpx, requests and websockets) and curl
do, where they agree:

* the variable is chosen by the URL's scheme: ``ws://`` reads ``ws_proxy``,
  then ``http_proxy``; ``wss://`` reads ``wss_proxy``, then ``https_proxy``;
  ``http://`` reads ``http_proxy``; ``https://`` reads ``https_proxy``; each
  then falls back to ``all_proxy``;
* the lower-case name wins over the upper-case one, even when it is set to
  the empty string (which then means "unset", and the next name is read);
* upper-case ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` is set: in a
  CGI script, the client's ``Proxy:`` request header arrives as
  ``HTTP_PROXY`` ("httpoxy", CVE-2016-5385), as ``urllib`` does;
* a value without ``scheme://`` is an ``http://`` proxy (curl, requests);
* ``no_proxy`` (lower-case first) lists hosts reached directly: ``*`` for
  all; a name matches itself and its subdomains, with or without a leading
  ``.`` (or ``*.``); an IP address matches itself, a CIDR range
  (``10.0.0.0/8``, ``fd00::/8``) the addresses in it; ``host:port`` (an IPv6
  address in brackets) matches that port only. Names compare in their ASCII
  form (A-labels for internationalised names), case-insensitively, a
  trailing dot ignored. Entries that are none of these are skipped. Loopback
  is not bypassed unless listed (as in curl, ``urllib`` and httpx).
"""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ._errors import InvalidURL
from ._url import Target, _parse_name

__all__ = [
    "PROCESS_ENVIRONMENT",
    "NoProxy",
    "ProcessEnvironment",
    "environment_proxy",
    "parse_no_proxy",
]

#: The variables read for each scheme, in order (``all_proxy`` last).
PROXY_VARIABLES: Mapping[str, tuple[str, ...]] = {
    "ws": ("ws_proxy", "http_proxy", "all_proxy"),
    "wss": ("wss_proxy", "https_proxy", "all_proxy"),
    "http": ("http_proxy", "all_proxy"),
    "https": ("https_proxy", "all_proxy"),
}

#: A no_proxy list longer than this is cut: it comes from the environment,
#: which a caller does not bound, and is parsed on the connect path (cached).
_MAX_NO_PROXY = 65536

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class _Entry:
    """One ``no_proxy`` entry: a name (suffix) or a network, maybe a port."""

    name: str | None
    network: _Network | None
    port: int | None

    def matches(
        self,
        host: str,
        port: int,
        v4: ipaddress.IPv4Address | None,
        v6: ipaddress.IPv6Address | None,
    ) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            ip = v4 if self.network.version == 4 else v6
            return ip is not None and ip in self.network
        assert self.name is not None
        return host == self.name or host.endswith("." + self.name)


@dataclass(frozen=True)
class NoProxy:
    """A parsed ``no_proxy`` list.

    Attributes:
        everything: the list holds ``*``: no URL uses the proxy.
        entries: the other usable entries, in order.
    """

    everything: bool
    entries: tuple[_Entry, ...]

    def bypasses(self, target: Target) -> bool:
        """Whether ``target`` is reached directly rather than by the proxy."""
        if self.everything:
            return True
        if not self.entries:
            return False
        host = target.host.rstrip(".")
        v4: ipaddress.IPv4Address | None = None
        v6: ipaddress.IPv6Address | None = None
        if target.is_ip_literal:
            ip = ipaddress.ip_address(host)
            if isinstance(ip, ipaddress.IPv6Address):
                v6 = ip
                # An IPv4-mapped address is that IPv4 address.
                v4 = ip.ipv4_mapped
            else:
                v4 = ip
        return any(e.matches(host, target.port, v4, v6) for e in self.entries)


def _parse_entry(text: str) -> _Entry | None:
    """One entry of the list, or ``None`` when it is not usable."""
    port: int | None = None
    host = text
    if text.startswith("["):
        inside, bracket, after = text[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            return None
        host = inside
        if after:
            if not after[1:].isascii() or not after[1:].isdigit():
                return None
            port = int(after[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isascii() or not port_text.isdigit():
            return None
        port = int(port_text)
    if port is not None and not 0 < port < 65536:
        return None
    try:
        network = ipaddress.ip_network(host, strict=False)
    except ValueError:
        pass
    else:
        return _Entry(None, network, port)
    if ":" in host or "/" in host:
        return None  # neither an address nor a name
    name = host.removeprefix("*").lstrip(".").rstrip(".")
    if not name:
        return None
    try:
        name = _parse_name(name, "no_proxy")
    except InvalidURL:
        return None
    return _Entry(name, None, port)


@functools.lru_cache(maxsize=16)
def parse_no_proxy(value: str) -> NoProxy:
    """Parse a ``no_proxy`` value: entries separated by commas or spaces.

    Cached: the environment is read on every connect, and it rarely changes.
    """
    entries: list[_Entry] = []
    everything = False
    for text in value[:_MAX_NO_PROXY].replace(",", " ").split():
        if text == "*":
            everything = True
            continue
        entry = _parse_entry(text.lower())
        if entry is not None:
            entries.append(entry)
    return NoProxy(everything, tuple(entries))


def _variable(environ: Mapping[str, str], name: str) -> str | None:
    """The value of ``name`` (lower-case first), ``None`` when unset or empty."""
    value = environ.get(name)
    if value is None:
        value = environ.get(name.upper())
        if value and name == "http_proxy" and "REQUEST_METHOD" in environ:
            return None  # CGI: HTTP_PROXY is the client's "Proxy:" header
    if value is None:
        return None
    return value.strip() or None


def environment_proxy(target: Target, environ: Mapping[str, str]) -> str | None:
    """The proxy URL that ``environ`` names for ``target``, or ``None``.

    ``None`` when no variable for the scheme is set (or all are empty), or
    when ``no_proxy`` lists the target. The URL is returned as written, but
    with ``http://`` in front when it names no scheme.
    """
    for name in PROXY_VARIABLES[target.scheme]:
        url = _variable(environ, name)
        if url is not None:
            break
    else:
        return None
    no_proxy = _variable(environ, "no_proxy")
    if no_proxy is not None and parse_no_proxy(no_proxy).bypasses(target):
        return None
    return url if "://" in url else f"http://{url}"


class ProcessEnvironment(Mapping[str, str]):
    """``os.environ`` as :func:`environment_proxy` reads it on every connect,
    with a miss that costs a dictionary look-up.

    ``os.environ.get()`` of an unset variable raises and catches two
    ``KeyError`` inside ``os`` (its ``__getitem__`` re-raises the one of its
    dictionary); with six proxy variables usually unset, that was about 4 %
    of a WebSocket handshake (docs/perf/handshake-overhead.rst). Here a
    variable is first looked for among ``os.environ``'s keys, encoded as
    ``os.environ`` encodes them (its ``encodekey``); a variable that is
    there is read through ``os.environ.get()`` as before. Every read sees
    the environment as it is now (the dictionary is ``os.environ``'s own,
    which every change through ``os.environ`` updates), so the result is
    always ``os.environ``'s.

    ``environ`` is the mapping to read; when it is not laid out as CPython's
    ``os._Environ`` (a dictionary ``_data`` of encoded keys beside an
    ``encodekey`` method), every read goes through ``environ`` itself.
    """

    __slots__ = ("_data", "_encodekey", "_environ", "_keys")

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        data = getattr(environ, "_data", None)
        encodekey = getattr(environ, "encodekey", None)
        usable = isinstance(data, dict) and callable(encodekey)
        self._data: dict[object, object] | None = data if usable else None
        self._encodekey = encodekey
        # Encoded names, by name: only the few names the proxy rules read.
        self._keys: dict[str, object] = {}

    @property
    def environ(self) -> Mapping[str, str]:
        """The mapping read."""
        return self._environ

    def _absent(self, key: str) -> bool:
        """Whether ``key`` is surely unset (``False``: ask ``environ``)."""
        data = self._data
        if data is None:
            return False
        encoded = self._keys.get(key)
        if encoded is None:
            assert self._encodekey is not None
            encoded = self._encodekey(key)
            if len(self._keys) < 64:
                self._keys[key] = encoded
        return encoded not in data

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        # _absent(), inlined: this runs up to six times per connect.
        data = self._data
        if data is not None:
            encoded = self._keys.get(key)
            if encoded is not None and encoded not in data:
                return default
            if encoded is None and self._absent(key):
                return default
        return self._environ.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str) and self._absent(key):
            return False
        return key in self._environ

    def __getitem__(self, key: str) -> str:
        return self._environ[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


#: The process's environment, read as :class:`ProcessEnvironment` reads it.
PROCESS_ENVIRONMENT = ProcessEnvironment(os.environ)
