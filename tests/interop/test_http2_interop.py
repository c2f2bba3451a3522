"""HTTP/2 against real servers: the h2c upgrade, prior knowledge, refusals.

hypercorn, lighttpd and h2o serve the h2c upgrade (lighttpd sends the whole
stream-1 response in the 101's segment, h2o its SETTINGS); nghttpd speaks
HTTP/2 with prior knowledge only; uvicorn ignores ``Upgrade: h2c``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import servers
import trio

import trio_upgrade
from trio_upgrade import HTTP2Connection, connect_http2
from trio_upgrade._sansio._h2_options import DEFAULT_WINDOW, HTTP2Options

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

RunningServer = servers.RunningServer
BIG = servers.BIG_FILE_SIZE


@pytest.fixture(scope="module")
def hypercorn() -> Iterator[RunningServer]:
    yield from servers.started(servers.hypercorn_server)


@pytest.fixture(scope="module")
def lighttpd() -> Iterator[RunningServer]:
    yield from servers.started(servers.lighttpd_server)


@pytest.fixture(scope="module")
def h2o() -> Iterator[RunningServer]:
    yield from servers.started(servers.h2o_server)


@pytest.fixture(scope="module")
def nghttpd() -> Iterator[RunningServer]:
    yield from servers.started(servers.nghttpd_server)


@pytest.fixture(scope="module")
def uvicorn() -> Iterator[RunningServer]:
    yield from servers.started(servers.uvicorn_server)


async def exercise(conn: HTTP2Connection, big: str, echo: str) -> None:
    """Later streams: 100 concurrent small requests, 10 MiB down and up, ping."""
    results: list[int] = []

    async def small() -> None:
        response = await conn.request("GET", "/")
        results.append(response.status_code)

    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(small)
    assert results == [200] * 100
    download = await conn.request("GET", big)
    assert download.content == servers.payload(BIG)
    body = servers.payload(BIG, 3)
    upload = await conn.request("POST", echo, body=body)
    assert upload.headers.get("x-body-length") == str(BIG)
    assert upload.content == body
    assert await conn.ping() >= 0


async def test_hypercorn_h2c(hypercorn: RunningServer) -> None:
    with trio.fail_after(30):
        conn = await trio_upgrade.upgrade(hypercorn.url("/"), "h2c")
        async with conn:
            assert await conn.upgrade_response.read() == b"ok"
            assert conn.extended_connect
            await exercise(conn, f"/bytes/{BIG}", "/echo")


async def test_lighttpd_h2c_whole_response_with_the_101(
    lighttpd: RunningServer,
) -> None:
    with trio.fail_after(30):
        conn = await trio_upgrade.upgrade(lighttpd.url("/index.html"), "h2c")
        async with conn:
            assert await conn.upgrade_response.read() == servers.INDEX_HTML
            await exercise(conn, f"/{servers.BIG_FILE_NAME}", "/echo")


async def test_h2o_h2c(h2o: RunningServer) -> None:
    with trio.fail_after(30):
        conn = await trio_upgrade.upgrade(h2o.url("/index.html"), "h2c")
        async with conn:
            assert await conn.upgrade_response.read() == servers.INDEX_HTML
            await exercise(conn, f"/{servers.BIG_FILE_NAME}", "/echo")


async def test_nghttpd_refuses_the_upgrade_clearly(nghttpd: RunningServer) -> None:
    with (
        trio.fail_after(5),
        pytest.raises(trio_upgrade.InvalidResponse, match="HTTP/2 SETTINGS frame"),
    ):
        await trio_upgrade.upgrade(nghttpd.url("/"), "h2c")


async def test_nghttpd_prior_knowledge(nghttpd: RunningServer) -> None:
    with trio.fail_after(30):
        async with await connect_http2(nghttpd.url("/")) as conn:
            index = await conn.request("GET", "/index.html")
            assert index.content == servers.INDEX_HTML
            big = await conn.request("GET", f"/{servers.BIG_FILE_NAME}")
            assert big.content == servers.payload(BIG)
            assert await conn.ping() >= 0


async def test_uvicorn_ignores_h2c(uvicorn: RunningServer) -> None:
    with trio.fail_after(10), pytest.raises(trio_upgrade.UpgradeRefused) as caught:
        await trio_upgrade.upgrade(uvicorn.url("/"), "h2c")
    assert caught.value.status_code == 200
    assert caught.value.body == b"ok"


async def test_hypercorn_websocket_over_http2(hypercorn: RunningServer) -> None:
    # hypercorn 0.18 never ends the stream (END_STREAM, RFC 8441 §5) after
    # the closing handshake, so the client waits close_timeout for it, then
    # resets the stream; left alone, hypercorn's keep-alive timeout (5 s)
    # would drop the whole connection first.
    limits = trio_upgrade.Limits(close_timeout=0.5)
    with trio.fail_after(30):
        conn = await trio_upgrade.upgrade(hypercorn.url("/"), "h2c", limits=limits)
        async with conn:
            await conn.upgrade_response.read()
            ws = await conn.websocket("/greet")
            async with ws:
                assert await ws.receive() == "hello"
                await ws.send("echo me")
                # Other streams go on meanwhile.
                response = await conn.request("GET", "/")
                assert response.content == b"ok"
                assert await ws.receive() == "echo me"
                await ws.send(b"\x00" * 100_000)
                assert await ws.receive() == b"\x00" * 100_000
            response = await conn.request("GET", "/")
            assert response.content == b"ok"


# Receive flow control (issue 13): with the smallest windows there are (64
# KiB per stream and for the connection), a body 160 times the window, and
# many bodies at once, arrive whole from native servers that send as fast as
# the windows let them: the client reopens each window, in half-window
# batches, before the server runs dry.
SMALLEST = HTTP2Options(stream_window=DEFAULT_WINDOW, connection_window=DEFAULT_WINDOW)


async def _through_the_smallest_windows(server: RunningServer) -> None:
    medium = f"/{servers.MEDIUM_FILE_NAME}"
    expected = servers.payload(servers.MEDIUM_FILE_SIZE)
    bodies: list[bytes] = []
    with trio.fail_after(30):
        async with await connect_http2(server.url("/"), options=SMALLEST) as conn:
            got = bytearray()
            async with conn.stream("GET", f"/{servers.BIG_FILE_NAME}") as response:
                while chunk := await response.receive_some(16384):
                    got += chunk
            assert bytes(got) == servers.payload(BIG)

            async def get() -> None:
                bodies.append((await conn.request("GET", medium)).content)

            async with trio.open_nursery() as nursery:
                for _ in range(50):
                    nursery.start_soon(get)
    assert bodies == [expected] * 50


async def test_h2o_smallest_windows_do_not_stall(h2o: RunningServer) -> None:
    await _through_the_smallest_windows(h2o)


async def test_nghttpd_smallest_windows_do_not_stall(nghttpd: RunningServer) -> None:
    await _through_the_smallest_windows(nghttpd)
