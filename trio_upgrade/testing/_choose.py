"""How the test server picks a protocol, and what it answers when it picks none.

Pure functions of the configuration and the request: no I/O, so the choice
rules are easy to read in one place and to test without sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from .._protocol import check_token
from .._sansio._messages import Request
from .._sansio._syntax import list_elements
from ._protocols import RawServerProtocol, ServerProtocol

__all__ = [
    "Choice",
    "Chooser",
    "Reply",
    "default_refusal",
    "offered_tokens",
    "pick",
    "resolve_server_protocols",
]

#: ``choose=`` as a function: given the offered tokens (the client's order
#: and spelling) and the request, the token to switch to, or ``None``.
Chooser = Callable[[Sequence[str], Request], str | None]

ChooseArg = Literal["client", "server"] | Chooser

#: The protocol chosen, the token as the 101 will name it, and the extra
#: header fields its ``accept()`` gave.
Choice = tuple[ServerProtocol, str, list[tuple[str, str]]]

_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    """A final response the server sends instead of switching.

    ``Content-Length`` is added unless ``headers`` frame the body.

    Attributes:
        status_code: a final status (200-599).
        body: the whole body.
        headers: ``(name, value)`` pairs, in order.
        reason: the reason phrase; ``None`` means the standard one.
    """

    status_code: int = 200
    body: bytes = b""
    headers: Sequence[tuple[str, str]] = ()
    reason: str | None = None


def resolve_server_protocols(
    protocols: Sequence[ServerProtocol | str],
) -> tuple[ServerProtocol, ...]:
    """The server's protocols as objects; a string ``t`` is raw echo for ``t``.

    Raises:
        ValueError: a malformed token, or one listed twice (in any case).
        TypeError: an element is neither a string nor a ServerProtocol.
    """
    resolved: list[ServerProtocol] = []
    seen: set[str] = set()
    for item in protocols:
        if isinstance(item, str):
            protocol: ServerProtocol = RawServerProtocol(check_token(item))
        elif isinstance(item, ServerProtocol):
            protocol = item
        else:
            raise TypeError(
                f"expected a token (str) or a ServerProtocol, got {type(item).__name__}"
            )
        if protocol.token.lower() in seen:
            raise ValueError(f"protocol {protocol.token!r} is listed twice")
        seen.add(protocol.token.lower())
        resolved.append(protocol)
    return tuple(resolved)


def offered_tokens(request: Request) -> list[str]:
    """The ``Upgrade`` tokens of ``request``: every field line, in order.

    Kept in the client's spelling (the 101 names the token as offered) and
    without repeats (compared case-insensitively).
    """
    tokens: list[str] = []
    seen: set[str] = set()
    for token in list_elements(request.headers.get_all("upgrade")):
        if token.lower() not in seen:
            seen.add(token.lower())
            tokens.append(token)
    return tokens


def pick(
    request: Request, protocols: Sequence[ServerProtocol], choose: ChooseArg
) -> Choice | None:
    """The protocol to switch to for ``request``, or ``None``.

    ``"client"`` tries the offered tokens in the client's order,
    ``"server"`` tries ``protocols`` in their order; the first supported one
    whose ``accept()`` does not decline wins. A :data:`Chooser` names the
    token itself; its protocol may still decline.

    Raises:
        ValueError: a chooser named a token none of ``protocols`` handles (a
            mistake in the test, so it fails loudly).
    """
    by_token = {p.token.lower(): p for p in protocols}
    offered = offered_tokens(request)
    candidates: list[tuple[ServerProtocol, str]]
    if callable(choose):
        token = choose(tuple(offered), request)
        if token is None:
            return None
        if token.lower() not in by_token:
            raise ValueError(
                f"choose returned {token!r}, which no protocol of this server "
                f"handles (it has {[p.token for p in protocols]})"
            )
        candidates = [(by_token[token.lower()], token)]
    elif choose == "client":
        candidates = [
            (by_token[t.lower()], t) for t in offered if t.lower() in by_token
        ]
    else:
        spelled = {t.lower(): t for t in offered}
        candidates = [
            (p, spelled[p.token.lower()])
            for p in protocols
            if p.token.lower() in spelled
        ]
    for protocol, token in candidates:
        fields = protocol.accept(request)
        if fields is not None:
            return protocol, token, fields
    return None


def default_refusal(
    protocols: Sequence[ServerProtocol], *, ignore_upgrade: bool
) -> Reply:
    """What the server answers by default when it does not switch.

    ``426 Upgrade Required`` naming the supported tokens, or, for a server
    that ignores Upgrade, ``200 OK``. Both have a short text body.
    """
    if ignore_upgrade:
        body = b"200 OK: this server ignores Upgrade\n"
        return Reply(200, body, [("Content-Type", _TEXT)])
    tokens = ", ".join(p.token for p in protocols)
    headers = [("Content-Type", _TEXT)]
    if tokens:
        # RFC 9110 15.5.22: a 426 MUST say what to upgrade to; Upgrade is
        # hop-by-hop, so Connection must name it (RFC 9110 7.6.1).
        headers += [("Upgrade", tokens), ("Connection", "Upgrade")]
    text = f"426 Upgrade Required: this server upgrades to {tokens or 'nothing'}\n"
    return Reply(426, text.encode(), headers)
