"""``trio-upgrade connect URL -p PROTOCOL``: upgrade, then use the connection.

WebSocket: stdin lines out, messages in, at once (two tasks). HTTP/2: the
answer to the URL, then a GET per line of stdin. Anything else: a byte pipe
both ways, as netcat.
"""

from __future__ import annotations

import trio

from .._http2._protocol import HTTP2Connection
from .._http2._stream import HTTP2Response
from .._raw import RawStream
from .._sansio._errors import ConnectionClosed, ProtocolError, StreamReset
from .._sansio._url import parse_url, split_userinfo
from .._websocket import WebSocketConnection
from ._console import Console
from ._exits import Exit
from ._settings import Settings

__all__ = ["connect", "parse_close"]


async def connect(settings: Settings) -> Exit:
    """Upgrade to the one protocol asked for and run its session."""
    args, console = settings.args, settings.console
    try:
        conn = await settings.upgrade(args.url, [args.protocol])
    except Exception as exc:
        console.attempts(getattr(exc, "attempts", ()))
        raise
    console.attempts(conn.attempts)
    if isinstance(conn, WebSocketConnection):
        extra = f", subprotocol {conn.subprotocol}" if conn.subprotocol else ""
        if conn.extensions:
            extra += f", extensions {', '.join(conn.extensions)}"
        console.info(f"* connected: websocket{extra}")
        return await _websocket(conn, settings)
    console.info(f"* connected: {conn.protocol}")
    if isinstance(conn, HTTP2Connection):
        return await _http2(conn, settings)
    assert isinstance(conn, RawStream)
    return await _raw(conn, settings)


def parse_close(text: str) -> tuple[int, str]:
    """``/close [CODE [REASON]]``: the code (1000 by default) and reason."""
    parts = text.split(maxsplit=2)
    code = int(parts[1]) if len(parts) > 1 else 1000
    return code, parts[2] if len(parts) > 2 else ""


def _shown(message: str | bytes) -> str:
    return message if isinstance(message, str) else repr(message)


def _summary(message: str | bytes, limit: int = 60) -> str:
    kind = "text" if isinstance(message, str) else "binary"
    size = len(message.encode() if isinstance(message, str) else message)
    shown = repr(message)
    if len(shown) > limit:
        shown = shown[:limit] + "..."
    return f"{kind} {size} bytes {shown}"


async def _websocket(conn: WebSocketConnection, settings: Settings) -> Exit:
    args, console = settings.args, settings.console
    outcome = Exit.OK
    closed_by_us = False  # by stdin's end or /close: not the server's close

    async def receive(cancel: trio.CancelScope) -> None:
        nonlocal outcome
        received = 0
        try:
            while True:
                message = await conn.receive()
                received += 1
                console.trace("<", _summary(message))
                console.data(_shown(message))
                if args.count is not None and received >= args.count:
                    console.trace(">", f"close 1000 (--count {received} reached)")
                    await conn.aclose(1000)
                    break
        except ConnectionClosed as exc:
            if not closed_by_us:
                console.trace("<", f"close {exc.code} {exc.reason!r}")
                console.info(f"* closed by the server: {exc.code} {exc.reason!r}")
                outcome = Exit.OK if exc.normal else Exit.CLOSED
        except trio.ClosedResourceError:
            pass  # our own close, from stdin
        except ProtocolError as exc:
            console.error(f"error: ProtocolError: {exc}")
            outcome = Exit.PROTOCOL
        cancel.cancel()

    async with conn, trio.open_nursery() as nursery:
        nursery.start_soon(receive, nursery.cancel_scope)
        try:
            while True:
                line = await settings.stdin.read_line()
                if line is None and args.count is not None:
                    # A script's input ends at once: --count says how many
                    # answers to wait for all the same.
                    await trio.sleep_forever()
                if line is None:
                    console.trace(">", "close 1000 (end of input)")
                    closed_by_us = True
                    await conn.aclose(1000)
                    break
                text = line.decode("utf-8", "replace")
                if text == "/ping":
                    await _ping(conn, console, limit=args.timeout)
                    continue
                if text == "/close" or text.startswith("/close "):
                    try:
                        code, reason = parse_close(text)
                        console.trace(">", f"close {code} {reason!r}")
                        closed_by_us = True
                        await conn.aclose(code, reason)
                    except ValueError as exc:
                        closed_by_us = False
                        console.error(f"error: /close: {exc}")
                        continue
                    break
                if text.startswith("//"):
                    text, line = text[1:], line[1:]
                message: str | bytes = line if args.binary else text
                console.trace(">", _summary(message))
                await conn.send(message)
        except (ConnectionClosed, ProtocolError, trio.ClosedResourceError):
            await trio.sleep_forever()  # the receiving task says why
    return outcome


async def _ping(conn: WebSocketConnection, console: Console, *, limit: float) -> None:
    console.trace(">", "ping")
    with trio.move_on_after(limit) as scope:
        rtt = await conn.ping()
    if scope.cancelled_caught:
        console.error(f"error: no pong within {limit:g} s")
    else:
        console.trace("<", "pong")
        console.info(f"* pong in {rtt * 1000:.1f} ms")


def _show(console: Console, response: HTTP2Response) -> None:
    console.data(f"HTTP/2 {response.status_code}")
    for name, value in response.headers:
        console.data(f"{name}: {value}")
    console.data("")
    content_type = response.headers.get("content-type", "") or ""
    if _is_text(content_type):
        console.data(response.text)
    else:
        console.data(f"[{len(response.content)} bytes of {content_type} not shown]")


def _is_text(content_type: str) -> bool:
    """Whether a body of this type is printed (else only its size is)."""
    kind = content_type.split(";")[0].strip().lower()
    return (
        not kind
        or kind.startswith("text/")
        or kind.endswith(("+json", "+xml", "/json", "/xml", "/javascript"))
        or kind == "application/x-www-form-urlencoded"
    )


async def _http2(conn: HTTP2Connection, settings: Settings) -> Exit:
    args, console = settings.args, settings.console
    async with conn:
        with trio.fail_after(args.timeout):
            if conn.handshake_response is not None:
                response = conn.upgrade_response
                await response.read()
            else:  # ALPN h2: no upgrading request, so GET the URL now
                target = parse_url(split_userinfo(args.url)[0]).target
                console.trace(">", f"GET {target}")
                response = await conn.request("GET", target, headers=args.header)
        console.trace(
            "<",
            f"{response.status_code}, {len(response.content)} bytes "
            f"(stream {response.stream_id})",
        )
        _show(console, response)
        while (line := await settings.stdin.read_line()) is not None:
            target = line.decode("utf-8", "replace").strip()
            if not target:
                continue
            console.trace(">", f"GET {target}")
            try:
                with trio.fail_after(args.timeout):
                    response = await conn.request("GET", target, headers=args.header)
            except (ValueError, StreamReset, trio.TooSlowError) as exc:
                # One request failed; the connection goes on.
                console.error(f"error: GET {target}: {type(exc).__name__}: {exc}")
                continue
            console.trace(
                "<",
                f"{response.status_code}, {len(response.content)} bytes "
                f"(stream {response.stream_id})",
            )
            _show(console, response)
        console.trace(">", "GOAWAY (end of input)")
    return Exit.OK


async def _raw(conn: RawStream, settings: Settings) -> Exit:
    console = settings.console

    async def send() -> None:
        while data := await settings.stdin.read_chunk():
            console.trace(">", f"{len(data)} bytes")
            await conn.send_all(data)
        console.trace(">", "end of input: half-close")
        try:
            await conn.send_eof()
        except trio.BrokenResourceError as exc:  # TLS cannot half-close
            console.info(f"* {exc}: waiting for the server to close")

    async with conn, trio.open_nursery() as nursery:
        nursery.start_soon(send)
        while data := await conn.receive_some():
            console.trace("<", f"{len(data)} bytes")
            console.data_bytes(bytes(data))
        console.trace("<", "end of stream")
        nursery.cancel_scope.cancel()
    return Exit.OK
