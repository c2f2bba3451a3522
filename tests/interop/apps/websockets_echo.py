"""WebSocket echo server on the `websockets` library (asyncio implementation).

Run as ``python websockets_echo.py``: binds 127.0.0.1 on a free port, prints
that port on a line of its own on stdout, and serves until SIGTERM/SIGINT.

Paths (query strings allowed, permessage-deflate on, as websockets' default):
  /close?code=C&reason=R -> close at once with C and R
  /greet                 -> send text "hello" right after the handshake, in the
                            same TCP segment as the 101 (TCP_CORK, see below)
  /record?id=I           -> echo, and remember the close code and reason the
                            client sent (1006: none), under I
  /report?id=I           -> send "CODE REASON" remembered under I (waiting up
                            to 5 s for it), then close
  anything else          -> echo every message with its own type
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

MAX_SIZE = 16 * 1024 * 1024  # room for the 1 MiB+ messages the tests send


def _set_cork(connection: ServerConnection, on: bool) -> None:
    # TCP_CORK holds partial segments until it is cleared, so the 101 head
    # and the greeting leave together: clients must not drop bytes that
    # arrive in the same read as the 101.
    sock = connection.transport.get_extra_info("socket")
    if sock is not None and hasattr(socket, "TCP_CORK"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))


def process_response(
    connection: ServerConnection, request: Request, response: Response
) -> Response | None:
    if urlsplit(request.path).path == "/greet" and response.status_code == 101:
        _set_cork(connection, True)
    return None


#: What /record saw, by id: the client's close code and reason.
RECORDED: dict[str, tuple[int, str]] = {}


async def report(ws: ServerConnection, key: str) -> None:
    for _ in range(500):
        if key in RECORDED:
            code, reason = RECORDED.pop(key)
            await ws.send(f"{code} {reason}")
            break
        await asyncio.sleep(0.01)
    await ws.close()


async def handler(ws: ServerConnection) -> None:
    target = urlsplit(ws.request.path if ws.request else "/")
    key = parse_qs(target.query).get("id", [""])[0]
    if target.path == "/report":
        await report(ws, key)
        return
    if target.path == "/close":
        query = parse_qs(target.query)
        await ws.close(
            int(query.get("code", ["1000"])[0]), query.get("reason", [""])[0]
        )
        return
    if target.path == "/greet":
        await ws.send("hello")
        _set_cork(ws, False)
    try:
        async for message in ws:
            await ws.send(message)  # str stays text, bytes stay binary
    except ConnectionClosed:
        pass  # tests often just drop the TCP connection: not worth a traceback
    finally:
        if target.path == "/record":
            # Then close_code is the client's (1006 when it sent none).
            await ws.wait_closed()
            code = ws.close_code if ws.close_code is not None else 1006
            RECORDED[key] = (code, ws.close_reason or "")


async def main() -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    async with serve(
        handler, "127.0.0.1", 0, max_size=MAX_SIZE, process_response=process_response
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await stop
    sys.stdout.close()


if __name__ == "__main__":
    asyncio.run(main())
