"""One plain ASGI app for every ASGI server in the interop tests.

Plain ASGI (no framework) so that uvicorn and hypercorn run exactly the same
code and nothing beyond the server itself is needed.

HTTP:
  GET  /          -> 200 "ok" (text/plain)
  GET  /bytes/N   -> N bytes of ``payload(N)``, streamed in 64 KiB chunks
  POST /echo      -> the request body; ``x-body-length`` gives its length
  GET  /headers   -> JSON {"method", "path", "http_version", "headers": [[k, v]]}
WebSocket (any other path echoes every message with its own type):
  /close?code=C&reason=R -> accept, then close at once with C and R
  /greet                 -> accept, send text "hello", then echo
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CHUNK = 64 * 1024
# Must match tests/interop/servers.py: payload(n) is the same bytes there, so
# a test can check a download byte for byte. A prime period makes an offset
# error show up even when it is a multiple of a power of two.
_PATTERN = random.Random(20240601).randbytes(65521)


def payload(n: int, offset: int = 0) -> bytes:
    """Bytes ``offset`` to ``offset + n`` of the endless test pattern."""
    out = bytearray()
    pos = offset % len(_PATTERN)
    while len(out) < n:
        take = min(n - len(out), len(_PATTERN) - pos)
        out += _PATTERN[pos : pos + take]
        pos = 0
    return bytes(out)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return bytes(body)


async def _stream_bytes(send: Send, n: int) -> None:
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(n).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    sent = 0
    while sent < n:
        chunk = payload(min(CHUNK, n - sent), sent)
        sent += len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def http_app(scope: Scope, receive: Receive, send: Send) -> None:
    method, path = scope["method"], scope["path"]
    text = [(b"content-type", b"text/plain")]
    if method == "GET" and path == "/":
        await _respond(send, 200, b"ok", text)
    elif method == "GET" and path.startswith("/bytes/") and path[7:].isdigit():
        await _stream_bytes(send, int(path[7:]))
    elif method == "POST" and path == "/echo":
        body = await _read_body(receive)
        length = [(b"x-body-length", str(len(body)).encode())]
        await _respond(
            send, 200, body, [(b"content-type", b"application/octet-stream"), *length]
        )
    elif method == "GET" and path == "/headers":
        report = {
            "method": method,
            "path": path,
            "http_version": scope["http_version"],
            "headers": [
                [k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]
            ],
        }
        await _respond(
            send,
            200,
            json.dumps(report).encode(),
            [(b"content-type", b"application/json")],
        )
    else:
        await _respond(send, 404, b"not found", text)


async def websocket_app(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    path = scope["path"]
    if path == "/close":
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        code = int(query.get("code", ["1000"])[0])
        reason = query.get("reason", [""])[0]
        await send({"type": "websocket.close", "code": code, "reason": reason})
        return
    if path == "/greet":
        await send({"type": "websocket.send", "text": "hello"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await http_app(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket_app(scope, receive, send)
    elif scope["type"] == "lifespan":
        await lifespan_app(scope, receive, send)
