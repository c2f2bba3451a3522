"""trio_upgrade.testing: scripted misbehaviour, step by step."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from server_client import Connect, connect, header, read_all, read_at_least

from trio_upgrade import RawStream
from trio_upgrade.testing import (
    REPEAT_LIMIT,
    Abort,
    Close,
    Echo,
    Handle,
    Hang,
    ReadRequest,
    Repeat,
    Script,
    Send,
    SendSlowly,
    Sleep,
    http_response,
    open_upgrade_server,
    response_head,
    switching_response,
)

__all__ = ["connect"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.timeout(10)


# -- scripts ------------------------------------------------------------------


async def scripted(connect: Connect, script: Script, *, then: bytes = b"") -> bytes:
    """Everything a scripted server sends to one upgrade request."""
    async with open_upgrade_server(script=script) as server:
        client = await connect(server)
        await client.request("echo", then=then)
        return await read_all(client.stream)


async def test_script_sends_exact_bytes_then_closes(connect: Connect) -> None:
    head = b"HTTP/1.1 101 Whatever\r\nUpgrade: not-offered\r\n\r\n"
    assert await scripted(connect, Script([Send(head), Close()])) == head


async def test_script_bytes_in_the_same_write_as_the_101(connect: Connect) -> None:
    data = switching_response("echo", [("X-Extra", "1")], trailing=b"FIRST")
    assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade")
    async with open_upgrade_server(script=Script([Send(data), Echo()])) as server:
        client = await connect(server)
        await client.request("echo", then=b"pipelined")
        _, response, _ = await client.response()
        assert header(response, "x-extra") == "1"
        got = client.leftover
        got += await read_at_least(client.stream, 14 - len(got))
        # Echo starts with what followed the request head, as h11 buffered it.
        assert got == b"FIRSTpipelined"


async def test_script_send_slowly_splits_the_head_into_many_writes(
    connect: Connect,
) -> None:
    head = switching_response("echo")
    script = Script([SendSlowly(head, chunk=8, delay=0.005), Hang()])
    async with open_upgrade_server(script=script) as server:
        client = await connect(server)
        await client.request("echo")
        reads: list[bytes] = []
        while sum(map(len, reads)) < len(head):
            reads.append(bytes(await client.stream.receive_some(65536)))
        assert b"".join(reads) == head
        assert len(reads) > 2


async def test_script_sleep_delays_the_answer(connect: Connect) -> None:
    start = trio.current_time()
    data = await scripted(connect, Script([Sleep(0.2), Send(b"late")]))
    assert data == b"late"
    assert trio.current_time() - start >= 0.2


async def test_script_close_mid_response(connect: Connect) -> None:
    head = response_head(101, [("Upgrade", "echo"), ("Connection", "Upgrade")])
    assert (
        await scripted(connect, Script([Send(head[:20]), Close(), Send(b"never")]))
        == head[:20]
    )


async def test_script_abort_closes_at_once(connect: Connect) -> None:
    async with open_upgrade_server(
        script=Script([Send(b"HTTP/1.1 1"), Abort()])
    ) as server:
        client = await connect(server)
        await client.request("echo")
        try:
            data = await read_all(client.stream)
        except trio.BrokenResourceError:  # a reset is allowed too
            data = b"HTTP/1.1 1"
        assert data == b"HTTP/1.1 1"
        (record,) = await server.wait_closed(1)
        assert not record.timed_out


async def test_script_garbage_instead_of_http(connect: Connect) -> None:
    assert await scripted(connect, Script([Send(b"\x00\xffgarbage\r\n\r\n")])) == (
        b"\x00\xffgarbage\r\n\r\n"
    )


async def test_script_can_write_before_any_request(connect: Connect) -> None:
    # Like a server that speaks first (nghttpd writes SETTINGS on accept).
    script = Script([Send(b"server first")], read_request=False)
    async with open_upgrade_server(script=script) as server:
        stream = (await connect(server)).stream
        assert await read_all(stream) == b"server first"
        await stream.aclose()
        (record,) = await server.wait_closed(1)
        assert record.requests == []


@pytest.mark.parametrize(
    ("prefix", "unit"),
    [
        pytest.param(b"", response_head(100), id="endless-1xx"),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nX-Long: ",
            b"a" * 1024,
            id="endless-header",
        ),
        pytest.param(
            response_head(426, [("Transfer-Encoding", "chunked")]),
            b"400\r\n" + b"b" * 1024 + b"\r\n",
            id="endless-chunked-body",
        ),
        pytest.param(
            response_head(426, [("Connection", "close")]),
            b"c" * 1024,
            id="endless-body",
        ),
    ],
)
async def test_script_repeat_without_end_stops_when_the_client_leaves(
    connect: Connect, prefix: bytes, unit: bytes
) -> None:
    script = Script([Send(prefix), Repeat(unit)])
    async with open_upgrade_server(script=script) as server:
        client = await connect(server)
        await client.request("echo")
        data = await read_at_least(client.stream, len(prefix) + 200 * 1024)
        assert data.startswith(prefix + unit)
        await client.stream.aclose()
        (record,) = await server.wait_closed(1)
        assert record.client_closed and not record.timed_out
        assert record.sent < REPEAT_LIMIT


async def test_script_repeat_a_given_number_of_times(connect: Connect) -> None:
    script = Script([Repeat(b"ab", times=3, delay=0.001)])
    assert await scripted(connect, script) == b"ababab"


async def test_script_hang_never_answers_but_sees_the_client_leave(
    connect: Connect,
) -> None:
    async with open_upgrade_server(script=Script([Hang()])) as server:
        client = await connect(server)
        await client.request("echo", then=b"ignored")
        with trio.move_on_after(0.1) as scope:
            await client.stream.receive_some(10)
        assert scope.cancelled_caught
        await client.stream.aclose()
        (record,) = await server.wait_closed(1)
        assert record.client_closed and not record.timed_out


async def test_script_handle_and_second_request_on_one_connection(
    connect: Connect,
) -> None:
    async def handler(stream: RawStream) -> None:
        await stream.send_all(b"handled:" + await stream.receive_some())

    script = Script(
        [
            Send(http_response(426, b"no", [("Upgrade", "echo")])),
            ReadRequest(),
            Send(switching_response("echo")),
            Handle(handler),
        ]
    )
    async with open_upgrade_server(script=script) as server:
        client = await connect(server)
        await client.request("echo")
        _, refused, body = await client.response()
        assert (refused.status_code, body) == (426, b"no")
        await client.request("echo", then=b"x")
        _, switched, _ = await client.response()
        assert switched.status_code == 101
        assert client.leftover + await read_all(client.stream) == b"handled:x"
        assert len(await server.wait_requests(2)) == 2


async def test_script_per_connection(connect: Connect) -> None:
    def script(index: int) -> Script | None:
        return Script([Send(b"first is odd")]) if index == 0 else None

    async with open_upgrade_server(script=script) as server:
        first = await connect(server)
        await first.request("echo")
        assert await read_all(first.stream) == b"first is odd"
        second = await connect(server)
        await second.request("echo")
        _, response, _ = await second.response()
        assert response.status_code == 101


def test_steps_and_scripts_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="chunk"):
        SendSlowly(b"x", chunk=0)
    with pytest.raises(ValueError, match="seconds"):
        Sleep(-1)
    with pytest.raises(ValueError, match="empty"):
        Repeat(b"")
    with pytest.raises(ValueError, match="times"):
        Repeat(b"x", times=-1)
    with pytest.raises(TypeError, match="not a script step"):
        Script([b"raw bytes"])  # type: ignore[list-item]
    assert Script([Send(b"x")]).steps == (Send(b"x"),)
