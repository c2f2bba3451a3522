"""h2c upgrades and HTTP/2 requests against the shared test server, on loopback.

The server side is h2's own server role (``trio_upgrade.testing``), so every
exchange is checked against a real HTTP/2 implementation.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import h2.settings
import pytest
import trio
import trio.testing
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from h2_helpers import h2c_server, prior_knowledge_server

import trio_upgrade
from trio_upgrade import Limits, UpgradeRefused
from trio_upgrade._http2._protocol import (
    H2C,
    HTTP2Connection,
    connect_http2,
    open_http2,
)

# Not exported from trio_upgrade yet (the lead adds them to __init__).
from trio_upgrade._sansio._errors import BodyTooLarge, StreamRefused, StreamReset
from trio_upgrade._sansio._h2_options import HTTP2Options
from trio_upgrade.testing._http2 import H2CServerProtocol, H2Reply, H2Request, pattern

pytestmark = pytest.mark.timeout(30)

MiB = 1024 * 1024
INVALID = "invalid|not allowed|must start|not supported|whitespace"


async def test_offer_headers() -> None:
    async with h2c_server() as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url("/"), ["h2c"]):
                pass
    request = server.requests[0]
    assert request.method == "GET"
    assert request.headers.tokens("connection") == ["upgrade", "http2-settings"]
    assert request.headers.get("upgrade") == "h2c"
    value = request.headers.get("http2-settings")
    assert value is not None and "=" not in value
    payload = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    settings = h2.settings.Settings(client=False)
    pairs = {
        int.from_bytes(payload[i : i + 2], "big"): int.from_bytes(
            payload[i + 2 : i + 6], "big"
        )
        for i in range(0, len(payload), 6)
    }
    assert pairs[SettingCodes.ENABLE_PUSH] == 0
    assert pairs[SettingCodes.INITIAL_WINDOW_SIZE] == HTTP2Options().stream_window
    assert SettingCodes.ENABLE_CONNECT_PROTOCOL not in pairs
    assert settings is not None


@pytest.mark.parametrize("timing", ["before_preface", "after_preface"])
async def test_upgrade_response_on_stream_1(timing: str) -> None:
    protocol = H2CServerProtocol(upgrade_response=timing)  # type: ignore[arg-type]
    async with h2c_server(protocol) as (server, _):
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url("/"), ["h2c"])
            async with conn:
                assert isinstance(conn, HTTP2Connection)
                first = conn.upgrade_response
                assert first is conn.upgrade_response
                assert (first.stream_id, first.status_code) == (1, 200)
                assert first.headers.get("content-type") == "text/plain"
                assert await first.read() == b"ok"
                other = await conn.request("GET", "/bytes/1000")
                assert other.stream_id == 3
                assert other.content == pattern(1000)


async def test_upgrade_response_streams_its_body() -> None:
    async with h2c_server() as (server, _):
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url("/bytes/300000"), ["h2c"])
            async with conn:
                pieces = [chunk async for chunk in conn.upgrade_response]
                assert b"".join(pieces) == pattern(300_000)
                assert len(pieces) > 1


@pytest.mark.parametrize("first_write", ["settings", "response"])
async def test_http2_bytes_in_the_same_write_as_the_101(first_write: str) -> None:
    protocol = H2CServerProtocol()
    script = protocol.script(first_write, H2Reply(200, b"early", [("x-a", "1")]))  # type: ignore[arg-type]
    async with h2c_server(protocol, script=script) as (server, _):
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url("/"), ["h2c"])
            async with conn:
                first = conn.upgrade_response
                assert first.headers.get("x-a") == "1"
                assert await first.read() == b"early"
                response = await conn.request("POST", "/echo", body=b"after")
                assert response.content == b"after"


async def test_request_methods_headers_and_trailers() -> None:
    seen: list[H2Request] = []

    async def inspect(request: H2Request) -> H2Reply:
        seen.append(request)
        return H2Reply(201, b"", [("x-reply", "yes")], trailers=[("x-sum", "42")])

    protocol = H2CServerProtocol({("PUT", "/things/1"): inspect})
    async with h2c_server(protocol) as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                response = await conn.request(
                    "PUT",
                    "/things/1?x=1",
                    headers={"X-Custom": "v", "Host": "example.test"},
                    body=[b"a", b"", b"bc"],
                )
                assert response.status_code == 201
                assert response.headers.get("x-reply") == "yes"
                assert response.content == b""
                assert response.trailers is not None
                assert response.trailers.get("x-sum") == "42"
                trailers = await conn.request("GET", "/trailers")
                assert trailers.content == b"ok"
                assert trailers.trailers is not None
                assert trailers.trailers.get("x-trailer") == "yes"
                missing = await conn.request("GET", "/nothing")
                assert missing.status_code == 404
    (request,) = seen
    assert request.target == "/things/1?x=1"
    assert request.body == b"abc"
    assert request.headers.get("x-custom") == "v"
    assert "content-length" not in request.headers
    assert "host" not in request.headers


async def test_invalid_requests_are_refused_before_sending() -> None:
    async with h2c_server() as (server, protocol):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                for method, target, headers in [
                    ("GET", "relative", {}),
                    ("G T", "/", {}),
                    ("GET", "/", {"Connection": "close"}),
                    ("GET", "/", {"Transfer-Encoding": "chunked"}),
                    ("GET", "/", {"te": "gzip"}),
                    ("GET", "/", {"x": "a\r\nb"}),
                    ("GET", "/", {"bad name": "v"}),
                    ("GET", "/a b", {}),
                    ("CONNECT", "/", {}),
                ]:
                    with pytest.raises(ValueError, match=INVALID):
                        await conn.request(method, target, headers=headers)
                with pytest.raises(TypeError, match="not str"):
                    await conn.request("POST", "/echo", body="text")  # type: ignore[arg-type]
                assert (await conn.request("GET", "/")).content == b"ok"
    assert len(protocol.connections[0].requests) == 2


async def test_100_concurrent_requests_on_one_connection() -> None:
    async with h2c_server() as (server, protocol):
        with trio.fail_after(20):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                results: dict[int, bytes] = {}

                async def fetch(i: int) -> None:
                    response = await conn.request("GET", f"/bytes/{i}")
                    results[i] = response.content

                async with trio.open_nursery() as nursery:
                    for i in range(100):
                        nursery.start_soon(fetch, i)
                assert results == {i: pattern(i) for i in range(100)}
    assert len(server.connections) == 1
    assert len(protocol.connections[0].requests) == 101


async def test_requests_wait_for_max_concurrent_streams() -> None:
    active = 0
    peak = 0

    async def slow(request: H2Request) -> H2Reply:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await trio.sleep(0.01)
        active -= 1
        return H2Reply(200, b"done")

    protocol = H2CServerProtocol(
        {("GET", "/slow"): slow}, settings={SettingCodes.MAX_CONCURRENT_STREAMS: 5}
    )
    async with h2c_server(protocol) as (server, _):
        with trio.fail_after(20):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                await conn.upgrade_response.read()
                assert conn.max_concurrent_streams == 5
                done = 0

                async def fetch() -> None:
                    nonlocal done
                    assert (await conn.request("GET", "/slow")).content == b"done"
                    done += 1

                async with trio.open_nursery() as nursery:
                    for _ in range(50):
                        nursery.start_soon(fetch)
    assert done == 50
    assert peak == 5


async def test_client_limit_on_concurrent_streams() -> None:
    options = HTTP2Options(max_concurrent_streams=2)
    async with h2c_server() as (server, _):
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), H2C(options))
            async with conn:
                assert conn.max_concurrent_streams == 2
                async with trio.open_nursery() as nursery:
                    for i in range(10):
                        nursery.start_soon(conn.request, "GET", f"/bytes/{i}")


async def test_10_mib_download_and_upload() -> None:
    size = 10 * MiB
    async with h2c_server() as (server, _):
        with trio.fail_after(20):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                down = await conn.request("GET", f"/bytes/{size}")
                assert down.content == pattern(size)
                async with conn.stream("GET", f"/bytes/{size}") as response:
                    received = bytearray()
                    async for chunk in response:
                        received += chunk
                    assert bytes(received) == pattern(size)
                    assert response.complete
                body = pattern(size, 7)
                up = await conn.request("POST", "/echo", body=body)
                assert up.headers.get("x-body-length") == str(size)
                assert up.content == body


async def test_unread_stream_does_not_block_the_others() -> None:
    async with h2c_server() as (server, _):
        with trio.fail_after(20):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                async with conn.stream("GET", f"/bytes/{40 * MiB}") as big:
                    # Far more than the connection window goes by meanwhile.
                    for _ in range(3):
                        response = await conn.request("GET", f"/bytes/{8 * MiB}")
                        assert len(response.content) == 8 * MiB
                    first = await big.receive_some()
                    assert first == pattern(len(first))
                # Leaving the block reset the big stream; the connection goes on.
                assert (await conn.request("GET", "/")).content == b"ok"


async def test_body_over_max_body_size() -> None:
    options = HTTP2Options(max_body_size=100_000)
    async with h2c_server() as (server, protocol):
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), H2C(options))
            async with conn:
                with pytest.raises(BodyTooLarge) as caught:
                    # Larger than the stream window: the server is still
                    # sending when the reset comes.
                    await conn.request("GET", f"/bytes/{5 * MiB}")
                assert caught.value.limit == 100_000
                exact = await conn.request("GET", "/bytes/100000")
                assert len(exact.content) == 100_000
                with pytest.raises(BodyTooLarge):
                    await conn.request("GET", "/bytes/100001")
                server_side = protocol.connections[0]
                await server_side.wait_for(lambda: bool(server_side.resets()))
                assert server_side.resets() == [(3, ErrorCodes.CANCEL)]


async def test_goaway_after_stream_1() -> None:
    protocol = H2CServerProtocol(goaway_after_upgrade=True)
    async with h2c_server(protocol) as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                assert await conn.upgrade_response.read() == b"ok"

                async def until_refused() -> None:
                    while True:  # until the GOAWAY has been read
                        await conn.request("GET", "/")

                with pytest.raises(StreamRefused) as caught:
                    await until_refused()
                assert caught.value.stream_id in (None, 3)
                assert conn.goaway == (0, 1)
                assert not conn.is_usable
                with pytest.raises(StreamRefused, match="GOAWAY") as again:
                    await conn.request("GET", "/")
                assert again.value.stream_id is None


async def test_goaway_refuses_streams_above_last_stream_id() -> None:
    async with h2c_server() as (server, protocol):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                await conn.upgrade_response.read()
                errors: list[BaseException] = []

                async def hang() -> None:
                    try:
                        await conn.request("GET", "/hang")
                    except StreamRefused as exc:
                        errors.append(exc)

                async with trio.open_nursery() as nursery:
                    for _ in range(3):
                        nursery.start_soon(hang)
                    server_side = (await protocol.wait_connections())[0]
                    await server_side.wait_for(lambda: len(server_side.requests) == 4)
                    with pytest.raises(StreamRefused):
                        await conn.request("GET", "/goaway?last=1")
                assert sorted(e.stream_id for e in errors) == [3, 5, 7]  # type: ignore[attr-defined]
                with pytest.raises(StreamRefused):
                    await conn.request("GET", "/")


async def test_streams_up_to_last_stream_id_finish_after_goaway() -> None:
    async with h2c_server() as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                # The server sends GOAWAY (last stream: this one), then the
                # response: h2 alone would refuse every frame after GOAWAY.
                response = await conn.request("GET", "/goaway")
                assert response.content == b"bye"
                assert conn.goaway == (0, 3)
                with pytest.raises(StreamRefused):
                    await conn.request("GET", "/")


async def test_rst_stream_fails_only_that_stream() -> None:
    async with h2c_server() as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                with pytest.raises(StreamReset) as caught:
                    await conn.request("GET", "/reset")
                assert not isinstance(caught.value, StreamRefused)
                assert caught.value.code == ErrorCodes.INTERNAL_ERROR
                assert caught.value.stream_id == 3
                assert "INTERNAL_ERROR" in str(caught.value)
                with pytest.raises(StreamRefused) as refused:
                    await conn.request(
                        "GET", f"/reset?code={ErrorCodes.REFUSED_STREAM}"
                    )
                assert refused.value.code == ErrorCodes.REFUSED_STREAM
                assert (await conn.request("GET", "/")).content == b"ok"


async def test_reset_of_stream_1() -> None:
    protocol = H2CServerProtocol(reset_upgrade_stream=ErrorCodes.INTERNAL_ERROR)
    async with h2c_server(protocol) as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                with pytest.raises(StreamReset) as caught:
                    _ = conn.upgrade_response
                assert caught.value.stream_id == 1
                assert (await conn.request("GET", "/")).content == b"ok"


async def test_ping() -> None:
    async with h2c_server() as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                rtts = [await conn.ping() for _ in range(3)]
                assert all(0 <= rtt < 5 for rtt in rtts)
                async with trio.open_nursery() as nursery:
                    for _ in range(10):
                        nursery.start_soon(conn.ping)


async def test_aclose_sends_goaway_and_closes() -> None:
    async with h2c_server() as (server, protocol):
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), "h2c")
            await conn.upgrade_response.read()
            await conn.aclose()
            await conn.aclose()  # idempotent
            server_side = protocol.connections[0]
            await server_side.wait_for(lambda: server_side.goaway_received is not None)
            goaway = server_side.goaway_received
            assert goaway is not None and goaway.error_code == 0
            (record,) = await server.wait_closed()
            assert record.client_closed
            with pytest.raises(trio.ClosedResourceError):
                await conn.request("GET", "/")
            with pytest.raises(trio.ClosedResourceError):
                await conn.ping()


async def test_aclose_ends_requests_in_flight() -> None:
    async with h2c_server() as (server, protocol):
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), "h2c")
            failures: list[BaseException] = []

            async def hang() -> None:
                try:
                    await conn.request("GET", "/hang")
                except trio.ClosedResourceError as exc:
                    failures.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(hang)
                nursery.start_soon(hang)
                server_side = (await protocol.wait_connections())[0]
                await server_side.wait_for(lambda: len(server_side.requests) == 3)
                await conn.aclose()
            assert len(failures) == 2


async def test_cancelled_request_resets_its_stream() -> None:
    async with h2c_server() as (server, protocol):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                await conn.upgrade_response.read()
                server_side = protocol.connections[0]

                async def cancel_when_seen(scope: trio.CancelScope, count: int) -> None:
                    await server_side.wait_for(lambda: len(server_side.events) > count)
                    await trio.testing.wait_all_tasks_blocked()
                    scope.cancel()

                with trio.CancelScope() as scope:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(cancel_when_seen, scope, 0)
                        await conn.request("GET", "/hang")
                assert scope.cancelled_caught
                await server_side.wait_for(lambda: bool(server_side.resets()))
                assert server_side.resets() == [(3, ErrorCodes.CANCEL)]
                assert (await conn.request("GET", "/")).content == b"ok"

                # Cancelled in the middle of an upload too.
                async def body() -> AsyncIterator[bytes]:
                    yield pattern(100_000)
                    await trio.sleep_forever()

                seen = len(server_side.events)
                with trio.CancelScope() as scope:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(cancel_when_seen, scope, seen)
                        await conn.request("POST", "/echo", body=body())
                await server_side.wait_for(lambda: len(server_side.resets()) == 2)
                assert server_side.resets()[1] == (7, ErrorCodes.CANCEL)
                assert (await conn.request("GET", "/bytes/10")).content == pattern(10)


async def test_server_ignoring_upgrade_gives_refusal() -> None:
    async with h2c_server(ignore_upgrade=True) as (server, _):
        with trio.fail_after(10), pytest.raises(UpgradeRefused) as caught:
            await trio_upgrade.upgrade(server.url(), "h2c")
    assert caught.value.status_code == 200


async def test_prior_knowledge() -> None:
    async with prior_knowledge_server() as (url, protocol):
        with trio.fail_after(10):
            async with open_http2(url) as conn:
                with pytest.raises(RuntimeError, match="prior knowledge"):
                    _ = conn.upgrade_response
                response = await conn.request("GET", "/bytes/70000")
                assert response.stream_id == 1
                assert response.content == pattern(70000)
                await conn.ping()
            conn2 = await connect_http2(url, limits=Limits(handshake_timeout=5))
            async with conn2:
                assert (await conn2.request("POST", "/echo", body=b"x")).content == b"x"
    assert len(protocol.connections) == 2


async def test_prior_knowledge_against_http11_server() -> None:
    async with h2c_server() as (server, _):
        with trio.fail_after(10), pytest.raises(trio_upgrade.ProtocolError) as caught:
            await connect_http2(server.url())
    assert "HTTP/1.x" in str(caught.value)


async def test_negotiation_falls_through_to_h2c_and_open_upgrade() -> None:
    async with h2c_server() as (server, _):
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(
                server.url("/bytes/5"), ["websocket", "h2c"]
            ) as conn:
                assert isinstance(conn, HTTP2Connection)
                assert await conn.upgrade_response.read() == pattern(5)
                assert "h2c" in repr(H2C()) and "open" in repr(conn)
    offered = [r.headers.get("upgrade") for r in server.requests]
    assert offered == ["websocket", "h2c"]


class _Tap(trio.abc.Stream):
    """A transport that lets the test write raw bytes beside the client."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_request_and_the_clients_goaway_after_the_servers_goaway() -> None:
    """The test server refuses a stream above its GOAWAY with RST_STREAM; when
    the client's own GOAWAY came in the same read, h2 is closed and the
    stream is just dropped (the client is leaving), not a server error."""
    import hpack
    from hyperframe.frame import GoAwayFrame, HeadersFrame

    protocol = H2CServerProtocol(goaway_after_upgrade=True)
    async with h2c_server(protocol, tcp=False) as (server, _):
        with trio.fail_after(10):
            tap = _Tap(await server.connect_in_memory())
            conn = await trio_upgrade.upgrade("http://test/", "h2c", transport=tap)
            async with conn:
                assert await conn.upgrade_response.read() == b"ok"
                await trio.testing.wait_all_tasks_blocked()
                head = HeadersFrame(3)
                head.flags.add("END_HEADERS")
                head.flags.add("END_STREAM")
                head.data = hpack.Encoder().encode(
                    [
                        (":method", "GET"),
                        (":scheme", "http"),
                        (":path", "/"),
                        (":authority", "test"),
                    ]
                )
                goaway = GoAwayFrame(0)
                goaway.last_stream_id = 0
                await tap.send_all(head.serialize() + goaway.serialize())
                await trio.testing.wait_all_tasks_blocked()
