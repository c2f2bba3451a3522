"""HTTP/2 over the h2c upgrade (RFC 7540 §3.2), on h2."""

from __future__ import annotations

import trio

from ._errors import UpgradeError
from ._protocol import BuildContext, Offer, UpgradeProtocol
from ._url import Target

__all__ = ["H2C", "HTTP2Connection"]


class HTTP2Connection:
    """An HTTP/2 connection (being built; see issue 4)."""


class _H2COffer(Offer[HTTP2Connection]):
    connection_options = ("HTTP2-Settings",)

    async def build(
        self, stream: trio.abc.Stream, leftover: bytes, context: BuildContext
    ) -> HTTP2Connection:
        raise UpgradeError("the h2c protocol is not supported yet")


class H2C(UpgradeProtocol[HTTP2Connection]):
    """HTTP/2 over cleartext (being built; see issue 4)."""

    @property
    def token(self) -> str:
        return "h2c"

    def offer(self, target: Target) -> Offer[HTTP2Connection]:
        return _H2COffer("h2c")
