"""python -m trio_upgrade: the demo and the URL mode, run for real."""

from __future__ import annotations

import base64
import io
import pathlib
import socket
import subprocess
import sys
from functools import partial

import pytest
import trio
import trustme
from alpn_support import alpn_server, trust_by_default
from unix_support import needs_unix, socket_path

from trio_upgrade import Limits, Request
from trio_upgrade.__main__ import (
    Reporter,
    default_protocols,
    main,
    negotiate,
    parse_args,
)
from trio_upgrade._cli import Exit
from trio_upgrade.testing import Reply, open_upgrade_server

__all__ = ["socket_path"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.timeout(60)


def test_demo_shows_request_101_and_choice_for_each_protocol() -> None:
    out = io.StringIO()
    assert main([], out) == 0
    text = out.getvalue()
    assert "embedded upgrade server at http://127.0.0.1:" in text
    for token, kind in [
        ("websocket", "WebSocketConnection"),
        ("h2c", "HTTP2Connection"),
        ("echo", "RawStream"),
    ]:
        assert f"    > Upgrade: {token}" in text
        assert f"protocol chosen: {token} ({kind})" in text
    assert text.count("    < HTTP/1.1 101 Switching Protocols") == 4
    assert "websocket: sent 'hello from trio_upgrade', received 'hello from" in text
    assert "h2c: stream 1 answered 200" in text
    assert "h2c: a second request on the same connection: 200" in text


def test_module_runs_as_a_program() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trio_upgrade"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "protocol chosen: websocket" in result.stdout


async def test_url_mode_reports_refusals() -> None:
    out = io.StringIO()
    async with open_upgrade_server(["echo"]) as server:
        ok = await negotiate(
            server.url(),
            ["websocket", "h2c"],
            strategy="sequential",
            headers=[("X-Demo", "1")],
            limits=Limits(handshake_timeout=5),
            message="m",
            report=Reporter(out),
        )
    assert not ok
    text = out.getvalue()
    assert "offer of websocket: declined with 426" in text
    assert "offer of h2c: declined with 426" in text
    assert "no protocol chosen" in text


async def test_url_mode_success_with_raw_token() -> None:
    out = io.StringIO()
    async with open_upgrade_server(["echo"]) as server:
        ok = await negotiate(
            server.url(),
            ["echo"],
            strategy="combined",
            headers=[],
            limits=Limits(),
            message="ping",
            report=Reporter(out),
        )
    assert ok
    assert "raw: sent b'ping', received b'ping'" in out.getvalue()


@needs_unix
async def test_url_mode_over_a_unix_socket(socket_path: str) -> None:
    out = io.StringIO()
    async with open_upgrade_server(["echo"], unix_socket=socket_path):
        ok = await negotiate(
            "http://daemon/",
            ["echo"],
            strategy="sequential",
            headers=[],
            limits=Limits(),
            message="ping",
            report=Reporter(out),
            unix_socket=socket_path,
        )
    assert ok, out.getvalue()
    assert f"over the Unix socket {socket_path!r}" in out.getvalue()
    assert "> Host: daemon" in out.getvalue()


@needs_unix
def test_unix_socket_option(socket_path: str) -> None:
    out = io.StringIO()
    status = main(["http://daemon/", "--unix-socket", socket_path], out)
    assert status == Exit.CONNECT
    assert f"ConnectError: could not connect to Unix socket {socket_path!r}" in (
        out.getvalue()
    )


def test_bad_url_is_reported_as_a_usage_error() -> None:
    # The URL mode's statuses are the documented ones of every command (it
    # was 1 for every failure before them).
    out = io.StringIO()
    assert main(["ftp://127.0.0.1/"], out) == Exit.USAGE
    assert "InvalidURL" in out.getvalue()


async def test_url_mode_exits_1_when_refused() -> None:
    async with open_upgrade_server(["echo"]) as server:
        out = io.StringIO()
        run = partial(main, [server.url(), "-p", "nope", "--proxy", "none"], out)
        assert await trio.to_thread.run_sync(run) == Exit.REFUSED
    assert "offer of nope: declined with 426" in out.getvalue()


def test_bad_header_argument_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["http://127.0.0.1:9/", "-H", "no colon"])
    assert info.value.code == 2


def test_unreachable_server_fails_cleanly() -> None:
    out = io.StringIO()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    assert main([f"http://127.0.0.1:{port}/", "-p", "echo"], out) == Exit.CONNECT
    assert "ConnectError" in out.getvalue()


async def test_url_mode_over_tls_offers_h2_by_alpn(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default offer of an https URL is websocket, then h2 (h2c is for
    # cleartext); a server that speaks no WebSocket gets h2 on a second
    # connection, and the report says what ALPN selected.
    ca = trustme.CA()
    out = io.StringIO()
    for _ in trust_by_default(ca, tmp_path, monkeypatch):
        async with alpn_server(ca) as server:
            url = server.url()
            ok = await negotiate(
                url,
                default_protocols(url),
                strategy="sequential",
                headers=[],
                limits=Limits(handshake_timeout=5),
                message="m",
                report=Reporter(out),
            )
    assert ok
    text = out.getvalue()
    assert "offering websocket, h2 to https://localhost:" in text
    assert "protocol chosen: h2 (HTTP2Connection)" in text
    assert "h2: selected by ALPN; GET / answered 200" in text
    assert server.selected == ["http/1.1", "h2"]


async def test_url_mode_reports_redirects() -> None:
    out = io.StringIO()
    refusal = Reply(302, headers=[("Location", "/ws")])

    def choose(tokens: object, request: Request) -> str | None:
        return "echo" if request.target == "/ws" else None

    async with open_upgrade_server(["echo"], choose=choose, fallback=refusal) as server:
        ok = await negotiate(
            f"http://alice:s3cret@127.0.0.1:{server.port}/",
            ["echo"],
            strategy="sequential",
            headers=[],
            limits=Limits(handshake_timeout=5),
            message="m",
            report=Reporter(out),
        )
        url = server.url()
    assert ok
    text = out.getvalue()
    assert f"offer of echo to {url}: redirected with 302 to {url}ws" in text
    assert "protocol chosen: echo (RawStream)" in text
    assert "    > Authorization: Basic [redacted]" in text
    assert (
        "s3cret" not in text and base64.b64encode(b"alice:s3cret").decode() not in text
    )


def test_demo_ignores_the_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The demo talks to its own loopback server: a machine's proxy (here
    # one where nothing listens) must not stand in the way.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    out = io.StringIO()
    assert main(["--timeout", "5"], out) == 0, out.getvalue()


async def test_url_mode_takes_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    async with open_upgrade_server(["echo"]) as server:
        for proxy, ok in [(True, False), (None, True)]:
            out = io.StringIO()
            assert ok == await negotiate(
                server.url(),
                ["echo"],
                strategy="sequential",
                headers=[],
                limits=Limits(connect_timeout=5),
                message="ping",
                report=Reporter(out),
                proxy=proxy,
            )
            if not ok:
                assert "ProxyError: could not connect to the proxy" in out.getvalue()


def test_proxy_argument() -> None:
    assert parse_args(["http://h/"]).proxy is True  # the environment's
    assert parse_args(["http://h/", "--proxy", "none"]).proxy is None
    assert parse_args(["http://h/", "--proxy", "socks5h://p"]).proxy == "socks5h://p"
