"""Check that every launcher in benchmarks/servers.py serves what it promises.

Only the standard library and h11 talk to the servers here (raw sockets on
127.0.0.1), so a failure points at the server setup, never at trio_upgrade.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence

import h11
import pytest

# The launchers (benchmarks/servers.py) with the fixture helper, through
# this folder's servers.py, which pytest's "prepend" import mode makes a
# top-level module.
import servers

RunningServer = servers.RunningServer
ServerUnavailable = servers.ServerUnavailable

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key and its accept
WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
H2C_SETTINGS = "AAMAAABkAAQAAP__"  # MAX_CONCURRENT_STREAMS=100, INITIAL_WINDOW=65535
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
BIG = servers.BIG_FILE_SIZE
Headers = Sequence[tuple[str, str]]


# Start a server (skip if not installed); after use, check it is gone.
running = contextlib.contextmanager(servers.started)


# ------------------------------------------------------------ raw clients ---


class Conn:
    """A socket plus the bytes already read past the last parsed item."""

    def __init__(self, port: int, buffered: bytes = b"") -> None:
        self.sock = socket.create_connection((servers.HOST, port), timeout=15)
        self.buf = bytearray(buffered)

    def close(self) -> None:
        self.sock.close()

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(262144)
            if not chunk:
                raise EOFError(f"closed with {len(self.buf)} of {n} bytes read")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def upgrade(
        self, method: str, target: str, headers: Headers
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request; return status, headers and bytes read past the head.

        The leftover bytes are also kept in ``self.buf`` for what comes next.
        """
        conn = h11.Connection(h11.CLIENT)
        has_host = any(k.lower() == "host" for k, _ in headers)
        all_headers = [*([] if has_host else [("Host", servers.HOST)]), *headers]
        self.sock.sendall(
            conn.send(h11.Request(method=method, target=target, headers=all_headers))
        )
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(self.sock.recv(65536))
                continue
            if isinstance(event, (h11.InformationalResponse, h11.Response)):
                if event.status_code == 100:
                    continue
                head = {k.decode().lower(): v.decode() for k, v in event.headers}
                leftover = conn.trailing_data[0]
                self.buf = bytearray(leftover)
                return event.status_code, head, bytes(leftover)
            raise AssertionError(f"unexpected h11 event {event!r}")


def http_request(
    port: int, method: str, target: str, headers: Headers = (), body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 exchange; the body is sent from a thread to avoid deadlock."""
    conn = h11.Connection(h11.CLIENT)
    all_headers = [("Host", servers.HOST), *headers]
    if body:
        all_headers.append(("Content-Length", str(len(body))))
    out = conn.send(h11.Request(method=method, target=target, headers=all_headers))
    if body:
        out += conn.send(h11.Data(data=body))
    out += conn.send(h11.EndOfMessage())
    with socket.create_connection((servers.HOST, port), timeout=30) as sock:
        sender = threading.Thread(target=sock.sendall, args=(out,), daemon=True)
        sender.start()
        status, head, chunks = 0, {}, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(262144))
            elif isinstance(event, h11.Response):
                status = event.status_code
                head = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        sender.join(30)
    return status, head, b"".join(chunks)


def ws_headers(extensions: str | None = None) -> list[tuple[str, str]]:
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", WS_KEY),
        ("Sec-WebSocket-Version", "13"),
    ]
    if extensions:
        headers.append(("Sec-WebSocket-Extensions", extensions))
    return headers


def ws_send(conn: Conn, opcode: int, data: bytes) -> None:
    mask = os.urandom(4)
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = (
        bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        if n < 4096
        else _mask(data, mask)
    )
    conn.sock.sendall(head + mask + masked)


def _mask(data: bytes, mask: bytes) -> bytes:
    # Fast XOR for big frames: one int operation instead of a byte loop.
    key = int.from_bytes((mask * (len(data) // 4 + 1))[: len(data)], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(len(data), "big")


def ws_recv(conn: Conn) -> tuple[int, bytes]:
    """One whole unfragmented, uncompressed frame from the server."""
    b0, b1 = conn.read_exact(2)
    assert b0 & 0x80, "fragmented frames are not expected here"
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", conn.read_exact(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", conn.read_exact(8))
    return b0 & 0x0F, conn.read_exact(n)


def ws_open(
    port: int, target: str, extensions: str | None = None
) -> tuple[Conn, dict[str, str]]:
    conn = Conn(port)
    status, head, _ = conn.upgrade("GET", target, ws_headers(extensions))
    assert status == 101, (status, head)
    assert head["sec-websocket-accept"] == WS_ACCEPT
    return conn, head


def check_ws_paths(port: int, prefix: str = "", greet_with_101: bool = False) -> None:
    """Echo (text, binary, 1 MiB + 1), /greet and /close on one WS server."""
    conn, _ = ws_open(port, prefix + "/")
    try:
        ws_send(conn, 0x1, b"hi")
        assert ws_recv(conn) == (0x1, b"hi")
        ws_send(conn, 0x2, b"\x00\xff")
        assert ws_recv(conn) == (0x2, b"\x00\xff")
        big = servers.payload(1024 * 1024 + 1)
        ws_send(conn, 0x2, big)
        assert ws_recv(conn) == (0x2, big)
    finally:
        conn.close()

    conn = Conn(port)
    try:
        status, _, leftover = conn.upgrade("GET", prefix + "/greet", ws_headers())
        assert status == 101
        if greet_with_101:
            assert leftover, "the greeting should arrive in the same read as the 101"
        assert ws_recv(conn) == (0x1, b"hello")
    finally:
        conn.close()

    conn, _ = ws_open(port, prefix + "/close?code=4001&reason=bye")
    try:
        assert ws_recv(conn) == (0x8, struct.pack("!H", 4001) + b"bye")
    finally:
        conn.close()


# --------------------------------------------------------------- WebSocket ---

WS_SERVERS: dict[str, tuple[Callable[[], RunningServer], bool, bool]] = {
    # name: (launcher, negotiates permessage-deflate, greeting shares the 101's segment)
    "websockets": (servers.websockets_server, True, True),
    "node": (servers.node_ws_server, False, True),
    "node-deflate": (lambda: servers.node_ws_server(deflate=True), True, True),
    "uvicorn-websockets": (lambda: servers.uvicorn_server("websockets"), True, False),
    "uvicorn-websockets-sansio": (
        lambda: servers.uvicorn_server("websockets-sansio"),
        True,
        False,
    ),
    "uvicorn-wsproto": (lambda: servers.uvicorn_server("wsproto"), True, False),
    "hypercorn": (servers.hypercorn_server, True, False),
}


@pytest.mark.parametrize("name", list(WS_SERVERS))
def test_websocket_server(name: str) -> None:
    launcher, deflate, greet_with_101 = WS_SERVERS[name]
    with running(launcher) as server:
        check_ws_paths(server.port, greet_with_101=greet_with_101)
        conn, head = ws_open(
            server.port, "/", "permessage-deflate; client_max_window_bits"
        )
        conn.close()
        negotiated = "permessage-deflate" in head.get("sec-websocket-extensions", "")
        assert negotiated == deflate, head


PROXIES: dict[str, tuple[Callable[[tuple[str, int]], RunningServer], str]] = {
    "nginx": (servers.nginx_proxy, ""),
    "lighttpd": (lambda b: servers.lighttpd_server(backend=b), "/ws"),
    "h2o": (lambda b: servers.h2o_server(backend=b), "/ws"),
}


@pytest.mark.parametrize("name", list(PROXIES))
def test_reverse_proxy_websocket(name: str) -> None:
    launcher, prefix = PROXIES[name]
    with (
        running(servers.node_ws_server) as backend,
        running(lambda: launcher((backend.host, backend.port))) as proxy,
    ):
        check_ws_paths(proxy.port, prefix)


def test_tinyproxy_connect_tunnel() -> None:
    with (
        running(servers.node_ws_server) as backend,
        running(servers.tinyproxy_server) as proxy,
    ):
        conn = Conn(proxy.port)
        try:
            authority = f"{backend.host}:{backend.port}"
            status, _, _ = conn.upgrade("CONNECT", authority, [("Host", authority)])
            assert status == 200
            # The tunnel is now a raw byte pipe: a WebSocket handshake on it.
            status, head, _ = conn.upgrade("GET", "/greet", ws_headers())
            assert status == 101, head
            assert ws_recv(conn) == (0x1, b"hello")
        finally:
            conn.close()


# --------------------------------------------------------------------- h2c ---


def h2_frames(conn: Conn) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, stream, payload) frames until the connection closes."""
    while True:
        try:
            head = conn.read_exact(9)
        except EOFError:
            return
        length = int.from_bytes(head[:3], "big")
        stream = int.from_bytes(head[5:], "big") & 0x7FFFFFFF
        yield head[3], head[4], stream, conn.read_exact(length)


H2C_SERVERS: dict[str, Callable[[], RunningServer]] = {
    "hypercorn": servers.hypercorn_server,
    "lighttpd": servers.lighttpd_server,
    "h2o": servers.h2o_server,
}


@pytest.mark.parametrize("name", list(H2C_SERVERS))
def test_h2c_upgrade(name: str) -> None:
    with running(H2C_SERVERS[name]) as server:
        conn = Conn(server.port)
        try:
            headers = [
                ("Connection", "Upgrade, HTTP2-Settings"),
                ("Upgrade", "h2c"),
                ("HTTP2-Settings", H2C_SETTINGS),
            ]
            status, head, _ = conn.upgrade("GET", "/", headers)
            assert status == 101, head
            assert head["upgrade"].lower() == "h2c"
            conn.sock.sendall(H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            settings: dict[int, int] = {}
            for ftype, flags, stream, data in h2_frames(conn):
                if ftype == 0x4 and not flags & 0x1:  # the server's SETTINGS
                    for i in range(0, len(data), 6):
                        key, value = struct.unpack("!HI", data[i : i + 6])
                        settings[key] = value
                    conn.sock.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")  # ACK
                if stream == 1 and ftype in (0x0, 0x1) and flags & 0x1:
                    break  # stream 1 (the upgraded GET) ended: it was served
            else:
                pytest.fail(f"stream 1 was not answered; settings {settings}")
        finally:
            conn.close()
        if name == "hypercorn":
            assert settings.get(0x8) == 1  # SETTINGS_ENABLE_CONNECT_PROTOCOL


def test_uvicorn_ignores_h2c() -> None:
    with running(servers.uvicorn_server) as server:
        headers = [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c")]
        status, _, body = http_request(
            server.port, "GET", "/", [*headers, ("HTTP2-Settings", H2C_SETTINGS)]
        )
        assert (status, body) == (200, b"ok")


def test_nghttpd_speaks_only_http2() -> None:
    with running(servers.nghttpd_server) as server:
        conn = Conn(server.port)
        try:
            conn.sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head = conn.read_exact(9)
        finally:
            conn.close()
        assert not head.startswith(b"HTTP/")
        assert head[3] == 0x4 and int.from_bytes(head[5:], "big") == 0  # SETTINGS


# -------------------------------------------------------------------- HTTP ---

FILE_SERVERS: dict[str, tuple[Callable[[], RunningServer], str, str]] = {
    # name: (launcher, 10 MiB download path, upload echo path)
    "lighttpd": (servers.lighttpd_server, "/big.bin", "/echo"),
    "h2o": (servers.h2o_server, "/big.bin", "/echo"),
    "uvicorn": (servers.uvicorn_server, f"/bytes/{BIG}", "/echo"),
    "hypercorn": (servers.hypercorn_server, f"/bytes/{BIG}", "/echo"),
}


@pytest.mark.parametrize("name", list(FILE_SERVERS))
def test_big_download_and_upload(name: str) -> None:
    launcher, download, upload = FILE_SERVERS[name]
    expected = servers.payload(BIG)
    with running(launcher) as server:
        status, _, body = http_request(server.port, "GET", download)
        assert status == 200
        assert len(body) == BIG and body == expected
        status, head, body = http_request(server.port, "POST", upload, body=expected)
        assert status == 200, head
        assert head["x-body-length"] == str(BIG)
        assert body == expected


@pytest.mark.parametrize("launcher", [servers.uvicorn_server, servers.hypercorn_server])
def test_asgi_root_and_headers(launcher: Callable[[], RunningServer]) -> None:
    with running(launcher) as server:
        assert http_request(server.port, "GET", "/")[::2] == (200, b"ok")
        status, _, body = http_request(
            server.port, "GET", "/headers", [("X-Probe", "42")]
        )
        report = json.loads(body)
        assert status == 200
        assert ["x-probe", "42"] in report["headers"]
        assert report["http_version"] == "1.1"


def test_nginx_proxies_plain_http() -> None:
    with (
        running(servers.uvicorn_server) as backend,
        running(lambda: servers.nginx_proxy((backend.host, backend.port))) as proxy,
    ):
        assert http_request(proxy.port, "GET", "/")[::2] == (200, b"ok")
        data = servers.payload(BIG)
        status, head, body = http_request(proxy.port, "POST", "/echo", body=data)
        assert (status, head["x-body-length"]) == (200, str(BIG))
        assert body == data


def test_stop_is_idempotent_and_context_manager_stops() -> None:
    with running(servers.h2o_server) as server:
        pgid = server.pgid
        with server:
            pass  # leaving the with-block stops it
        assert not servers.group_exists(pgid)
        server.stop()  # a second stop is harmless


def test_token_check() -> None:
    # Guard against a typo in the fixed key/accept pair the tests rely on.
    guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    digest = hashlib.sha1((WS_KEY + guid).encode()).digest()
    assert base64.b64encode(digest).decode() == WS_ACCEPT
