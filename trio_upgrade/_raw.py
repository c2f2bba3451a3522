"""The raw protocol: after the 101, the connection is a plain byte stream."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import trio

from ._protocol import BuildContext, Offer, UpgradeProtocol, check_token
from ._sansio._url import Target
from ._transport._stream import RawStream

__all__ = ["TLS", "Raw", "RawStream", "is_tls_token"]


class _RawOffer(Offer[RawStream]):
    def __init__(self, token: str, headers: list[tuple[str, str]]) -> None:
        super().__init__(token)
        self._headers = headers

    def headers(self) -> list[tuple[str, str]]:
        return list(self._headers)

    async def build(
        self, stream: trio.abc.Stream, leftover: bytes, context: BuildContext
    ) -> RawStream:
        await trio.lowlevel.checkpoint()
        return RawStream(
            stream,
            leftover,
            protocol=self.token,
            request=context.request,
            response=context.response,
            attempts=context.attempts,
        )


class Raw(UpgradeProtocol[RawStream]):
    """Any protocol token; after the switch, a :class:`RawStream` of bytes.

    Args:
        token: the ``Upgrade`` token, e.g. ``"my-proto/1"``.
        headers: extra header fields sent when this protocol is offered.

    Raises:
        ValueError: ``token`` is not an RFC 9110 protocol token.
    """

    def __init__(self, token: str, *, headers: Iterable[tuple[str, str]] = ()) -> None:
        self._token = check_token(token)
        self._headers = [(str(n), str(v)) for n, v in headers]

    @property
    def token(self) -> str:
        return self._token

    def offer(self, target: Target) -> Offer[RawStream]:
        return _RawOffer(self._token, self._headers)


def is_tls_token(token: str) -> bool:
    """``TLS`` or ``TLS/x.y``, in any case: the RFC 2817 tokens."""
    return token.lower().partition("/")[0] == "tls"


def _is_http1(token: str) -> bool:
    return token.lower() in ("http/1.0", "http/1.1")


class _TLSOffer(_RawOffer):
    def claims(self, tokens: Sequence[str]) -> bool:
        # RFC 2817 3.3: the 101 names "the protocol stack it is switching
        # to", TLS at the bottom and HTTP/1.1 above it. libcups lists the TLS
        # versions it speaks instead ("TLS/1.3,TLS/1.2"). Either way TLS is
        # what starts now, and the handshake, not the token, settles the
        # version (the caller's SSLContext bounds it).
        layers = (is_tls_token(t) or _is_http1(t) for t in tokens)
        return is_tls_token(tokens[0]) and all(layers)


class TLS(Raw):
    """An upgrade to TLS on the same connection (RFC 2817), e.g. to a printer.

    After the 101 the connection is a :class:`RawStream` on which the caller
    starts TLS, client first: ``trio.SSLStream(raw, context,
    server_hostname=host)``. The server then answers the upgrading request
    over TLS (RFC 2817 §3.3). A string offer such as ``"TLS/1.2"`` (any
    ``TLS`` or ``TLS/x.y`` token) means ``TLS`` with that token.

    Unlike :class:`Raw`, it accepts a 101 that names a stack of protocols
    whose bottom layer is TLS (``Upgrade: TLS/1.0, HTTP/1.1``, as in RFC
    2817 §3.3) or several TLS versions (``TLS/1.3,TLS/1.2``, as libcups
    sends): the token's version is advisory, the TLS handshake settles it.

    Args:
        token: the ``Upgrade`` token, ``TLS`` or ``TLS/x.y``.
        headers: extra header fields sent when this protocol is offered.

    Raises:
        ValueError: ``token`` is not a ``TLS`` token; offered for an
            ``https`` or ``wss`` URL (the connection is TLS already).
    """

    def __init__(
        self, token: str = "TLS/1.2", *, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        super().__init__(token, headers=headers)
        if not is_tls_token(token):
            raise ValueError(f"not a TLS upgrade token: {token!r} (e.g. 'TLS/1.2')")

    def check_target(self, target: Target) -> None:
        """Refuse a URL whose connection is TLS already.

        Raises:
            ValueError: ``target`` is ``https`` or ``wss``.
        """
        if target.secure:
            raise ValueError(
                f"{target.scheme}:// is TLS already: upgrade an http:// URL to "
                f"{self.token} (RFC 2817)"
            )

    def offer(self, target: Target) -> Offer[RawStream]:
        self.check_target(target)
        return _TLSOffer(self.token, self._headers)
