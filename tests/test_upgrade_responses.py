"""upgrade() against scripted servers: responses HTTP/1.1 does not allow, and
refusals that end badly (a deadline, a reset), over real loopback sockets.

The sans-I/O side of the same rules is in ``test_handshake.py``; here the
bytes cross a socket, so each case also shows that nothing received is lost
on the way to the exception and that the socket is closed.
"""

from __future__ import annotations

import socket
import struct
from functools import partial

import pytest
import trio

import trio_upgrade
from trio_upgrade import (
    InvalidResponse,
    Limits,
    ProtocolNotOffered,
    ResponseTooLarge,
    UpgradeError,
    UpgradeRefused,
    UpgradeTimeout,
)
from trio_upgrade.testing import (
    Close,
    Hang,
    ReadRequest,
    Script,
    Send,
    Sleep,
    open_upgrade_server,
    response_head,
    switching_response,
)

pytestmark = pytest.mark.timeout(30)

#: A handshake deadline long enough for loopback, short enough for a test.
QUICK = Limits(handshake_timeout=0.25)


# -- the 101 is checked like the rest of HTTP ---------------------------------


@pytest.mark.parametrize("version", ["1.0", "2.0"])
async def test_a_101_of_another_http_version_is_rejected(version: str) -> None:
    head = switching_response("echo").replace(b"HTTP/1.1", f"HTTP/{version}".encode())
    async with open_upgrade_server(script=Script([Send(head), Hang()])) as server:
        with trio.fail_after(5), pytest.raises(InvalidResponse) as info:
            await trio_upgrade.upgrade(server.url(), "echo")
        assert f"expected HTTP/1.1, got HTTP/{version} 101" in str(info.value)
        with trio.fail_after(5):
            await server.connections[0].wait_client_closed()


async def test_a_head_over_the_limit_that_completes_in_one_read_is_rejected() -> None:
    # About 119 KB against the default 64 KiB: the first write stays under
    # the limit (h11's bound on incomplete heads holds), the second one
    # completes the head in the read that crosses it.
    head = switching_response("echo", [("X-Pad", "a" * 119_000)])
    script = Script([Send(head[:60_000]), Sleep(0.05), Send(head[60_000:]), Hang()])
    async with open_upgrade_server(script=script) as server:
        with trio.fail_after(5), pytest.raises(ResponseTooLarge) as info:
            await trio_upgrade.upgrade(server.url(), "echo")
        assert info.value.limit == Limits().max_head_size == 65536
        assert "Limits.max_head_size" in str(info.value)
        with trio.fail_after(5):
            await server.connections[0].wait_client_closed()


# -- refusals keep their status -----------------------------------------------

CUT_SHORT = [
    # A close-delimited body that never ends (a streaming endpoint).
    pytest.param(
        response_head(200, [("Content-Type", "text/event-stream")]),
        b"data: 1\n\n",
        b"data: 1\n\n",
        id="close-delimited",
    ),
    pytest.param(
        response_head(503, [("Transfer-Encoding", "chunked")]),
        b"5\r\nhello\r\n",
        b"hello",
        id="chunked",
    ),
    pytest.param(
        response_head(426, [("Upgrade", "websocket"), ("Content-Length", "100")]),
        b"partial",
        b"partial",
        id="content-length",
    ),
]


@pytest.mark.parametrize(("head", "sent", "body"), CUT_SHORT)
async def test_deadline_in_a_refusal_body_keeps_the_refusal(
    head: bytes, sent: bytes, body: bytes
) -> None:
    script = Script([Send(head + sent), Hang()])
    async with open_upgrade_server(script=script) as server:
        with trio.fail_after(5), pytest.raises(UpgradeRefused) as info:
            await trio_upgrade.upgrade(server.url(), "echo", limits=QUICK)
        error = info.value
        assert error.status_code == int(head[9:12])
        assert error.response.headers.get("content-length") == (
            "100" if b"Content-Length" in head else None
        )
        assert error.body == body
        assert error.body_truncated
        assert [(a.offered, a.status_code) for a in error.attempts] == [
            (("echo",), error.status_code)
        ]
        with trio.fail_after(5):
            await server.connections[0].wait_client_closed()


@pytest.mark.parametrize(
    "sent",
    [
        b"",
        b"HTTP/1.1 200 O",
        b"HTTP/1.1 200 OK\r\nContent-Len",
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ],
    ids=["nothing", "status-line", "head", "after-1xx"],
)
async def test_deadline_before_a_final_status_is_a_timeout(sent: bytes) -> None:
    async with open_upgrade_server(script=Script([Send(sent), Hang()])) as server:
        with trio.fail_after(5), pytest.raises(UpgradeTimeout) as info:
            await trio_upgrade.upgrade(server.url(), "echo", limits=QUICK)
        assert info.value.phase == "handshake"


async def test_a_refusal_cut_short_by_the_deadline_lets_the_next_offer_try() -> None:
    head, sent, _ = CUT_SHORT[0].values
    assert isinstance(head, bytes) and isinstance(sent, bytes)
    slow = Script([Send(head + sent), Hang()])
    async with open_upgrade_server(
        ["second"], script=lambda index: slow if index == 0 else None
    ) as server:
        with trio.fail_after(5):
            conn = await trio_upgrade.upgrade(
                server.url(), ["first", "second"], limits=QUICK
            )
            async with conn:
                assert conn.protocol == "second"
        assert len(server.connections) == 2


async def test_every_refusal_cut_short_is_listed() -> None:
    script = Script([Send(response_head(404, []) + b"not fou"), Hang()])
    async with open_upgrade_server(script=script) as server:
        with trio.fail_after(5), pytest.raises(UpgradeRefused) as info:
            await trio_upgrade.upgrade(server.url(), ["first", "second"], limits=QUICK)
        error = info.value
        assert [(a.offered, a.status_code) for a in error.attempts] == [
            (("first",), 404),
            (("second",), 404),
        ]
        assert (error.body, error.body_truncated) == (b"not fou", True)


async def test_a_reset_in_a_refusal_body_keeps_the_refusal(
    nursery: trio.Nursery,
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        await stream.send_all(response_head(500, [("Content-Length", "50")]) + b"oops")
        await trio.sleep(0.05)  # the client reads it before the reset
        # SO_LINGER with a zero timeout turns close() into a TCP reset.
        stream.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        await stream.aclose()

    listeners = await nursery.start(
        partial(trio.serve_tcp, handler, 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    with trio.fail_after(5), pytest.raises(UpgradeRefused) as info:
        await trio_upgrade.upgrade(f"http://127.0.0.1:{port}/", "echo")
    assert info.value.status_code == 500
    assert (info.value.body, info.value.body_truncated) == (b"oops", True)


# -- an error in a later attempt keeps the earlier ones ----------------------

REFUSED = response_head(404, [("Content-Length", "0")])


@pytest.mark.parametrize(
    ("second", "error"),
    [
        ([Hang()], UpgradeTimeout),
        ([Send(switching_response("third")), Hang()], ProtocolNotOffered),
        ([Send(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"), Close()], InvalidResponse),
    ],
    ids=["timeout", "unoffered-101", "garbage"],
)
async def test_an_error_in_a_later_attempt_lists_the_earlier_ones(
    second: list[Hang | Send | Close], error: type[UpgradeError]
) -> None:
    # The first offer is declined on a connection kept open; the second
    # request, on the same connection, fails.
    script = Script([Send(REFUSED), ReadRequest(), *second])
    async with open_upgrade_server(script=script) as server:
        with trio.fail_after(5), pytest.raises(error) as info:
            await trio_upgrade.upgrade(server.url(), ["first", "second"], limits=QUICK)
        attempts = info.value.attempts
        assert [(a.offered, a.status_code) for a in attempts] == [
            (("first",), 404),
            (("second",), 101 if error is ProtocolNotOffered else None),
        ]
        assert attempts[0].error is None
        assert attempts[1].error is info.value
        assert len(server.requests) == 2
