"""trio-upgrade probe and connect, run for real against loopback servers.

Each run is the command's own ``main()`` with its streams replaced (stdin a
BytesIO or a pipe, stdout and stderr StringIOs), in a worker thread with its
own ``trio.run``, while the test's server runs in the test's; a few runs are
subprocesses, to see the command as a shell does (exit status, binary
stdout, the name in its usage).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import pathlib
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

import pytest
import trio
import trustme
from alpn_support import alpn_server
from proxy_support import start_proxy, tunnelling_proxy
from unix_support import needs_unix, socket_path

from trio_upgrade import ConnectionClosed, Request, upgrade
from trio_upgrade.__main__ import main, program_name
from trio_upgrade._cli import EXIT_CODES, Exit
from trio_upgrade._cli._connect import parse_close
from trio_upgrade.testing import (
    Abort,
    H2CServerProtocol,
    Script,
    Send,
    Sleep,
    WebSocketServerProtocol,
    open_upgrade_server,
    response_head,
)
from trio_upgrade.testing._demo import demo_protocols
from trio_upgrade.testing._websocket import ServerWebSocket

__all__ = ["socket_path"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.timeout(30)


@dataclass
class Run:
    status: int
    out: str
    err: str


async def cli(argv: Sequence[str], stdin: bytes | BinaryIO = b"") -> Run:
    """Run ``trio-upgrade ARGV`` in a thread (its own trio.run)."""
    out, err = io.StringIO(), io.StringIO()
    source = io.BytesIO(stdin) if isinstance(stdin, bytes) else stdin
    direct = [] if "--proxy" in argv else ["--proxy", "none"]
    run = partial(
        main,
        [*argv, *direct],
        out,
        err=err,
        stdin=source,
        prog="trio-upgrade",
    )
    with trio.fail_after(20):
        status = await trio.to_thread.run_sync(run)
    return Run(status, out.getvalue(), err.getvalue())


@asynccontextmanager
async def demo_server() -> AsyncIterator[str]:
    async with open_upgrade_server(demo_protocols()) as server:
        yield server.url()


@contextmanager
def open_stdin(data: bytes) -> Iterator[BinaryIO]:
    """A pipe as stdin, holding ``data`` and kept open (no EOF) until the end.

    One per run: a run that ended leaves its reading thread behind, blocked
    on the pipe until it closes (a process would just exit).
    """
    read, write = os.pipe()
    try:
        os.write(write, data)
        with open(read, "rb", buffering=0) as stdin:
            try:
                yield stdin
            finally:
                os.close(write)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(write)
        raise


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- probe -------------------------------------------------------------------


async def test_probe_prints_a_row_per_offer_and_json() -> None:
    async with demo_server() as url:
        run = await cli(["probe", url])
        assert run.status == Exit.OK, run.err
        rows = run.out.splitlines()
        assert rows[0].split() == [
            "offered",
            "status",
            "chosen",
            "time",
            "notable",
            "headers",
        ]
        assert rows[1].split()[:3] == ["websocket", "101", "websocket"]
        assert (
            "upgrade: websocket; sec-websocket-extensions: permessage-deflate"
            in (rows[1])
        )
        assert rows[2].split()[:3] == ["h2c", "101", "h2c"]
        # The combined offer: one request, the server's choice.
        assert rows[3].startswith("websocket, h2c (one request)")
        assert len(rows) == 4
        run = await cli(["probe", url, "-p", "echo", "-p", "nope", "--json"])
    assert run.status == Exit.OK  # one was chosen
    found = json.loads(run.out)
    assert [(r["offered"], r["how"], r["status"], r["chosen"]) for r in found] == [
        (["echo"], "alone", 101, "echo"),
        (["nope"], "alone", 426, None),
        (["echo", "nope"], "combined", 101, "echo"),
    ]
    # Every attempt's request as sent, declined ones too.
    assert "Upgrade: nope" in found[1]["requests"][0]
    assert found[1]["responses"][0].startswith("HTTP/1.1 426")
    assert found[2]["requests"][0].count("Upgrade: echo, nope") == 1


async def test_probe_of_a_server_that_declines_all_exits_1_and_shows_requests() -> None:
    async with open_upgrade_server(["echo"]) as server:
        run = await cli(["probe", server.url(), "-v"])
    assert run.status == Exit.REFUSED
    assert [line.split()[1] for line in run.out.splitlines()[1:]] == [
        "426",
        "426",
        "h2c",  # "websocket, h2c (one request)  426"
    ]
    for token in ["websocket", "h2c", "websocket, h2c"]:
        assert f"> Upgrade: {token}\n" in run.err
    assert run.err.count("< HTTP/1.1 426 Upgrade Required") == 3


async def test_probe_over_tls_offers_h2_by_alpn_with_cacert_or_insecure(
    tmp_path: pathlib.Path,
) -> None:
    ca = trustme.CA()
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    async with alpn_server(ca, protocols=[WebSocketServerProtocol()]) as server:
        url = server.url().replace("localhost", "127.0.0.1")
        for options in (["--cacert", str(pem)], ["-k"]):
            run = await cli(["probe", url, "--json", *options])
            assert run.status == Exit.OK, run.err
            found = json.loads(run.out)
            assert [(r["offered"], r["how"], r["chosen"]) for r in found] == [
                (["websocket"], "alone", "websocket"),
                (["h2"], "alpn", "h2"),
            ]
        # Without either, the test CA is not trusted: a connect error.
        run = await cli(["probe", url, "-p", "websocket"])
    assert run.status == Exit.CONNECT
    assert "CERTIFICATE_VERIFY_FAILED" in run.out


async def test_probe_exit_statuses_for_connect_errors_and_timeouts() -> None:
    run = await cli(["probe", f"http://127.0.0.1:{free_port()}/", "-p", "echo"])
    assert run.status == Exit.CONNECT
    assert "ConnectError: could not connect to 127.0.0.1" in run.out
    # A server that accepts and never answers.
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, host="127.0.0.1"), _silent, 0
        )
        port = listeners[0].socket.getsockname()[1]
        run = await cli(
            ["probe", f"http://127.0.0.1:{port}/", "-p", "echo", "--timeout", "0.2"]
        )
        nursery.cancel_scope.cancel()
    assert run.status == Exit.TIMEOUT
    assert "UpgradeTimeout" in run.out


async def _silent(stream: trio.SocketStream) -> None:
    await trio.sleep_forever()


# -- connect: WebSocket ------------------------------------------------------


async def test_connect_websocket_sends_lines_and_prints_messages() -> None:
    # stdin stays open (a pipe) until --count ends the session: every echo
    # arrives (at stdin's end the session closes at once, see the next test).
    lines = b"hello\n/ping\n//slash\n\xc3\xa9t\xc3\xa9\r\n\nlast without newline"
    async with demo_server() as url:
        with open_stdin(lines) as stdin:
            run = await cli(
                ["connect", url, "-p", "websocket", "-v", "--count", "4"], stdin
            )
    assert run.status == Exit.OK, run.err
    assert run.out == "hello\n/slash\nété\n\n"
    # The attempt, its request as sent, the 101, a trace line per message.
    assert f"* offer of websocket to {url}: 101" in run.err
    assert "> Upgrade: websocket\n" in run.err
    assert "< HTTP/1.1 101 Switching Protocols\n" in run.err
    assert "> text 5 bytes 'hello'" in run.err
    assert "< text 5 bytes 'hello'" in run.err
    assert "> ping" in run.err and "* pong in " in run.err
    assert "> close 1000 (--count 4 reached)" in run.err


async def test_connect_websocket_closes_with_1000_at_the_end_of_stdin() -> None:
    seen: list[object] = []

    async def record(ws: ServerWebSocket) -> None:
        async for message in ws:
            seen.append(message)
        seen.append((ws.close_code, ws.close_reason))

    protocol = WebSocketServerProtocol(record)
    async with open_upgrade_server([protocol]) as server:
        run = await cli(
            ["connect", server.url(), "-p", "websocket", "-v"], b"a\n\nlast"
        )
    assert run.status == Exit.OK, run.err
    assert seen == ["a", "", "last", (1000, "")]
    assert "> close 1000 (end of input)" in run.err


async def test_connect_websocket_count_binary_and_close_command() -> None:
    got: list[tuple[int | None, str]] = []

    async def chatty(ws: ServerWebSocket) -> None:
        try:
            while True:
                message = await ws.receive()
                got.append(message)
                await ws.send(message)
                await ws.send(b"\x00extra")
        except ConnectionClosed:
            got.append((ws.close_code, ws.close_reason))

    protocol = WebSocketServerProtocol(chatty, subprotocols=["chat"])
    async with open_upgrade_server([protocol]) as server:
        # stdin stays open: --count ends the session, not the input's end.
        with open_stdin(b"one\n") as stdin:
            run = await cli(
                [
                    "connect",
                    server.url(),
                    "-p",
                    "websocket",
                    "--count",
                    "2",
                    "--binary",
                    "--subprotocol",
                    "x",
                    "--subprotocol",
                    "chat",
                    "--origin",
                    "http://o.example",
                    "-H",
                    "X-Trace: 7",
                ],
                stdin,
            )
        assert run.status == Exit.OK, run.err
        assert run.out == "b'one'\nb'\\x00extra'\n"  # binary shown as bytes
        assert "* connected: websocket, subprotocol chat" in run.err
        for field in [
            "Sec-WebSocket-Protocol: x, chat",
            "Origin: http://o.example",
            "X-Trace: 7",
        ]:
            assert f"> {field}\n" in run.err
        got.clear()
        run = await cli(
            ["connect", server.url(), "-p", "websocket", "-q"],
            b"a\n/close 4000\n/close 4001 all done\nnot sent\n",
        )
        bad = await cli(["connect", server.url(), "-p", "websocket"], b"/close 1005")
    assert "error: /close: close code 1005 may not be sent" in bad.err
    assert run.status == Exit.OK, run.err
    # The first /close ends the session; -q: data and errors only (whether
    # the echo of "a" came before the close is the network's business).
    assert got == ["a", (4000, ""), (1000, "")]  # the last: the third run's EOF
    assert "a\nb'\\x00extra'\n".startswith(run.out)
    assert run.err == ""
    assert parse_close("/close") == (1000, "")
    assert parse_close("/close 4001 all  done") == (4001, "all  done")


async def test_connect_websocket_exit_status_follows_the_servers_close() -> None:
    async def closer(ws: ServerWebSocket) -> None:
        message = await ws.receive()
        code = int(message) if isinstance(message, str) else 1000
        await ws.close(code, "bye")

    async with open_upgrade_server([WebSocketServerProtocol(closer)]) as server:
        for code, status in [("1000", Exit.OK), ("4001", Exit.CLOSED)]:
            with open_stdin(f"{code}\n".encode()) as stdin:
                run = await cli(["connect", server.url(), "-p", "websocket"], stdin)
            assert run.status == status, run.err
            assert f"* closed by the server: {code} 'bye'" in run.err


async def test_connect_refused_shows_the_request_and_exits_1() -> None:
    async with open_upgrade_server(["echo"]) as server:
        url = f"http://alice:s3cret@127.0.0.1:{server.port}/"
        run = await cli(["connect", url, "-p", "websocket"])
        plain = server.url()
    assert run.status == Exit.REFUSED
    assert f"* offer of websocket to {plain}: 426" in run.err
    assert "> Authorization: Basic [redacted]\n" in run.err
    assert "< HTTP/1.1 426 Upgrade Required" in run.err
    assert "error: UpgradeRefused: expected 101" in run.err
    assert "s3cret" not in run.err and "YWxpY2U6czNjcmV0" not in run.err


# -- connect: HTTP/2 and raw -------------------------------------------------


async def test_connect_h2c_prints_stream_1_then_a_get_per_line() -> None:
    async with open_upgrade_server([H2CServerProtocol()]) as server:
        url = server.url()
        paths = f"/trailers\n\n{url}bytes/4\nhttp://elsewhere/\n/reset\n/\n"
        run = await cli(["connect", url, "-p", "h2c", "-v"], paths.encode())
    assert run.status == Exit.OK, run.err
    responses = run.out.split("HTTP/2 ")[1:]
    assert responses[0] == "200\ncontent-type: text/plain\ncontent-length: 2\n\nok\n"
    assert responses[1].startswith("200\n") and responses[1].endswith("\nok\n")
    assert responses[2] == (
        "200\ncontent-type: application/octet-stream\ncontent-length: 4\n\n"
        "[4 bytes of application/octet-stream not shown]\n"
    )
    assert responses[3].endswith("\nok\n")  # after two failed requests
    assert len(responses) == 4
    assert "error: GET http://elsewhere/: ValueError: 'http://elsewhere/' is not" in (
        run.err
    )
    assert "error: GET /reset: StreamReset" in run.err
    assert "< 200, 2 bytes (stream 1)" in run.err
    assert f"> GET {url}bytes/4" in run.err


async def test_connect_h2_by_alpn_gets_the_url_first(tmp_path: pathlib.Path) -> None:
    ca = trustme.CA()
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    async with alpn_server(ca) as server:
        run = await cli(
            ["connect", server.url("/bytes/3"), "-p", "h2", "--cacert", str(pem)],
            b"/\n",
        )
    assert run.status == Exit.OK, run.err
    assert run.out.startswith("HTTP/2 200\n")
    assert "[3 bytes of application/octet-stream not shown]" in run.out
    assert run.out.endswith("\nok\n")
    assert "* ALPN offer of h2 to https://localhost:" in run.err


async def test_connect_raw_pipes_bytes_like_netcat_in_a_subprocess() -> None:
    async with open_upgrade_server(["echo"]) as server:
        data = bytes(range(256)) * 64 + b"\xff\x00no newline"
        with trio.fail_after(20):
            result = await trio.run_process(
                [
                    sys.executable,
                    "-m",
                    "trio_upgrade",
                    "connect",
                    server.url(),
                    "-p",
                    "echo",
                    "--proxy",
                    "none",
                ],
                stdin=data,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    # The echo server closes after our half-close: all of it came back.
    assert result.returncode == 0, result.stderr
    assert result.stdout == data
    assert b"* connected: echo" in result.stderr


# -- the command line --------------------------------------------------------


def test_usage_errors_exit_2_and_name_the_command_as_invoked(
    tmp_path: pathlib.Path,
) -> None:
    for argv in (
        ["connect", "http://127.0.0.1:9/"],  # no -p
        ["connect", "http://127.0.0.1:9/", "-p", "websocket", "--count", "0"],
        ["probe", "http://127.0.0.1:9/", "-v", "-q"],
        ["probe", "http://127.0.0.1:9/", "-H", "no colon"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv, prog="trio-upgrade")
        assert info.value.code == Exit.USAGE
    err = io.StringIO()
    bad = tmp_path / "missing.pem"
    status = main(
        ["probe", "http://127.0.0.1:9/", "--cacert", str(bad)], io.StringIO(), err=err
    )
    assert status == Exit.USAGE
    assert "--cacert" in err.getvalue()
    err = io.StringIO()
    status = main(["connect", "ftp://h/", "-p", "websocket"], io.StringIO(), err=err)
    assert status == Exit.USAGE and "InvalidURL" in err.getvalue()
    assert program_name("/usr/local/bin/trio-upgrade") == "trio-upgrade"
    assert program_name("/x/trio_upgrade/__main__.py") == "python -m trio_upgrade"
    out = io.StringIO()
    with pytest.raises(SystemExit) as info, contextlib.redirect_stdout(out):
        main(["connect", "-h"], prog=program_name("/x/trio_upgrade/__main__.py"))
    assert info.value.code == 0
    assert out.getvalue().startswith("usage: python -m trio_upgrade connect ")
    for code, meaning in EXIT_CODES.items():
        assert f"{int(code):>3}  {meaning[:30]}" in out.getvalue()


async def test_attempts_carry_the_request_sent_and_the_response() -> None:
    async with open_upgrade_server(["echo"]) as server:
        conn = await upgrade(server.url(), ["nope", "echo"])
        async with conn:
            declined, switched = conn.attempts
    assert isinstance(declined.request, Request)
    assert declined.request.headers.get("upgrade") == "nope"
    assert declined.response is not None and declined.response.status_code == 426
    assert switched.request is conn.handshake_request
    assert switched.response is conn.handshake_response


# -- the docs ----------------------------------------------------------------

CLI_DOC = pathlib.Path(__file__).parent.parent / "docs" / "howto" / "cli.rst"


def doc_examples() -> list[tuple[str, str]]:
    """``(command, output)`` of each ``$ trio-upgrade`` line of the CLI page."""
    examples: list[tuple[str, list[str]]] = []
    lines = CLI_DOC.read_text().splitlines()
    inside = False
    for line in lines:
        if line.strip() == ".. code-block:: console":
            inside = True
            continue
        if inside and line and not line.startswith(" "):
            inside = False
        if not inside or not line.startswith("    "):
            if inside and examples and not line:
                examples[-1][1].append("")
            continue
        text = line[4:]
        if text.startswith("$ "):
            examples.append((text[2:], []))
        elif examples:
            examples[-1][1].append(text)
    return [(cmd, "\n".join(out).strip("\n") + "\n") for cmd, out in examples]


def normalise(text: str) -> str:
    """What may differ from run to run: times, keys, column widths."""
    text = re.sub(r"\d+ ms\b", "N ms", text)
    text = re.sub(r"\[ *\d+\.\d+\]", "[T]", text)
    text = re.sub(r'"seconds": [\d.]+', '"seconds": N', text)
    text = re.sub(r"(Sec-WebSocket-(Key|Accept): )\S+", r"\1KEY", text)
    return re.sub(r" {2,}", "  ", text)


async def test_the_cli_page_shows_what_the_commands_print() -> None:
    examples = doc_examples()
    assert len(examples) >= 7
    async with demo_server() as url:
        port = url.split(":")[2].rstrip("/")
        for command, expected in examples:
            words = shlex.split(command.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
            stdin = b""
            if words[0] == "printf":
                assert words[2] == "|"
                stdin = words[1].encode().decode("unicode_escape").encode()
                words = words[3:]
            assert words[0] == "trio-upgrade"
            both = io.StringIO()
            run = partial(
                main,
                [*words[1:], "--proxy", "none"],
                both,
                err=both,
                stdin=io.BytesIO(stdin),
                prog="trio-upgrade",
            )
            with trio.fail_after(20):
                status = await trio.to_thread.run_sync(run)
            shown = both.getvalue().replace(f":{port}/", ":8000/")
            shown = shown.replace(f"127.0.0.1:{port}", "127.0.0.1:8000")
            assert normalise(shown) == normalise(expected), command
            # The page's server speaks no "chat": refused, else success.
            assert status == (Exit.REFUSED if "-p chat" in command else Exit.OK)


def test_the_cli_page_lists_every_exit_status() -> None:
    text = CLI_DOC.read_text().replace("``", "")
    table = re.sub(r"\s+", " ", text[text.index("Exit statuses") :])
    for code, meaning in EXIT_CODES.items():
        assert f" {int(code)} {meaning} " in table + " ", (code, meaning)


def test_the_console_script_names_itself() -> None:
    script = pathlib.Path(sys.executable).parent / "trio-upgrade"
    if not script.exists():
        pytest.skip("trio-upgrade is not installed in this environment")
    root = pathlib.Path(__file__).parent.parent
    result = subprocess.run(
        [str(script), "probe", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PYTHONPATH": str(root)},  # this tree's package
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: trio-upgrade probe ")
    assert "--json" in result.stdout and "exit statuses:" in result.stdout


async def test_connect_through_a_proxy_with_credentials() -> None:
    heads: list[bytes] = []
    auth = "Basic " + base64.b64encode(b"bob:pr0xy").decode()
    async with demo_server() as url, trio.open_nursery() as nursery:
        proxy = await start_proxy(nursery, tunnelling_proxy(heads, auth))
        proxy = proxy.replace("http://", "http://bob:pr0xy@")
        run = await cli(
            ["connect", url, "-p", "websocket", "--count", "1", "--proxy", proxy],
            b"via proxy\n",
        )
        nursery.cancel_scope.cancel()
    assert run.status == Exit.OK, run.err
    assert run.out == "via proxy\n"
    assert heads[0].startswith(b"CONNECT 127.0.0.1:")
    assert "pr0xy" not in run.err and auth not in run.err


async def test_connect_raw_reports_a_reset_connection_with_status_6() -> None:
    # The server never reads what the client sends and then closes at once:
    # the kernel resets the connection (unread input), the client's read
    # fails inside the session's nursery, and comes out as itself.
    head = response_head(101, [("Upgrade", "echo"), ("Connection", "Upgrade")])
    script = Script([Send(head + b"partial"), Sleep(0.3), Abort()])
    async with open_upgrade_server(["echo"], script=script) as server:
        run = await cli(["connect", server.url(), "-p", "echo"], b"unread\n")
    assert run.status == Exit.CLOSED, run.err
    assert run.out == "partial"
    assert "error: BrokenResourceError" in run.err


@needs_unix
async def test_probe_and_connect_over_a_unix_socket(socket_path: str) -> None:
    async with open_upgrade_server(demo_protocols(), unix_socket=socket_path):
        via = ["--unix-socket", socket_path]
        run = await cli(["probe", "http://daemon/", "-p", "echo", "--json", *via])
        assert run.status == Exit.OK, run.err
        (row,) = json.loads(run.out)
        assert row["chosen"] == "echo"
        assert "Host: daemon" in row["requests"][0]
        run = await cli(
            ["connect", "ws://daemon/", "-p", "websocket", "--count", "1", *via],
            b"over the socket\n",
        )
    assert run.status == Exit.OK, run.err
    assert run.out == "over the socket\n"
    run = await cli(["connect", "http://daemon/", "-p", "echo", *via])
    assert run.status == Exit.CONNECT
    assert "could not connect to Unix socket" in run.err
