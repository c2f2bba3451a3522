"""What every client adapter offers the measurements, whatever its event loop.

An adapter is an async context manager (it may hold a session: an aiohttp
``ClientSession``, an httpx ``AsyncClient``, a Trio nursery) whose
``connect()`` returns a :class:`Conn`. The measurements in ``figures`` are
written once against these two types and run under Trio or asyncio as the
adapter's ``loop`` says; ``gather`` is the one place where the loops differ.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Literal, Protocol

Loop = Literal["trio", "asyncio"]

#: Every adapter accepts messages up to this size (1 MiB echoes must pass
#: limits that default to 64 KiB, 1 MiB or 4 MiB depending on the library).
MAX_MESSAGE = 16 * 1024 * 1024


class Conn(Protocol):
    """One open WebSocket connection, binary messages only."""

    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> bytes: ...

    async def close(self) -> None:
        """Closing handshake, then the TCP connection is closed."""


class Skip(Exception):
    """The client cannot run here (not installed, not implemented yet)."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str = "/"

    def url(self, scheme: str = "ws") -> str:
        return f"{scheme}://{self.host}:{self.port}{self.path}"


class Client(abc.ABC):
    """A WebSocket client library, as the measurements drive it."""

    #: Short name used on the command line and in the table.
    name: ClassVar[str]
    #: The distribution whose version is reported ("" for none).
    dist: ClassVar[str]
    loop: ClassVar[Loop]

    def __init__(self, target: Target) -> None:
        self.target = target

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    @abc.abstractmethod
    async def connect(self) -> Conn:
        """TCP connect and WebSocket handshake, compression off."""

    @abc.abstractmethod
    async def gather(self, *jobs: Callable[[], Awaitable[None]]) -> None:
        """Run ``jobs`` concurrently in tasks of this loop; wait for all."""

    @abc.abstractmethod
    async def sleep(self, seconds: float) -> None: ...

    @abc.abstractmethod
    async def within(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job``; raise ``TimeoutError`` if it takes over ``seconds``."""
