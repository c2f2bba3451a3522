"""The fast path for the server's close frame gives wsproto's results.

The same close frame, in either order of the closing handshake (the server
closes first; we closed first), is run with the fast paths on and off: the
application sees the same error, ``close_code`` and ``close_reason``, the
server receives the same bytes (the same masking keys), and wsproto is left
in the same state.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import trio
import trio.testing
from ws_support import bare_connection, frame
from wsproto.connection import Connection, ConnectionType

from trio_upgrade import ConnectionClosed, ProtocolError
from trio_upgrade._sansio import _ws_frames as _frames
from trio_upgrade._sansio import _wsproto_compat
from trio_upgrade._websocket._connection import WebSocketConnection
from trio_upgrade._websocket._reader import FastReader

pytestmark = pytest.mark.timeout(60)

KEY = b"\x9a\x01\x5c\x3c"

EDGE_CODES = [999, 1000, 1004, 1005, 1006, 1012, 1014, 1015, 1016, 2999]
EDGE_CODES += [3000, 4999, 5000]


def _close(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


# name -> (close frame bytes as the server sends them, fast path expected)
CASES: dict[str, tuple[bytes, bool]] = {
    "empty": (frame(b"", 0x8), True),
    "code-only": (frame(_close(1000), 0x8), True),
    "code-reason": (frame(_close(1001, b"going away"), 0x8), True),
    "length-1": (frame(b"\x03", 0x8), False),
    "bad-utf8": (frame(_close(1000, b"ok\xff"), 0x8), False),
    "cut-utf8": (frame(_close(1000, "é".encode()[:1]), 0x8), False),
    "reason-123": (frame(_close(1000, b"r" * 123), 0x8), True),
    "reason-123-utf8": (frame(_close(4000, ("é" * 61 + "z").encode()), 0x8), True),
    "reason-124": (frame(_close(1000, b"r" * 124), 0x8), False),
    "masked": (frame(_close(1000, b"m"), 0x8, masked=True), False),
    "rsv1": (frame(_close(1000), 0x8, rsv1=True), False),
    "not-fin": (frame(_close(1000), 0x8, fin=False), False),
    "then-data": (frame(_close(1000), 0x8) + frame(b"late", 0x1), False),
    "after-data": (frame(b"early", 0x1) + frame(_close(3001, b"x"), 0x8), True),
}
for _code in EDGE_CODES:
    _valid = _code in (1000, 1012) or 3000 <= _code <= 4999
    CASES[f"code-{_code}"] = (frame(_close(_code), 0x8), _valid)
    CASES[f"code-{_code}-reason"] = (frame(_close(_code, "né".encode()), 0x8), _valid)


def _wsproto_state(conn: WebSocketConnection) -> dict[str, Any]:
    return _wsproto_compat.internals(conn._engine.state.ws)


def _outcome(conn: WebSocketConnection, got: list[Any], sent: bytes) -> Any:
    code = conn.close_code
    return {
        "got": got,
        "close_code": (type(code), code),
        "close_reason": conn.close_reason,
        "sent_to_server": sent,
        "wsproto": _wsproto_state(conn),
    }


async def _read_all(stream: trio.abc.Stream) -> bytes:
    out = b""
    while chunk := await stream.receive_some(65536):
        out += chunk
    return out


async def _server_closes_first(data: bytes, plain: bool) -> Any:
    client, server = trio.testing.memory_stream_pair()
    conn = bare_connection(client, plain=plain)
    got: list[Any] = []
    await server.send_all(data)
    while True:
        try:
            got.append(await conn.receive())
        except (ConnectionClosed, ProtocolError) as exc:
            got.append((type(exc).__name__, str(exc), getattr(exc, "code", None)))
            break
    sent = await _read_all(server)
    await server.aclose()
    return _outcome(conn, got, sent)


async def _we_close_first(data: bytes, plain: bool) -> Any:
    client, server = trio.testing.memory_stream_pair()
    conn = bare_connection(client, plain=plain)
    got: list[Any] = []
    sent = b""

    async def peer() -> None:
        nonlocal sent
        sent = await server.receive_some(65536)
        await server.send_all(data)
        await server.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer)
        await conn.aclose(1001, "bye")
    try:
        await conn.receive()
    except (ConnectionClosed, ProtocolError, trio.ClosedResourceError) as exc:
        got.append((type(exc).__name__, str(exc)))
    return _outcome(conn, got, sent)


@pytest.mark.parametrize("order", ["server-first", "we-first"])
@pytest.mark.parametrize("case", list(CASES))
async def test_close_fast_path_gives_wsprotos_outcome(
    case: str, order: str, monkeypatch: pytest.MonkeyPatch, autojump_clock: Any
) -> None:
    # The autojump clock: a failed connection lingers up to close_timeout.
    data, fast = CASES[case]
    # The same masking key for our frames and wsproto's.
    monkeypatch.setattr(_frames, "mask_key", lambda: KEY)
    monkeypatch.setattr(os, "urandom", lambda n: KEY)
    taken: list[bool] = []
    original = FastReader._take_close

    def spy(self: FastReader, data: bytes | bytearray, pos: int) -> bool:
        result = original(self, data, pos)
        taken.append(result)
        return result

    monkeypatch.setattr(FastReader, "_take_close", spy)
    run = _server_closes_first if order == "server-first" else _we_close_first
    with_fast_path = await run(data, True)
    assert any(taken) == fast
    taken.clear()
    without = await run(data, False)
    assert not taken
    assert with_fast_path == without


async def test_close_answer_is_wsprotos_frame(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: Any
) -> None:
    monkeypatch.setattr(_frames, "mask_key", lambda: KEY)
    monkeypatch.setattr(os, "urandom", lambda n: KEY)
    outcome = await _server_closes_first(frame(_close(1000, b"bye"), 0x8), True)
    ws = Connection(ConnectionType.CLIENT)
    ws.receive_data(frame(_close(1000, b"bye"), 0x8))
    (event,) = ws.events()
    assert outcome["sent_to_server"] == ws.send(event.response())


def test_wsproto_fits_checks_close_parsing() -> None:
    assert _wsproto_compat._close_fits()
    assert _wsproto_compat.FITS
