"""The WebSocket opening handshake, sans-I/O: offer headers and 101 checks.

RFC 6455 §4.1 (client requirements) and RFC 7692 §7.1 (permessage-deflate
parameters): every field the server sends back must match what was offered,
and what the RFCs leave to the server (choosing no subprotocol, naming our
compression window) is accepted. Nothing here imports trio; the server side
of :mod:`trio_upgrade.testing` uses the same helpers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._errors import InvalidUpgrade
from ._messages import Response, header_tokens
from ._syntax import TOKEN

__all__ = [
    "DeflateParams",
    "ExtensionError",
    "accept_key",
    "check_negotiation",
    "check_switch",
    "new_key",
    "parse_deflate_params",
    "parse_extensions",
    "valid_key",
]

# RFC 6455 §1.3: the GUID appended to the key before hashing.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# RFC 9110 §5.6.2 token, and §5.6.4 quoted-string (with quoted-pair).
_TOKEN_RE = TOKEN
_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_OWS = " \t"

#: One extension from ``Sec-WebSocket-Extensions``: its name and its
#: parameters in order, each ``(name, value or None)``; names lower-cased.
ParsedExtension = tuple[str, list[tuple[str, str | None]]]


class ExtensionError(ValueError):
    """A ``Sec-WebSocket-Extensions`` value that cannot be accepted."""


def new_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64 (RFC 6455 §4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value that answers ``key`` (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_key(key: str) -> bool:
    """Whether ``key`` is base64 of exactly 16 bytes, as RFC 6455 §4.1 requires."""
    try:
        return len(base64.b64decode(key.encode("ascii"), validate=True)) == 16
    except (binascii.Error, UnicodeEncodeError):
        return False


def _skip_ows(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _OWS:
        pos += 1
    return pos


def _token(text: str, pos: int, what: str) -> tuple[str, int]:
    match = _TOKEN_RE.match(text, pos)
    if match is None:
        raise ExtensionError(f"expected {what} at offset {pos} of {text!r}")
    return match.group(), match.end()


def parse_extensions(values: Iterable[str]) -> list[ParsedExtension]:
    """Parse ``Sec-WebSocket-Extensions`` field values (RFC 6455 §9.1).

    Every field line counts, empty list elements are skipped (RFC 9110
    §5.6.1) and quoted parameter values are unquoted.

    Raises:
        ExtensionError: the value does not follow the grammar.
    """
    result: list[ParsedExtension] = []
    for text in values:
        pos = 0
        while True:
            while pos < len(text) and text[pos] in _OWS + ",":
                pos += 1
            if pos >= len(text):
                break
            name, pos = _token(text, pos, "an extension name")
            params: list[tuple[str, str | None]] = []
            pos = _skip_ows(text, pos)
            while pos < len(text) and text[pos] == ";":
                pos = _skip_ows(text, pos + 1)
                param, pos = _token(text, pos, "a parameter name")
                value: str | None = None
                pos = _skip_ows(text, pos)
                if pos < len(text) and text[pos] == "=":
                    pos = _skip_ows(text, pos + 1)
                    quoted = _QUOTED_RE.match(text, pos)
                    if quoted is not None:
                        value = re.sub(r"\\(.)", r"\1", quoted.group(1))
                        pos = quoted.end()
                        # RFC 6455 §9.1: an unquoted value must be a token.
                        if not _TOKEN_RE.fullmatch(value):
                            raise ExtensionError(
                                f"quoted value {value!r} of {param} is not a token"
                            )
                    else:
                        value, pos = _token(text, pos, "a parameter value")
                    pos = _skip_ows(text, pos)
                params.append((param.lower(), value))
            result.append((name.lower(), params))
            if pos < len(text) and text[pos] != ",":
                raise ExtensionError(f"unexpected {text[pos]!r} at offset {pos}")
    return result


@dataclass(frozen=True)
class DeflateParams:
    """permessage-deflate parameters, as offered or as agreed (RFC 7692 §7.1).

    Window sizes are base-2 logarithms (8 to 15). In an offer, ``None``
    leaves a parameter out; ``client_max_window_bits=0`` offers it without a
    value ("tell me my window"). As agreed, ``None`` means the default 15.
    """

    client_max_window_bits: int | None = None
    server_max_window_bits: int | None = None
    client_no_context_takeover: bool = False
    server_no_context_takeover: bool = False

    def header_value(self) -> str:
        """The ``Sec-WebSocket-Extensions`` element for these parameters."""
        parts = ["permessage-deflate"]
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_max_window_bits is not None:
            bits = self.client_max_window_bits
            parts.append(
                f"client_max_window_bits={bits}" if bits else "client_max_window_bits"
            )
        if self.server_max_window_bits is not None:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        return "; ".join(parts)


def _window_bits(name: str, value: str | None) -> int:
    # RFC 7692 §7.1.2: 1*DIGIT without leading zero, 8 to 15.
    if value is None or not re.fullmatch(r"[1-9][0-9]?", value):
        raise ExtensionError(f"{name} needs a value from 8 to 15, got {value!r}")
    bits = int(value)
    if not 8 <= bits <= 15:
        raise ExtensionError(f"{name} must be from 8 to 15, got {bits}")
    return bits


def parse_deflate_params(
    params: Sequence[tuple[str, str | None]], offer: DeflateParams
) -> DeflateParams:
    """Check a server's permessage-deflate response against our ``offer``.

    RFC 7692 §7.1: each parameter at most once; the server may add
    ``client_no_context_takeover``; it must echo ``server_no_context_takeover``
    and a ``server_max_window_bits`` no larger than ours when we asked for
    them; ``client_max_window_bits`` only if we offered it, no larger than our
    value.

    Returns:
        The agreed parameters.

    Raises:
        ExtensionError: the response is not an acceptable answer.
    """
    seen: dict[str, str | None] = {}
    for name, value in params:
        if name in seen:
            raise ExtensionError(f"parameter {name} given twice")
        seen[name] = value
    unknown = set(seen) - {
        "client_no_context_takeover",
        "server_no_context_takeover",
        "client_max_window_bits",
        "server_max_window_bits",
    }
    if unknown:
        raise ExtensionError(f"unknown parameter {sorted(unknown)[0]}")
    for flag in ("client_no_context_takeover", "server_no_context_takeover"):
        if flag in seen and seen[flag] is not None:
            raise ExtensionError(f"{flag} takes no value")
    server_nct = "server_no_context_takeover" in seen
    if offer.server_no_context_takeover and not server_nct:
        raise ExtensionError("server_no_context_takeover was requested but not agreed")
    server_bits: int | None = None
    if "server_max_window_bits" in seen:
        server_bits = _window_bits(
            "server_max_window_bits", seen["server_max_window_bits"]
        )
        if (
            offer.server_max_window_bits is not None
            and server_bits > offer.server_max_window_bits
        ):
            raise ExtensionError(
                f"server_max_window_bits={server_bits} exceeds the "
                f"{offer.server_max_window_bits} requested"
            )
    elif offer.server_max_window_bits is not None:
        # §7.1.2.1: a server accepts this parameter only by echoing it.
        raise ExtensionError("server_max_window_bits was requested but not agreed")
    client_bits = offer.client_max_window_bits or None
    if "client_max_window_bits" in seen:
        if offer.client_max_window_bits is None:
            raise ExtensionError("client_max_window_bits was not offered")
        client_bits = _window_bits(
            "client_max_window_bits", seen["client_max_window_bits"]
        )
        if offer.client_max_window_bits and client_bits > offer.client_max_window_bits:
            raise ExtensionError(
                f"client_max_window_bits={client_bits} exceeds the "
                f"{offer.client_max_window_bits} offered"
            )
    return DeflateParams(
        client_max_window_bits=client_bits,
        server_max_window_bits=server_bits,
        client_no_context_takeover="client_no_context_takeover" in seen,
        server_no_context_takeover=server_nct,
    )


# The fields check_switch() reads, gathered in one pass.
_SWITCH_FIELDS = (
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
)


@dataclass(frozen=True)
class Switch:
    """What a valid 101 agreed to.

    Attributes:
        subprotocol: the subprotocol the server chose, or ``None``.
        deflate: the agreed permessage-deflate parameters, or ``None``.
        extensions: the ``Sec-WebSocket-Extensions`` elements as received.
    """

    subprotocol: str | None
    deflate: DeflateParams | None
    extensions: tuple[str, ...]


def _fail(
    response: Response, message: str, expected: str, received: str
) -> InvalidUpgrade:
    return InvalidUpgrade(
        message, response=response, expected=expected, received=received
    )


def check_switch(
    response: Response,
    key: str,
    subprotocols: Sequence[str],
    deflate: DeflateParams | None,
    *,
    require_subprotocol: bool,
) -> Switch:
    """Validate the 101 that chose WebSocket (RFC 6455 §4.1, RFC 7692 §7.1).

    Args:
        response: the 101.
        key: the ``Sec-WebSocket-Key`` that was sent.
        subprotocols: the subprotocols offered, in order.
        deflate: the permessage-deflate offer, or ``None`` if none was made.
        require_subprotocol: fail when subprotocols were offered and the
            server chose none (RFC 6455 allows a server to choose none).

    Raises:
        InvalidUpgrade: a field is missing or does not match the offer; the
            error carries what was expected and what was received.
    """
    # Every field below in one scan of the head, not one scan per field.
    found = response.headers._select(_SWITCH_FIELDS)
    upgrade = found["upgrade"]
    if header_tokens(upgrade) != ["websocket"]:
        raise _fail(
            response,
            "the 101 does not switch to WebSocket",
            "Upgrade: websocket",
            f"Upgrade: {', '.join(upgrade) or '(none)'}",
        )
    connection = found["connection"]
    if "upgrade" not in header_tokens(connection):
        received = ", ".join(connection) or "(none)"
        raise _fail(
            response,
            "the 101 lacks Connection: upgrade",
            "Connection: upgrade",
            f"Connection: {received}",
        )
    expected_accept = accept_key(key)
    accepts = [v.strip(_OWS) for v in found["sec-websocket-accept"]]
    if accepts != [expected_accept]:
        raise _fail(
            response,
            "Sec-WebSocket-Accept does not match the key",
            f"Sec-WebSocket-Accept: {expected_accept}",
            f"Sec-WebSocket-Accept: {', '.join(accepts) or '(none)'}",
        )
    return _negotiate(response, found, subprotocols, deflate, require_subprotocol)


# The fields check_negotiation() reads.
_NEGOTIATION_FIELDS = ("sec-websocket-protocol", "sec-websocket-extensions")


def check_negotiation(
    response: Response,
    subprotocols: Sequence[str],
    deflate: DeflateParams | None,
    *,
    require_subprotocol: bool,
) -> Switch:
    """Check the subprotocol and extensions a handshake's answer agreed to.

    The part of :func:`check_switch` that does not depend on how the
    WebSocket was opened: the 101 of an HTTP/1.1 upgrade (RFC 6455 §4.1)
    and the 2xx of an extended CONNECT (RFC 8441 §5) are held to the same
    rules. Each field line is one value, stripped of optional whitespace;
    a repeated ``Sec-WebSocket-Protocol`` line is refused, as is an
    extension that was not offered.

    Args:
        response: the answer.
        subprotocols: the subprotocols offered, in order.
        deflate: the permessage-deflate offer, or ``None`` if none was made.
        require_subprotocol: fail when subprotocols were offered and the
            server chose none.

    Raises:
        InvalidUpgrade: the answer does not match the offer; the error
            carries what was expected and what was received.
    """
    found = response.headers._select(_NEGOTIATION_FIELDS)
    return _negotiate(response, found, subprotocols, deflate, require_subprotocol)


def _negotiate(
    response: Response,
    found: dict[str, list[str]],
    subprotocols: Sequence[str],
    deflate: DeflateParams | None,
    require_subprotocol: bool,
) -> Switch:
    # found: the values of the fields in _NEGOTIATION_FIELDS (at least).
    chosen = [v.strip(_OWS) for v in found["sec-websocket-protocol"]]
    subprotocol: str | None = None
    if chosen:
        if len(chosen) != 1 or chosen[0] not in subprotocols:
            raise _fail(
                response,
                "the server chose a subprotocol that was not offered",
                f"one of {', '.join(subprotocols)}"
                if subprotocols
                else "no Sec-WebSocket-Protocol",
                f"Sec-WebSocket-Protocol: {', '.join(chosen)}",
            )
        subprotocol = chosen[0]
    elif subprotocols and require_subprotocol:
        raise _fail(
            response,
            "the server chose none of the subprotocols offered",
            f"Sec-WebSocket-Protocol: one of {', '.join(subprotocols)}",
            "no Sec-WebSocket-Protocol",
        )
    fields = found["sec-websocket-extensions"]
    if not fields:
        # The usual answer: nothing to parse, nothing agreed.
        return Switch(subprotocol, None, ())
    received_ext = ", ".join(fields)
    try:
        parsed = parse_extensions(fields)
    except ExtensionError as exc:
        raise _fail(
            response,
            f"malformed Sec-WebSocket-Extensions: {exc}",
            "a valid extension list",
            received_ext,
        ) from None
    agreed: DeflateParams | None = None
    for name, params in parsed:
        if name != "permessage-deflate" or deflate is None or agreed is not None:
            raise _fail(
                response,
                f"the server accepted extension {name!r}, which was not offered",
                deflate.header_value() if deflate is not None else "no extensions",
                received_ext,
            )
        try:
            agreed = parse_deflate_params(params, deflate)
        except ExtensionError as exc:
            raise _fail(
                response,
                f"unacceptable permessage-deflate parameters: {exc}",
                deflate.header_value(),
                received_ext,
            ) from None
    elements = tuple(
        e.strip(_OWS) for f in fields for e in f.split(",") if e.strip(_OWS)
    )
    return Switch(subprotocol, agreed, elements)
