"""A request on an HTTP/2 connection: its head, checked once, and its body.

The head is checked here against RFC 9113 §8.2-8.3 (so h2's own second pass
over every field can be skipped, see ``_sansio._h2_options``); the body is
sent as flow control allows, from bytes or an iterable of pieces.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, Iterable, Mapping
from types import AsyncGeneratorType, GeneratorType

import trio

from .._sansio._errors import StreamReset, UpgradeError
from .._sansio._messages import HeadersArg
from .._sansio._syntax import TOKEN, TOKEN_LOWER_BYTES
from .._sansio._url import parse_url, redacted
from ._engine import H2Engine
from ._state import Header, StreamState

__all__ = [
    "Body",
    "HeadersArg",
    "begin",
    "bounded_body",
    "origin_form",
    "request_head",
]

#: A request body: bytes, or pieces from a (possibly async) iterable.
Body = bytes | bytearray | memoryview | Iterable[bytes] | AsyncIterable[bytes]

# RFC 9110 §5.1 token, lower case only: RFC 9113 §8.2.1 forbids upper case.
_NAME = TOKEN_LOWER_BYTES
# RFC 9113 §8.2.1: no NUL, CR or LF; no leading or trailing whitespace.
_VALUE = re.compile(rb"(?:[^\x00\r\n \t](?:[^\x00\r\n]*[^\x00\r\n \t])?)?")
# RFC 9112 §3.2: visible ASCII only (RFC 3986 characters, percent-encoded).
_TARGET = re.compile(r"[\x21-\x7e]+")
_METHOD = TOKEN
# RFC 3986 §3.1: a scheme, then ":" (an absolute URL rather than a path).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# RFC 9113 §8.2.2: connection-specific fields have no place in HTTP/2.
_CONNECTION_SPECIFIC = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"http2-settings",
    }
)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def origin_form(target: str, *, scheme: str, authority: str) -> str:
    """``target`` as a path and query: an absolute URL loses its origin.

    ``"https://example.com/a?b"`` on a connection to ``https`` and
    ``example.com`` is ``"/a?b"``. A URL of another origin cannot be sent on
    this connection (RFC 9113 §8.3.1 lets ``:authority`` name another host
    only for a server authoritative for it, which a client cannot know).

    Raises:
        ValueError: the URL's scheme or authority is not the connection's
            (an :class:`~trio_upgrade.InvalidURL` for a URL that does not
            parse).
    """
    if not isinstance(target, str) or not _SCHEME.match(target):
        return target
    url = parse_url(target)
    if url.scheme != scheme or url.authority != authority:
        raise ValueError(
            f"{redacted(target)!r} is not on this connection's origin "
            f"{scheme}://{authority}: open a connection to its own origin"
        )
    return url.target


def request_head(
    method: str,
    target: str,
    headers: HeadersArg | None,
    *,
    scheme: str,
    authority: str,
    protocol: str | None = None,
    content_length: int | None = None,
) -> list[Header]:
    """The request's header block: pseudo-header fields, then ``headers``.

    Raises:
        ValueError: an invalid method, target or header field, a field
            specific to HTTP/1.1 connections, or a plain CONNECT.
    """
    key = (method, target, scheme, authority, protocol)
    pseudo = _PSEUDO.get(key) if type(method) is type(target) is str else None
    if pseudo is None:
        pseudo = _pseudo_fields(method, target, scheme, authority, protocol)
        if type(method) is type(target) is str:
            if len(_PSEUDO) >= _PSEUDO_SIZE:
                _PSEUDO.clear()
            _PSEUDO[key] = pseudo
    method_field, scheme_field, host, path_field, protocol_field = pseudo
    fields: list[Header] = []
    names: set[bytes] = set()
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for raw_name, raw_value in pairs:
        name = str(raw_name).lower().encode("latin-1")
        value = str(raw_value).encode("latin-1")
        if not _NAME.fullmatch(name):
            raise ValueError(f"invalid header name {raw_name!r}")
        if not _VALUE.fullmatch(value):
            raise ValueError(f"invalid value for header {raw_name!r}: {raw_value!r}")
        if name in _CONNECTION_SPECIFIC or (name == b"te" and value != b"trailers"):
            raise ValueError(
                f"header {raw_name!r} is specific to HTTP/1.1 connections and "
                "not allowed in HTTP/2 (RFC 9113 §8.2.2)"
            )
        if name == b"host":
            # RFC 9113 §8.3.1: :authority replaces Host.
            host = value
            continue
        names.add(name)
        fields.append((name, value))
    if content_length is not None and b"content-length" not in names:
        fields.append((b"content-length", str(content_length).encode()))
    head = [method_field, scheme_field, (b":authority", host), path_field]
    if protocol_field is not None:
        head.append(protocol_field)
    return head + fields


# The pseudo-header fields of a method, target, origin and protocol, checked:
# the same few from one request to the next on a connection, and a pure
# function of their strings (errors are not kept: a bad one raises again).
_Pseudo = tuple[Header, Header, bytes, Header, Header | None]
_PSEUDO: dict[tuple[str, str, str, str, str | None], _Pseudo] = {}

#: Checked request pseudo-header fields kept for reuse (method, target,
#: origin): the store is emptied when full, so targets that never repeat
#: hold at most this many entries, for the whole process.
_PSEUDO_SIZE = 256


def _pseudo_fields(
    method: str, target: str, scheme: str, authority: str, protocol: str | None
) -> _Pseudo:
    if not isinstance(method, str) or not _METHOD.fullmatch(method):
        raise ValueError(f"invalid request method {method!r}")
    target = origin_form(target, scheme=scheme, authority=authority)
    if method == "CONNECT" and protocol is None:
        raise ValueError(
            "plain CONNECT is not supported; use open_stream(protocol=...) "
            "for extended CONNECT"
        )
    if not isinstance(target, str) or not (
        target.startswith("/") or (method == "OPTIONS" and target == "*")
    ):
        raise ValueError(f"request target must start with '/', got {target!r}")
    if not _TARGET.fullmatch(target):
        raise ValueError(f"request target has whitespace or non-ASCII: {target!r}")
    return (
        (b":method", method.encode("ascii")),
        (b":scheme", scheme.encode("ascii")),
        authority.encode("ascii"),
        (b":path", target.encode("ascii")),
        None if protocol is None else (b":protocol", protocol.encode("ascii")),
    )


async def begin(
    engine: H2Engine,
    method: str,
    target: str,
    headers: HeadersArg | None,
    body: Body,
    *,
    scheme: str,
    authority: str,
) -> StreamState:
    """Open the request's stream and send its body; the caller abandons it."""
    if isinstance(body, str):
        raise TypeError("the body must be bytes, not str: encode the text")
    length: int | None = None
    if isinstance(body, (bytes, bytearray, memoryview)):
        size = memoryview(body).nbytes
        empty = size == 0
        if size or method in _BODY_METHODS:
            length = size
    else:
        empty = False
    fields = request_head(
        method,
        target,
        headers,
        scheme=scheme,
        authority=authority,
        content_length=length,
    )
    state = await engine.open_stream(
        fields, end_stream=empty, head_request=method == "HEAD"
    )
    if not empty:
        try:
            await _send_body(engine, state, body)
        except BaseException:
            await engine.abandon(state)
            raise
    return state


async def _send_body(engine: H2Engine, state: StreamState, body: Body) -> None:
    if isinstance(body, (bytes, bytearray, memoryview)):
        await engine.send_data(state, body, end=True)
    elif isinstance(body, AsyncIterable):
        pieces = aiter(body)
        try:
            async for piece in pieces:
                if piece:
                    await engine.send_data(state, piece, end=False)
        finally:
            # Abandoned (cancelled, the stream failed): a generator's
            # cleanup runs now rather than when it is collected, which
            # Trio reports as a ResourceWarning. Only generators: another
            # iterable may be the caller's to reuse (a memory channel).
            if isinstance(pieces, AsyncGeneratorType):
                await pieces.aclose()
        await engine.send_data(state, b"", end=True)
    else:
        items = iter(body)
        try:
            for piece in items:
                if piece:
                    await engine.send_data(state, piece, end=False)
        finally:
            if isinstance(items, GeneratorType):
                items.close()
        await engine.send_data(state, b"", end=True)


async def bounded_body(engine: H2Engine, state: StreamState) -> bytes:
    """Up to 64 KiB of a refusal's body, within ``close_timeout``."""
    try:
        with trio.move_on_after(engine.state.limits.close_timeout):
            return await engine.receive_all(state, 64 * 1024)
    except (StreamReset, UpgradeError):
        pass
    return b""
