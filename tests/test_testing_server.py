"""trio_upgrade.testing: the upgrade server, driven byte by byte.

Most tests talk to the server over real loopback sockets with h11 as the
client-side parser, so they check the server against an independent HTTP
implementation rather than against trio_upgrade's own client; one test at
the end runs ``trio_upgrade.upgrade()`` against it end to end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import h11
import pytest
import trio
import trio.testing
from server_client import (
    Connect,
    connect,
    expect_echo,
    header,
    read_all,
    read_at_least,
)

import trio_upgrade
from trio_upgrade import Limits, Raw, RawStream, Request, UpgradeRefused
from trio_upgrade._sansio._handshake import (
    NEED_DATA,
    Handshake,
    Switched,
    build_request,
)
from trio_upgrade._sansio._url import parse_url
from trio_upgrade.testing import (
    H2CServerProtocol,
    Hang,
    RawServerProtocol,
    Reply,
    Script,
    ServerProtocol,
    UpgradeServer,
    http_response,
    open_upgrade_server,
    response_head,
    switching_response,
)

__all__ = ["connect"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.timeout(10)

# -- choosing among the offered protocols ------------------------------------


@pytest.mark.parametrize(
    ("choose", "expected"), [("client", "beta"), ("server", "alpha")]
)
async def test_choose_by_client_or_server_order(
    connect: Connect, choose: str, expected: str
) -> None:
    async with open_upgrade_server(["alpha", "beta"], choose=choose) as server:  # type: ignore[arg-type]
        client = await connect(server)
        await client.request("beta, gamma, alpha")
        _, response, _ = await client.response()
        assert response.status_code == 101
        assert header(response, "upgrade") == expected
        assert header(response, "connection") == "Upgrade"
        await expect_echo(client.stream, b"ping")
        await client.stream.aclose()
        (record,) = await server.wait_closed(1)
        assert record.protocol == expected


async def test_choose_function_sees_the_offer_and_may_decline(connect: Connect) -> None:
    seen: list[tuple[Sequence[str], Request]] = []

    def choose(offered: Sequence[str], request: Request) -> str | None:
        seen.append((offered, request))
        return "ALPHA" if "please" in request.target else None

    async with open_upgrade_server(["alpha", "beta"], choose=choose) as server:
        client = await connect(server)
        await client.request("beta, Alpha")
        _, refused, _ = await client.response()
        assert refused.status_code == 426
        client.conn.start_next_cycle()
        request = h11.Request(
            method="GET",
            target="/please",
            headers=[("Host", "x"), ("Connection", "upgrade"), ("Upgrade", "alpha")],
        )
        await client.stream.send_all(
            client.conn.send(request) + client.conn.send(h11.EndOfMessage())
        )
        _, switched, _ = await client.response()
        # The 101 names the token as the chooser spelled it.
        assert (switched.status_code, header(switched, "upgrade")) == (101, "ALPHA")
    assert [list(offered) for offered, _ in seen] == [["beta", "Alpha"], ["alpha"]]
    assert seen[1][1].target == "/please"


class Picky(ServerProtocol):
    """Takes the offer only with a ``Sec-Picky`` header; answers with its own."""

    token = "picky"

    def accept(self, request: Request) -> list[tuple[str, str]] | None:
        if request.headers.get("sec-picky") is None:
            return None
        return [("Sec-Picky-Accept", "yes")]

    async def serve(self, stream: RawStream, request: Request) -> None:
        await stream.send_all(b"picky here")


async def test_a_declining_protocol_lets_the_next_offered_one_win(
    connect: Connect,
) -> None:
    async with open_upgrade_server([Picky(), "echo"]) as server:
        client = await connect(server)
        await client.request("picky, echo")
        _, response, _ = await client.response()
        assert header(response, "upgrade") == "echo"

        client = await connect(server)
        await client.request("picky", headers=[("Sec-Picky", "1")])
        _, response, _ = await client.response()
        assert header(response, "upgrade") == "picky"
        assert header(response, "sec-picky-accept") == "yes"
        assert client.leftover + await read_all(client.stream) == b"picky here"


# -- answering without switching -----------------------------------------------


async def test_426_lists_tokens_and_keeps_the_connection_for_a_next_request(
    connect: Connect,
) -> None:
    async with open_upgrade_server(["echo", "other/2"]) as server:
        client = await connect(server)
        await client.request("nope")
        _, response, body = await client.response()
        assert response.status_code == 426
        assert header(response, "upgrade") == "echo, other/2"
        assert b"Upgrade Required" in body
        assert client.conn.our_state is h11.DONE  # keep-alive: reusable

        await client.request("echo", then=b"right away")
        _, response, _ = await client.response()
        assert response.status_code == 101
        assert client.leftover + await read_at_least(
            client.stream, 10 - len(client.leftover)
        ) == (b"right away")
        await client.stream.aclose()
        (record,) = await server.wait_closed(1)
    assert len(server.connections) == 1
    assert [r.headers.get("upgrade") for r in record.requests] == ["nope", "echo"]


async def test_a_head_request_gets_the_head_of_the_refusal(connect: Connect) -> None:
    async with open_upgrade_server(["echo"]) as server:
        client = await connect(server)
        event = h11.Request(method="HEAD", target="/", headers=[("Host", "x")])
        await client.stream.send_all(
            client.conn.send(event) + client.conn.send(h11.EndOfMessage())
        )
        _, response, body = await client.response()
        assert (response.status_code, body) == (426, b"")
        assert int(header(response, "content-length") or 0) > 0


async def test_a_request_without_connection_upgrade_is_not_an_offer(
    connect: Connect,
) -> None:
    async with open_upgrade_server(["echo"]) as server:
        client = await connect(server)
        await client.request("echo", connection="keep-alive")
        _, response, _ = await client.response()
        assert response.status_code == 426


async def test_ignore_upgrade_answers_200_and_serves_the_next_request(
    connect: Connect,
) -> None:
    async with open_upgrade_server(["echo"], ignore_upgrade=True) as server:
        client = await connect(server)
        for _ in range(2):
            await client.request("echo")
            _, response, body = await client.response()
            assert response.status_code == 200
            assert body
        await client.stream.aclose()
        (record,) = await server.wait_closed(1)
    assert len(record.requests) == 2
    assert record.protocol is None


async def test_fallback_reply_and_keep_alive_off(connect: Connect) -> None:
    advert = Reply(200, b"hello", [("Upgrade", "h2c")], reason="Fine")
    async with open_upgrade_server(
        ["echo"], fallback=advert, keep_alive=False
    ) as server:
        client = await connect(server)
        await client.request("h2c")
        _, response, body = await client.response()
        assert (response.status_code, response.reason, body) == (200, b"Fine", b"hello")
        assert header(response, "upgrade") == "h2c"
        assert header(response, "connection") == "close"
        assert await client.stream.receive_some(10) == b""  # the server closed
        await client.stream.aclose()
        (record,) = await server.wait_closed(1)
        assert record.client_closed


async def test_informational_responses_come_before_the_answer(connect: Connect) -> None:
    hints = [(103, [("Link", "</style.css>; rel=preload")]), (100, [])]
    async with open_upgrade_server(["echo"], informational=hints) as server:
        client = await connect(server)
        await client.request("echo")
        skipped, response, _ = await client.response()
        assert (skipped, response.status_code) == ([103, 100], 101)

        client = await connect(server)
        await client.request("nope")
        skipped, response, _ = await client.response()
        assert (skipped, response.status_code) == ([103, 100], 426)


async def test_a_malformed_request_gets_400_and_is_recorded(connect: Connect) -> None:
    async with open_upgrade_server() as server:
        stream = (await connect(server)).stream
        await stream.send_all(b"NOT HTTP\r\n\r\n")
        reply = await read_all(stream)
        assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        await stream.aclose()  # else the server lingers for our close
        (record,) = await server.wait_closed(1)
        assert record.error is not None
        assert record.requests == []


# -- switched connections ------------------------------------------------------


async def test_bytes_pipelined_after_the_request_head_reach_the_echo(
    connect: Connect,
) -> None:
    async with open_upgrade_server() as server:
        client = await connect(server)
        await client.request("echo", then=b"sent with the head")
        _, response, _ = await client.response()
        assert response.status_code == 101
        echoed = client.leftover
        echoed += await read_at_least(client.stream, 18 - len(echoed))
        assert echoed == b"sent with the head"
        await expect_echo(client.stream, b"and after")
        assert isinstance(client.stream, trio.SocketStream)
        await client.stream.send_eof()
        assert await read_all(client.stream) == b""  # echo half-closes back
        (record,) = await server.wait_closed(1)
        assert record.client_closed and not record.timed_out
        assert record.received > 18 and record.sent > 18


async def test_a_handler_gets_the_stream_with_h11_buffered_bytes_first(
    connect: Connect,
) -> None:
    got: list[tuple[bytes, str, int, str]] = []

    async def handler(stream: RawStream, request: Request) -> None:
        assert stream.handshake_response is not None
        data = await stream.receive_some()
        got.append(
            (
                bytes(data),
                stream.protocol,
                stream.handshake_response.status_code,
                request.target,
            )
        )
        await stream.send_all(b"bye")

    async with open_upgrade_server([RawServerProtocol("chat", handler)]) as server:
        client = await connect(server)
        await client.request("chat", then=b"early")
        await client.response()
        assert client.leftover + await read_all(client.stream) == b"bye"
    assert got == [(b"early", "chat", 101, "/")]


async def test_a_handler_failure_comes_out_of_the_server_as_itself(
    connect: Connect,
) -> None:
    async def handler(stream: RawStream, request: Request) -> None:
        raise ValueError("assertion in a handler")

    async def run() -> None:
        async with open_upgrade_server([RawServerProtocol("x", handler)]) as server:
            client = await connect(server)
            await client.request("x")
            await client.response()
            await trio.sleep_forever()

    with pytest.raises(ValueError, match="assertion in a handler"):
        await run()


# -- bounds, records, lifetime -----------------------------------------------


async def test_connection_timeout_closes_a_stuck_connection(connect: Connect) -> None:
    script = Script([Hang()])
    async with open_upgrade_server(script=script, connection_timeout=0.2) as server:
        client = await connect(server)
        await client.request("echo")
        start = trio.current_time()
        assert await read_all(client.stream) == b""
        assert trio.current_time() - start < 2
        (record,) = await server.wait_closed(1)
        assert record.timed_out and not record.client_closed


async def test_records_and_waiting_for_them(connect: Connect) -> None:
    async with open_upgrade_server() as server:
        assert server.connections == [] and server.requests == []
        clients = [await connect(server) for _ in range(3)]
        await server.wait_connections(3)
        for client in clients:
            await client.request("echo")
            await client.response()
        requests = await server.wait_requests(3)
        assert all(r.headers.get("upgrade") == "echo" for r in requests)
        await clients[1].stream.aclose()
        (closed,) = await server.wait_closed(1)
        assert closed.index == 1 and closed.client_closed and closed.done
        assert not server.connections[0].done
        for client in clients:
            await client.stream.aclose()
        assert len(await server.wait_closed(3)) == 3
        await server.connections[2].wait_done()


async def test_leaving_the_block_cancels_connections_and_stops_listening(
    connect: Connect,
) -> None:
    baseline = trio.lowlevel.current_statistics().tasks_living
    async with open_upgrade_server(script=Script([Hang()])) as server:
        port = server.port
        client = await connect(server)
        await client.request("echo")
        await server.wait_requests(1)
    assert trio.lowlevel.current_statistics().tasks_living == baseline
    assert server.connections[0].done
    assert await read_all(client.stream) == b""  # the server side is closed
    with pytest.raises(OSError, match="connect"):
        await trio.open_tcp_stream("127.0.0.1", port)
    with pytest.raises(RuntimeError):
        server.port  # noqa: B018


async def test_serve_tcp_in_a_nursery() -> None:
    server = UpgradeServer(["echo"])
    async with trio.open_nursery() as nursery:
        started = await nursery.start(server.serve_tcp)
        assert started is server
        assert server.url("ws") == f"http://127.0.0.1:{server.port}/ws"
        with pytest.raises(RuntimeError, match="already running"):
            await nursery.start(server.serve_in_memory)
        nursery.cancel_scope.cancel()


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="twice"):
        UpgradeServer(["echo", "ECHO"])
    with pytest.raises(ValueError, match="invalid upgrade protocol"):
        UpgradeServer(["not a token"])
    with pytest.raises(ValueError, match="choose"):
        UpgradeServer(choose="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1xx"):
        UpgradeServer(informational=[(101, [])])
    with pytest.raises(TypeError):
        UpgradeServer([42])  # type: ignore[list-item]


def test_wire_builders() -> None:
    assert (
        response_head(418, [("A", "b")]) == b"HTTP/1.1 418 I'm a Teapot\r\nA: b\r\n\r\n"
    )
    assert response_head(599) == b"HTTP/1.1 599 \r\n\r\n"
    assert response_head(101, reason="") == b"HTTP/1.1 101 \r\n\r\n"
    assert http_response(200, b"hi").endswith(b"Content-Length: 2\r\n\r\nhi")
    assert b"\nUpgrade:" not in switching_response(None)


# -- in memory ------------------------------------------------------------------


async def upgrade_over(stream: trio.abc.Stream, token: str) -> RawStream:
    """The client's sans-I/O handshake, run over any stream (no socket)."""
    target = parse_url("http://memory.invalid/")
    offer = Raw(token).offer(target)
    handshake = Handshake(Limits())
    await stream.send_all(handshake.send_request(build_request(target, [offer], [])))
    while (event := handshake.next_event()) is NEED_DATA:
        handshake.receive_data(await stream.receive_some(65536))
    assert isinstance(event, Switched), event
    return RawStream(stream, event.leftover, protocol=token, response=event.response)


async def test_in_memory_server_without_any_socket() -> None:
    async with open_upgrade_server(["echo"], tcp=False) as server:
        with pytest.raises(RuntimeError, match="not listening"):
            server.url()
        conn = await upgrade_over(await server.connect_in_memory(), "echo")
        await expect_echo(conn, b"no network involved")
        await conn.aclose()
        (record,) = await server.wait_closed(1)
        assert record.protocol == "echo" and record.client_closed


async def test_serve_stream_on_a_memory_pair_in_your_own_nursery() -> None:
    server = UpgradeServer(["echo"])
    with pytest.raises(RuntimeError, match="not running"):
        await server.connect_in_memory()
    client, server_end = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_stream, server_end)
        conn = await upgrade_over(client, "echo")
        await expect_echo(conn, b"memory")
        await conn.send_eof()
        assert await read_all(conn) == b""
        await conn.aclose()
    assert server.connections[0].done


# -- the library's own client against it ----------------------------------------


async def test_upgrade_end_to_end_reuses_the_connection_after_a_refusal() -> None:
    async with open_upgrade_server(["echo"]) as server:
        # Raw objects rather than strings: the return type is then RawStream.
        offers = [Raw("nope"), Raw("echo")]
        conn = await trio_upgrade.upgrade(server.url(), offers)
        async with conn:
            assert conn.protocol == "echo"
            await expect_echo(conn, b"through trio_upgrade")
        (record,) = await server.wait_closed(1)
        assert [r.headers.get("upgrade") for r in record.requests] == ["nope", "echo"]
        assert record.client_closed

        with pytest.raises(UpgradeRefused) as info:
            await trio_upgrade.upgrade(server.url(), ["nope"])
        assert info.value.response.headers.get("upgrade") == "echo"


async def test_a_cancelled_client_leaves_no_socket_open() -> None:
    async with open_upgrade_server(script=Script([Hang()])) as server:
        with trio.move_on_after(0.1):
            await trio_upgrade.upgrade(server.url(), ["echo"])
        (record,) = await server.wait_closed(1)
        assert record.client_closed and not record.timed_out


async def test_the_pytest_fixture(upgrade_server: UpgradeServer) -> None:
    conn = await trio_upgrade.upgrade(upgrade_server.url(), Raw("echo"))
    async with conn:
        await expect_echo(conn, b"fixture")


@pytest.mark.upgrade_server(["chat"], choose="server", connection_timeout=math.inf)
async def test_the_pytest_fixture_marker(upgrade_server: UpgradeServer) -> None:
    assert [p.token for p in upgrade_server.protocols] == ["chat"]


@pytest.mark.parametrize(
    "settings",
    [
        "AAMAAAB",  # bad padding (found by the fault sweep: a duplicated byte)
        "AAMAAABkAA",  # decodes to 7 bytes: not whole SETTINGS entries
        "AAIAAAAC",  # SETTINGS_ENABLE_PUSH = 2: not a valid value
    ],
)
async def test_h2c_with_a_malformed_http2_settings_is_declined(
    connect: Connect, settings: str
) -> None:
    # RFC 7540 §3.2.1: the field carries a SETTINGS payload in base64url. A
    # server cannot switch on one it cannot read: it declines (426) instead
    # of failing the test block with h2's or base64's exception.
    async with open_upgrade_server([H2CServerProtocol()]) as server:
        client = await connect(server)
        await client.request(
            "h2c",
            connection="Upgrade, HTTP2-Settings",
            headers=[("HTTP2-Settings", settings)],
        )
        _, response, _ = await client.response()
        assert response.status_code == 426
