"""Misbehaving HTTP/2 servers: every one ends in a typed error, never a hang.

The servers are scripts of exact bytes (``trio_upgrade.testing.Script``),
the frames built with hyperframe or a server-side h2 with validation off.
"""

from __future__ import annotations

import pytest
import trio
from h2.errors import ErrorCodes
from h2_helpers import frame_bytes, h2c_server, server_settings, server_state
from hyperframe.frame import (
    ContinuationFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
)

import trio_upgrade
from trio_upgrade import ConnectionClosed, InvalidResponse, Limits, ProtocolError
from trio_upgrade._http2._protocol import H2C
from trio_upgrade._sansio._h2_options import HTTP2Options
from trio_upgrade.testing import Close, Hang, Script, Send, switching_response
from trio_upgrade.testing._http2 import H2CServerProtocol, H2Reply, H2Request

pytestmark = pytest.mark.timeout(30)


def after_101(trailing: bytes, *, then: Close | Hang | None = None) -> Script:
    steps: list[Send | Close | Hang] = [
        Send(switching_response("h2c", trailing=trailing))
    ]
    steps.append(then if then is not None else Hang())
    return Script(steps)


async def upgrade_against(
    script: Script, handshake_timeout: float = 10
) -> BaseException:
    """Upgrade to h2c against ``script``; return the error it raised."""
    limits = Limits(handshake_timeout=handshake_timeout)
    async with h2c_server(script=script) as (server, _):
        with trio.fail_after(10):
            try:
                conn = await trio_upgrade.upgrade(server.url(), "h2c", limits=limits)
            except trio_upgrade.UpgradeError as exc:
                (record,) = await server.wait_closed()
                assert record.client_closed
                return exc
            await conn.aclose()
    raise AssertionError("the upgrade succeeded")


@pytest.mark.parametrize(
    ("trailing", "described"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "an HTTP/1.x message"),
        (frame_bytes(PingFrame(0, opaque_data=b"12345678")), "a PING frame"),
        (b"\x00\x00\x00\x04\x01\x00\x00\x00\x00", "SETTINGS with ACK"),
        (b"garbage!!", "unknown type"),
    ],
)
async def test_no_server_preface_after_the_101(trailing: bytes, described: str) -> None:
    error = await upgrade_against(after_101(trailing))
    assert isinstance(error, ProtocolError)
    assert error.code == ErrorCodes.PROTOCOL_ERROR
    assert "SETTINGS" in str(error) and described in str(error)


async def test_server_closes_after_the_101() -> None:
    error = await upgrade_against(after_101(b"", then=Close()))
    assert isinstance(error, ConnectionClosed)
    assert not error.normal


async def test_server_silent_after_the_101() -> None:
    error = await upgrade_against(after_101(b""), handshake_timeout=0.3)
    assert isinstance(error, trio_upgrade.UpgradeTimeout)


async def test_nghttpd_like_server_sends_settings_on_accept() -> None:
    # nghttpd writes its SETTINGS frame at once and has no HTTP/1.1 at all.
    script = Script([Send(server_settings(MAX_CONCURRENT_STREAMS=100)), Hang()])
    async with h2c_server(script=Script(script.steps, read_request=False)) as (
        server,
        _,
    ):
        with trio.fail_after(5), pytest.raises(InvalidResponse):
            await trio_upgrade.upgrade(server.url(), "h2c")


@pytest.mark.parametrize(
    ("settings", "code"),
    [
        ({"ENABLE_PUSH": 2}, ErrorCodes.PROTOCOL_ERROR),
        ({"INITIAL_WINDOW_SIZE": 2**31}, ErrorCodes.FLOW_CONTROL_ERROR),
        ({"MAX_FRAME_SIZE": 100}, ErrorCodes.PROTOCOL_ERROR),
    ],
)
async def test_invalid_settings(settings: dict[str, int], code: int) -> None:
    error = await upgrade_against(after_101(server_settings(**settings)))
    assert isinstance(error, ProtocolError)
    assert error.code == code


async def test_stream_1_response_without_status() -> None:
    state = server_state(validate=False)
    state.send_headers(1, [(b"content-type", b"text/plain")], end_stream=True)
    error = await upgrade_against(after_101(state.data_to_send()))
    assert isinstance(error, ProtocolError)
    assert ":status" in str(error)


async def test_header_list_over_the_limit() -> None:
    state = server_state()
    big = [(b":status", b"200"), *[(f"x-{i}".encode(), b"v" * 100) for i in range(700)]]
    state.send_headers(1, big, end_stream=True)
    error = await upgrade_against(after_101(state.data_to_send()))
    assert isinstance(error, ProtocolError)
    assert error.code == ErrorCodes.ENHANCE_YOUR_CALM


async def test_header_limit_is_an_option() -> None:
    async def headers(request: H2Request) -> H2Reply:
        return H2Reply(200, b"", [("x-big", "v" * 2000)])

    protocol = H2CServerProtocol({("GET", "/big"): headers})
    async with h2c_server(protocol) as (server, _):
        with trio.fail_after(10):
            options = HTTP2Options(max_header_list_size=1024)
            conn = await trio_upgrade.upgrade(server.url(), H2C(options))
            async with conn:
                with pytest.raises(ProtocolError) as caught:
                    await conn.request("GET", "/big")
                assert caught.value.code == ErrorCodes.ENHANCE_YOUR_CALM
                # The HPACK state is lost with it: the connection is over.
                with pytest.raises(ProtocolError):
                    await conn.request("GET", "/")


async def test_continuation_flood() -> None:
    head = HeadersFrame(1, data=b"\x88")  # :status 200, indexed
    frames = frame_bytes(head)
    frames += b"".join(frame_bytes(ContinuationFrame(1, data=b"")) for _ in range(100))
    error = await upgrade_against(after_101(server_settings() + frames))
    assert isinstance(error, ProtocolError)


async def test_informational_flood_resets_the_stream() -> None:
    async def flood(request: H2Request) -> H2Reply:
        conn = request.connection
        for _ in range(50):
            conn.h2.send_headers(request.stream_id, [(b":status", b"103")])
        await conn.flush()
        return H2Reply(200, b"late")

    protocol = H2CServerProtocol({("GET", "/flood"): flood})
    async with h2c_server(protocol) as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                with pytest.raises(ProtocolError, match="informational"):
                    await conn.request("GET", "/flood")
                assert (await conn.request("GET", "/")).content == b"ok"


async def test_server_closes_mid_response() -> None:
    state = server_state()
    state.send_headers(1, [(b":status", b"200")])
    state.send_data(1, b"partial")
    async with h2c_server(script=after_101(state.data_to_send(), then=Close())) as (
        server,
        _,
    ):
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), "h2c")
            async with conn:
                response = conn.upgrade_response
                assert await response.receive_some() == b"partial"
                with pytest.raises(ConnectionClosed) as caught:
                    await response.read()
                assert not caught.value.normal
                with pytest.raises(ConnectionClosed):
                    await conn.request("GET", "/")


async def test_goaway_with_error_then_close() -> None:
    state = server_state()
    state.send_headers(1, [(b":status", b"200")], end_stream=True)
    goaway = GoAwayFrame(
        0,
        last_stream_id=1,
        error_code=ErrorCodes.INTERNAL_ERROR,
        additional_data=b"going down",
    )
    data = state.data_to_send() + frame_bytes(goaway)
    async with h2c_server(script=after_101(data, then=Close())) as (server, _):
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), "h2c")
            async with conn:
                assert conn.upgrade_response.status_code == 200
                with pytest.raises(trio_upgrade.UpgradeError) as caught:
                    await conn.request("GET", "/")
                assert "INTERNAL_ERROR" in str(caught.value)
                with pytest.raises(ConnectionClosed) as closed:
                    await conn.ping()
                assert closed.value.code == ErrorCodes.INTERNAL_ERROR
                assert closed.value.reason == "going down"
