"""The HTTP/1.1 side of an upgrade, sans-I/O: bytes in, outcomes out.

h11 frames the request and parses the responses. This module adds what h11
leaves to its user: skipping (and counting) 1xx responses, turning a final
non-101 response into a refusal with a bounded body, checking that a 101
names exactly one of the offered protocols, and handing over the bytes that
followed the 101 head. It also holds every response to what h11 lets
through: a version of HTTP/1 (and HTTP/1.1 for a 101), and a head no larger
than ``max_head_size`` however the bytes were split (h11 bounds only a head
that is still incomplete).

It does not import trio (a test checks): the trio code that moves the bytes
lives in ``_upgrade``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import h11

from .._version import __version__
from ._errors import InvalidResponse, ProtocolNotOffered, ResponseTooLarge
from ._limits import Limits
from ._messages import (
    Headers,
    HeadersArg,
    Request,
    Response,
    header_tokens,
    shared_text,
)
from ._syntax import FIELD_VALUE_BAD, TOKEN
from ._url import Target

__all__ = [
    "NEED_DATA",
    "CheckedFields",
    "Handshake",
    "Informational",
    "Refused",
    "Switched",
    "build_request",
    "check_extra_headers",
    "select_offer",
]

logger = logging.getLogger("trio_upgrade")

USER_AGENT = f"trio_upgrade/{__version__}"

# Fields the handshake owns; a caller setting them would break the upgrade.
_RESERVED = frozenset(
    {"upgrade", "connection", "content-length", "transfer-encoding", "te", "trailer"}
)


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by :meth:`Handshake.next_event` when more bytes are needed.
NEED_DATA = _NeedData()


@dataclass(frozen=True)
class Informational:
    """A 1xx response other than 101 (100 Continue, 103 Early Hints...)."""

    response: Response


@dataclass(frozen=True)
class Switched:
    """The server sent 101; ``leftover`` is every byte after its head."""

    response: Response
    leftover: bytes


@dataclass(frozen=True)
class Refused:
    """A final response other than 101.

    Attributes:
        response: its head.
        body: at most ``max_refusal_body`` bytes of its body.
        truncated: the body is not whole: more existed than was kept, or it
            was cut short (the server closed or reset the connection, or the
            caller stopped reading, see :meth:`Handshake.cut_short`).
        reusable: the exchange ended cleanly and the server keeps the
            connection open, so another request can be sent on it.
    """

    response: Response
    body: bytes
    truncated: bool
    reusable: bool


Event = _NeedData | Informational | Switched | Refused


class _HasToken(Protocol):
    @property
    def token(self) -> str: ...
    @property
    def accept_missing_upgrade_header(self) -> bool: ...
    @property
    def connection_options(self) -> Sequence[str]: ...
    def claims(self, tokens: Sequence[str]) -> bool: ...


# h11 events are frozen: one end-of-message serves every request.
_END_OF_MESSAGE = h11.EndOfMessage()

# A status line h11 refuses for want of a minor version ("HTTP/2 200").
_OTHER_VERSION = re.compile(rb"HTTP/([0-9](?:\.[0-9])?) ")

# What h11 holds a field it writes to (h11/_abnf.py): the name a token; the
# value visible bytes (obs-text included) with single runs of SP/HTAB
# between them, none at either end, no NUL.
_FIELD_NAME = re.compile(TOKEN.pattern.encode("ascii"))
_FIELD_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")

# The fields that steer h11's state machine for a request (keep-alive,
# 100-continue, the upgrade proposal, Host's presence and count): h11 sees
# these, in a stand-in event; the others are checked and written here.
_STATE_FIELDS = frozenset({b"host", b"connection", b"upgrade", b"expect"})
# Fields that frame a request body: h11 normalises their values as it writes
# them, so a request carrying one (a custom offer's) goes through h11 whole.
_FRAMING_FIELDS = frozenset({b"content-length", b"transfer-encoding"})


@functools.lru_cache(maxsize=64)
def _state_event(
    method: str, target: str, fields: tuple[tuple[bytes, bytes], ...]
) -> h11.Request:
    """The request as far as h11's state machine reads it.

    h11 checks the method, the target and these fields as it builds the
    event (a bad one raises every time: errors are not cached). Events are
    frozen, so one serves every connection with the same state fields: for
    a WebSocket upgrade, everything but ``Sec-WebSocket-Key``.
    """
    return h11.Request(method=method, target=target, headers=list(fields))


def _request_head(request: Request) -> tuple[h11.Request, bytes] | None:
    """h11's state event for ``request``, and its head as h11 would write it.

    ``None`` for a request with body framing fields, which h11 must write.

    Raises:
        h11.LocalProtocolError: a field h11 would refuse to write.
        UnicodeEncodeError: a field that is not Latin-1, or a method or
            target that is not ASCII, as h11 raises them.
    """
    state: list[tuple[bytes, bytes]] = []
    hosts: list[bytes] = []
    lines: list[bytes] = []
    # Every field encoded before any is checked, as h11 converts them (a
    # field that is not Latin-1 raises first): the flat (name, value, ...)
    # tuple at once, without the pairs of Headers.raw().
    flat = iter([text.encode("latin-1") for text in request.headers._flat])
    for name, value in zip(flat, flat, strict=True):
        lower = name.lower()
        if lower in _STATE_FIELDS:
            state.append((name, value))
            if lower == b"host":
                # h11 writes Host first (RFC 9112 §3.2 advice).
                hosts += (name, b": ", value, b"\r\n")
                continue
        elif lower in _FRAMING_FIELDS:
            return None
        else:
            if _FIELD_NAME.fullmatch(name) is None:
                raise h11.LocalProtocolError(f"Illegal header name {name!r}")
            if _FIELD_VALUE.fullmatch(value) is None:
                raise h11.LocalProtocolError(f"Illegal header value {value!r}")
        lines += (name, b": ", value, b"\r\n")  # joined once, below
    # h11 checks the fields before it encodes the method and the target:
    # the same error comes first here.
    event = _state_event(request.method, request.target, tuple(state))
    start = b"%s %s HTTP/1.1\r\n" % (event.method, event.target)
    return event, b"".join([start, *hosts, *lines, b"\r\n"])


class CheckedFields(tuple[tuple[str, str], ...]):
    """The caller's header fields, as :func:`check_extra_headers` passed them.

    :func:`build_request` takes these as they are and checks anything else:
    ``upgrade()`` checks its fields once, however many requests it makes.
    """

    __slots__ = ()


def check_extra_headers(extra_headers: HeadersArg | None) -> CheckedFields:
    """Validate the caller's extra header fields before anything is sent.

    Raises:
        ValueError: a name is not an RFC 9110 token, a value holds control
            characters (CR/LF would allow header injection), or the field is
            one the handshake owns (``Upgrade``, ``Connection``, framing).
    """
    if extra_headers is None:
        return CheckedFields()
    pairs = (
        extra_headers.items() if isinstance(extra_headers, Mapping) else extra_headers
    )
    user = CheckedFields([(str(n), str(v)) for n, v in pairs])
    for name, value in user:
        if not TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if FIELD_VALUE_BAD.search(value):
            raise ValueError(f"header {name!r} has control characters in its value")
        if name.lower() in _RESERVED:
            raise ValueError(
                f"header {name!r} is set by the upgrade handshake and cannot be "
                "overridden; choose protocols and options instead"
            )
    return user


def build_request(
    target: Target,
    offers: Sequence[_HasToken],
    offer_headers: Iterable[tuple[str, str]],
    extra_headers: HeadersArg | None = None,
    method: str = "GET",
) -> Request:
    """The upgrade request offering ``offers`` in preference order.

    ``extra_headers`` are checked unless they are :class:`CheckedFields`.

    Raises:
        ValueError: ``extra_headers`` is malformed or sets a field the
            handshake owns (``Upgrade``, ``Connection``, framing fields).
    """
    user = (
        extra_headers
        if type(extra_headers) is CheckedFields
        else check_extra_headers(extra_headers)
    )
    names = {n.lower() for n, _ in user}
    headers: list[tuple[str, str]] = []
    if "host" not in names:
        headers.append(("Host", target.authority))
    connection = ["Upgrade"]
    for offer in offers:
        for option in offer.connection_options:
            if option.lower() not in (c.lower() for c in connection):
                connection.append(option)
    headers.append(("Connection", ", ".join(connection)))
    headers.append(("Upgrade", ", ".join(o.token for o in offers)))
    headers.extend(offer_headers)
    if "user-agent" not in names:
        headers.append(("User-Agent", USER_AGENT))
    headers.extend(user)
    return Request(method, target.target, Headers(headers))


def select_offer(response: Response, offers: Sequence[_HasToken]) -> int:
    """Index of the offer that the 101 ``response`` chose.

    Raises:
        ProtocolNotOffered: the response names no protocol (and the missing
            header cannot be excused), several that no single offer claims
            as its stack (:meth:`~trio_upgrade.Offer.claims`), or one not
            offered.
    """
    # One scan of the headers; the joined value and the offer list are only
    # built for an error message.
    upgrade = response.headers.get_all("upgrade")
    tokens = list(dict.fromkeys(header_tokens(upgrade)))
    if len(tokens) == 1:
        for index, offer in enumerate(offers):
            if offer.token.lower() == tokens[0]:
                return index
    offered = ", ".join(o.token for o in offers)
    if not tokens:
        if len(offers) == 1 and offers[0].accept_missing_upgrade_header:
            logger.warning(
                "101 response without an Upgrade header; assuming the only "
                "protocol offered, %r",
                offers[0].token,
            )
            return 0
        raise ProtocolNotOffered(
            "the 101 response does not say which protocol the server switched to",
            response=response,
            expected=f"Upgrade: one of {offered}",
            received="no Upgrade header",
        )
    received = ", ".join(upgrade)
    if len(tokens) > 1:
        # RFC 9110 7.8: a 101 that switches several layers lists them bottom
        # up ("TLS/1.0, HTTP/1.1" in RFC 2817 3.3). Only a protocol that
        # knows its stack may take such a list; for every other the 101
        # must name exactly one token.
        claiming = [i for i, offer in enumerate(offers) if offer.claims(tokens)]
        if len(claiming) == 1:
            return claiming[0]
        raise ProtocolNotOffered(
            "the 101 response names several protocols",
            response=response,
            expected=f"exactly one of {offered}",
            received=f"Upgrade: {received}",
        )
    raise ProtocolNotOffered(
        "the server switched to a protocol that was not offered",
        response=response,
        expected=f"one of {offered}",
        received=f"Upgrade: {received}",
    )


def _response(event: h11.Response | h11.InformationalResponse) -> Response:
    return Response(
        status_code=event.status_code,
        reason=shared_text(event.reason),
        headers=Headers._from_raw(event.headers.raw_items()),
        http_version=shared_text(event.http_version),
    )


class Handshake:
    """Client side of one HTTP/1.1 connection carrying upgrade requests.

    Call :meth:`send_request`, write its bytes, then feed what arrives to
    :meth:`receive_data` (``b""`` at end of stream) and call
    :meth:`next_event` until it returns something other than
    :data:`NEED_DATA`. After a reusable :class:`Refused`, another request may
    be sent on the same connection.
    """

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._conn = h11.Connection(
            h11.CLIENT, max_incomplete_event_size=limits.max_head_size
        )
        self._received = 0
        # Where the response head being parsed starts in the byte stream:
        # h11 reports events, not their sizes, so each head is measured as
        # the bytes h11 consumed since the previous head or message end.
        self._head_start = 0
        self._start = b""  # the first bytes received, to recognise HTTP/2
        self._eof = False
        self._informational = 0
        self._final: Response | None = None
        self._body = bytearray()
        self._truncated = False
        self._done = False
        # Nothing received yet: h11 can only answer NEED_DATA, so
        # next_event() says so without asking it (once per handshake).
        self._fresh = True

    @property
    def received(self) -> int:
        """Bytes received on this connection so far."""
        return self._received

    def send_request(self, request: Request) -> bytes:
        """Bytes of ``request``; starts a new cycle after a reusable refusal."""
        if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
            self._conn.start_next_cycle()
        self._informational = 0
        self._final = None
        self._body.clear()
        self._truncated = False
        self._done = False
        # The head is written here and h11 is told of the request by a
        # stand-in carrying what its state machine reads: building and
        # checking a full h11 event per request was about 15 % of a
        # WebSocket handshake (docs/perf/handshakes.rst). The bytes are h11's.
        head = _request_head(request)
        if head is None:
            event = h11.Request(
                method=request.method,
                target=request.target,
                headers=request.headers.raw(),
            )
            data = self._conn.send(event) or b""
            return data + (self._conn.send(_END_OF_MESSAGE) or b"")
        self._conn.send(head[0])  # the stand-in's own bytes are not sent
        self._conn.send(_END_OF_MESSAGE)
        return head[1]

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes from the server; ``b""`` means it closed its side."""
        if len(self._start) < 9:
            self._start += data[: 9 - len(self._start)]
        self._received += len(data)
        self._fresh = False
        self._eof = self._eof or not data
        self._conn.receive_data(bytes(data))

    def next_event(self) -> Event:
        """The next outcome, or :data:`NEED_DATA`.

        Raises:
            InvalidResponse: the bytes are not a valid HTTP/1.1 response, or
                the stream ended before the response head was complete.
            ResponseTooLarge: the head is over ``max_head_size``, or more
                than ``max_informational`` 1xx responses came.
        """
        if self._done:
            raise RuntimeError("the handshake already produced its outcome")
        if self._fresh:
            return NEED_DATA
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                if self._final is not None:
                    # The refusal's head arrived whole; a broken or cut-short
                    # body does not make it less of an answer.
                    return self._refused(truncated=True)
                raise self._translate(exc) from None
            if event is h11.NEED_DATA:
                if self._final is not None and (
                    len(self._body) >= self._limits.max_refusal_body
                ):
                    # Exactly full and the end is not in sight: waiting for
                    # it could mean waiting forever.
                    return self._refused(truncated=True)
                return NEED_DATA
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    self._done = True
                    leftover, _closed = self._conn.trailing_data
                    self._check_head(event, len(leftover))
                    return Switched(_response(event), bytes(leftover))
                self._check_head(event, len(self._conn.trailing_data[0]))
                response = _response(event)
                self._informational += 1
                if self._informational > self._limits.max_informational:
                    raise ResponseTooLarge(
                        f"more than {self._limits.max_informational} informational "
                        "(1xx) responses before the final response",
                        limit=self._limits.max_informational,
                        received=self._received,
                    )
                return Informational(response)
            if isinstance(event, h11.Response):
                self._check_head(event, len(self._conn.trailing_data[0]))
                self._final = _response(event)
                continue
            if isinstance(event, h11.Data):
                room = self._limits.max_refusal_body - len(self._body)
                if len(event.data) > room:
                    # Over the bound: read no more of a body that may be
                    # endless (chunked or close-delimited).
                    self._body += event.data[:room]
                    return self._refused(truncated=True)
                self._body += event.data
                continue
            if isinstance(event, h11.EndOfMessage):
                # h11 reports DONE for a close-delimited body too, ended by
                # the EOF: that connection is gone, whatever the states say.
                reusable = (
                    not self._eof
                    and self._conn.our_state is h11.DONE
                    and self._conn.their_state is h11.DONE
                )
                if reusable:
                    # The next response's head starts after this message.
                    unparsed = len(self._conn.trailing_data[0])
                    self._head_start = self._received - unparsed
                return self._refused(truncated=False, reusable=reusable)
            if isinstance(event, h11.ConnectionClosed):
                if self._final is not None:
                    # h11 gives EndOfMessage first for close-delimited bodies,
                    # so reaching here means the body was cut short.
                    return self._refused(truncated=True)
                raise InvalidResponse(
                    "the server closed the connection without sending a response",
                    received=self._received,
                )
            # h11 only emits PAUSED after a switch, handled above.
            raise InvalidResponse(  # pragma: no cover - defensive
                f"unexpected HTTP event {event!r}", received=self._received
            )

    def cut_short(self) -> Refused | None:
        """The refusal as far as it arrived, when its body will not be read on.

        For a caller that stops reading (its deadline passed, the connection
        broke) while a refusal's body is arriving: the status and headers
        are whole, so the answer stands, ``truncated``, with the body
        received so far. ``None`` when no final response head has arrived,
        or :meth:`next_event` already gave the outcome.
        """
        if self._done or self._final is None:
            return None
        return self._refused(truncated=True)

    def _check_head(
        self, event: h11.InformationalResponse | h11.Response, unparsed: int
    ) -> None:
        """Hold the head just parsed to the size limit and to HTTP/1.

        ``unparsed`` is how many received bytes h11 has not consumed yet.
        """
        end = self._received - unparsed
        size, self._head_start = end - self._head_start, end
        status = event.status_code
        limit = self._limits.max_head_size
        if size > limit:
            raise ResponseTooLarge(
                f"expected a response head of at most {limit} bytes, got a "
                f"{status} response head of {size} bytes; raise "
                "Limits.max_head_size to accept it",
                limit=limit,
                received=self._received,
            )
        version = event.http_version.decode("ascii")
        if not version.startswith("1."):
            raise InvalidResponse(
                f"expected HTTP/1.1, got HTTP/{version} {status}: the server "
                "does not speak HTTP/1 on this connection",
                received=self._received,
            )
        if status == 101 and version == "1.0":
            # RFC 9110 §15.2.2: switching protocols is HTTP/1.1 only.
            raise InvalidResponse(
                "expected HTTP/1.1, got HTTP/1.0 101: an HTTP/1.0 response "
                "cannot switch protocols (RFC 9110 §15.2.2)",
                received=self._received,
            )

    def _refused(self, *, truncated: bool, reusable: bool = False) -> Refused:
        assert self._final is not None
        self._done = True
        return Refused(self._final, bytes(self._body), truncated, reusable)

    def _translate(self, exc: h11.RemoteProtocolError) -> InvalidResponse:
        if exc.error_status_hint == 431:
            limit = self._limits.max_head_size
            return ResponseTooLarge(
                f"expected a response head of at most {limit} bytes, got more "
                "than that without its end; raise Limits.max_head_size to "
                "accept larger heads",
                limit=limit,
                received=self._received,
            )
        other = _OTHER_VERSION.match(self._start) if not self._head_start else None
        if other is not None and not other.group(1).startswith(b"1"):
            version = other.group(1).decode("ascii")
            return InvalidResponse(
                f"expected HTTP/1.1, got HTTP/{version}: the server does not "
                "speak HTTP/1 on this connection",
                received=self._received,
            )
        if _looks_like_http2_settings(self._start):
            return InvalidResponse(
                "the server answered with an HTTP/2 SETTINGS frame, not HTTP/1.1: "
                "it speaks HTTP/2 with prior knowledge only (use connect_http2())",
                received=self._received,
            )
        if self._eof and self._received == 0:
            return InvalidResponse(
                "the server closed the connection without sending a response",
                received=0,
            )
        if self._eof:
            return InvalidResponse(
                f"the server closed the connection after {self._received} bytes, "
                "before the response head was complete",
                received=self._received,
            )
        return InvalidResponse(
            f"expected an HTTP/1.1 response head, got invalid data: {exc}",
            received=self._received,
        )


def _looks_like_http2_settings(start: bytes) -> bool:
    # RFC 9113 §4.1 frame header: 24-bit length, type, flags, stream id. A
    # server that speaks only HTTP/2 (nghttpd) opens with SETTINGS (type 4)
    # on stream 0 without ACK, its length a multiple of 6 (§6.5).
    if len(start) < 9:
        return False
    length = int.from_bytes(start[:3], "big")
    return (
        start[3] == 0x04
        and not start[4] & 0x01
        and start[5:9] == b"\x00\x00\x00\x00"
        and length % 6 == 0
    )
