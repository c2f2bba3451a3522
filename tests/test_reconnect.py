"""open_reconnecting(): backoff, the retry rule, and cancellation.

The servers listen on Unix sockets and the clock is trio's MockClock with
autojump: a Unix socket delivers within the sending call, so the clock only
jumps when every task waits on a timer, and each wait is asserted to the
exact second without spending it.
"""

from __future__ import annotations

import logging
import math
import socket
import ssl
from collections.abc import Callable

import pytest
import trio
import trio.testing
from unix_support import needs_unix, socket_path

import trio_upgrade
from trio_upgrade import (
    Backoff,
    ConnectError,
    ConnectionClosed,
    Headers,
    HTTP2NotSelected,
    InvalidResponse,
    InvalidUpgrade,
    InvalidURL,
    ProtocolError,
    ProxyError,
    Raw,
    RedirectError,
    Response,
    ResponseTooLarge,
    UpgradeRefused,
    UpgradeTimeout,
    retryable,
)
from trio_upgrade.testing import (
    Close,
    Hang,
    Script,
    Send,
    ServerWebSocket,
    UpgradeServer,
    WebSocketServerProtocol,
    echo_messages,
    http_response,
    open_upgrade_server,
)

__all__ = ["socket_path"]  # the fixture, re-exported for pytest

pytestmark = [pytest.mark.timeout(10), needs_unix]

URL = "http://localhost/"
#: No jitter: every wait is its bound, 1, 2, 4, 8... seconds.
STEADY = Backoff(initial=1.0, factor=2.0, max_delay=60.0, jitter=lambda: 1.0)


def refusing(
    times: list[float],
    count: int,
    status: int = 503,
    headers: list[tuple[str, str]] | None = None,
) -> Callable[[int], Script | None]:
    """A server script: refuse the first ``count`` connections with
    ``status``, serve the rest normally; note when each one came."""

    def script(index: int) -> Script | None:
        times.append(trio.current_time())
        if index >= count:
            return None
        reply = http_response(status, b"busy", headers or [])
        return Script([Send(reply), Close()])

    return script


def since(start: float, times: list[float]) -> list[float]:
    return [round(t - start, 6) for t in times]


def noting(
    failures: list[tuple[float, Exception]],
    rule: Callable[[Exception], bool] = retryable,
) -> Callable[[Exception], bool]:
    """A ``retry_on`` that notes when each attempt failed, and why."""

    def retry_on(exc: Exception) -> bool:
        failures.append((trio.current_time(), exc))
        return rule(exc)

    return retry_on


async def first_connection(url: str, **options: object) -> None:
    """Iterate ``open_reconnecting(url, Raw("echo"), ...)`` once."""
    async with trio_upgrade.open_reconnecting(
        url, Raw("echo"), **options
    ) as connections:  # type: ignore[arg-type]
        async for _conn in connections:
            break


async def test_refused_three_times_then_accepted(
    autojump_clock: trio.testing.MockClock, socket_path: str
) -> None:
    times: list[float] = []
    start = trio.current_time()
    async with (
        open_upgrade_server(
            ["echo"], unix_socket=socket_path, script=refusing(times, 3)
        ),
        trio_upgrade.open_reconnecting(
            URL, Raw("echo"), unix_socket=socket_path, backoff=STEADY
        ) as connections,
    ):
        async for conn in connections:
            assert connections.connection is conn
            await conn.send_all(b"at last")
            assert await conn.receive_some() == b"at last"
            break
    # Waits of 1, 2 and 4 s after the three 503s.
    assert since(start, times) == [0, 1, 3, 7]


async def test_retry_after_is_honoured_up_to_max_delay(
    autojump_clock: trio.testing.MockClock, socket_path: str
) -> None:
    times: list[float] = []
    start = trio.current_time()
    script = refusing(times, 2, 429, [("Retry-After", "30")])
    backoff = Backoff(initial=1.0, max_delay=20.0, jitter=lambda: 1.0)
    async with (
        open_upgrade_server(["echo"], unix_socket=socket_path, script=script),
        trio_upgrade.open_reconnecting(
            URL, Raw("echo"), unix_socket=socket_path, backoff=backoff
        ) as connections,
    ):
        async for _conn in connections:
            break
    # The server asks for 30 s; the backoff's cap, 20 s, bounds it.
    assert since(start, times) == [0, 20, 40]


async def test_retry_after_as_an_http_date(
    autojump_clock: trio.testing.MockClock, socket_path: str
) -> None:
    # An HTTP-date in the past means "now": the backoff's own wait applies.
    times: list[float] = []
    start = trio.current_time()
    past = [("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")]
    async with (
        open_upgrade_server(
            ["echo"], unix_socket=socket_path, script=refusing(times, 1, 503, past)
        ),
        trio_upgrade.open_reconnecting(
            URL, Raw("echo"), unix_socket=socket_path, backoff=STEADY
        ) as connections,
    ):
        async for _conn in connections:
            break
    assert since(start, times) == [0, 1]


async def _close_at_exit(sock: socket.socket) -> None:
    try:
        await trio.sleep_forever()
    finally:
        sock.close()


async def test_a_missing_socket_is_retried_until_the_server_starts(
    autojump_clock: trio.testing.MockClock, socket_path: str
) -> None:
    failures: list[tuple[float, Exception]] = []
    start = trio.current_time()

    # Bound now, listening from 5 s on: connecting is refused until then.
    # (Not serve_unix() at 5 s: trio binds a Unix socket in a thread, and
    # the autojump clock would jump the client's waits meanwhile.)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(socket_path)
    server = UpgradeServer(["echo"])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_close_at_exit, sock)

        async def start_later() -> None:
            await trio.sleep(5)
            sock.listen()
            listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
            nursery.start_soon(trio.serve_listeners, server.serve_stream, [listener])

        nursery.start_soon(start_later)
        async with trio_upgrade.open_reconnecting(
            URL,
            Raw("echo"),
            unix_socket=socket_path,
            backoff=STEADY,
            retry_on=noting(failures),
        ) as connections:
            async for conn in connections:
                connected = trio.current_time()
                await conn.send_all(b"up")
                assert await conn.receive_some() == b"up"
                break
        nursery.cancel_scope.cancel()
    # Attempts at 0, 1, 3 were refused; the server listens from 5; 7 succeeds.
    assert since(start, [t for t, _ in failures]) == [0, 1, 3]
    for _, exc in failures:
        assert isinstance(exc, ConnectError)
        assert isinstance(exc.__cause__, ConnectionRefusedError)
    assert round(connected - start, 6) == 7


async def test_a_dropped_connection_yields_a_fresh_one(
    autojump_clock: trio.testing.MockClock, socket_path: str
) -> None:
    served: list[float] = []

    async def handler(ws: ServerWebSocket) -> None:
        served.append(trio.current_time())
        if len(served) == 1:
            await ws.receive()
            await trio.aclose_forcefully(ws.stream)  # a crash: no close frame
        else:
            await echo_messages(ws)

    start = trio.current_time()
    replies: list[str | bytes] = []
    lost: list[ConnectionClosed] = []
    protocol = WebSocketServerProtocol(handler=handler)
    async with (
        open_upgrade_server([protocol], unix_socket=socket_path),
        trio_upgrade.open_reconnecting(
            "ws://localhost/", ["websocket"], unix_socket=socket_path, backoff=STEADY
        ) as connections,
    ):
        async for ws in connections:
            try:
                await ws.send("hello")
                replies.append(await ws.receive())
            except ConnectionClosed as exc:
                lost.append(exc)
                continue
            break
    assert [(e.code, e.normal) for e in lost] == [(1006, False)]
    assert replies == ["hello"]
    # The first connection lasted less than reset_after: it counts as a
    # failure, so the second one waits the first backoff step.
    assert since(start, served) == [0, 1]


async def test_a_long_lived_connection_resets_the_backoff(
    autojump_clock: trio.testing.MockClock, socket_path: str
) -> None:
    times: list[float] = []
    start = trio.current_time()
    async with (
        open_upgrade_server(
            ["echo"],
            unix_socket=socket_path,
            script=refusing(times, 2),
            connection_timeout=math.inf,
        ),
        trio_upgrade.open_reconnecting(
            URL, Raw("echo"), unix_socket=socket_path, backoff=STEADY
        ) as connections,
    ):
        count = 0
        async for _conn in connections:
            count += 1
            if count == 1:
                await trio.sleep(STEADY.reset_after)  # a session long enough
            elif count == 2:
                await trio.sleep(1)  # too short: the next one waits
            else:
                break
    # 0: 503, 1: 503 after 1 s, 3: served for 10 s; reconnected at once at
    # 13, served 1 s; then the first step again: 1 s later, at 15.
    assert since(start, times) == [0, 1, 3, 13, 15]


async def test_a_refusal_that_is_not_retried_comes_out_at_once(
    autojump_clock: trio.testing.MockClock, socket_path: str
) -> None:
    times: list[float] = []
    start = trio.current_time()
    async with open_upgrade_server(
        ["echo"], unix_socket=socket_path, script=refusing(times, 1, 403)
    ):
        with pytest.raises(UpgradeRefused) as info:
            await first_connection(URL, unix_socket=socket_path, backoff=STEADY)
    assert info.value.status_code == 403
    assert since(start, times) == [0]
    assert trio.current_time() == start


async def test_max_failures_gives_up_with_the_last_error(
    autojump_clock: trio.testing.MockClock, socket_path: str
) -> None:
    start = trio.current_time()
    with pytest.raises(ConnectError, match="Unix socket"):
        await first_connection(
            URL, unix_socket=socket_path, backoff=STEADY, max_failures=3
        )
    assert trio.current_time() - start == 3  # attempts at 0, 1 and 3


async def test_retries_are_logged_without_credentials(
    autojump_clock: trio.testing.MockClock,
    socket_path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_upgrade")
    with pytest.raises(ConnectError):
        await first_connection(
            "http://user:s3cret@localhost/",
            unix_socket=socket_path,
            backoff=STEADY,
            max_failures=3,
        )
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert [m.split(":")[0] for m in retries] == [
        "connection attempt 1 failed, retrying in 1 s",
        "connection attempt 2 failed, retrying in 2 s",
    ]
    assert all(socket_path in m for m in retries)
    assert not any("s3cret" in r.getMessage() for r in caplog.records)


async def test_retry_on_overrides_the_rule(socket_path: str) -> None:
    seen: list[tuple[float, Exception]] = []
    never = noting(seen, lambda exc: False)
    with pytest.raises(ConnectError):
        await first_connection(URL, unix_socket=socket_path, retry_on=never)
    assert len(seen) == 1


async def test_cancelled_during_the_backoff_wait_stops_at_once(
    autojump_clock: trio.testing.MockClock, socket_path: str
) -> None:
    failures: list[tuple[float, Exception]] = []
    start = trio.current_time()
    with trio.move_on_after(2.5) as scope:
        async with trio_upgrade.open_reconnecting(
            URL,
            "echo",
            unix_socket=socket_path,
            backoff=STEADY,
            retry_on=noting(failures),
        ) as connections:
            async for _conn in connections:
                pytest.fail("nothing listens")
    assert scope.cancelled_caught
    # Attempts at 0 and 1; the wait until 3 was cut at 2.5, nothing after.
    assert trio.current_time() - start == 2.5
    assert since(start, [t for t, _ in failures]) == [0, 1]


async def test_cancelled_during_an_attempt_leaves_no_socket_open(
    socket_path: str,
) -> None:
    async with open_upgrade_server(
        script=Script([Hang()]), unix_socket=socket_path
    ) as server:
        with trio.move_on_after(0.2) as scope:
            async with trio_upgrade.open_reconnecting(
                URL, "echo", unix_socket=socket_path
            ) as connections:
                async for _conn in connections:
                    pytest.fail("the server never answers")
        assert scope.cancelled_caught
        (record,) = await server.wait_closed(1)
        assert record.client_closed and not record.timed_out


async def test_leaving_the_block_closes_the_connection(socket_path: str) -> None:
    async with open_upgrade_server(["echo"], unix_socket=socket_path) as server:
        with trio.move_on_after(0.2):  # cancelled inside the body
            async with trio_upgrade.open_reconnecting(
                URL, Raw("echo"), unix_socket=socket_path
            ) as connections:
                async for conn in connections:
                    await conn.receive_some()  # until cancelled
        (record,) = await server.wait_closed(1)
        assert record.client_closed
        assert connections.connection is None
        with pytest.raises(RuntimeError, match="block has ended"):
            await connections.__anext__()


async def test_each_iteration_closes_the_previous_connection(
    socket_path: str,
) -> None:
    async with open_upgrade_server(["echo"], unix_socket=socket_path) as server:
        backoff = Backoff(reset_after=0)  # every connection counts as long
        async with trio_upgrade.open_reconnecting(
            URL, Raw("echo"), unix_socket=socket_path, backoff=backoff
        ) as connections:
            seen = []
            async for conn in connections:
                seen.append(conn)
                if len(seen) == 3:
                    break
        records = await server.wait_closed(3)
        assert all(r.client_closed for r in records)
        assert len({id(c) for c in seen}) == 3


def test_jitter_stays_within_the_bounds() -> None:
    backoff = Backoff(initial=0.5, factor=3.0, max_delay=10.0)
    bounds = [backoff.bound(n) for n in range(1, 6)]
    assert bounds == [0.5, 1.5, 4.5, 10.0, 10.0]
    for failures, bound in enumerate(bounds, 1):
        delays = [backoff.delay(failures) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > bound / 2  # spread over the range, not pinned
    # The fraction comes from jitter; out-of-range values are clamped.
    assert Backoff(initial=2.0, jitter=lambda: 0.25).delay(3) == 2.0
    assert Backoff(jitter=lambda: 7.0).delay(1) == 1.0
    assert Backoff(jitter=lambda: -1.0).delay(1) == 0.0
    assert Backoff(max_delay=60.0).bound(100_000) == 60.0  # no overflow


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": -1},
        {"factor": 0.5},
        {"max_delay": math.inf},
        {"reset_after": math.nan},
    ],
)
def test_bad_backoff_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be a finite number"):
        Backoff(**kwargs)  # type: ignore[arg-type]


def _refused(status: int) -> UpgradeRefused:
    return UpgradeRefused(Response(status, "", Headers([])), b"")


def _cert_error() -> ConnectError:
    try:
        try:
            raise ssl.SSLCertVerificationError("certificate verify failed")
        except ssl.SSLError as cause:
            raise trio.BrokenResourceError from cause
    except trio.BrokenResourceError as broken:
        error = ConnectError("could not connect")
        error.__cause__ = broken
        return error


def _tls_cut_short() -> ConnectError:
    error = ConnectError("could not connect")
    error.__cause__ = ssl.SSLEOFError("EOF occurred in violation of protocol")
    return error


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (ConnectError("refused"), True),
        (_tls_cut_short(), True),
        (_cert_error(), False),
        (ProxyError("refused", Response(502, "", Headers([]))), True),
        (ProxyError("refused", Response(407, "", Headers([]))), False),
        (ProxyError("not HTTP"), False),
        (UpgradeTimeout("connect", 10), True),
        (InvalidResponse("cut short"), True),
        (ResponseTooLarge("too large", limit=1), False),
        (ConnectionClosed(None, normal=False), True),
        *[(_refused(s), True) for s in (408, 429, 500, 502, 503, 504)],
        *[(_refused(s), False) for s in (400, 401, 403, 404, 426, 501, 505)],
        (InvalidUpgrade("bad accept"), False),
        (
            RedirectError(
                "loop",
                response=Response(301, "", Headers([("Location", "/")])),
                location="http://h/",
                chain=["http://h/", "http://h/"],
            ),
            False,
        ),
        (HTTP2NotSelected("h:443", "http/1.1"), False),
        (ProtocolError("bad frame"), False),
        (InvalidURL("bad"), False),
        (ValueError("bad"), False),
        (TypeError("bad"), False),
        (RuntimeError("a bug"), False),
    ],
)
def test_which_errors_are_retried(exc: Exception, retried: bool) -> None:
    assert retryable(exc) is retried


async def test_misuse_is_refused_at_once(socket_path: str) -> None:
    with pytest.raises(ValueError, match="cannot reconnect a given transport"):
        trio_upgrade.open_reconnecting(
            URL, "echo", transport=trio.testing.memory_stream_pair()[0]
        )
    with pytest.raises(ValueError, match="max_failures"):
        trio_upgrade.open_reconnecting(URL, "echo", max_failures=0)
    with pytest.raises(InvalidURL):
        trio_upgrade.open_reconnecting("ftp://localhost/", "echo")
    with pytest.raises(ValueError, match="at least one protocol"):
        trio_upgrade.open_reconnecting(URL, [])
    with pytest.raises(TypeError, match="unexpected keyword argument 'nursery'"):
        trio_upgrade.open_reconnecting(URL, "echo", nursery=None)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="unix_socket and proxy"):
        trio_upgrade.open_reconnecting(
            URL, "echo", unix_socket=socket_path, proxy="http://127.0.0.1:3128"
        )


async def test_one_task_at_a_time(socket_path: str) -> None:
    async with (
        trio_upgrade.open_reconnecting(
            URL, "echo", unix_socket=socket_path
        ) as connections,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(connections.__anext__)  # retries without end
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError, match="already waiting"):
            await connections.__anext__()
        nursery.cancel_scope.cancel()
