"""Fuzz targets: the handshake parser, and both frame layers after the switch.

Each target takes the bytes a hostile server sends and raises (an
``AssertionError``, or whatever escaped the library) only when trio_upgrade
did something wrong with them:

``handshake``
    The sans-I/O handshake (``_sansio._handshake.Handshake``) fed the bytes
    as a response, in chunks whose sizes come from the first byte: it
    yields events or raises an :class:`~trio_upgrade.UpgradeError`, never
    anything else; a switch hands over every byte after the head.
``websocket``
    ``upgrade()`` over an in-memory transport to a server that answers a
    valid 101 and then sends the bytes (cut into reads by the first byte)
    and ends the stream: ``receive()`` returns exactly the messages that
    wsproto alone reads from those bytes, then raises
    :class:`~trio_upgrade.ConnectionClosed` or
    :class:`~trio_upgrade.ProtocolError` (a message over ``max_size`` may
    end it early, with code 1009).
``http2``
    The same with ``h2c``: a valid 101 and a SETTINGS frame, then the
    bytes. ``upgrade()`` and reading the answer on stream 1 end in the body
    that h2 alone reads from the bytes, or in an
    :class:`~trio_upgrade.UpgradeError`.

Every run is bounded in time (``trio.fail_after``). The targets are plain
functions of ``bytes``: ``tests/test_fuzz.py`` runs them under hypothesis
(with strategies that produce near-valid input) and ``tests/fuzz_run.py``
under atheris (coverage-guided, from the seeds of :func:`seeds`).
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable

import h11
import hpack
import trio
import trio.testing
from wire_reference import h2_bodies, ws_messages

import trio_upgrade
from trio_upgrade import (
    ConnectionClosed,
    Limits,
    ProtocolError,
    Raw,
    UpgradeError,
    WebSocket,
)
from trio_upgrade._sansio._handshake import (
    NEED_DATA,
    Handshake,
    Refused,
    Switched,
    build_request,
)
from trio_upgrade._sansio._url import parse_url
from trio_upgrade._sansio._ws_handshake import accept_key
from trio_upgrade.testing import switching_response

#: Seconds one input may take, the client's close included.
RUN_TIMEOUT = 10
#: The client's ``max_size`` for WebSocket: small, so that inputs reach it.
MAX_SIZE = 4096
LIMITS = Limits(handshake_timeout=RUN_TIMEOUT / 2, close_timeout=1)
TARGET = parse_url("http://fuzz.invalid/")


def chunks(data: bytes, seed: int) -> list[bytes]:
    """``data`` cut into reads whose sizes cycle through 1..(seed % 64 + 1)."""
    size, out, pos, i = seed % 64 + 1, [], 0, 0
    while pos < len(data):
        step = i % size + 1
        out.append(data[pos : pos + step])
        pos, i = pos + step, i + 1
    return out


# -- handshake ------------------------------------------------------------------


def handshake(data: bytes) -> None:
    """The handshake parser on ``data[1:]`` in chunks chosen by ``data[0]``.

    After the end of the stream (``b""``) it must decide: a final event or
    an error, never a wait for more.
    """
    if not data:
        return
    body = data[1:]
    hs = Handshake(Limits(max_head_size=4096, max_refusal_body=1024))
    hs.send_request(build_request(TARGET, [Raw("p").offer(TARGET)], []))
    fed = 0
    try:
        for chunk in [*chunks(body, data[0]), b""]:
            hs.receive_data(chunk)
            fed += len(chunk)
            while (event := hs.next_event()) is not NEED_DATA:
                if isinstance(event, Switched):
                    # Every byte after the 101's head is handed over.
                    fed_bytes = body[:fed]
                    assert fed_bytes.endswith(event.leftover)
                    end = fed - len(event.leftover)
                    assert fed_bytes[:end].endswith(b"\n"), "cut inside the head"
                    return
                if isinstance(event, Refused):
                    return
        raise AssertionError("still waiting for data after the end of the stream")
    except UpgradeError:
        return


# -- the frame layers after a valid 101 ---------------------------------------------


Serve = Callable[[trio.abc.Stream, dict[str, str]], Awaitable[None]]


async def _read_request(stream: trio.abc.Stream) -> dict[str, str]:
    conn = h11.Connection(h11.SERVER)
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(65536)))
            continue
        assert isinstance(event, h11.Request), event
        return {k.decode(): v.decode() for k, v in event.headers}


async def _serve(
    stream: trio.abc.Stream, head: Callable[[dict[str, str]], bytes], reads: list[bytes]
) -> None:
    """Answer the request with ``head``, send ``reads``, end; drain the client."""

    async def drain() -> None:
        try:
            async for _ in stream:
                pass
        except trio.BrokenResourceError:
            pass

    async with trio.open_nursery() as nursery:
        request = await _read_request(stream)
        nursery.start_soon(drain)
        try:
            await stream.send_all(head(request))
            for read in reads:
                await stream.send_all(read)
                await trio.lowlevel.checkpoint()
            await stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client closed first: the rest is not for it


async def _client_and_server(
    head: Callable[[dict[str, str]], bytes],
    reads: list[bytes],
    client: Callable[[trio.abc.Stream], Awaitable[None]],
) -> None:
    client_end, server_end = trio.testing.memory_stream_pair()
    with trio.fail_after(RUN_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_serve, server_end, head, reads)
            await client(client_end)
            nursery.cancel_scope.cancel()


def _ws_head(request: dict[str, str]) -> bytes:
    fields = [("Sec-WebSocket-Accept", accept_key(request["sec-websocket-key"]))]
    return switching_response("websocket", fields)


async def run_websocket(reads: list[bytes]) -> tuple[list[str | bytes], Exception]:
    """The messages the client receives from ``reads``, and how it ended."""
    received: list[str | bytes] = []
    ended: list[Exception] = []

    async def client(stream: trio.abc.Stream) -> None:
        spec = WebSocket(compression=None, max_size=MAX_SIZE, max_queue=4)
        ws = await trio_upgrade.upgrade(
            "ws://fuzz.invalid/", [spec], transport=stream, limits=LIMITS
        )
        async with ws:
            try:
                while True:
                    received.append(await ws.receive())
            except (ConnectionClosed, ProtocolError) as exc:
                ended.append(exc)

    await _client_and_server(_ws_head, reads, client)
    return received, ended[0]


def websocket(data: bytes) -> None:
    """The WebSocket client on ``data[1:]``, cut into reads by ``data[0]``."""
    if not data:
        return
    body = data[1:]
    received, ended = trio.run(run_websocket, chunks(body, data[0]))
    check_websocket(body, received, ended)


def check_websocket(body: bytes, received: list[str | bytes], ended: Exception) -> None:
    expected = ws_messages(body)
    if getattr(ended, "code", None) == 1009:  # over max_size: ends early
        assert received == expected[: len(received)], (received, expected)
    else:
        assert received == expected, (received, expected, ended)


def _h2_head(request: dict[str, str]) -> bytes:
    # The server's connection preface (an empty SETTINGS frame) follows the
    # 101 in the same write, as servers send it.
    return switching_response("h2c", []) + SETTINGS_FRAME


SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


async def run_http2(reads: list[bytes]) -> tuple[bytes | None, Exception | None]:
    """The body of stream 1 the client reads from ``reads``, or its error."""
    result: list[bytes] = []
    errors: list[Exception] = []

    async def client(stream: trio.abc.Stream) -> None:
        try:
            conn = await trio_upgrade.upgrade(
                "http://fuzz.invalid/", ["h2c"], transport=stream, limits=LIMITS
            )
        except UpgradeError as exc:
            errors.append(exc)
            return
        async with conn:
            try:
                result.append(await conn.upgrade_response.read())
            except UpgradeError as exc:
                errors.append(exc)

    await _client_and_server(_h2_head, reads, client)
    return (result[0] if result else None), (errors[0] if errors else None)


def http2(data: bytes) -> None:
    """The HTTP/2 client on ``data[1:]``, cut into reads by ``data[0]``."""
    if not data:
        return
    body = data[1:]
    got, error = trio.run(run_http2, chunks(body, data[0]))
    check_http2(body, got, error)


def check_http2(body: bytes, got: bytes | None, error: Exception | None) -> None:
    if got is not None:
        assert error is None
        wire = h2_bodies(SETTINGS_FRAME + body)
        assert wire[:1] == [got], (got, wire)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "handshake": handshake,
    "websocket": websocket,
    "http2": http2,
}


# -- seeds ----------------------------------------------------------------------


def h2_frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """One HTTP/2 frame (RFC 9113 §4.1), length taken from the payload."""
    return (
        struct.pack("!I", len(payload))[1:]
        + struct.pack("!BBI", kind, flags, stream_id)
        + payload
    )


def response_headers(*extra: tuple[str, str]) -> bytes:
    """An HPACK block for ``:status: 200`` and ``extra``."""
    return bytes(hpack.Encoder().encode([(":status", "200"), *extra]))


def ws_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        return head + bytes([n]) + payload
    if n < 65536:
        return head + bytes([126]) + n.to_bytes(2, "big") + payload
    return head + bytes([127]) + n.to_bytes(8, "big") + payload


def seeds(name: str) -> list[bytes]:
    """Valid inputs to start a target's corpus from."""
    if name == "handshake":
        switch = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: p\r\n"
            b"Connection: upgrade\r\n\r\nrest"
        )
        return [
            b"\x00" + switch,
            b"\x05HTTP/1.1 100 Continue\r\n\r\n" + switch,
            b"\x03HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc",
            b"\x01HTTP/1.1 426 Upgrade Required\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n3\r\nabc\r\n0\r\n\r\n",
        ]
    if name == "websocket":
        return [
            b"\x00" + ws_frame(1, b"hello") + ws_frame(2, bytes(200)),
            b"\x07" + ws_frame(1, b"he", fin=False) + ws_frame(9, b"p")
            + ws_frame(0, b"llo") + ws_frame(8, b"\x03\xe8bye"),
            b"\x3f" + ws_frame(2, bytes(5000)),
        ]  # fmt: skip
    if name == "http2":
        head = response_headers(("content-length", "2"))
        return [
            b"\x00" + h2_frame(1, 0x4, 1, head) + h2_frame(0, 0x1, 1, b"ok"),
            b"\x03" + h2_frame(4, 0x1, 0, b"") + h2_frame(6, 0, 0, bytes(8))
            + h2_frame(1, 0x5, 1, response_headers()),
            b"\x01" + h2_frame(1, 0x4, 1, response_headers())
            + h2_frame(0, 0, 1, b"a" * 100) + h2_frame(3, 0, 1, bytes(4))
            + h2_frame(7, 0, 0, bytes(8)),
        ]  # fmt: skip
    raise ValueError(name)
