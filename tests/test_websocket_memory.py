"""What an idle WebSocket connection keeps, and that keeping less changes
nothing it does.

``_wsproto_compat.compact`` replaces parts of a new wsproto connection with
smaller stand-ins (a list for its event deque, a parser built on first use,
a shared empty extension list): the connection must parse, and send, byte
for byte as wsproto's own does. The per-connection byte budget itself is
``test_memory_per_idle_connection`` (``test_websocket_limits.py``).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from ws_support import frame
from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol

import trio_upgrade
from trio_upgrade._sansio import _wsproto_compat
from trio_upgrade._websocket._reader import client_wsproto

pytestmark = pytest.mark.timeout(30)

_TEXT = "héllo wörld, ünïcode ✓".encode()

# Server frames (unmasked): a fragmented text message cut inside a
# character with a ping between its fragments, a binary message, a pong,
# an empty text message, then the close frame.
STREAM = b"".join(
    [
        frame(_TEXT[:8], 0x1, fin=False),
        frame(b"are you there", 0x9),
        frame(_TEXT[8:], 0x0),
        frame(bytes(range(256)) * 3, 0x2),
        frame(b"pong", 0xA),
        frame(b"", 0x1),
        frame((1001).to_bytes(2, "big") + b"bye", 0x8),
    ]
)


# What a client sends, every kind of event: masks are random, so the tests
# compare the lengths of what wsproto writes, and the states after.
_SENDS: tuple[Event, ...] = (
    TextMessage(data="part", message_finished=False),
    TextMessage(data=" two"),
    Ping(payload=b"p"),
    BytesMessage(data=b"\x00" * 70000),
    CloseConnection(code=1000, reason="done"),
)


def _described(event: Event) -> tuple[Any, ...]:
    if isinstance(event, (TextMessage, BytesMessage)):
        return (
            type(event).__name__,
            bytes(event.data) if isinstance(event.data, bytearray) else event.data,
            event.frame_finished,
            event.message_finished,
        )
    if isinstance(event, (Ping, Pong)):
        return (type(event).__name__, bytes(event.payload))
    if isinstance(event, CloseConnection):
        return ("CloseConnection", int(event.code), event.reason)
    return (type(event).__name__,)  # pragma: no cover - no other event here


def _run(conn: Connection, data: bytes, chunk: int) -> list[tuple[Any, ...]]:
    """Feed ``data`` in ``chunk``-byte reads; answer pings and the close as
    an application would; every event and every byte sent, in order."""
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(data), chunk):
        conn.receive_data(data[start : start + chunk])
        for event in conn.events():
            out.append(_described(event))
            if isinstance(event, (Ping, CloseConnection)):
                out.append(("sent", len(conn.send(event.response()))))
    out.append(("state", conn.state))
    return out


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, len(STREAM)])
@pytest.mark.parametrize("trailing", [0, 3, 40])
def test_compacted_connection_parses_as_wsproto(chunk: int, trailing: int) -> None:
    # ``trailing``: bytes that came with the 101, given to the constructor.
    plain = Connection(ConnectionType.CLIENT, trailing_data=STREAM[:trailing])
    compacted = Connection(ConnectionType.CLIENT, trailing_data=STREAM[:trailing])
    _wsproto_compat.compact(compacted)
    expected = _run(plain, STREAM[trailing:], chunk)
    assert _run(compacted, STREAM[trailing:], chunk) == expected
    assert ("CloseConnection", 1001, "bye") in expected  # the stream was all read
    assert _wsproto_compat.internals(compacted) == _wsproto_compat.internals(plain)


def test_compacted_connection_sends_as_wsproto() -> None:
    plain = Connection(ConnectionType.CLIENT)
    compacted = Connection(ConnectionType.CLIENT)
    _wsproto_compat.compact(compacted)
    for event in _SENDS:
        assert len(compacted.send(event)) == len(plain.send(event))
        assert compacted.state is plain.state


def test_lost_connection_event_after_compacting() -> None:
    # receive_data(None) queues its event in the replaced queue.
    conn = Connection(ConnectionType.CLIENT)
    _wsproto_compat.compact(conn)
    conn.receive_data(None)
    [event] = conn.events()
    assert isinstance(event, CloseConnection) and event.code == 1006
    assert not list(conn.events())


def test_parser_built_only_when_something_is_parsed() -> None:
    conn = Connection(ConnectionType.CLIENT)
    _wsproto_compat.compact(conn)
    proto: Any = conn._proto
    assert not inspect.isgenerator(proto._parse_more)
    assert not list(conn.events())  # nothing received: nothing parsed...
    assert inspect.isgenerator(proto._parse_more)  # ...but it was asked
    parser = proto._parse_more
    conn.receive_data(frame(b"x", 0x2))
    assert [_described(e) for e in conn.events()] == [
        ("BytesMessage", b"x", True, True)
    ]
    assert proto._parse_more is parser  # built once, then kept


def test_compacting_keeps_extensions() -> None:
    extension = PerMessageDeflate()
    extension.finalize("permessage-deflate")
    conn = Connection(ConnectionType.CLIENT, extensions=[extension])
    _wsproto_compat.compact(conn)
    assert _wsproto_compat.has_extensions(conn)
    proto: Any = conn._proto
    assert proto.extensions == [extension]
    assert proto._frame_decoder.extensions == [extension]


def test_new_connections_are_compacted_on_the_fast_path_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not trio_upgrade._sansio._speedups.ENABLED:
        pytest.skip("fast paths off (TRIO_UPGRADE_NO_SPEEDUPS)")
    fast: Any = client_wsproto()
    assert type(fast._events) is not type(Connection(ConnectionType.CLIENT)._events)
    assert _wsproto_compat.UNBUILT_FITS  # this wsproto: the probe passes
    assert type(fast._proto) is not FrameProtocol  # not built yet
    # With bytes after the 101, wsproto builds it and parses them at once.
    early: Any = client_wsproto(trailing_data=frame(b"x", 0x2))
    assert type(early._proto) is FrameProtocol
    assert [_described(e) for e in early.events()] == [
        ("BytesMessage", b"x", True, True)
    ]
    # With the fast paths off, only wsproto's public API: nothing replaced.
    monkeypatch.setattr(trio_upgrade._sansio._speedups, "ENABLED", False)
    plain: Any = client_wsproto()
    assert type(plain._events) is type(Connection(ConnectionType.CLIENT)._events)
    assert inspect.isgenerator(plain._proto._parse_more)


# -- a frame protocol built on first use (``new_client``) -----------------------


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, len(STREAM)])
def test_unbuilt_connection_parses_as_wsproto(chunk: int) -> None:
    plain = Connection(ConnectionType.CLIENT)
    unbuilt = _wsproto_compat.new_client()
    expected = _run(plain, STREAM, chunk)
    assert _run(unbuilt, STREAM, chunk) == expected
    assert ("CloseConnection", 1001, "bye") in expected
    assert _wsproto_compat.internals(unbuilt) == _wsproto_compat.internals(plain)


@pytest.mark.parametrize("first", ["send", "receive", "events"])
def test_unbuilt_connection_sends_as_wsproto(first: str) -> None:
    plain = Connection(ConnectionType.CLIENT)
    unbuilt = _wsproto_compat.new_client()
    if first == "receive":
        for conn in (plain, unbuilt):
            conn.receive_data(b"")
    elif first == "events":
        assert list(plain.events()) == list(unbuilt.events()) == []
    for event in _SENDS:
        assert len(unbuilt.send(event)) == len(plain.send(event))
        assert unbuilt.state is plain.state
    assert type(unbuilt._proto) is FrameProtocol


def test_unbuilt_connection_answers_while_idle() -> None:
    conn = _wsproto_compat.new_client()
    plain = Connection(ConnectionType.CLIENT)
    for ask in (
        _wsproto_compat.is_idle,
        _wsproto_compat.can_build_frames,
        _wsproto_compat.has_extensions,
        _wsproto_compat.announced_rest,
    ):
        assert ask(conn) == ask(plain)
    assert conn.state is plain.state and conn.client is plain.client
    # The questions asked, nothing was built...
    assert type(conn._proto) is not FrameProtocol
    # A lost connection: wsproto's event, as from a built one.
    conn.receive_data(None)
    plain.receive_data(None)
    assert [_described(e) for e in conn.events()] == [
        _described(e) for e in plain.events()
    ]
    assert conn.state is plain.state


def test_taking_a_close_builds_the_protocol() -> None:
    # take_close writes into the frame decoder: it must not write into the
    # idle stand-in every unbuilt connection shares.
    unbuilt = _wsproto_compat.new_client()
    plain = Connection(ConnectionType.CLIENT)
    assert _wsproto_compat.take_close(unbuilt, 2)
    assert _wsproto_compat.take_close(plain, 2)
    assert type(unbuilt._proto) is FrameProtocol
    assert _wsproto_compat.internals(unbuilt) == _wsproto_compat.internals(plain)
    other = _wsproto_compat.new_client()
    assert _wsproto_compat.is_idle(other)
    assert _wsproto_compat.announced_rest(other) == 0
    assert _wsproto_compat.take_close(other, 0)
    assert _wsproto_compat.internals(other)["payload_required"] == 0


def test_unbuilt_connections_share_nothing_they_write() -> None:
    first = _wsproto_compat.new_client()
    second = _wsproto_compat.new_client()
    first.receive_data(frame(b"abc", 0x2)[:3])  # a partial frame: held
    assert not _wsproto_compat.is_idle(first)
    assert _wsproto_compat.is_idle(second)
    assert type(second._proto) is not FrameProtocol


def test_connections_built_by_wsproto_when_the_probe_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A wsproto that builds its connections otherwise: compacted as before,
    # the other fast paths kept.
    from trio_upgrade._websocket import _reader

    if not _reader.fast_paths_on():
        pytest.skip("fast paths off (TRIO_UPGRADE_NO_SPEEDUPS)")
    monkeypatch.setattr(_reader, "UNBUILT_FITS", False)
    conn: Any = client_wsproto()
    assert type(conn._proto) is FrameProtocol
    assert not inspect.isgenerator(conn._proto._parse_more)  # compacted
    assert _reader.fast_paths_on()
