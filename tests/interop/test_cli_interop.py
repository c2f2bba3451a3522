"""trio-upgrade probe and connect against third-party servers.

The websockets library's echo server for ``connect -p websocket`` (its echo,
its close codes); nginx proxying to it for ``probe`` (what a user would
point the command at: a reverse proxy with a ``Server`` field); h2o for
``connect -p h2c`` (stream 1, then more paths); nghttpd, which speaks no
HTTP/1.1, for a protocol error's exit status.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence

import pytest
import servers

from trio_upgrade.__main__ import main
from trio_upgrade._cli import Exit

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

RunningServer = servers.RunningServer


@pytest.fixture(scope="module")
def websockets_echo() -> Iterator[RunningServer]:
    yield from servers.started(servers.websockets_server)


@pytest.fixture(scope="module")
def nginx(websockets_echo: RunningServer) -> Iterator[RunningServer]:
    backend = (websockets_echo.host, websockets_echo.port)
    yield from servers.started(servers.nginx_proxy, backend)


@pytest.fixture(scope="module")
def h2o() -> Iterator[RunningServer]:
    yield from servers.started(servers.h2o_server)


@pytest.fixture(scope="module")
def nghttpd() -> Iterator[RunningServer]:
    yield from servers.started(servers.nghttpd_server)


def cli(argv: Sequence[str], stdin: bytes | int = b"") -> tuple[int, str, str]:
    """``trio-upgrade ARGV``: status, stdout, stderr (stdin bytes or a fd)."""
    out, err = io.StringIO(), io.StringIO()
    argv = [*argv, "--proxy", "none", "--timeout", "10"]
    if isinstance(stdin, bytes):
        status = main(argv, out, err=err, stdin=io.BytesIO(stdin))
    else:
        with open(stdin, "rb", buffering=0) as source:
            status = main(argv, out, err=err, stdin=source)
    return status, out.getvalue(), err.getvalue()


def test_connect_websocket_to_the_websockets_library(
    websockets_echo: RunningServer,
) -> None:
    read, write = os.pipe()
    try:
        os.write(write, "héllo\n/ping\n".encode())
        status, out, err = cli(
            [
                "connect",
                websockets_echo.url("/", scheme="ws"),
                "-p",
                "websocket",
                "--count",
                "1",
                "-v",
            ],
            read,
        )
    finally:
        os.close(write)
    assert status == Exit.OK, err
    assert out == "héllo\n"
    assert "< text 6 bytes 'héllo'" in err
    assert "* connected: websocket, extensions permessage-deflate" in err
    assert "> close 1000 (--count 1 reached)" in err
    # The server closes: the exit status says how.
    for code, expected in [(1000, Exit.OK), (1001, Exit.OK), (4321, Exit.CLOSED)]:
        url = websockets_echo.url(f"/close?code={code}&reason=r", scheme="ws")
        read, write = os.pipe()
        try:
            status, out, err = cli(["connect", url, "-p", "websocket"], read)
        finally:
            os.close(write)
        assert status == expected, err
        assert f"* closed by the server: {code} 'r'" in err


def test_probe_nginx_in_front_of_websockets(nginx: RunningServer) -> None:
    status, out, err = cli(["probe", nginx.url("/"), "--json"])
    assert status == Exit.OK, err
    rows = {tuple(row["offered"]): row for row in json.loads(out)}
    websocket = rows[("websocket",)]
    assert (websocket["status"], websocket["chosen"]) == (101, "websocket")
    assert websocket["headers"]["server"].startswith("nginx")
    assert websocket["headers"]["upgrade"] == "websocket"
    assert "permessage-deflate" in websocket["headers"]["sec-websocket-extensions"]
    h2c = rows[("h2c",)]
    assert h2c["chosen"] is None and h2c["status"] == 426  # websockets' answer
    assert "Upgrade: h2c" in h2c["requests"][0]
    assert rows[("websocket", "h2c")]["status"] in (101, 426)
    status, out, err = cli(["probe", nginx.url("/"), "-p", "h2c"])
    assert status == Exit.REFUSED
    assert out.splitlines()[1].split()[:3] == ["h2c", "426", "-"]


def test_connect_h2c_to_h2o(h2o: RunningServer) -> None:
    status, out, err = cli(
        ["connect", h2o.url("/"), "-p", "h2c"], b"/index.html\n/missing\n"
    )
    assert status == Exit.OK, err
    responses = out.split("HTTP/2 ")[1:]
    index = servers.INDEX_HTML.decode()
    assert responses[0].startswith("200\n") and responses[0].endswith(f"\n{index}\n")
    assert responses[1].startswith("200\n") and responses[1].endswith(f"\n{index}\n")
    assert responses[2].startswith("404\n")
    assert len(responses) == 3


def test_nghttpd_is_a_protocol_error(nghttpd: RunningServer) -> None:
    status, out, err = cli(["connect", nghttpd.url("/"), "-p", "h2c"])
    assert status == Exit.PROTOCOL
    assert "InvalidResponse" in err
    status, out, err = cli(["probe", nghttpd.url("/"), "-p", "h2c"])
    assert status == Exit.PROTOCOL
    assert "InvalidResponse" in out
