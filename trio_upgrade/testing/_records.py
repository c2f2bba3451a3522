"""What the test server saw on each connection, and how tests wait for it."""

from __future__ import annotations

from collections.abc import Callable

import trio

from .._sansio._messages import Request

__all__ = ["ConnectionRecord", "Notifier", "TrackedStream"]


class Notifier:
    """Wakes every waiter whenever something a test may wait for changed.

    One per server, shared by its connection records: waiting re-checks a
    predicate after each change, so a test can wait for any combination of
    facts without the server knowing in advance which ones matter.
    """

    def __init__(self) -> None:
        self._changed = trio.Event()

    def notify(self) -> None:
        """Wake every task in :meth:`wait_until`; they re-check their test."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` is true; a checkpoint either way."""
        await trio.lowlevel.checkpoint()
        while not predicate():
            await self._changed.wait()


class ConnectionRecord:
    """One connection as the server saw it, filled in while it runs.

    Attributes:
        index: 0 for the server's first connection, then 1, 2...
        requests: the request heads received on it, in order.
        protocol: the token of the 101 the server sent, or ``None``.
        received: bytes read from the client so far.
        sent: bytes written to the client so far.
        error: the client's HTTP error that h11 reported (a malformed or too
            large request head), or ``None``.
        timed_out: the server's ``connection_timeout`` ended the connection.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self.requests: list[Request] = []
        self.protocol: str | None = None
        self.received = 0
        self.sent = 0
        self.error: str | None = None
        self.timed_out = False
        self._client_closed = False
        self._broken = False
        self._done = False
        self._notifier = Notifier()

    @classmethod
    def _create(cls, index: int, notifier: Notifier) -> ConnectionRecord:
        # Records share their server's notifier, so that waiting on the
        # server (wait_closed) wakes up on a change of any record. Not in
        # __init__: users read records, they do not make them.
        record = cls(index)
        record._notifier = notifier
        return record

    @property
    def client_closed(self) -> bool:
        """Whether the client ended its side (end of stream read, or a reset).

        This is the evidence a client test wants that "no socket was left
        open": a cancelled or finished client closes its socket and the
        server sees it.
        """
        return self._client_closed

    @property
    def broken(self) -> bool:
        """Whether the connection broke (reset, broken pipe) rather than closed."""
        return self._broken

    @property
    def done(self) -> bool:
        """Whether the server has finished with this connection and closed it."""
        return self._done

    async def wait_client_closed(self) -> None:
        """Wait until :attr:`client_closed` is true."""
        await self._notifier.wait_until(lambda: self._client_closed)

    async def wait_done(self) -> None:
        """Wait until :attr:`done` is true."""
        await self._notifier.wait_until(lambda: self._done)

    def _saw_eof(self, *, broken: bool = False) -> None:
        self._broken = self._broken or broken
        if not self._client_closed:
            self._client_closed = True
            self._notifier.notify()

    def _finish(self) -> None:
        self._done = True
        self._notifier.notify()

    def __repr__(self) -> str:
        state = "done" if self._done else "open"
        return (
            f"<ConnectionRecord #{self.index} {state} protocol={self.protocol!r} "
            f"requests={len(self.requests)} client_closed={self._client_closed}>"
        )


class TrackedStream(trio.abc.HalfCloseableStream):
    """A stream that reports end of stream, resets and byte counts to a record.

    Every byte the server exchanges goes through it, whether h11, a script
    step or a protocol handler moves it, so the record is right whoever read
    the end of stream.
    """

    def __init__(self, inner: trio.abc.Stream, record: ConnectionRecord) -> None:
        self._inner = inner
        self._record = record
        self.closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._inner.send_all(data)
        except trio.BrokenResourceError:
            self._record._saw_eof(broken=True)
            raise
        self._record.sent += len(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """Half-close, when the stream underneath can.

        Raises:
            trio.BrokenResourceError: the stream underneath cannot half-close
                (the same answer :class:`~trio_upgrade.RawStream` gives).
        """
        if not isinstance(self._inner, trio.abc.HalfCloseableStream):
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError(
                f"{type(self._inner).__name__} cannot half-close"
            )
        try:
            await self._inner.send_eof()
        except trio.BrokenResourceError:
            self._record._saw_eof(broken=True)
            raise

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self._inner.receive_some(max_bytes)
        except trio.BrokenResourceError:
            self._record._saw_eof(broken=True)
            raise
        if data:
            self._record.received += len(data)
        else:
            self._record._saw_eof()
        return data

    async def aclose(self) -> None:
        self.closed = True
        await self._inner.aclose()
