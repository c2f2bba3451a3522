"""Every example in docs/examples runs and produces what the docs say."""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType

import pytest
import trio

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
    with trio.fail_after(10):
        reply = await load("custom_protocol").main()
    assert reply == "HELLO"
    assert capsys.readouterr().out == "HELLO 64\n"


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
