"""HTTP/2 selected by ALPN inside upgrade(): ``"h2"`` for https and wss URLs.

Against a loopback TLS server (trustme certificate) that selects h2 or
http/1.1 by ALPN and counts the connections it accepts (alpn_support).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
import trio
import trio.testing
import trustme
from alpn_support import H2Behaviour, alpn_server, client_context, trust_by_default

import trio_upgrade
from trio_upgrade import (
    H2,
    ConnectionClosed,
    HTTP2Connection,
    HTTP2NotSelected,
    HTTP2Options,
    Limits,
    ProtocolError,
    RawStream,
    UpgradeError,
    UpgradeRefused,
    UpgradeTimeout,
    WebSocketConnection,
)
from trio_upgrade.testing import WebSocketServerProtocol

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(autouse=True)
def trusted_by_default(
    ca: trustme.CA, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The library's own TLS contexts trust ``ca``."""
    yield from trust_by_default(ca, tmp_path, monkeypatch)


async def test_server_selects_h2(ca: trustme.CA) -> None:
    async with alpn_server(ca) as server:
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url("/x"), ["h2", "websocket"])
            async with conn:
                assert isinstance(conn, HTTP2Connection)
                assert conn.protocol == "h2"
                assert conn.handshake_request is None
                assert conn.handshake_response is None
                with pytest.raises(RuntimeError, match="ALPN"):
                    conn.upgrade_response  # noqa: B018
                response = await conn.request("GET", "/bytes/5")
                assert response.status_code == 200
                assert response.content == bytes(range(5))
    # One TLS connection, HTTP/2 on it: no HTTP/1.1 request was ever made.
    assert server.selected == ["h2"]
    assert server.upgrade.requests == []
    assert len(server.h2.connections) == 1


async def test_h2_options_apply(ca: trustme.CA) -> None:
    async with alpn_server(ca) as server:
        with trio.fail_after(10):
            options = HTTP2Options(max_concurrent_streams=3)
            async with trio_upgrade.open_upgrade(server.url(), [H2(options)]) as conn:
                assert conn.max_concurrent_streams == 3


@pytest.mark.parametrize("alpn", [("http/1.1",), ()], ids=["http/1.1", "none"])
async def test_http11_goes_on_on_the_same_connection(
    ca: trustme.CA, alpn: tuple[str, ...]
) -> None:
    ws = WebSocketServerProtocol()
    async with alpn_server(ca, alpn, [ws]) as server:
        with trio.fail_after(10):
            url = server.url("/chat", scheme="wss")
            conn = await trio_upgrade.upgrade(url, ["h2", "websocket"])
            async with conn:
                assert isinstance(conn, WebSocketConnection)
                await conn.send("over tls")
                assert await conn.receive() == "over tls"
    # ALPN offered h2 and the server took http/1.1 (or nothing): the upgrade
    # request went on that same TLS connection, the only one accepted.
    assert server.selected == [alpn[0] if alpn else None]
    assert [r.target for r in server.upgrade.requests] == ["/chat"]
    assert len(server.upgrade.connections) == 1


async def test_raw_protocol_after_h2_refused_by_alpn(ca: trustme.CA) -> None:
    async with alpn_server(ca, ["http/1.1"], ["echo"]) as server:
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), ["h2", "websocket", "echo"])
            async with conn:
                assert isinstance(conn, RawStream)
                await conn.send_all(b"ping")
                assert await conn.receive_some() == b"ping"
    # h2 by ALPN, websocket refused with 426, echo accepted: one connection.
    assert server.selected == ["http/1.1"]
    assert len(server.upgrade.requests) == 2


async def test_h2_not_selected_and_nothing_left(ca: trustme.CA) -> None:
    async with alpn_server(ca, ["http/1.1"]) as server:
        with trio.fail_after(10):
            with pytest.raises(HTTP2NotSelected) as info:
                await trio_upgrade.upgrade(server.url(), ["h2"])
            await server.upgrade.wait_closed(1)  # the client closed it
    error = info.value
    assert error.selected == "http/1.1"
    assert "did not select HTTP/2 by ALPN" in str(error)
    assert "'http/1.1'" in str(error)
    ((attempt,),) = [error.attempts]
    assert attempt.offered == ("h2",)
    assert attempt.status_code is None
    assert attempt.error is error
    assert server.upgrade.requests == []


async def test_every_attempt_is_listed(ca: trustme.CA) -> None:
    # websocket refused (426) on the first connection, then h2 by ALPN on a
    # second, not selected either: the error says both.
    async with alpn_server(ca, ["http/1.1"]) as server:
        with trio.fail_after(10), pytest.raises(HTTP2NotSelected) as info:
            await trio_upgrade.upgrade(server.url(), ["websocket", "h2"])
    attempts = info.value.attempts
    assert [(a.offered, a.status_code) for a in attempts] == [
        (("websocket",), 426),
        (("h2",), None),
    ]
    assert server.selected == ["http/1.1", "http/1.1"]


async def test_h2_later_in_the_list_keeps_the_callers_order(
    ca: trustme.CA,
) -> None:
    ws = WebSocketServerProtocol()
    async with alpn_server(ca, protocols=[ws]) as server:
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), ["websocket", "h2"])
            await conn.aclose()
            assert isinstance(conn, WebSocketConnection)
    # The server would have taken h2, but websocket was preferred: the first
    # connection offered http/1.1 only by ALPN.
    assert server.selected == ["http/1.1"]


async def test_h2_later_in_the_list_after_a_refusal(ca: trustme.CA) -> None:
    async with alpn_server(ca, protocols=["echo"]) as server:
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), ["websocket", "h2"])
            async with conn:
                assert isinstance(conn, HTTP2Connection)
                assert (await conn.request("GET", "/bytes/1")).status_code == 200
    # websocket refused over http/1.1; h2 needs an ALPN offer of its own,
    # so a second connection.
    assert server.selected == ["http/1.1", "h2"]
    assert len(server.upgrade.requests) == 1


async def test_combined_strategy_offers_h2_first(ca: trustme.CA) -> None:
    ws = WebSocketServerProtocol()
    async with alpn_server(ca, ["http/1.1"], [ws, "echo"]) as server:
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(
                server.url(), ["echo", "h2", "websocket"], strategy="combined"
            )
            await conn.aclose()
    assert isinstance(conn, RawStream)
    assert server.selected == ["http/1.1"]
    (request,) = server.upgrade.requests
    assert request.headers.get("upgrade") == "echo, websocket"


async def test_callers_context_offering_h2(ca: trustme.CA) -> None:
    mine = client_context(ca, ["h2", "http/1.1"])
    async with alpn_server(ca) as server:
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url(), ["h2"], ssl_context=mine)
            async with conn:
                assert isinstance(conn, HTTP2Connection)
    assert server.selected == ["h2"]


async def test_callers_context_without_h2(ca: trustme.CA) -> None:
    # The caller's context is used as given: it offers http/1.1 only, so h2
    # cannot be selected, and the upgrade goes on.
    mine = client_context(ca, ["http/1.1"])
    async with alpn_server(ca) as server:
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(
                server.url(), ["h2", "echo"], ssl_context=mine
            )
            async with conn:
                assert isinstance(conn, RawStream)
                tls = conn.transport
                assert isinstance(tls, trio.SSLStream)
                assert tls.context is mine
    assert server.selected == ["http/1.1"]
    assert mine.get_ca_certs()  # still the caller's, still trusting the CA


async def test_h2_selected_but_silent_is_a_handshake_timeout(ca: trustme.CA) -> None:
    # The server selects h2 and never sends its SETTINGS.
    async with alpn_server(ca, ["h2"], h2="silent") as server:
        with trio.fail_after(10), pytest.raises(UpgradeTimeout) as info:
            await trio_upgrade.upgrade(
                server.url(), ["h2"], limits=Limits(handshake_timeout=0.2)
            )
        assert info.value.phase == "handshake"
        ((attempt,),) = [info.value.attempts]
        assert attempt.offered == ("h2",)
        assert attempt.error is info.value
        await server.closed.wait()


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_h2_on_cleartext_is_a_value_error(
    upgrade_server: trio_upgrade.testing.UpgradeServer, scheme: str
) -> None:
    with pytest.raises(ValueError, match=r"'h2c'.*connect_http2"):
        await trio_upgrade.upgrade(upgrade_server.url(scheme=scheme), ["echo", "h2"])
    assert upgrade_server.connections == []


@pytest.mark.parametrize("scheme", ["https", "wss"])
async def test_h2c_over_tls_is_a_value_error(
    upgrade_server: trio_upgrade.testing.UpgradeServer, scheme: str
) -> None:
    with pytest.raises(ValueError, match="offer 'h2' instead"):
        await trio_upgrade.upgrade(upgrade_server.url(scheme=scheme), ["h2c"])
    assert upgrade_server.connections == []


def test_h2_is_never_offered_by_upgrade() -> None:
    with pytest.raises(TypeError, match="ALPN"):
        H2().offer(trio_upgrade._sansio._url.parse_url("https://h/"))


async def test_refusal_after_h2_is_still_upgrade_refused(ca: trustme.CA) -> None:
    async with alpn_server(ca, ["http/1.1"]) as server:
        with trio.fail_after(10), pytest.raises(UpgradeRefused) as info:
            await trio_upgrade.upgrade(server.url(), ["h2", "websocket"])
    assert info.value.status_code == 426
    assert [a.offered for a in info.value.attempts] == [("h2",), ("websocket",)]
    assert isinstance(info.value.attempts[0].error, HTTP2NotSelected)


@pytest.mark.parametrize(
    ("how", "error"),
    [("close", ConnectionClosed), ("http1", ProtocolError)],
)
async def test_h2_selected_but_not_spoken(
    ca: trustme.CA, how: H2Behaviour, error: type[UpgradeError]
) -> None:
    # A server whose ALPN says h2 and which then does not speak it: the
    # error of HTTP/2 itself, with the ALPN attempt; no fallback to HTTP/1.1
    # (the server chose, and the connection is no HTTP/1.1 connection).
    async with alpn_server(ca, ["h2"], h2=how) as server:
        with trio.fail_after(10), pytest.raises(error) as info:
            await trio_upgrade.upgrade(server.url(), ["h2", "websocket"])
        await server.closed.wait()
    ((attempt,),) = [info.value.attempts]
    assert attempt.offered == ("h2",)
    assert attempt.error is info.value
    assert server.upgrade.requests == []


async def test_cancelled_while_waiting_for_settings_closes(ca: trustme.CA) -> None:
    async with alpn_server(ca, ["h2"], h2="silent") as server:
        with trio.fail_after(10):
            with trio.move_on_after(0.2) as scope:
                await trio_upgrade.upgrade(server.url(), ["h2"])
            assert scope.cancelled_caught
            await server.closed.wait()  # the client closed its socket


async def test_h2_in_open_upgrade_is_serviced_while_idle(ca: trustme.CA) -> None:
    # As an h2c connection: the block's nursery runs its background reader
    # (issue 11); upgrade() without one runs none.
    async with alpn_server(ca) as server:
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(server.url(), ["h2"]) as conn:
                await trio.testing.wait_all_tasks_blocked()
                assert conn._engine.state.keeper is not None
            async with await trio_upgrade.upgrade(server.url(), ["h2"]) as bare:
                await trio.testing.wait_all_tasks_blocked()
                assert bare._engine.state.keeper is None
