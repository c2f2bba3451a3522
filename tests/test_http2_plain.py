"""HTTP/2 with the fast path switched off (``TRIO_UPGRADE_NO_SPEEDUPS``).

HTTP/2 has two fast paths: h2 does not check or normalize the request
headers again, since ``HTTP2Connection`` has checked them; and h2 does not
describe each DATA frame it receives in full for its trace log
(``_h2_compat.quiet_data_frames``). The switch is read when a connection's
h2 state is made; the plain path has h2 do all of it.
"""

from __future__ import annotations

import h2.frame_buffer
import pytest
import trio
from h2_helpers import h2c_server, prior_knowledge_server

import trio_upgrade
import trio_upgrade._sansio._speedups
from trio_upgrade import WebSocket
from trio_upgrade._sansio._h2_options import HTTP2Options, new_client_state
from trio_upgrade.testing._http2 import H2CServerProtocol, pattern, websocket_over_h2
from trio_upgrade.testing._websocket import WebSocketServerProtocol

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_switch_chooses_who_checks_request_headers(
    monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    monkeypatch.setattr(trio_upgrade._sansio._speedups, "ENABLED", enabled)
    config = new_client_state(HTTP2Options()).config
    assert config.validate_outbound_headers is not enabled
    assert config.normalize_outbound_headers is not enabled


@pytest.mark.parametrize("enabled", [True, False])
def test_the_switch_chooses_how_h2_describes_data_frames(
    monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    # The second fast path (issue 13): h2's frame buffer that spares it
    # hex-encoding every DATA frame; the plain path keeps h2's own.
    monkeypatch.setattr(trio_upgrade._sansio._speedups, "ENABLED", enabled)
    buffer = new_client_state(HTTP2Options()).incoming_buffer
    assert (type(buffer) is h2.frame_buffer.FrameBuffer) is not enabled


@pytest.fixture
def plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trio_upgrade._sansio._speedups, "ENABLED", False)


@pytest.mark.usefixtures("plain")
async def test_requests_on_the_plain_path() -> None:
    connect = {
        "websocket": websocket_over_h2(
            WebSocketServerProtocol(subprotocols=["chat"], compression=False)
        )
    }
    async with h2c_server(H2CServerProtocol(connect=connect)) as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                assert conn._engine.h2.config.validate_outbound_headers
                first = conn.upgrade_response
                assert (await first.read()) == b"ok"
                response = await conn.request(
                    "POST", "/echo", headers={"x-a": "1"}, body=b"hi"
                )
                assert response.content == b"hi"
                async with conn.stream("GET", "/bytes/70000") as streamed:
                    assert await streamed.read() == pattern(70000)
                ws = await conn.websocket(
                    "/", protocol=WebSocket(subprotocols=["chat"])
                )
                async with ws:
                    assert ws.subprotocol == "chat"
                    await ws.send("hello")
                    assert await ws.receive() == "hello"


@pytest.mark.usefixtures("plain")
async def test_prior_knowledge_on_the_plain_path() -> None:
    async with prior_knowledge_server() as (url, _):
        with trio.fail_after(10):
            async with trio_upgrade.open_http2(url) as conn:
                assert conn._engine.h2.config.validate_outbound_headers
                response = await conn.request("GET", "/bytes/10")
                assert response.content == pattern(10)
                with pytest.raises(ValueError, match="invalid"):
                    await conn.request("GET", "/", headers={"bad name": "x"})
