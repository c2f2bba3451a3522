"""The raw protocol: after the 101, the connection is a plain byte stream."""

from __future__ import annotations

from collections.abc import Iterable

import trio

from ._protocol import BuildContext, Offer, UpgradeProtocol, check_token
from ._sansio._url import Target
from ._transport._stream import RawStream

__all__ = ["Raw", "RawStream"]


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
