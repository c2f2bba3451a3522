"""The fast paths beside wsproto (``_sansio._ws_frames``) give wsproto's results.

Outgoing: frames built here are byte for byte wsproto's for the same masking
key, with and without the optional compiled masker. Incoming: the same byte
stream, cut into reads anywhere, yields the same messages and the same end
with the fast path as through wsproto alone. With the switch off
(``_sansio._speedups.ENABLED``), no fast path runs at all.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
from typing import Any

import pytest
import trio
import trio.testing
from ws_support import bare_connection, frame
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, TextMessage

import trio_upgrade
from trio_upgrade import ConnectionClosed, ProtocolError
from trio_upgrade._sansio import _speedups
from trio_upgrade._sansio import _ws_frames as _frames
from trio_upgrade._websocket import _engine, _reader, _writer
from trio_upgrade.testing import ServerWebSocket, open_upgrade_server
from trio_upgrade.testing._websocket import WebSocketServerProtocol

pytestmark = pytest.mark.timeout(60)

SIZES = [0, 1, 3, 4, 5, 16, 125, 126, 127, 511, 512, 513, 65535, 65536, 2**20]


def _wsproto_frame(message: str | bytes, key: bytes) -> bytes:
    ws = Connection(ConnectionType.CLIENT)
    original = os.urandom
    os.urandom = lambda n: key  # wsproto draws its key from os.urandom(4)
    try:
        if isinstance(message, str):
            return ws.send(TextMessage(data=message))
        return ws.send(BytesMessage(data=message))
    finally:
        os.urandom = original


def _payload(size: int, text: bool) -> str | bytes:
    rng = random.Random(size)
    if text:
        return "".join(rng.choice("aé€😀z") for _ in range(size // 3))
    return rng.randbytes(size)


try:
    from trio_upgrade._sansio import _ws_mask as _compiled
except ImportError:  # built at install time where a C compiler is at hand
    _compiled = None  # type: ignore[assignment]


def compiled_masker() -> Any:
    """The compiled masker, whatever the switch says; skipped where it was
    not built, except in CI, which builds it (``pip install -e .``)."""
    if _compiled is None:
        if os.environ.get("CI"):
            pytest.fail("trio_upgrade._sansio._ws_mask was not built")
        pytest.skip("the compiled masker was not built (no C compiler)")
    return _compiled


@pytest.fixture(params=["pure", "compiled"])
def masker(request: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each masker in turn for ``_ws_frames``, whatever the switch says."""
    if request.param == "pure":
        monkeypatch.setattr(_frames, "_accelerator", None)
    else:
        monkeypatch.setattr(_frames, "_accelerator", compiled_masker())
    return str(request.param)


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
@pytest.mark.parametrize("size", SIZES)
def test_frames_are_wsprotos(
    size: int, text: bool, masker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = _payload(size, text)
    key = bytes([0x9A, 0x01, size % 256, 0x3C])
    monkeypatch.setattr(_frames, "mask_key", lambda: key)
    if isinstance(message, str):
        ours = _frames.build_frame(1, message.encode("utf-8"))
    else:
        ours = _frames.build_frame(2, message)
    assert bytes(ours) == _wsproto_frame(message, key)


def test_every_frame_has_a_fresh_key_from_urandom(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Keys come from os.urandom 256 at a time, each 4 bytes of its output
    # used once, in order: 600 frames draw three blocks.
    blocks: list[bytes] = []

    def urandom(n: int) -> bytes:
        blocks.append(os.urandom(n))
        return blocks[-1]

    monkeypatch.setattr(_frames, "_urandom", urandom)
    _frames._forget_keys()
    keys = [bytes(_frames.build_frame(2, b"same payload"))[2:6] for _ in range(600)]
    assert [len(b) for b in blocks] == [1024] * 3
    drawn = b"".join(blocks)
    assert keys == [drawn[i : i + 4] for i in range(0, 2400, 4)]


def test_threads_and_forked_children_never_share_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Blocks of distinct 4-byte numbers stand in for os.urandom, so that a
    # key seen twice was handed out twice (random keys may collide).
    counter = itertools.count()

    def numbered(n: int) -> bytes:
        return b"".join(next(counter).to_bytes(4, "big") for _ in range(n // 4))

    monkeypatch.setattr(_frames, "_urandom", numbered)
    _frames._forget_keys()
    first = _frames.mask_key()
    taken: list[list[bytes]] = [[] for _ in range(4)]

    def take(into: list[bytes]) -> None:
        into.extend(_frames.mask_key() for _ in range(2000))

    threads = [threading.Thread(target=take, args=(into,)) for into in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = [first, *(key for into in taken for key in into)]
    assert len(set(keys)) == len(keys)  # 8,001 keys, none handed out twice
    monkeypatch.undo()
    _frames._forget_keys()
    if not hasattr(os, "fork"):
        return
    _frames.mask_key()
    upcoming = _frames._keys[0] if _frames._keys else None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, _frames.mask_key())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 4)
    os.close(read)
    os.close(write)
    # The child drew keys of its own, not the parent's next one.
    assert upcoming is not None
    assert child != upcoming
    assert _frames.mask_key() == upcoming


@pytest.mark.parametrize("size", [*SIZES, 4097, 100_003])
def test_maskers_agree(size: int, masker: str) -> None:
    data = random.Random(size).randbytes(size)
    key = os.urandom(4)
    expected = bytes(a ^ key[i % 4] for i, a in enumerate(data))
    assert _frames.mask(key, data) == expected
    if masker == "pure":
        assert _frames._mask_python(key, data) == expected
        assert _frames._mask_int(key, data, size) == expected
        lanes = bytearray(b"head" + data)
        _frames._mask_lanes(key, lanes, 4)
        assert bytes(lanes) == b"head" + expected
        return
    # Any buffer, any alignment of the payload in it: the compiled XOR
    # runs eight bytes at a time from wherever the buffer starts.
    view = memoryview(b"?" + data)[1:]
    assert _compiled.mask(key, view) == expected
    assert _compiled.mask(key, bytearray(data)) == expected
    assert _compiled.frame(b"\x82", key, view) == b"\x82" + key + expected


def test_compiled_masker_rejects_bad_arguments() -> None:
    compiled = compiled_masker()
    with pytest.raises(ValueError, match="4 bytes, not 3"):
        compiled.mask(b"abc", b"data")
    with pytest.raises(ValueError, match="4 bytes, not 5"):
        compiled.frame(b"", b"abcde", b"data")
    with pytest.raises(TypeError):
        compiled.mask(b"abcd", "text")
    with pytest.raises(TypeError):
        compiled.mask(b"abcd")
    with pytest.raises(BufferError):  # not contiguous
        compiled.frame(b"", b"abcd", memoryview(b"abcdef")[::2])


def test_compiled_masker_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIO_UPGRADE_NO_SPEEDUPS", "1")
    assert _frames._load_accelerator() is None
    monkeypatch.setenv("TRIO_UPGRADE_NO_SPEEDUPS", "0")
    assert _frames._load_accelerator() is compiled_masker()


def test_no_other_packages_masker_is_used() -> None:
    """``websockets`` (installed here, for the interop tests) has a compiled
    masker too; it used to be picked up when present. Only ours is used."""
    pytest.importorskip("websockets.speedups")
    assert _frames._accelerator in (None, _compiled)
    assert _frames._load_accelerator() in (None, _compiled)


def _wsproto_verdict(data: bytes) -> tuple[int, int, int]:
    """What wsproto makes of one frame alone, as plain_header would say it."""
    ws = Connection(ConnectionType.CLIENT)
    ws.receive_data(data)
    events = list(ws.events())
    if len(events) != 1 or not isinstance(events[0], (TextMessage, BytesMessage)):
        return 0, 0, 0
    event = events[0]
    if not (event.frame_finished and event.message_finished):
        return 0, 0, 0
    opcode = 1 if isinstance(event, TextMessage) else 2
    payload = event.data.encode() if isinstance(event.data, str) else event.data
    return opcode, len(data) - len(payload), len(payload)


@pytest.mark.parametrize(
    "data",
    [
        frame(b"x" * n, op, fin=fin, rsv1=rsv1, masked=masked)
        for n in (0, 5, 125, 126, 65535, 65536)
        for op in (0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA)
        for fin in (True, False)
        for rsv1 in (False, True)
        for masked in (False, True)
        if op < 8 or n < 126
    ]
    + [
        b"\x82\x7e\x00\x05" + b"x" * 5,  # 2-byte length for a short payload
        b"\x82\x7f" + (5).to_bytes(8, "big") + b"x" * 5,  # 8 bytes, short
        b"\x82\x7f" + (70000).to_bytes(8, "big") + b"x" * 70000,
        b"\x82\x7f" + (1000).to_bytes(8, "big") + b"x" * 1000,
        b"\xa2\x01x",  # RSV2
        b"\x92\x01x",  # RSV3
    ],
    ids=lambda d: d[:4].hex(),
)
def test_plain_header_accepts_only_what_wsproto_takes_whole(data: bytes) -> None:
    verdict = _frames.plain_header(data, 0)
    if verdict[0] > 0:
        # Taken by the fast path: wsproto makes the same one message of it.
        assert verdict == _wsproto_verdict(data)
    else:
        # Left to wsproto, whatever it makes of it (a fragment, a control
        # frame, an error).
        assert verdict == (0, 0, 0)


@pytest.mark.parametrize("cut", range(1, 10))
def test_plain_header_waits_for_a_whole_header(cut: int) -> None:
    data = b"\x82\x7f" + (70000).to_bytes(8, "big")
    assert _frames.plain_header(data[:cut], 0)[0] == _frames.MORE
    assert _frames.plain_header(data, 0) == (2, 10, 70000)
    assert _frames.plain_header(b"\x02", 0) == (0, 0, 0)


# -- incoming: the same messages through either path -------------------------


def _server_frames(rng: random.Random, ending: str) -> bytes:
    out = []
    for _ in range(rng.randrange(1, 25)):
        kind = rng.random()
        size = rng.choice([0, 1, 2, 16, 125, 126, 300, 65535, 65536, 70000])
        if kind < 0.5:
            out.append(frame(rng.randbytes(size), 0x2))
        elif kind < 0.7:
            out.append(frame(("é" * (size // 2)).encode(), 0x1))
        elif kind < 0.85:
            part = rng.randbytes(size)
            out.append(frame(part, 0x2, fin=False))
            if rng.random() < 0.5:
                out.append(frame(b"ping", 0x9))
            out.append(frame(part, 0x0, fin=True))
        else:
            out.append(frame(b"p" * rng.randrange(0, 126), 0x9))
    if ending == "close":
        out.append(frame(b"\x03\xe8bye", 0x8))
    elif ending == "bad-utf8":
        out.append(frame(b"ok\xff" + b"x" * rng.choice([0, 100, 70000]), 0x1))
    elif ending == "rsv1":
        out.append(frame(b"x" * 10, 0x2, rsv1=True))
    elif ending == "masked":
        out.append(frame(b"x" * 10, 0x2, masked=True))
    elif ending == "too-big":
        out.append(frame(b"x" * (2**21 + 1), 0x2))
    return b"".join(out)


async def _run(
    data: bytes, cuts: list[int], *, plain: bool, max_queue: int | None
) -> list[Any]:
    client, server = trio.testing.memory_stream_pair()
    conn = bare_connection(client, plain=plain, max_size=2**21, max_queue=max_queue)
    got: list[Any] = []

    async def receiver() -> None:
        while True:
            try:
                got.append(await conn.receive())
            except (ConnectionClosed, ProtocolError) as exc:
                got.append((type(exc).__name__, getattr(exc, "code", None)))
                return
            if max_queue is not None:
                await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        start = 0
        for end in [*cuts, len(data)]:
            await server.send_all(data[start:end])
            start = end
            await trio.testing.wait_all_tasks_blocked()
        await server.aclose()
    return got


@pytest.mark.parametrize(
    "ending", ["close", "eof", "bad-utf8", "rsv1", "masked", "too-big"]
)
@pytest.mark.parametrize("seed", range(6))
async def test_same_messages_with_and_without_the_fast_path(
    seed: int, ending: str
) -> None:
    rng = random.Random(seed * 7919 + len(ending))
    data = _server_frames(rng, ending)
    # Reads cut anywhere: inside headers, inside payloads, between frames.
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, 40)))
    cuts += [c + 1 for c in cuts[:5] if c + 1 < len(data)]
    cuts = sorted(set(cuts))
    max_queue = rng.choice([None, 1, 2, 16])
    fast = await _run(data, cuts, plain=True, max_queue=max_queue)
    slow = await _run(data, cuts, plain=False, max_queue=max_queue)
    assert fast == slow
    assert fast[-1][0] in ("ConnectionClosed", "ProtocolError")


async def test_cancelled_receive_in_a_long_frame_loses_nothing() -> None:
    client, server = trio.testing.memory_stream_pair()
    conn = bare_connection(client, plain=True, max_size=2**21)
    payload = os.urandom(200_000)
    data = frame(payload) + frame(b"next")
    with trio.move_on_after(1) as scope:
        async with trio.open_nursery() as nursery:

            async def cancel_after_some() -> None:
                await server.send_all(data[:70_000])
                await trio.testing.wait_all_tasks_blocked()
                await server.send_all(data[70_000:150_000])
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()

            nursery.start_soon(cancel_after_some)
            await conn.receive()
    assert not scope.cancelled_caught
    assert conn._engine.reader.long is not None  # part of the frame is held
    await server.send_all(data[150_000:])
    assert await conn.receive() == payload
    assert await conn.receive() == b"next"


async def test_fragmented_and_compressed_sends_go_through_wsproto(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(opcode: int, payload: bytes) -> bytes | bytearray:
        # Close frames of extension-free connections are built here too.
        if opcode != 8:
            raise AssertionError("the fast path was used")
        return _frames.build_frame(opcode, payload)

    monkeypatch.setattr("trio_upgrade._websocket._writer.build_frame", refuse)
    async with open_upgrade_server([WebSocketServerProtocol()]) as server:
        url = server.url("/echo", scheme="ws")
        async with trio_upgrade.open_upgrade(
            url, [trio_upgrade.WebSocket(compression="deflate")]
        ) as ws:
            assert ws.extensions  # deflate in force: wsproto builds frames
            await ws.send(b"x" * 1000)
            assert await ws.receive() == b"x" * 1000
        fragmenting = trio_upgrade.WebSocket(compression=None, max_fragment_size=100)
        async with trio_upgrade.open_upgrade(url, [fragmenting]) as ws:
            await ws.send(b"y" * 1000)
            assert await ws.receive() == b"y" * 1000


async def test_large_echo_over_loopback(masker: str) -> None:
    """1 MiB messages, binary and text, echoed by the in-repo server over
    TCP loopback with each masker: what the server unmasks is what was
    sent, and the reply comes back whole, through the long-frame reads."""
    binary = random.Random(1).randbytes(2**20)
    text = "aé€😀" * (2**20 // 10)  # code points split across reads
    with trio.fail_after(20):
        async with open_upgrade_server([WebSocketServerProtocol()]) as server:
            url = server.url("/echo", scheme="ws")
            offer = trio_upgrade.WebSocket(compression=None, max_size=2**21)
            async with trio_upgrade.open_upgrade(url, [offer]) as ws:
                for message in (binary, text, b"", "", b"x" * 600, binary):
                    await ws.send(message)
                    assert await ws.receive() == message


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1000, ""), (1001, "bye"), (1011, "é" * 61), (4999, "x" * 123)],
)
def test_close_frames_are_wsprotos(
    code: int, reason: str, masker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wsproto.connection import ConnectionState
    from wsproto.events import CloseConnection

    from trio_upgrade._websocket._writer import _send_close

    key = bytes([0x11, 0x22, code % 256, 0x44])
    monkeypatch.setattr(_frames, "mask_key", lambda: key)
    ours_ws = Connection(ConnectionType.CLIENT)
    ours = _send_close(ours_ws, True, code, reason)
    theirs_ws = Connection(ConnectionType.CLIENT)
    original = os.urandom
    os.urandom = lambda n: key
    try:
        theirs = theirs_ws.send(CloseConnection(code, reason))
    finally:
        os.urandom = original
    assert ours == bytes(theirs)
    assert ours_ws.state is theirs_ws.state is ConnectionState.LOCAL_CLOSING
    # Both then take the server's answer the same way.
    answer = b"\x88\x02" + code.to_bytes(2, "big")
    for ws in (ours_ws, theirs_ws):
        ws.receive_data(answer)
        [event] = list(ws.events())
        assert isinstance(event, CloseConnection) and event.code == code
        assert ws.state is ConnectionState.CLOSED


def test_close_frame_with_extensions_goes_through_wsproto() -> None:
    from wsproto.connection import ConnectionState

    from trio_upgrade._websocket._writer import _send_close

    ws = Connection(ConnectionType.CLIENT)
    frame = _send_close(ws, False, 1000, "")
    assert frame[:2] == b"\x88\x82" and ws.state is ConnectionState.LOCAL_CLOSING


# -- the switch: every fast path off -------------------------------------------


def _server_closes(code: int) -> WebSocketServerProtocol:
    async def handler(ws: ServerWebSocket) -> None:
        while (message := await ws.receive()) != "close":
            await ws.send(message)

    return WebSocketServerProtocol(handler, close_code=code, compression=False)


@pytest.mark.parametrize("who_closes", ["server", "client"])
async def test_switch_off_runs_no_fast_path(
    who_closes: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read when a connection is built: set after import, as a test may.
    monkeypatch.setattr(_speedups, "ENABLED", False)

    def forbidden(*args: object) -> Any:
        raise AssertionError("a fast path ran with the switch off")

    # Every operation on wsproto's private state, where it is used, and
    # the frame builder (data and close frames).
    for module, name in [
        (_engine, "has_extensions"),
        (_reader, "is_idle"),
        (_reader, "announced_rest"),
        (_reader, "take_close"),
        (_reader, "plain_header"),
        (_writer, "can_build_frames"),
        (_writer, "mark_closing"),
        (_writer, "mark_close_answered"),
        (_writer, "build_frame"),
    ]:
        assert hasattr(module, name), name
        monkeypatch.setattr(module, name, forbidden)
    async with open_upgrade_server([_server_closes(4001)]) as server:
        url = server.url("/", scheme="ws")
        with trio.fail_after(10):
            async with trio_upgrade.open_upgrade(
                url, [trio_upgrade.WebSocket(compression=None)]
            ) as ws:
                # The plain reader and writer: wsproto's public API only.
                assert type(ws._engine.reader) is _reader.Reader
                assert type(ws._engine.writer) is _writer.Writer
                await ws.send("text")
                await ws.send(b"binary" * 30_000)
                assert await ws.receive() == "text"
                assert await ws.receive() == b"binary" * 30_000
                assert await ws.ping(b"p") >= 0
                if who_closes == "server":
                    await ws.send("close")
                    with pytest.raises(ConnectionClosed) as info:
                        await ws.receive()
                    assert info.value.code == 4001
            assert ws.close_code == (4001 if who_closes == "server" else 1000)


async def test_switch_on_chooses_the_fast_paths_without_extensions() -> None:
    assert _speedups.ENABLED or os.environ.get("TRIO_UPGRADE_NO_SPEEDUPS")
    async with open_upgrade_server([WebSocketServerProtocol()]) as server:
        url = server.url("/echo", scheme="ws")
        for compression, fast in [(None, _speedups.ENABLED), ("deflate", False)]:
            offer = trio_upgrade.WebSocket(compression=compression)
            async with trio_upgrade.open_upgrade(url, [offer]) as ws:
                reader = type(ws._engine.reader)
                writer = type(ws._engine.writer)
                assert (reader is _reader.FastReader) == fast
                assert (writer is _writer.FastWriter) == fast
                await ws.send("x")
                assert await ws.receive() == "x"
