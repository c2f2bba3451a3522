"""The plug-in contract between the handshake and each upgrade protocol.

A protocol is an :class:`UpgradeProtocol`: a reusable, immutable description
(``WebSocket(subprotocols=[...])``, ``H2C(...)``, ``Raw("my-proto/1")``).
For each request that offers it, the handshake calls :meth:`~UpgradeProtocol.offer`
and gets an :class:`Offer`: the per-request state (a WebSocket key, an h2
connection object) that

(a) contributes header fields to the request (:meth:`Offer.headers`,
    :attr:`Offer.connection_options`),
(b) validates the 101 that chose it (:meth:`Offer.validate`), and
(c) builds the typed connection from the transport and the bytes that arrived
    after the 101 head (:meth:`Offer.build`).

The handshake itself checks what is common to every protocol: that the 101
names exactly one of the offered tokens.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from ._sansio._syntax import PROTOCOL

if TYPE_CHECKING:
    import trio

    from ._sansio._errors import Attempt
    from ._sansio._limits import Limits
    from ._sansio._messages import Request, Response
    from ._sansio._url import Target

__all__ = ["BuildContext", "Offer", "UpgradeProtocol", "check_token"]

ConnT_co = TypeVar("ConnT_co", covariant=True)


def check_token(token: str) -> str:
    """Return ``token`` if it is a valid Upgrade protocol, else raise ValueError."""
    if not isinstance(token, str) or not PROTOCOL.fullmatch(token):
        raise ValueError(
            f"invalid upgrade protocol {token!r}: expected an RFC 9110 token, "
            "optionally followed by '/' and a version token"
        )
    return token


@dataclass(frozen=True)
class BuildContext:
    """What an :class:`Offer` gets to build its connection with.

    Attributes:
        target: the URL's parts (host, port, request target).
        request: the upgrade request as sent.
        response: the 101 response that chose this protocol.
        limits: the limits in force for this upgrade.
        nursery: a nursery owned by the caller (or by ``open_upgrade``) in
            which the connection may run background tasks such as keepalive
            pings; ``None`` when the caller gave none, in which case the
            connection must not need one.
        attempts: every request the call made, in order, redirects
            included; the last one is the request that switched (status
            101). For the connection to expose, as the built-in ones do.
    """

    target: Target
    request: Request
    response: Response
    limits: Limits
    nursery: trio.Nursery | None
    attempts: tuple[Attempt, ...] = ()


class Offer(abc.ABC, Generic[ConnT_co]):
    """One protocol's part in one upgrade request."""

    #: Extra tokens for the request's ``Connection`` header besides
    #: ``Upgrade`` (h2c needs ``HTTP2-Settings`` there, RFC 7540 §3.2.1).
    connection_options: Sequence[str] = ()

    #: Whether a 101 without any ``Upgrade`` header may be taken to choose
    #: this protocol when it was the only one offered. RFC 9110 §15.2.2 says
    #: the server MUST send one, but a sole offer leaves no doubt, so curl and
    #: others accept it with a warning. RFC 6455 §4.1 forbids it for
    #: WebSocket, whose offer sets this to False.
    accept_missing_upgrade_header: bool = True

    def __init__(self, token: str) -> None:
        self.token = check_token(token)

    def headers(self) -> list[tuple[str, str]]:
        """Header fields this offer adds to the request."""
        return []

    def claims(self, tokens: Sequence[str]) -> bool:
        """Whether a 101 naming several protocols switched to this offer.

        RFC 9110 §7.8 lets a 101 that switches several layers list them,
        bottom layer first (RFC 2817 §3.3: ``Upgrade: TLS/1.0, HTTP/1.1``).
        ``tokens`` are the 101's ``Upgrade`` tokens, lower-cased, without
        repeats, at least two. The default is ``False``: a 101 must name
        exactly this offer's token. The 101 is taken as choosing this offer
        only when no other offer claims it too.
        """
        return False

    def validate(self, response: Response) -> None:
        """Check the 101 that chose this protocol, beyond the Upgrade token.

        Raises:
            InvalidUpgrade: when the response breaks this protocol's rules.
        """

    @abc.abstractmethod
    async def build(
        self, stream: trio.abc.Stream, leftover: bytes, context: BuildContext
    ) -> ConnT_co:
        """Build the connection object that the caller gets.

        ``leftover`` holds every byte that arrived after the 101 head: the
        start of the new protocol, which must not be lost. If this raises or
        is cancelled the handshake closes ``stream``; once it returns, the
        connection owns the stream.
        """


class UpgradeProtocol(abc.ABC, Generic[ConnT_co]):
    """An upgrade protocol that can be offered: an immutable description.

    Subclass it (and :class:`Offer`) to teach trio_upgrade a new protocol.
    """

    @property
    @abc.abstractmethod
    def token(self) -> str:
        """The token this protocol puts in the ``Upgrade`` header."""

    @abc.abstractmethod
    def offer(self, target: Target) -> Offer[ConnT_co]:
        """Fresh per-request state for one request to ``target``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.token!r})"
