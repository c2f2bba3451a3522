"""Every example in docs/examples runs and produces what the docs say."""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import pathlib
import re
import subprocess
import sys
import textwrap
from types import ModuleType

import pytest
import trio
import trio.testing

from trio_upgrade.testing import (
    ServerWebSocket,
    WebSocketServerProtocol,
    open_upgrade_server,
)

EXAMPLES = pathlib.Path(__file__).parent.parent / "docs" / "examples"

pytestmark = pytest.mark.timeout(30)


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_cancellation(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(10):
        lines = await load("cancellation").main()
    assert lines == [
        "no message within 0.1 s",
        "still usable",
        "other stream: 100000 bytes",
        "body generator closed",
        "upload abandoned",
        "then: ok",
    ]
    assert capsys.readouterr().out == "".join(f"{line}\n" for line in lines)
    # The how-to shows the output as it is.
    howto = (EXAMPLES.parent / "howto" / "cancellation.rst").read_text()
    assert "".join(f"    {line}\n" for line in lines) in howto


async def test_custom_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    """The line protocol: its header fields both ways, lines answered; a 101
    without Lines-Max refused by validate(); a line over the server's limit
    an error (memory bounded), not a buffer that grows."""
    with trio.fail_after(10):
        lines = await load("custom_protocol").main()
    assert lines == [
        "sent Upgrade: lines/1",
        "the 101 allows lines of 64 bytes",
        "HELLO",
        "HOW ARE YOU?",
        "InvalidUpgrade: no usable Lines-Max in the 101 (expected Lines-Max: "
        "1 to 1024, received None)",
        "ProtocolError: a line of more than 64 bytes",
    ]
    assert capsys.readouterr().out == "".join(f"{line}\n" for line in lines)
    howto = (EXAMPLES.parent / "howto" / "custom-protocol.rst").read_text()
    assert "".join(f"    {line}\n" for line in lines) in howto


async def test_graceful_shutdown(capfd: pytest.CaptureFixture[str]) -> None:
    """The client runs in a child process, which gets SIGINT as on Ctrl-C:
    the server saw 1001, the client exited with 0, and printed no traceback
    (its stderr is this process's)."""
    with trio.fail_after(20):
        code, status, output = await load("graceful_shutdown").main()
    assert code == 1001  # before: 1000, as if the client had simply finished
    assert status == 0
    assert output.endswith("interrupted: said goodbye\n")
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "the server saw close code 1001; the client exited with 0" in captured.out


async def test_handling_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(10):
        results = await load("handling_errors").main()
    assert results[0] == "server said 403 b'no WebSocket here'"
    assert results[1] == "too slow"
    assert results[2].startswith("could not upgrade: unsupported URL scheme 'ftp'")
    printed = capsys.readouterr().out
    assert printed == "".join(f"{line}\n" for line in results)
    # The tutorial shows the output as it is.
    tutorial = (EXAMPLES.parent / "tutorial.rst").read_text()
    for line in results:
        assert f"    {line}\n" in tutorial


async def test_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(10):
        result = await load("quickstart").main()
    assert result == "websocket said 'hello'"
    assert capsys.readouterr().out == "websocket said 'hello'\n"


async def test_websocket_session() -> None:
    with trio.fail_after(10):
        messages = await load("websocket_session").main()
    assert messages == ["text", b"\x00binary"]


def test_every_example_is_tested() -> None:
    source = pathlib.Path(__file__).read_text()
    for path in EXAMPLES.glob("*.py"):
        tests = EXAMPLES / f"test_{path.stem}.py"
        if path.stem.startswith("test_") or tests.exists():
            # An application and its tests: test_docs_blocks.py runs the
            # test module when a page includes it.
            tests = path if path.stem.startswith("test_") else tests
            pages = "".join(p.read_text() for p in EXAMPLES.parent.rglob("*.rst"))
            assert f"examples/{tests.name}" in pages, f"{tests.name} not included"
            continue
        assert f'load("{path.stem}")' in source, f"{path.name} has no test"


async def test_proxies(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(10):
        seen = await load("proxies").main()
    # Four calls went through a proxy, the fifth (proxy=None) directly.
    assert seen == [
        "http proxy: tunnel to 127.0.0.1, credentials: no",
        "http proxy: tunnel to 127.0.0.1, credentials: yes",
        "https proxy: tunnel to 127.0.0.1, credentials: no",
        "socks5h proxy: tunnel to localhost",
    ]
    assert capsys.readouterr().out == "".join(f"{line}\n" for line in seen)
    # The how-to shows the output as it is.
    howto = (EXAMPLES.parent / "howto" / "proxies.rst").read_text()
    for line in seen:
        assert f"    {line}\n" in howto


async def test_h2c_requests(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(10):
        lines = await load("h2c_requests").main()
    assert lines == ["stream 1: 200 'ok'", "stream 3: {'healthy': True}"]
    assert capsys.readouterr().out == "".join(f"{line}\n" for line in lines)
    # The how-to shows the output as it is.
    howto = (EXAMPLES.parent / "howto" / "h2c.rst").read_text()
    for line in lines:
        assert f"    {line}\n" in howto


async def test_chat_client(capfd: pytest.CaptureFixture[str]) -> None:
    """The chat client in a child process: two lines typed, then Ctrl-C
    (SIGINT). Both lines went out and their answers were printed as they
    came; the server saw the client leave with 1001 and its reason; the
    client exited with 0, without a traceback (its stderr is this process's)."""
    with trio.fail_after(20):
        code, reason, status, output = await load("chat_client").main()
    assert (code, reason, status) == (1001, "interrupted", 0)
    assert output == (
        "connected: type lines, Ctrl-D or Ctrl-C to leave\n"
        "welcome to the room\n"
        "someone said: hello\n"
        "someone said: is anyone here?\n"
    )
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out.endswith(
        "the server saw 1001 'interrupted'; the client exited with 0\n"
    )
    howto = (EXAMPLES.parent / "howto" / "chat.rst").read_text()
    assert "".join(f"    {line}\n" for line in captured.out.splitlines()) in howto


async def test_chat_client_end_of_input(capsys: pytest.CaptureFixture[str]) -> None:
    """When the input ends (Ctrl-D), every line has been sent and the client
    closes with 1000; a last line without a newline is sent too."""
    chat_client = load("chat_client")
    seen: list[str | bytes] = []
    closes: list[tuple[int | None, str | None]] = []

    async def room(ws: ServerWebSocket) -> None:
        async for message in ws:
            seen.append(message)
        closes.append((ws.close_code, ws.close_reason))

    keyboard_in, keyboard = trio.testing.memory_stream_one_way_pair()
    with trio.fail_after(10):
        async with open_upgrade_server([WebSocketServerProtocol(room)]) as server:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(chat_client.chat, server.url(scheme="ws"), keyboard)
                await keyboard_in.send_all(b"one\r\n\n  \ntw")
                await keyboard_in.send_all(b"o\nthree")
                await keyboard_in.aclose()
            await server.wait_closed(1)
    assert seen == ["one", "two", "three"]  # blank lines are not sent
    assert closes == [(1000, "end of input")]
    assert capsys.readouterr().out.startswith("connected:")


async def test_concurrent_requests(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(10):
        lines, peak = await load("concurrent_requests").main()
    items = [f"/item?id={n}: 200 'item {n}'" for n in range(1, 13)]
    assert lines == [
        *items,
        "/missing: 404 'not found'",
        "/reset: reset by the server (error code 2)",
        "/hang: no answer within 0.5 s",
    ]
    # The limit held, and the requests did overlap.
    assert 1 < peak <= 4
    printed = capsys.readouterr().out
    assert printed == "".join(f"{line}\n" for line in lines) + (
        "at most 4 at once on the server: True\n"
    )
    howto = (EXAMPLES.parent / "howto" / "concurrent-requests.rst").read_text()
    assert "".join(f"    {line}\n" for line in printed.splitlines()) in howto


async def test_websocket_over_http2(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(10):
        lines = await load("websocket_over_http2").main()
    assert lines == [
        "extended CONNECT allowed: True",
        "kitchen (chat.v2): 'hello kitchen'",
        "garden (chat.v2): 'hello garden'",
        "GET / on the same connection: 200",
        "refused before sending: the server does not allow extended CONNECT "
        "(SETTINGS_ENABLE_CONNECT_PROTOCOL is not 1, RFC 8441 §3)",
    ]
    assert capsys.readouterr().out == "".join(f"{line}\n" for line in lines)
    howto = (EXAMPLES.parent / "howto" / "websocket-over-http2.rst").read_text()
    for line in lines[:4]:
        assert f"    {line}\n" in howto


async def test_alpn_h2(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(10):
        said = await load("alpn_h2").main()
    assert said == "h2: 200 'ok'"
    assert capsys.readouterr().out == "h2: 200 'ok'\n"
    tutorial = (EXAMPLES.parent / "tutorial.rst").read_text()
    assert "    h2: 200 'ok'\n" in tutorial


def test_tutorial_shows_what_its_blocks_print(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    """Each program written out in the tutorial prints exactly the text
    block that follows it. (test_docs_blocks runs them too; this checks
    what they print.)"""
    from test_docs_blocks import rst_blocks, run_python

    path = EXAMPLES.parent / "tutorial.rst"
    blocks = rst_blocks(path, path.read_text())
    checked = 0
    for block, shown in itertools.pairwise(blocks):
        if block.include is None and block.language in {"", "python"}:
            assert shown.language == "text", f"{block.where}: no output shown"
            capsys.readouterr()
            run_python(block.source, block.where, tmp_path)
            assert capsys.readouterr().out == shown.source + "\n", block.where
            checked += 1
    assert checked == 4  # WebSocket, h2c, raw, refusal


async def test_debugging_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    """The log of a refused upgrade, then what the error says: as the
    debugging how-to shows it, once this run's port and time are replaced
    by the page's."""
    handlers = logging.getLogger("trio_upgrade").handlers[:]
    with trio.fail_after(10):
        await load("debugging_refusal").main()
    printed = capsys.readouterr().out
    port = re.search(r"connecting to 127\.0\.0\.1:(\d+)\n", printed)
    assert port is not None, printed
    printed = printed.replace(f"127.0.0.1:{port[1]}", "127.0.0.1:8000")
    printed = re.sub(r" in [\d.]+ ms\n", " in 0.5 ms\n", printed)
    howto = (EXAMPLES.parent / "howto" / "debugging.rst").read_text()
    assert "".join(f"    {line}\n" for line in printed.splitlines()) in howto
    # The handler was removed: nothing more is logged to stdout.
    assert logging.getLogger("trio_upgrade").handlers == handlers


def test_tutorial_shows_the_demo_as_it_runs() -> None:
    """The tutorial's excerpt of ``python -m trio_upgrade``: its lines come
    in the demo's output, in order, once this run's port and key are
    replaced by the page's (``...`` stands for lines left out)."""
    from plugin_support import child_pythonpath

    env = {**os.environ, "PYTHONPATH": child_pythonpath()}
    result = subprocess.run(
        [sys.executable, "-m", "trio_upgrade"],
        capture_output=True,
        text=True,
        env=env,
        timeout=25,
        check=True,
    )
    output = result.stdout
    port = re.search(r"server at http://127\.0\.0\.1:(\d+)/", output)
    key = re.search(r"Sec-WebSocket-Key: (\S+)", output)
    assert port is not None and key is not None, output
    output = output.replace(f"127.0.0.1:{port[1]}", "127.0.0.1:43565")
    output = output.replace(key[1], "32V1LZC8PFBeF5wRrs9EMg==")
    tutorial = (EXAMPLES.parent / "tutorial.rst").read_text()
    start = tutorial.index("    trio_upgrade 0.1")
    excerpt = tutorial[
        start : tutorial.index("\n\n", tutorial.index("protocol chosen"))
    ]
    lines = iter(output.splitlines())
    for shown in textwrap.dedent(excerpt).splitlines():
        if shown.strip() not in {"", "..."}:
            assert shown in lines, f"{shown!r} not in the demo's output (in order)"


async def test_concurrent_sends(capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(10):
        lines = await load("concurrent_sends").main()
    assert lines == ["1000 echoes from 10 tasks", "each task's messages in order: True"]
    assert capsys.readouterr().out == "".join(f"{line}\n" for line in lines)
    howto = (EXAMPLES.parent / "howto" / "concurrent-sends.rst").read_text()
    assert "".join(f"    {line}\n" for line in lines) in howto
