"""Answering the server's pings never holds up its data (RFC 6455 §5.5.3).

A server that sends pings without reading fills the client's send buffer
with pongs; the client must still read and deliver what comes next, keeping
at most a bounded backlog of pongs (the latest ping is enough to answer).
Real loopback sockets with small buffers, so that sending really blocks.
"""

from __future__ import annotations

import contextlib
import socket

import pytest
import trio
from ws_support import frame, read_client_frame

import trio_upgrade
from trio_upgrade import WebSocket
from trio_upgrade._sansio._ws_handshake import accept_key
from trio_upgrade.testing import switching_response

pytestmark = pytest.mark.timeout(60)

PINGS = 3000  # 380 KB of pings: far more pongs than the small buffers hold
BUFFER = 4096  # SO_SNDBUF / SO_RCVBUF of the sockets that carry the pongs


def _ping_payload(i: int) -> bytes:
    return i.to_bytes(4, "big") + b"p" * 121  # 125 bytes: the most allowed


class FloodServer:
    """Accepts one WebSocket client, sends ``PINGS`` pings and a message
    without reading, then (once ``drain`` is set) reads what the client
    wrote, answers its close and closes.

    With ``message=None`` it sends no message: it pauses (the client has
    read everything and waits for more), then reads, and once the latest
    ping has its pong sends ``b"answered"``.
    """

    def __init__(self, listener: trio.SocketListener, message: bytes | None) -> None:
        self.listener = listener
        self.message = message
        self.flooded = trio.Event()
        self.drain = trio.Event()
        self.pongs: list[bytes] = []
        self.close_payload: bytes | None = None

    @property
    def port(self) -> int:
        port: int = self.listener.socket.getsockname()[1]
        return port

    async def serve(self) -> None:
        # A client that gave up (a failed test) resets: its error tells why.
        with contextlib.suppress(trio.BrokenResourceError):
            await self._serve()

    async def _serve(self) -> None:
        async with self.listener:
            stream = await self.listener.accept()
        async with stream:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await stream.receive_some(65536)
            key = next(
                line.split(b":", 1)[1].strip().decode()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            await stream.send_all(
                switching_response(
                    "websocket", [("Sec-WebSocket-Accept", accept_key(key))]
                )
            )
            batch = 100
            for start in range(0, PINGS, batch):
                await stream.send_all(
                    b"".join(
                        frame(_ping_payload(i), 0x9)
                        for i in range(start, start + batch)
                    )
                )
            if self.message is not None:
                await stream.send_all(frame(self.message))
            self.flooded.set()
            if self.message is None:
                await trio.sleep(0.3)  # the client reads all, then waits
                self.drain.set()
            await self.drain.wait()
            buffer = bytearray()
            while True:
                opcode, _, _, payload = await read_client_frame(stream, buffer)
                if opcode == 0xA:
                    self.pongs.append(payload)
                    if self.message is None and payload == _ping_payload(PINGS - 1):
                        await stream.send_all(frame(b"answered"))
                elif opcode == 0x8:
                    self.close_payload = payload
                    await stream.send_all(frame(payload[:2], 0x8))
                    return


async def _open_flood_server(message: bytes | None) -> FloodServer:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    # Set before listen(): accepted sockets inherit it, window included.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    await sock.bind(("127.0.0.1", 0))
    sock.listen()
    return FloodServer(trio.SocketListener(sock), message)


def _shrink_send_buffer(ws: trio_upgrade.WebSocketConnection) -> None:
    transport = ws.transport
    assert isinstance(transport, trio.SocketStream)
    transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)


def _check_answers(server: FloodServer) -> None:
    # Answered, but not ping for ping: the backlog was bounded, and the
    # latest ping (the one that matters, §5.5.3) got its pong.
    assert server.pongs
    assert len(server.pongs) < PINGS // 2
    assert server.pongs[-1] == _ping_payload(PINGS - 1)
    numbers = [int.from_bytes(p[:4], "big") for p in server.pongs]
    assert numbers == sorted(set(numbers))  # in order, none twice
    assert server.close_payload is not None
    assert int.from_bytes(server.close_payload[:2], "big") == 1000


async def test_ping_flood_without_reading_does_not_block_receive() -> None:
    message = b"after the pings"
    server = await _open_flood_server(message)
    offer = WebSocket(compression=None, ping_interval=None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve)
        with trio.fail_after(15):
            ws = await trio_upgrade.upgrade(f"ws://127.0.0.1:{server.port}/", offer)
            _shrink_send_buffer(ws)
            async with ws:
                # The pongs cannot all be written (the server reads nothing):
                # receive() goes on reading and returns the message.
                assert await ws.receive() == message
                assert server.flooded.is_set()
                server.drain.set()
    _check_answers(server)


async def test_ping_flood_with_a_nursery() -> None:
    message = b"after the pings"
    server = await _open_flood_server(message)
    offer = WebSocket(compression=None, ping_interval=None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve)
        with trio.fail_after(15):
            url = f"ws://127.0.0.1:{server.port}/"
            async with trio_upgrade.open_upgrade(url, offer) as ws:
                _shrink_send_buffer(ws)
                # The background reader reads while the application does not.
                await server.flooded.wait()
                assert await ws.receive() == message
                server.drain.set()
    _check_answers(server)


async def test_a_burst_of_pings_is_answered_ping_for_ping() -> None:
    # As Autobahn's case 2.10: ten pings in one write, then a message. The
    # call that reads them answers them all before it returns, without a
    # nursery, when the transport takes the pongs at once.
    from ws_support import ws_script

    from trio_upgrade.testing import open_upgrade_server

    payloads = [f"payload-{i}".encode() for i in range(10)]
    pongs: list[bytes] = []
    answered = trio.Event()

    async def server(stream: trio_upgrade.RawStream) -> None:
        await stream.send_all(
            b"".join(frame(p, 0x9) for p in payloads) + frame(b"data")
        )
        buffer = bytearray()
        while True:
            opcode, _, _, payload = await read_client_frame(stream, buffer)
            if opcode == 0xA:
                pongs.append(payload)
                if len(pongs) == len(payloads):
                    answered.set()
            elif opcode == 0x8:
                await stream.send_all(frame(payload[:2], 0x8))
                return

    async with open_upgrade_server(script=ws_script(server)) as srv:
        offer = WebSocket(compression=None)
        with trio.fail_after(5):
            async with await trio_upgrade.upgrade(srv.url(), offer) as ws:
                assert await ws.receive() == b"data"
                await answered.wait()  # the client reads nothing meanwhile
    assert pongs == payloads


async def test_pong_written_once_the_server_reads_again() -> None:
    # The server reads nothing until the client has read every ping and
    # waits in receive(); then it reads, and sends nothing until the latest
    # ping is answered. The pong goes out while receive() waits to read.
    server = await _open_flood_server(None)
    offer = WebSocket(compression=None, ping_interval=None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve)
        with trio.fail_after(15):
            ws = await trio_upgrade.upgrade(f"ws://127.0.0.1:{server.port}/", offer)
            _shrink_send_buffer(ws)
            async with ws:
                assert await ws.receive() == b"answered"
    _check_answers(server)
