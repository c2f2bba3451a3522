"""A real HTTP/1.1 upgrade server on h11, for tests and demos.

It reads requests with h11, chooses among the offered protocols the way it
is configured to (the client's order, its own order, or a function), sends
the 1xx and 101 responses with h11, and hands the switched connection to a
:class:`~trio_upgrade.testing.ServerProtocol` as a
:class:`~trio_upgrade.RawStream` that starts with the bytes h11 had already
buffered. Instead of all that it can run a :class:`Script` of raw steps, to
stage the misbehaving servers a client must survive.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from functools import partial

import h11
import trio
import trio.testing

from .._groups import lone_errors_unwrapped
from .._sansio._messages import Request
from .._transport._stream import RawStream
from ._choose import ChooseArg, Reply, default_refusal, pick
from ._choose import resolve_server_protocols as _resolve
from ._handlers import ConnectionHandlers, run_handler
from ._http import (
    RECEIVE_SIZE,
    informational,
    read_request,
    send_client_error,
    send_response,
    to_response,
)
from ._protocols import ServerProtocol
from ._records import ConnectionRecord, Notifier, TrackedStream
from ._script import Script, run_script
from ._unix import remove_socket_file, unix_listener

__all__ = ["UpgradeServer", "open_upgrade_server"]

ScriptArg = Script | Callable[[int], Script | None] | None
InformationalArg = Sequence[tuple[int, Sequence[tuple[str, str]]]]

#: Seconds one connection may take, from accept to close. 10 s: far longer
#: than any exchange on loopback or in memory needs, far shorter than the
#: test suite's 60 s pytest-timeout, so a stuck client fails with a closed
#: connection, not a killed test run.
CONNECTION_TIMEOUT = 10.0

#: Request head size limit. 64 KiB, the client's own response-head limit;
#: h11's default is 16 KiB, nginx allows 8-32 KiB.
MAX_HEAD_SIZE = 64 * 1024

#: Seconds a stopping server gives running handlers to finish, from the end
#: of ``open_upgrade_server``'s block (or :meth:`UpgradeServer.stop`). A
#: handler whose client is gone finishes within milliseconds; 5 s leaves a
#: loaded CI machine ample slack, is half of ``CONNECTION_TIMEOUT`` so that a
#: stuck handler is reported as such (HandlerTimeout, naming it) rather than
#: as a timed-out connection, and is far below the suite's 60 s
#: pytest-timeout. Servers' own graceful-shutdown bounds are of this order
#: (hypercorn's ``graceful_timeout`` is 3 s, gunicorn's 30 s); a test wants
#: its failure soon.
SHUTDOWN_TIMEOUT = 5.0

#: Seconds a closing connection waits for the client's close after the
#: server half-closed. 2 s is Apache's lingering-close maximum: closing with
#: unread input sends a reset that can destroy data the client has not read.
LINGER = 2.0


async def _close_politely(stream: TrackedStream, record: ConnectionRecord) -> None:
    if stream.closed or record.broken:
        return
    with trio.move_on_after(LINGER):
        try:
            await stream.send_eof()
            while not record.client_closed:
                await stream.receive_some(RECEIVE_SIZE)
        except trio.BrokenResourceError:
            pass


class UpgradeServer:
    """An HTTP/1.1 server that upgrades connections as configured.

    Run it with :func:`open_upgrade_server`, :meth:`serve_tcp` or
    :meth:`serve_in_memory`, or give it connections yourself with
    :meth:`serve_stream`. What it saw is in :attr:`connections` and
    :attr:`requests`, and can be awaited.

    Args:
        protocols: what it can switch to, in its own order of preference. A
            string ``t`` is ``RawServerProtocol(t)``: raw echo.
        choose: how it picks among the tokens of an offer: ``"client"``,
            the first offered token (client's order) it supports whose
            ``accept()`` does not decline; ``"server"``, the same in the order
            of ``protocols`` (servers that pick their own favourite); or a
            :data:`Chooser` function. A request without ``Connection:
            Upgrade`` is never switched (RFC 9110 §7.8 requires it).
        fallback: the answer when nothing is chosen. ``None`` means ``426
            Upgrade Required`` with an ``Upgrade`` field listing the
            supported tokens, or with ``ignore_upgrade``, ``200 OK``.
        ignore_upgrade: never switch; answer every request with
            ``fallback``, like servers that do not implement Upgrade.
        informational: 1xx responses (status, header fields) sent before
            every final answer, the 101 included.
        keep_alive: keep the connection open after a ``fallback`` answer (as
            HTTP/1.1 does unless the client sends ``Connection: close``), so
            the client can send its next request on it; ``False`` sends
            ``Connection: close`` and closes.
        script: run this instead of the above on every connection, or a
            function of the connection's index giving a script (``None``
            for normal handling of that connection).
        connection_timeout: seconds one connection may last before the
            server closes it (its record's ``timed_out`` is then set);
            ``math.inf`` for none.
        max_head_size: bytes allowed in a request head; beyond, 431.
        shutdown_timeout: seconds a stopping server lets running handlers
            finish (see :meth:`stop`); ``math.inf`` waits for them however
            long they take.

    Handlers are your code: a protocol's ``handler``, a script's
    :class:`Handle`, HTTP/2 routes and ``connect`` handlers, the
    ``serve()`` of a :class:`ServerProtocol` of your own. Whatever one
    raises fails the test, and stopping the server lets a running one
    finish first. The server's own code (echo, scripted steps, the default
    HTTP/2 routes, reading requests) is cancelled when it stops.

    Raises:
        ValueError: a malformed or repeated token, an unknown ``choose``, an
            ``informational`` status that is not 1xx or is 101, or a negative
            timeout.
        TypeError: ``protocols`` holds something that is neither a string
            nor a :class:`ServerProtocol`.
    """

    def __init__(
        self,
        protocols: Sequence[ServerProtocol | str] = ("echo",),
        *,
        choose: ChooseArg = "client",
        fallback: Reply | None = None,
        ignore_upgrade: bool = False,
        informational: InformationalArg = (),
        keep_alive: bool = True,
        script: ScriptArg = None,
        connection_timeout: float = CONNECTION_TIMEOUT,
        max_head_size: int = MAX_HEAD_SIZE,
        shutdown_timeout: float = SHUTDOWN_TIMEOUT,
    ) -> None:
        if isinstance(protocols, (str, ServerProtocol)):
            protocols = [protocols]
        self._protocols = _resolve(protocols)
        if not callable(choose) and choose not in ("client", "server"):
            raise ValueError(
                f"choose must be 'client', 'server' or a function, got {choose!r}"
            )
        self._choose = choose
        for status, _ in informational:
            if not 100 <= status <= 199 or status == 101:
                raise ValueError(
                    f"informational responses must be 1xx other than 101, got {status}"
                )
        self._informational = [(s, list(h)) for s, h in informational]
        if not connection_timeout >= 0:
            raise ValueError("connection_timeout must be >= 0 (math.inf for none)")
        if not shutdown_timeout >= 0:
            raise ValueError("shutdown_timeout must be >= 0 (math.inf for none)")
        self._fallback = fallback
        self._ignore_upgrade = ignore_upgrade
        self._keep_alive = keep_alive
        self._script = script
        self._timeout = connection_timeout
        self._max_head_size = max_head_size
        self._shutdown_timeout = shutdown_timeout
        self._notifier = Notifier()
        self._connections: list[ConnectionRecord] = []
        self._requests: list[Request] = []
        self._nursery: trio.Nursery | None = None
        self._address: tuple[str, int] | None = None
        self._unix_socket: str | None = None
        # Connections being served, and the scope of serve_tcp's listening
        # or serve_in_memory's waiting, which stop() cancels.
        self._live: set[ConnectionHandlers] = set()
        self._listening: trio.CancelScope | None = None
        self._stopping = False
        self._deadline: float | None = None  # set once handlers are let finish

    # -- what it is and where it listens -----------------------------------

    @property
    def protocols(self) -> tuple[ServerProtocol, ...]:
        """The protocols it can switch to, in its own order."""
        return self._protocols

    @property
    def port(self) -> int:
        """The TCP port it listens on.

        Raises:
            RuntimeError: it is not listening (not started, in-memory only).
        """
        if self._address is None:
            raise RuntimeError("the server is not listening on TCP")
        return self._address[1]

    @property
    def unix_socket(self) -> str:
        """The path of the Unix socket it listens on (see :meth:`serve_unix`).

        Raises:
            RuntimeError: it is not listening on a Unix socket.
        """
        if self._unix_socket is None:
            raise RuntimeError("the server is not listening on a Unix socket")
        return self._unix_socket

    def url(self, path: str = "/", *, scheme: str = "http") -> str:
        """``scheme://host:port/path`` for the TCP listener.

        Raises:
            RuntimeError: it is not listening.
        """
        port = self.port
        assert self._address is not None
        host = self._address[0]
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"

    # -- what it saw --------------------------------------------------------

    @property
    def connections(self) -> list[ConnectionRecord]:
        """A record per connection so far, in the order they were accepted."""
        return list(self._connections)

    @property
    def requests(self) -> list[Request]:
        """Every request head received, on any connection, in arrival order."""
        return list(self._requests)

    async def wait_connections(self, count: int = 1) -> list[ConnectionRecord]:
        """Wait until at least ``count`` connections were accepted."""
        await self._notifier.wait_until(lambda: len(self._connections) >= count)
        return self.connections

    async def wait_requests(self, count: int = 1) -> list[Request]:
        """Wait until at least ``count`` requests were received."""
        await self._notifier.wait_until(lambda: len(self._requests) >= count)
        return self.requests

    async def wait_closed(self, count: int = 1) -> list[ConnectionRecord]:
        """Wait until at least ``count`` connections are over; return those.

        A connection is over when the server has closed it: after the client
        closed, a script or handler ended, or it timed out. Each record's
        :attr:`~ConnectionRecord.client_closed` then says whether the
        client had closed its side.
        """

        def closed() -> list[ConnectionRecord]:
            return [r for r in self._connections if r.done]

        await self._notifier.wait_until(lambda: len(closed()) >= count)
        return closed()

    # -- serving ------------------------------------------------------------

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one connection on ``stream`` until it is over, then close it.

        Any :class:`trio.abc.Stream` will do: a socket, TLS, one end of
        :func:`trio.testing.memory_stream_pair`.

        Raises:
            Exception: whatever a handler raised (never caught: a failing
                assertion in a handler fails the test). A client that resets
                the connection is recorded, not raised.
            HandlerTimeout: the server was stopped and a handler did not
                finish within ``shutdown_timeout``.
        """
        record = ConnectionRecord._create(len(self._connections), self._notifier)
        self._connections.append(record)
        self._notifier.notify()
        tracked = TrackedStream(stream, record)
        try:
            with trio.CancelScope() as everything:
                handlers = ConnectionHandlers(record, everything)
                with self._tracking(handlers), handlers.serving():
                    await self._serve_bounded(tracked, record)
        finally:
            try:
                # Raises Cancelled again when the server is being cancelled.
                await trio.aclose_forcefully(tracked)
            finally:
                record._finish()

    async def _serve_bounded(
        self, stream: TrackedStream, record: ConnectionRecord
    ) -> None:
        with trio.move_on_after(self._timeout) as scope:
            try:
                await self._handle(stream, record)
            except trio.BrokenResourceError:
                if not record.broken:
                    raise
        if scope.cancelled_caught:
            record.timed_out = True
        else:
            await _close_politely(stream, record)

    @contextmanager
    def _tracking(self, handlers: ConnectionHandlers) -> Iterator[None]:
        self._live.add(handlers)
        if self._deadline is not None:  # came in while stopping
            handlers.stop(self._deadline, self._shutdown_timeout)
        try:
            yield
        finally:
            self._live.discard(handlers)

    async def serve_tcp(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[UpgradeServer] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host``:``port`` and serve until cancelled.

        Port 0 picks a free port; read it from :attr:`port` once started.
        ``await nursery.start(server.serve_tcp)`` returns the server, ready.
        Connections are served in a nursery of this call: :meth:`stop` ends
        it after letting running handlers finish; cancelling it instead
        cancels them all. :meth:`connect_in_memory` works meanwhile.

        Raises:
            OSError: the address cannot be listened on.
            RuntimeError: the server is already running.
            Exception: what a handler raised.
        """
        listeners = await trio.open_tcp_listeners(port, host=host)
        name = listeners[0].socket.getsockname()
        await self._serve_listeners(listeners, (host, int(name[1])), None, task_status)

    async def serve_unix(
        self,
        path: str | os.PathLike[str],
        *,
        task_status: trio.TaskStatus[UpgradeServer] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on the Unix domain socket ``path`` and serve until cancelled.

        Like :meth:`serve_tcp`, over a Unix socket: every protocol works
        the same. Connect with the ``unix_socket`` option, the socket's
        path in :attr:`unix_socket`. The socket file is created here and
        removed when serving ends; a file already at ``path`` is an error,
        not replaced. On Linux, a path that starts with a NUL byte names an
        abstract-namespace socket, which has no file.

        Raises:
            OSError: ``path`` exists, is too long (about 100 bytes at most),
                or its directory is missing or not writable.
            RuntimeError: the server is already running, or the platform
                has no Unix sockets.
            Exception: what a handler raised.
        """
        path = os.fspath(path)
        listener, identity = await unix_listener(path)
        try:
            await self._serve_listeners([listener], None, path, task_status)
        finally:
            remove_socket_file(path, identity)

    async def _serve_listeners(
        self,
        listeners: list[trio.SocketListener],
        address: tuple[str, int] | None,
        unix_socket: str | None,
        task_status: trio.TaskStatus[UpgradeServer],
    ) -> None:
        try:
            async with self._running() as nursery:
                self._address, self._unix_socket = address, unix_socket
                try:
                    with self._until_stopped():
                        task_status.started(self)
                        await trio.serve_listeners(
                            self.serve_stream, listeners, handler_nursery=nursery
                        )
                finally:
                    # Refuse new connections while the last ones finish.
                    self._address = self._unix_socket = None
                    for listener in listeners:
                        await trio.aclose_forcefully(listener)
        finally:
            for listener in listeners:
                await trio.aclose_forcefully(listener)

    async def serve_in_memory(
        self, *, task_status: trio.TaskStatus[UpgradeServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve :meth:`connect_in_memory` connections only, until cancelled.

        :meth:`stop` ends it after letting running handlers finish.

        Raises:
            RuntimeError: the server is already running.
            Exception: what a handler raised.
        """
        async with self._running():
            with self._until_stopped():
                task_status.started(self)
                await trio.sleep_forever()

    def stop(self) -> None:
        """Stop serving, letting running handlers finish first.

        The server stops listening (and refuses in-memory connections) at
        once. It then lets everything under way run until every task waits
        (:func:`trio.testing.wait_all_tasks_blocked`): a close the client
        already sent is read, and handlers see it. Then the server's own
        code is cancelled, and handlers still running get what remains of
        ``shutdown_timeout`` to finish; one that does not is cancelled and
        :class:`HandlerTimeout` is raised in its place.
        :meth:`serve_tcp` or :meth:`serve_in_memory` returns (or raises what
        a handler raised) once every connection is over. Leaving
        :func:`open_upgrade_server`'s block calls this.

        Raises:
            RuntimeError: the server is not running.
        """
        if self._stopping:
            return
        if self._nursery is None:
            raise RuntimeError("the server is not running")
        self._stopping = True
        if self._listening is not None:
            self._listening.cancel()
        self._nursery.start_soon(self._drain)

    async def _drain(self) -> None:
        deadline = trio.current_time() + self._shutdown_timeout
        with trio.move_on_at(deadline):
            await trio.testing.wait_all_tasks_blocked()
        self._deadline = deadline
        for handlers in list(self._live):
            handlers.stop(deadline, self._shutdown_timeout)

    @contextmanager
    def _until_stopped(self) -> Iterator[None]:
        with trio.CancelScope() as self._listening:
            if self._stopping:
                self._listening.cancel()
            yield

    async def connect_in_memory(self) -> trio.abc.HalfCloseableStream:
        """A new connection to this running server, over memory streams.

        Returns:
            The client's end of :func:`trio.testing.memory_stream_pair`; the
            server serves the other end as it would a socket.

        Raises:
            RuntimeError: the server is not running, or stopping.
        """
        await trio.lowlevel.checkpoint()
        if self._nursery is None or self._stopping:
            raise RuntimeError(
                "the server is not running: use open_upgrade_server(), "
                "serve_tcp() or serve_in_memory()"
            )
        client, server = trio.testing.memory_stream_pair()
        self._nursery.start_soon(self.serve_stream, server)
        return client

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[trio.Nursery]:
        if self._nursery is not None:
            raise RuntimeError("the server is already running")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    yield nursery
                finally:
                    self._nursery = None
        finally:
            self._stopping = False
            self._deadline = None
            self._listening = None

    # -- one connection -----------------------------------------------------

    def _record_request(self, record: ConnectionRecord, request: Request) -> None:
        record.requests.append(request)
        self._requests.append(request)
        self._notifier.notify()

    async def _handle(self, stream: TrackedStream, record: ConnectionRecord) -> None:
        script = self._script(record.index) if callable(self._script) else self._script
        if script is not None:
            await run_script(
                script,
                stream,
                record,
                partial(self._record_request, record),
                max_head_size=self._max_head_size,
            )
        else:
            await self._serve_http(stream, record)

    async def _serve_http(
        self, stream: TrackedStream, record: ConnectionRecord
    ) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_head_size)
        while True:
            try:
                request = await read_request(stream, conn)
            except h11.RemoteProtocolError as exc:
                await send_client_error(stream, conn, exc, record)
                return
            if request is None:
                return
            self._record_request(record, request)
            choice = None
            # h11 takes any Upgrade field as an offer (the client is then in
            # MIGHT_SWITCH_PROTOCOL, not DONE) and will only send a 101 then.
            # HTTP also wants "Connection: upgrade" (RFC 9110 7.8: Upgrade is
            # hop-by-hop), and real servers check for it, so this one does.
            offer = conn.their_state not in (h11.DONE, h11.MUST_CLOSE)
            if (
                offer
                and "upgrade" in request.headers.tokens("connection")
                and not self._ignore_upgrade
            ):
                choice = pick(request, self._protocols, self._choose)
            for status, headers in self._informational:
                await stream.send_all(conn.send(informational(status, headers)) or b"")
            if choice is not None:
                protocol, token, fields = choice
                # accept() may name the protocols itself: a stack of layers
                # (RFC 9110 7.8), as an RFC 2817 server does.
                own_upgrade = any(n.lower() == "upgrade" for n, _ in fields)
                upgrade = [] if own_upgrade else [("Upgrade", token)]
                event = h11.InformationalResponse(
                    status_code=101,
                    headers=[*upgrade, ("Connection", "Upgrade"), *fields],
                    reason=b"Switching Protocols",
                )
                await stream.send_all(conn.send(event) or b"")
                record.protocol = token
                leftover, _ = conn.trailing_data
                raw = RawStream(
                    stream, bytes(leftover), protocol=token, response=to_response(event)
                )
                # A protocol of the user's own is the user's code; the
                # library's protocols mark their handlers themselves.
                await run_handler(protocol.serve, raw, request)
                return
            reply = self._fallback or default_refusal(
                self._protocols, ignore_upgrade=self._ignore_upgrade
            )
            headers = list(reply.headers)
            if not self._keep_alive:
                headers.append(("Connection", "close"))
            await send_response(
                stream,
                conn,
                reply.status_code,
                headers,
                reply.body,
                reason=reply.reason,
                include_body=request.method != "HEAD",
            )
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # Connection: close, from either side
            conn.start_next_cycle()


def open_upgrade_server(
    protocols: Sequence[ServerProtocol | str] = ("echo",),
    *,
    tcp: bool = True,
    host: str = "127.0.0.1",
    port: int = 0,
    unix_socket: str | os.PathLike[str] | None = None,
    choose: ChooseArg = "client",
    fallback: Reply | None = None,
    ignore_upgrade: bool = False,
    informational: InformationalArg = (),
    keep_alive: bool = True,
    script: ScriptArg = None,
    connection_timeout: float = CONNECTION_TIMEOUT,
    max_head_size: int = MAX_HEAD_SIZE,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
) -> AbstractAsyncContextManager[UpgradeServer]:
    """Run an :class:`UpgradeServer` for the duration of an ``async with``.

    ::

        import trio_upgrade
        from trio_upgrade.testing import open_upgrade_server

        async def test_echo():
            async with open_upgrade_server(["echo"]) as server:
                async with trio_upgrade.open_upgrade(server.url(), ["echo"]) as conn:
                    await conn.send_all(b"ping")
                    assert await conn.receive_some() == b"ping"

    Args:
        protocols: see :class:`UpgradeServer`, like every argument not
            listed here.
        tcp: listen on ``host``:``port`` (port 0: a free one, see
            :attr:`UpgradeServer.port`); ``False`` serves only
            :meth:`~UpgradeServer.connect_in_memory` connections, no socket.
        host: the address to listen on.
        port: the port to listen on.
        unix_socket: listen on this Unix socket path instead of TCP (see
            :meth:`UpgradeServer.serve_unix`; ``tcp``, ``host`` and
            ``port`` are then not used). Its path is
            :attr:`UpgradeServer.unix_socket`; the socket file is removed
            when the block ends.

    Leaving the block stops the server (:meth:`UpgradeServer.stop`): it
    stops listening, lets what is under way settle (a close the client sent
    is seen), then cancels its own work and waits, at most
    ``shutdown_timeout`` seconds, for handlers still running: a handler that
    collects messages until the client closes and then asserts gets to
    assert. One that is still running then fails the block with
    :class:`HandlerTimeout`. A block that is cancelled, or ends with an
    error of its own, stops the server at once, handlers included: the test
    has failed already.

    An error of a handler (a failed assertion) or of the block comes out of
    the block, as itself, not in an exception group, when it is the only
    one.
    """
    server = UpgradeServer(
        protocols,
        choose=choose,
        fallback=fallback,
        ignore_upgrade=ignore_upgrade,
        informational=informational,
        keep_alive=keep_alive,
        script=script,
        connection_timeout=connection_timeout,
        max_head_size=max_head_size,
        shutdown_timeout=shutdown_timeout,
    )
    return _open(server, tcp=tcp, host=host, port=port, unix_socket=unix_socket)


@asynccontextmanager
async def _open(
    server: UpgradeServer,
    *,
    tcp: bool,
    host: str,
    port: int,
    unix_socket: str | os.PathLike[str] | None,
) -> AsyncIterator[UpgradeServer]:
    with lone_errors_unwrapped():
        async with trio.open_nursery() as nursery:
            if unix_socket is not None:
                await nursery.start(server.serve_unix, unix_socket)
            elif tcp:
                await nursery.start(partial(server.serve_tcp, host=host, port=port))
            else:
                await nursery.start(server.serve_in_memory)
            try:
                yield server
            finally:
                # No await here: the nursery waits while the server stops.
                # A block that raised or was cancelled cancels the nursery,
                # so the server stops at once. (It may have ended already: a
                # handler's error ends it.)
                if server._nursery is not None:
                    server.stop()
