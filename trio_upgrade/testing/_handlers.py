"""The test's code that the server runs, and how it is let finish.

The server runs code of the test's (protocol handlers, a script's
:class:`Handle` steps, HTTP/2 routes and tunnels) beside code of its own
(reading requests, echo, scripted steps, the lingering close). Its own code
holds nothing a test needs and is cancelled when the server stops. The
test's code may be one step from an assertion: the client closing first is
the usual way a conversation ends, so the handler typically still runs when
the test leaves the server's block. It is let finish, within a bound, and
whatever it raises reaches the test; past the bound it fails the test with
:class:`HandlerTimeout` rather than vanishing in a cancellation.

Each connection's task carries its :class:`ConnectionHandlers` in a context
variable, so the protocols mark the test's code with :func:`run_handler`
without the server passing anything through their public ``serve()``. Code
of the library's own is marked with :func:`own`.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import trio

from ._records import ConnectionRecord

__all__ = [
    "ConnectionHandlers",
    "HandlerTimeout",
    "current_record",
    "own",
    "run_handler",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_OWN: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()

_CURRENT: ContextVar[ConnectionHandlers | None] = ContextVar(
    "trio_upgrade.testing connection", default=None
)


class HandlerTimeout(trio.TooSlowError):
    """A handler did not finish in the time the stopping server gave it.

    Leaving :func:`open_upgrade_server`'s block (or
    :meth:`UpgradeServer.stop`) lets running handlers finish for
    ``shutdown_timeout`` seconds; a handler still running then is cancelled
    and the test fails with this error rather than passing without the
    handler's assertions. Usually the handler waits for a client that was
    never closed, or sleeps.

    Attributes:
        handler: the handler's qualified name.
        record: the connection it served.
        timeout: the seconds it was given.
    """

    def __init__(self, handler: str, record: ConnectionRecord, timeout: float) -> None:
        if record.client_closed:
            why = "the client had closed the connection: the handler waited for"
            why += " something else (a sleep, an event?)"
        else:
            why = (
                "the client had not closed the connection: close it inside the "
                "server's block, or let the handler end without it"
            )
        super().__init__(
            f"handler {handler} (connection #{record.index}, protocol "
            f"{record.protocol!r}) was still running {timeout:g} s after the "
            f"server began to stop; {why} (or give it longer with "
            "shutdown_timeout=)"
        )
        self.handler = handler
        self.record = record
        self.timeout = timeout


def own(handler: F) -> F:
    """Mark ``handler`` as the library's own: it is cancelled, not waited for.

    Echo, the default HTTP/2 routes and the like hold no assertions; waiting
    for them would only hold up every test that leaves a client open.
    """
    _OWN.add(handler)
    return handler


def _is_own(handler: Callable[..., Any]) -> bool:
    # A bound method is a new object on every access: look at its function.
    target = getattr(handler, "__func__", handler)
    try:
        return target in _OWN
    except TypeError:  # unhashable (a callable dataclass): not one of ours
        return False


def _describe(handler: Callable[..., Any]) -> str:
    name = getattr(handler, "__qualname__", None)
    return name if isinstance(name, str) else repr(handler)


class _Running:
    """One handler call in progress, in a cancel scope of its own."""

    __slots__ = ("name", "scope")

    def __init__(self, name: str) -> None:
        self.name = name
        self.scope = trio.CancelScope()


class ConnectionHandlers:
    """The test's code running on one connection, and that connection's scope.

    Args:
        record: the connection's record (named in errors).
        scope: the cancel scope around everything the server does on the
            connection; :meth:`stop` cancels it.
    """

    def __init__(self, record: ConnectionRecord, scope: trio.CancelScope) -> None:
        self.record = record
        self.scope = scope
        self._running: list[_Running] = []
        self._timeout = 0.0

    def stop(self, deadline: float, timeout: float) -> None:
        """Cancel the server's own code now; let handlers run until ``deadline``.

        A running handler's scope is shielded from the connection's
        cancellation and given ``deadline``: it finishes undisturbed, or
        is cancelled then and :class:`HandlerTimeout` is raised in its place.
        """
        self._timeout = timeout
        for running in self._running:
            running.scope.shield = True
            running.scope.deadline = deadline
        self.scope.cancel()

    async def run(self, handler: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run the test's ``handler(*args)``, so that :meth:`stop` lets it finish.

        Raises:
            HandlerTimeout: it was still running at the deadline :meth:`stop`
                gave it.
            Exception: whatever the handler raised.
        """
        running = _Running(_describe(handler))
        with running.scope:
            self._running.append(running)
            try:
                return await handler(*args)
            finally:
                self._running.remove(running)
        # Reached only when the scope caught its own cancellation: the
        # deadline that stop() gave it.
        raise HandlerTimeout(running.name, self.record, self._timeout)

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Within: the current task (and tasks it starts) serve this connection."""
        token = _CURRENT.set(self)
        try:
            yield
        finally:
            _CURRENT.reset(token)


async def run_handler(handler: Callable[..., Awaitable[T]], *args: object) -> T:
    """Call ``handler(*args)``; the test's code is let finish when the server stops.

    Outside a server's connection (a protocol served by hand), or for code
    marked with :func:`own`, this is a plain call.
    """
    handlers = _CURRENT.get()
    if handlers is None or _is_own(handler):
        return await handler(*args)
    return await handlers.run(handler, *args)


def current_record() -> ConnectionRecord | None:
    """The record of the connection the current task serves, if any."""
    handlers = _CURRENT.get()
    return None if handlers is None else handlers.record
