"""What the DEBUG log and the ``trace`` hook show (issue 12, item 2).

On real loopback connections to the test server: the connect, each request
and response head (credentials redacted), one line per frame after the
switch in each direction, nothing at INFO or above per message; the trace
hook's events in order; with logging off, the transport is not wrapped.
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import trio
import trio.testing
import trustme
from alpn_support import alpn_server, trust_by_default
from hypothesis import given
from hypothesis import strategies as st

import trio_upgrade
from trio_upgrade import WebSocket
from trio_upgrade._sansio._wire_log import (
    PREVIEW,
    HTTP2Frames,
    RawChunks,
    WebSocketFrames,
)
from trio_upgrade._transport._observed import ObservedStream, observe
from trio_upgrade.testing import (
    H2CServerProtocol,
    WebSocketServerProtocol,
    open_upgrade_server,
)

pytestmark = pytest.mark.timeout(30)

PLAIN = WebSocket(compression=None)


def lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


async def test_debug_log_of_a_websocket_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_upgrade")
    async with open_upgrade_server([WebSocketServerProtocol()]) as server:
        url, port = server.url("/chat"), server.port
        secret_url = url.replace("http://", "http://alice:hunter2@")
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(
                secret_url, [PLAIN], headers={"Cookie": "session=abc123"}
            ) as ws:
                await ws.send("hello")
                assert await ws.receive() == "hello"
                await ws.send(b"\x00" * 300)
                assert await ws.receive() == b"\x00" * 300
    connect = lines(caplog, "trio_upgrade.connect")
    assert connect[0] == f"connecting to 127.0.0.1:{port}"
    assert connect[1].startswith(f"connected to 127.0.0.1:{port} (127.0.0.1:")
    head = lines(caplog, "trio_upgrade.handshake")
    assert f"{url} > GET /chat HTTP/1.1" in head
    assert f"{url} > Authorization: Basic [redacted]" in head
    assert f"{url} > Cookie: [redacted]" in head
    assert f"{url} < HTTP/1.1 101 Switching Protocols" in head
    frames = lines(caplog, "trio_upgrade.websocket")
    assert frames == [
        f"{url} > TEXT 'hello' [5 bytes]",
        f"{url} < TEXT 'hello' [5 bytes]",
        f"{url} > BINARY [300 bytes]",
        f"{url} < BINARY [300 bytes]",
        f"{url} > CLOSE 1000 [2 bytes]",
        f"{url} < CLOSE 1000 [2 bytes]",
        f"{url} < EOF",
    ]
    # No credential anywhere, and nothing per message above DEBUG.
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "hunter2" not in text
    assert "abc123" not in text
    assert "YWxpY2U6aHVudGVyMg" not in text  # base64 of alice:hunter2
    ours = [r for r in caplog.records if r.name.startswith("trio_upgrade")]
    assert all(r.levelno == logging.DEBUG for r in ours)


async def test_debug_log_of_http2_frames(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_upgrade.http2")
    async with open_upgrade_server([H2CServerProtocol()]) as server:
        url = server.url()
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(url, ["h2c"]) as conn:
                await conn.upgrade_response.read()
                response = await conn.request("GET", "/")
                assert response.status_code == 200
    frames = lines(caplog, "trio_upgrade.http2")
    assert frames[0] == f"{url} > client preface"
    assert frames[1].startswith(f"{url} > SETTINGS HEADER_TABLE_SIZE=")
    assert f"{url} < SETTINGS [ACK] (0 bytes)" in frames
    assert f"{url} > HEADERS [END_STREAM, END_HEADERS] stream 3" in "\n".join(
        f.rsplit(" (", 1)[0] for f in frames
    )
    assert any(f.startswith(f"{url} > GOAWAY last stream 0 NO_ERROR") for f in frames)


async def test_trace_events_in_order() -> None:
    events: list[tuple[str, dict[str, Any]]] = []

    def trace(event: str, info: Mapping[str, Any]) -> None:
        events.append((event, dict(info)))

    async with open_upgrade_server([WebSocketServerProtocol()]) as server:
        url, port = server.url(), server.port
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(url, [PLAIN], trace=trace) as ws:
                await ws.send("x")
                await ws.receive()
    names = [name for name, _ in events]
    assert names == [
        "connect.started",
        "connect.complete",
        "request.sent",
        "response.head",
        "switched",
        "first_byte",
    ]
    info = dict(events)
    assert info["connect.started"]["port"] == port
    assert info["response.head"]["status"] == 101
    assert info["switched"]["protocol"] == "websocket"
    assert info["request.sent"]["offered"] == ["websocket"]
    times = [i["time"] for _, i in events]
    assert times == sorted(times)
    assert info["first_byte"]["elapsed"] >= 0


async def test_trace_of_a_declined_offer_and_http2() -> None:
    events: list[str] = []
    async with open_upgrade_server([H2CServerProtocol()]) as server:
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(
                server.url(),
                ["websocket", "h2c"],
                trace=lambda event, info: events.append(event),
            ) as conn:
                await conn.upgrade_response.read()
    assert events[:4] == [
        "connect.started",
        "connect.complete",
        "request.sent",
        "response.head",
    ]
    # The refusal closed the connection or not; either way the h2c offer
    # follows, and the server's SETTINGS are the first byte after the switch.
    assert events[-4:] == ["request.sent", "response.head", "switched", "first_byte"]


def test_trace_must_be_callable() -> None:
    with pytest.raises(TypeError, match="trace must be callable"):
        trio.run(
            lambda: trio_upgrade.upgrade("ws://127.0.0.1:1/", "websocket", trace=1)  # type: ignore[arg-type]
        )


async def test_unobserved_transport_is_not_wrapped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_upgrade")
    left, _right = trio.testing.memory_stream_pair()
    assert observe(left, "websocket", "ws://x/") is left
    caplog.set_level(logging.DEBUG, logger="trio_upgrade.websocket")
    assert isinstance(observe(left, "websocket", "ws://x/"), ObservedStream)
    assert observe(left, "h2c", "ws://x/") is left  # another protocol's logger
    wrapped = observe(left, "h2c", "ws://x/", trace=lambda e, i: None)
    assert isinstance(wrapped, ObservedStream)


# -- the summarisers ----------------------------------------------------------


def _ws_frame(first: int, payload: bytes, mask: bytes | None = None) -> bytes:
    length = len(payload)
    if length < 126:
        head = bytes([first, length | (0x80 if mask else 0)])
    elif length < 65536:
        head = bytes([first, 126 | (0x80 if mask else 0)]) + length.to_bytes(2, "big")
    else:
        head = bytes([first, 127 | (0x80 if mask else 0)]) + length.to_bytes(8, "big")
    if mask is None:
        return head + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def test_websocket_frames_split_anywhere_read_the_same() -> None:
    data = (
        _ws_frame(0x81, b"hello", mask=b"abcd")
        + _ws_frame(0x01, "ça".encode())
        + _ws_frame(0x80, b" va")
        + _ws_frame(0x82, b"\x01" * 70000)
        + _ws_frame(0x89, b"")
        + _ws_frame(0xC1, b"\x00\x01")
        + _ws_frame(0x88, b"\x03\xe9bye", mask=b"wxyz")
    )
    expected = [
        "TEXT 'hello' [5 bytes]",
        "TEXT (fragment) 'ça' [3 bytes]",
        "CONTINUATION ' va' [3 bytes]",
        "BINARY [70000 bytes]",
        "PING [0 bytes]",
        "TEXT (compressed) [2 bytes]",
        "CLOSE 1001 'bye' [5 bytes]",
    ]
    assert WebSocketFrames().feed(data) == expected
    for cut in (1, 2, 3, 7, 11, 20, 100, 70010, len(data) - 1):
        summary = WebSocketFrames()
        assert summary.feed(data[:cut]) + summary.feed(data[cut:]) == expected
    summary = WebSocketFrames()
    assert [
        line for i in range(len(data)) for line in summary.feed(data[i : i + 1])
    ] == (expected)


def test_long_text_is_previewed_not_kept() -> None:
    summary = WebSocketFrames()
    (line,) = summary.feed(_ws_frame(0x81, b"y" * 100_000))
    assert line == f"TEXT {'y' * PREVIEW!r}... [100000 bytes]"


def test_http2_frames() -> None:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    settings = (
        (6).to_bytes(3, "big") + b"\x04\x00" + bytes(4) + b"\x00\x03\x00\x00\x00\x64"
    )
    rst = (
        (4).to_bytes(3, "big")
        + b"\x03\x00"
        + (5).to_bytes(4, "big")
        + (8).to_bytes(4, "big")
    )
    data = preface + settings + rst + b"\x00\x00\x00\x00\x01" + (7).to_bytes(4, "big")
    summary = HTTP2Frames(client_preface=True)
    got = [line for i in range(len(data)) for line in summary.feed(data[i : i + 1])]
    assert got == [
        "client preface",
        "SETTINGS MAX_CONCURRENT_STREAMS=100 (6 bytes)",
        "RST_STREAM stream 5 CANCEL (4 bytes)",
        "DATA [END_STREAM] stream 7 (0 bytes)",
    ]


def test_raw_chunks() -> None:
    assert RawChunks().feed(b"abc") == ["3 bytes"]
    assert RawChunks().feed(b"") == []


@given(st.binary(max_size=300), st.integers(1, 50))
def test_any_bytes_summarise_without_error(data: bytes, step: int) -> None:
    for summary in (WebSocketFrames(), HTTP2Frames(client_preface=True), HTTP2Frames()):
        for i in range(0, len(data), step):
            for line in summary.feed(data[i : i + step]):
                assert isinstance(line, str)


@pytest.fixture
def ca(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[trustme.CA]:
    ca = trustme.CA()
    yield from (ca for _ in trust_by_default(ca, tmp_path, monkeypatch))


async def test_tls_is_logged_and_traced(
    ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_upgrade.connect")
    events: dict[str, Mapping[str, Any]] = {}
    async with alpn_server(ca, ["h2", "http/1.1"]) as server:
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(
                server.url(), ["h2"], trace=events.__setitem__
            ) as conn:
                response = await conn.request("GET", "/")
                assert response.status_code == 200
    assert events["tls.complete"]["alpn"] == "h2"
    assert str(events["tls.complete"]["version"]).startswith("TLSv1.")
    assert events["first_byte"]["protocol"] == "h2"
    (tls,) = [m for m in lines(caplog, "trio_upgrade.connect") if m.startswith("TLS")]
    assert tls.startswith(f"TLS with localhost: {events['tls.complete']['version']}")
    assert "ALPN 'h2'" in tls
