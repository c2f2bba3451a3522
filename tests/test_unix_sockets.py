"""Connecting over Unix domain sockets (``unix_socket=``), and the test
server listening on one: every protocol, TLS, errors and cancellation."""

from __future__ import annotations

import os
import pathlib
import ssl
import sys
from functools import partial

import pytest
import trio
import trio.testing
import trustme
from unix_support import needs_unix, socket_path

import trio_upgrade
from trio_upgrade import ConnectError, Raw
from trio_upgrade.testing import (
    Close,
    H2CServerProtocol,
    Hang,
    Script,
    Send,
    UpgradeServer,
    WebSocketServerProtocol,
    http_response,
    open_upgrade_server,
)
from trio_upgrade.testing._unix import unix_listener

__all__ = ["socket_path"]  # the fixture, re-exported for pytest

pytestmark = [pytest.mark.timeout(10), needs_unix]

# What the Docker Engine API is asked to attach to a container's output.
ATTACH = "/containers/c0ffee/attach?stream=1&stdout=1"


async def test_websocket_over_a_unix_socket(socket_path: str) -> None:
    async with open_upgrade_server(
        [WebSocketServerProtocol()], unix_socket=socket_path
    ) as server:
        assert server.unix_socket == socket_path
        url = "ws://api.test:8080/events?since=1"
        async with trio_upgrade.open_upgrade(
            url, ["websocket"], unix_socket=socket_path
        ) as ws:
            await ws.send("over the socket")
            assert await ws.receive() == "over the socket"
        (request,) = server.requests
        # The URL gives the Host field and the target, not the address.
        assert request.headers.get("host") == "api.test:8080"
        assert request.target == "/events?since=1"


async def test_h2c_over_a_unix_socket(socket_path: str) -> None:
    async with open_upgrade_server(
        [H2CServerProtocol()], unix_socket=socket_path
    ) as server:
        conn = await trio_upgrade.upgrade(
            "http://localhost/", "h2c", unix_socket=socket_path
        )
        async with conn:
            assert conn.upgrade_response.status_code == 200
            response = await conn.request("POST", "/echo", body=b"second stream")
            assert response.content == b"second stream"
        assert [r.protocol for r in server.connections] == ["h2c"]


async def test_raw_tcp_upgrade_like_the_docker_attach_endpoint(
    socket_path: str,
) -> None:
    # Docker answers "Upgrade: tcp" with a 101, then the stream is raw
    # bytes. trio_upgrade's upgrade request is always a GET (Docker's
    # attach wants POST), so this stages the exchange with GET.
    async with open_upgrade_server(["tcp"], unix_socket=socket_path) as server:
        async with trio_upgrade.open_upgrade(
            "http://docker" + ATTACH, Raw("tcp"), unix_socket=socket_path
        ) as stream:
            assert stream.protocol == "tcp"
            await stream.send_all(b"\x01\x00\x00\x00\x00\x00\x00\x05hello")
            received = b""
            while len(received) < 13:
                received += await stream.receive_some()
            assert received == b"\x01\x00\x00\x00\x00\x00\x00\x05hello"
        (request,) = server.requests
        assert (request.method, request.target) == ("GET", ATTACH)
        assert request.headers.get("host") == "docker"
        assert request.headers.get("upgrade") == "tcp"


async def test_connect_http2_over_a_unix_socket(socket_path: str) -> None:
    protocol = H2CServerProtocol()
    listener, _ = await unix_listener(socket_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(trio.serve_listeners, protocol.serve_prior_knowledge, [listener])
        )
        async with trio_upgrade.open_http2(
            "http://h2.test/", unix_socket=socket_path
        ) as conn:
            response = await conn.request("POST", "/echo", body=b"prior knowledge")
            assert response.content == b"prior knowledge"
        nursery.cancel_scope.cancel()
    assert len(protocol.connections) == 1


async def test_a_redirect_is_followed_on_the_same_socket(socket_path: str) -> None:
    # As curl --unix-socket does: the socket stands for every origin.
    def script(index: int) -> Script | None:
        if index == 0:
            moved = http_response(301, headers=[("Location", "http://other.test/b")])
            return Script([Send(moved), Close()])
        return None

    async with open_upgrade_server(
        ["echo"], unix_socket=socket_path, script=script
    ) as server:
        async with trio_upgrade.open_upgrade(
            "http://first.test/a", Raw("echo"), unix_socket=socket_path
        ) as conn:
            assert [a.url for a in conn.attempts] == [
                "http://first.test/a",
                "http://other.test/b",
            ]
        hosts = [r.headers.get("host") for r in server.requests]
        assert hosts == ["first.test", "other.test"]


async def test_a_declined_offer_reconnects_to_the_same_socket(
    socket_path: str,
) -> None:
    # keep_alive=False: the refusal closes the connection, so the second
    # offer needs a new one, to the Unix socket again.
    async with open_upgrade_server(
        ["echo"], unix_socket=socket_path, keep_alive=False
    ) as server:
        async with trio_upgrade.open_upgrade(
            "http://localhost/", [Raw("nope"), Raw("echo")], unix_socket=socket_path
        ) as conn:
            assert conn.protocol == "echo"
        records = await server.wait_closed(2)
        assert [r.protocol for r in records] == [None, "echo"]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_https_over_a_unix_socket_verifies_the_urls_host(
    socket_path: str, ca: trustme.CA
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("secure.test").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server = UpgradeServer(["echo"])
    listener, _ = await unix_listener(socket_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_in_memory)
        tls = trio.SSLListener(listener, server_context)
        nursery.start_soon(partial(trio.serve_listeners, server.serve_stream, [tls]))
        async with trio_upgrade.open_upgrade(
            "https://secure.test/", Raw("echo"),
            unix_socket=socket_path, ssl_context=client_context,
        ) as conn:  # fmt: skip
            await conn.send_all(b"sealed")
            assert await conn.receive_some() == b"sealed"
        # The certificate names secure.test: another URL host fails to
        # verify, whatever the socket.
        with pytest.raises(ConnectError, match="Unix socket") as info:
            await trio_upgrade.upgrade(
                "https://other.test/", "echo",
                unix_socket=socket_path, ssl_context=client_context,
            )  # fmt: skip
        assert "other.test" in str(info.value)  # the ssl error names it
        cause = info.value.__cause__
        assert isinstance(cause, trio.BrokenResourceError)
        assert isinstance(cause.__cause__, ssl.SSLCertVerificationError)
        nursery.cancel_scope.cancel()


async def test_a_missing_socket_is_a_connect_error_naming_it(
    socket_path: str,
) -> None:
    with pytest.raises(ConnectError) as info:
        await trio_upgrade.upgrade(
            "ws://localhost/", "websocket", unix_socket=socket_path
        )
    assert repr(socket_path) in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)


async def test_a_file_that_is_not_a_socket_is_a_connect_error(
    socket_path: str,
) -> None:
    pathlib.Path(socket_path).touch()  # noqa: ASYNC240 (a test's setup)
    with pytest.raises(ConnectError, match="Unix socket") as info:
        await trio_upgrade.connect_http2("http://localhost/", unix_socket=socket_path)
    assert repr(socket_path) in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0,
    reason="root may connect to any socket",
)
async def test_permission_denied_is_a_connect_error(socket_path: str) -> None:
    async with open_upgrade_server(["echo"], unix_socket=socket_path):
        os.chmod(socket_path, 0)
        with pytest.raises(ConnectError, match="Unix socket") as info:
            await trio_upgrade.upgrade(
                "http://localhost/", "echo", unix_socket=socket_path
            )
        assert isinstance(info.value.__cause__, PermissionError)


async def test_a_path_too_long_is_a_connect_error() -> None:
    path = "/tmp/" + "x" * 200
    with pytest.raises(ConnectError, match="Unix socket"):
        await trio_upgrade.upgrade("http://localhost/", "echo", unix_socket=path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
async def test_an_abstract_namespace_socket() -> None:
    name = f"\0trio_upgrade-test-{os.getpid()}-{id(object())}"
    async with open_upgrade_server(["echo"], unix_socket=name) as server:
        async with trio_upgrade.open_upgrade(
            "http://localhost/", Raw("echo"), unix_socket=name
        ) as conn:
            await conn.send_all(b"no file")
            assert await conn.receive_some() == b"no file"
        assert server.unix_socket == name
    with pytest.raises(ConnectError, match="Unix socket @"):
        await trio_upgrade.upgrade("http://localhost/", "echo", unix_socket=name)


async def test_a_cancelled_client_leaves_no_socket_open(socket_path: str) -> None:
    async with open_upgrade_server(
        script=Script([Hang()]), unix_socket=socket_path
    ) as server:
        with trio.move_on_after(0.1) as scope:
            await trio_upgrade.upgrade(
                "http://localhost/", "echo", unix_socket=socket_path
            )
        assert scope.cancelled_caught
        (record,) = await server.wait_closed(1)
        assert record.client_closed and not record.timed_out


async def test_the_server_removes_its_socket_file_and_refuses_a_taken_path(
    socket_path: str,
) -> None:
    file = trio.Path(socket_path)
    async with open_upgrade_server(["echo"], unix_socket=socket_path):
        assert await file.is_socket()
        with pytest.raises(OSError, match="in use"):
            async with open_upgrade_server(["echo"], unix_socket=socket_path):
                pass  # pragma: no cover
        assert await file.is_socket()  # the first server's, untouched
    assert not await file.exists()
    server = UpgradeServer(["echo"])
    with pytest.raises(RuntimeError, match="not listening on a Unix socket"):
        server.unix_socket  # noqa: B018


async def test_the_server_leaves_a_file_that_replaced_its_socket(
    socket_path: str,
) -> None:
    file = trio.Path(socket_path)
    async with open_upgrade_server(["echo"], unix_socket=socket_path):
        await file.unlink()
        await file.write_text("someone else's")
    assert await file.read_text() == "someone else's"


# The fixture's marker is evaluated at import: a path unique to this process.
FIXTURE_SOCKET = f"/tmp/tu-fixture-{os.getpid()}.sock"


@pytest.mark.upgrade_server(["echo"], unix_socket=FIXTURE_SOCKET)
async def test_the_pytest_fixture_on_a_unix_socket(
    upgrade_server: UpgradeServer,
) -> None:
    assert upgrade_server.unix_socket == FIXTURE_SOCKET
    async with trio_upgrade.open_upgrade(
        "http://localhost/", Raw("echo"), unix_socket=upgrade_server.unix_socket
    ) as conn:
        await conn.send_all(b"fixture")
        assert await conn.receive_some() == b"fixture"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"proxy": "http://127.0.0.1:3128"}, "unix_socket and proxy"),
        (
            {"transport": trio.testing.memory_stream_pair()[0]},
            "unix_socket and transport",
        ),
    ],
)
async def test_unix_socket_with_a_proxy_or_transport_is_a_value_error(
    socket_path: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await trio_upgrade.upgrade(
            "http://localhost/",
            "echo",
            unix_socket=socket_path,
            **options,  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match=message):
        await trio_upgrade.connect_http2(
            "http://localhost/",
            unix_socket=socket_path,
            **options,  # type: ignore[arg-type]
        )


async def test_the_environments_proxy_is_not_used_for_a_unix_socket(
    socket_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # proxy=True, the default, reads the environment: not for a local socket.
    for name in ("http_proxy", "HTTP_PROXY", "ws_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    async with (
        open_upgrade_server(["echo"], unix_socket=socket_path),
        trio_upgrade.open_upgrade(
            "ws://localhost/", Raw("echo"), unix_socket=socket_path
        ) as conn,
    ):
        await conn.send_all(b"direct")
        assert await conn.receive_some() == b"direct"
    # Without unix_socket the same call goes to the environment's proxy.
    with pytest.raises(trio_upgrade.ProxyError):
        await trio_upgrade.upgrade("ws://localhost/", "echo")


async def test_bad_unix_socket_values() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        await trio_upgrade.upgrade("http://localhost/", "echo", unix_socket="")
    with pytest.raises(TypeError, match="str path"):
        await trio_upgrade.upgrade(
            "http://localhost/",
            "echo",
            unix_socket=b"/run/x.sock",  # type: ignore[arg-type]
        )


async def test_a_platform_without_unix_sockets_says_so(
    monkeypatch: pytest.MonkeyPatch, socket_path: str
) -> None:
    # Only the platform check is faked: Linux cannot lose AF_UNIX.
    monkeypatch.setattr("trio_upgrade._options.HAS_UNIX", False)
    with pytest.raises(ValueError, match="not supported on this platform"):
        await trio_upgrade.upgrade("http://localhost/", "echo", unix_socket=socket_path)


async def test_a_pathlike_socket_path(socket_path: str) -> None:
    path = pathlib.Path(socket_path)
    async with (
        open_upgrade_server(["echo"], unix_socket=path),
        trio_upgrade.open_upgrade(
            "http://localhost/", Raw("echo"), unix_socket=path
        ) as conn,
    ):
        await conn.send_all(b"path")
        assert await conn.receive_some() == b"path"
