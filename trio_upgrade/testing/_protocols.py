"""What the test server needs from each protocol it can switch to."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Awaitable, Callable

import trio

from .._sansio._messages import Request
from .._transport._stream import RawStream
from ._handlers import own, run_handler

__all__ = ["RawHandler", "RawServerProtocol", "ServerProtocol", "echo"]


class ServerProtocol(abc.ABC):
    """The server side of one upgrade protocol.

    The test server parses the request with h11, picks a protocol among the
    offered tokens it has a ``ServerProtocol`` for, asks it for the 101's
    extra header fields (:meth:`accept`), sends the 101 and hands the
    connection to :meth:`serve`.
    """

    #: The token matched (case-insensitively) against the client's offer.
    token: str

    def accept(self, request: Request) -> list[tuple[str, str]] | None:
        """Header fields to add to the 101, or ``None`` to decline the offer.

        Declining makes the server consider the next offered token, and
        answer without switching if none is left. The 101's ``Upgrade``
        field names the offered token, unless these fields hold one of
        their own (a stack of protocols, RFC 9110 §7.8).
        """
        return []

    @abc.abstractmethod
    async def serve(self, stream: RawStream, request: Request) -> None:
        """Speak the protocol on ``stream`` until done; the server closes it.

        ``stream`` first yields the bytes the client sent right after the
        request head (already the new protocol).

        The ``serve()`` of a protocol of your own is a handler: what it
        raises fails the test, and a stopping server lets it finish (see
        :meth:`UpgradeServer.stop`). End it when the client is done (at end
        of stream, say), not by sleeping.
        """


RawHandler = Callable[[RawStream, Request], Awaitable[None]]


@own
async def echo(stream: RawStream, request: Request) -> None:
    """Send back every byte received until the client half-closes."""
    async for data in stream:
        await stream.send_all(data)
    with contextlib.suppress(trio.BrokenResourceError):
        await stream.send_eof()


class RawServerProtocol(ServerProtocol):
    """Any token; the connection goes to ``handler`` as bytes (default: echo).

    What ``handler`` raises fails the test; a stopping server lets it finish
    (see :meth:`UpgradeServer.stop`). It typically reads until end of
    stream, the client's close, then checks what it got.
    """

    def __init__(
        self,
        token: str,
        handler: RawHandler = echo,
        *,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.token = token
        self._handler = handler
        self._headers = headers or []

    def accept(self, request: Request) -> list[tuple[str, str]] | None:
        return list(self._headers)

    @own
    async def serve(self, stream: RawStream, request: Request) -> None:
        await run_handler(self._handler, stream, request)
