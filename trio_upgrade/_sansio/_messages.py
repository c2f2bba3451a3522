"""HTTP/1.1 request and response heads as the library hands them to users.

Sans-I/O: nothing here imports trio.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from ._redact import shown_fields
from ._syntax import list_tokens as header_tokens

__all__ = [
    "Headers",
    "HeadersArg",
    "Request",
    "Response",
    "header_tokens",
    "shared_text",
]

HeaderPairs = Sequence[tuple[bytes, bytes]]

#: Header fields as callers pass them: a mapping, or ``(name, value)`` pairs
#: (for repeated fields).
HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]]


class Headers:
    """An immutable, ordered list of header fields with case-insensitive lookup.

    Names are kept as received (h11 lower-cases them); values are decoded as
    Latin-1, which maps every byte to one character and so never fails.
    Iterating gives ``(name, value)`` pairs in wire order, repeated fields
    included; ``"name" in headers`` tests for a field by name. ``repr()``
    shows credentials (``Authorization``, ``Proxy-Authorization``,
    ``Cookie``, ``Set-Cookie``) as ``[redacted]`` and URLs without their
    user info; iterating or :meth:`get` gives the values as they are.
    """

    # One flat tuple, name and value alternating: a tuple per field would
    # cost 56 bytes more each, and the 101's headers (and the request's)
    # live as long as the connection.
    __slots__ = ("_flat",)

    def __init__(self, items: Iterable[tuple[str | bytes, str | bytes]] = ()) -> None:
        # An exact-type test before the general conversion: headers are
        # built on every handshake, nearly always from str pairs.
        flat: list[str] = []
        add = flat.append
        for name, value in items:
            add(name if type(name) is str else _text(name))
            add(value if type(value) is str else _text(value))
        self._flat: tuple[str, ...] = tuple(flat)

    @classmethod
    def _from_raw(cls, items: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Headers from byte pairs as h11 hands them over (received fields).

        The same result as ``Headers(items)``, without the per-item type
        test: this runs once per response, on the handshake's hot path.
        Common names and values are shared strings (:func:`shared_text`).
        """
        self = cls.__new__(cls)
        known = _KNOWN.get
        flat: list[str] = []
        add = flat.append
        for name, value in items:
            add(known(name) or name.decode("latin-1"))
            add(known(value) or value.decode("latin-1"))
        self._flat = tuple(flat)
        return self

    def _pairs(self) -> Iterator[tuple[str, str]]:
        flat = iter(self._flat)
        return zip(flat, flat, strict=True)

    def _select(self, names: Iterable[str]) -> dict[str, list[str]]:
        """The values of each of ``names`` (lower-case), gathered in one pass.

        For checks that read several fields of the same head: one scan
        instead of one per field, and nothing kept on the object afterwards
        (the 101's headers live as long as the connection).
        """
        found: dict[str, list[str]] = {name: [] for name in names}
        for name, value in self._pairs():
            values = found.get(name.lower())
            if values is not None:
                values.append(value)
        return found

    def get(self, name: str, default: str | None = None) -> str | None:
        """All values of ``name`` joined with ``", "``, or ``default``.

        Joining is what RFC 9110 §5.3 allows for list-valued fields; for
        fields that are not lists, use :meth:`get_all`.
        """
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order, one entry per field line."""
        key = name.lower()
        return [v for n, v in self._pairs() if n.lower() == key]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(n.lower() == key for n in self._flat[::2])

    def __getitem__(self, index: int) -> tuple[str, str]:
        return tuple(self._pairs())[index]

    def __len__(self) -> int:
        return len(self._flat) // 2

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return self._pairs()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._flat == other._flat
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._flat)

    def __repr__(self) -> str:
        # Credentials (Authorization, Cookie...) are shown as "[redacted]":
        # a repr ends up in logs and tracebacks. Iterate to read them.
        return f"Headers({shown_fields(self._pairs())!r})"

    def raw(self) -> list[tuple[bytes, bytes]]:
        """The fields as ``(name, value)`` byte pairs, for h11 and h2."""
        return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in self._pairs()]

    def tokens(self, name: str) -> list[str]:
        """The comma-separated tokens of every ``name`` field, lower-cased.

        Reads every field line, not only the last, and skips empty list
        elements as RFC 9110 §5.6.1 requires of recipients.
        """
        return header_tokens(self.get_all(name))


#: Strings that come in nearly every response head, as one shared object
#: each, by their bytes: the names of common fields, as servers spell them
#: (h11 keeps the case) and in lower case, the values of the upgrade
#: fields, the 101's reason and the HTTP versions. A fixed table: what a
#: server sends never grows it.
_KNOWN: dict[bytes, str] = {
    text.encode("latin-1"): text
    for name in (
        "Upgrade",
        "Connection",
        "Sec-WebSocket-Accept",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Version",
        "Server",
        "Date",
        "Content-Length",
        "Content-Type",
        "Transfer-Encoding",
        "Location",
        "Keep-Alive",
        "websocket",
        "WebSocket",
        "h2c",
        "close",
        "13",
        "Switching Protocols",
        "1.1",
        "1.0",
    )
    for text in (name, name.lower())
}


def shared_text(data: bytes) -> str:
    """``data`` decoded as Latin-1: one shared string when it is a common
    one (a 101's reason phrase, ``1.1``), so that the heads every
    connection keeps do not each hold a copy."""
    return _KNOWN.get(data) or data.decode("latin-1")


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class Request:
    """The head of the upgrade request that was sent.

    Attributes:
        method: the request method, usually ``"GET"``.
        target: the request target (path and query).
        headers: every header field sent, in order.

    ``str()`` gives the head as text, credentials shown as ``[redacted]``.
    """

    method: str
    target: str
    headers: Headers = field(default_factory=Headers)

    def __str__(self) -> str:
        lines = [f"{self.method} {self.target} HTTP/1.1"]
        lines += [f"{n}: {v}" for n, v in shown_fields(self.headers)]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Response:
    """The head of a response the server sent.

    Attributes:
        status_code: the three-digit status code.
        reason: the reason phrase, possibly empty.
        headers: every header field, in order.
        http_version: ``"1.1"`` or ``"1.0"``.

    ``str()`` gives the head as text, credentials shown as ``[redacted]``.
    """

    status_code: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    http_version: str = "1.1"

    def __str__(self) -> str:
        lines = [f"HTTP/{self.http_version} {self.status_code} {self.reason}".rstrip()]
        lines += [f"{n}: {v}" for n, v in shown_fields(self.headers)]
        return "\n".join(lines)
