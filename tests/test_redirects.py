"""Redirects of the upgrade request: followed, refused, and what each hop carries.

Every test runs real loopback servers (tests/redirect_support.py) and
asserts on what they received.
"""

from __future__ import annotations

import ssl

import pytest
import trio
import trustme
from proxy_support import pipe, read_head
from redirect_support import redirect, start_routes

import trio_upgrade
from trio_upgrade import Limits, Raw, RedirectError, UpgradeRefused
from trio_upgrade.testing import Hang, Reply, Script, open_upgrade_server

pytestmark = pytest.mark.timeout(30)


async def echo_once(conn: trio_upgrade.RawStream) -> None:
    await conn.send_all(b"ping")
    assert await conn.receive_some() == b"ping"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_each_redirect_status_is_followed(
    nursery: trio.Nursery, status: int
) -> None:
    final = await start_routes(nursery, lambda target: None)
    first = await start_routes(
        nursery, lambda target: redirect(status, final.url("/there?x=1"))
    )
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(first.url("/here"), "echo")
        async with conn:
            await echo_once(conn)
    assert [r.target for r in first.requests] == ["/here"]
    assert [r.target for r in final.requests] == ["/there?x=1"]
    assert final.requests[0].get("upgrade") == "echo"
    assert final.requests[0].get("host") == f"127.0.0.1:{final.port}"
    assert [(a.status_code, a.url) for a in conn.attempts] == [
        (status, first.url("/here")),
        (101, final.url("/there?x=1")),
    ]
    assert conn.handshake_request.target == "/there?x=1"  # type: ignore[union-attr]


@pytest.mark.parametrize("status", [300, 304, 305])
async def test_other_3xx_stay_refusals(nursery: trio.Nursery, status: int) -> None:
    final = await start_routes(nursery, lambda target: None)
    first = await start_routes(nursery, lambda target: redirect(status, final.url()))
    with trio.fail_after(10), pytest.raises(UpgradeRefused) as info:
        await trio_upgrade.upgrade(first.url(), "echo")
    assert info.value.status_code == status
    assert final.requests == []


async def test_relative_location_on_the_same_connection() -> None:
    # The project's test server: 302 to /next unless the request is for it.
    def choose(tokens: object, request: trio_upgrade.Request) -> str | None:
        return "echo" if request.target == "/next" else None

    refusal = Reply(302, headers=[("Location", "next")])
    async with open_upgrade_server(["echo"], choose=choose, fallback=refusal) as server:
        with trio.fail_after(10):
            conn = await trio_upgrade.upgrade(server.url("/start"), "echo")
            async with conn:
                await echo_once(conn)
        assert [r.target for r in server.requests] == ["/start", "/next"]
        # Same origin, and the server kept the connection: reused.
        assert len(server.connections) == 1
        urls = [server.url("/start"), server.url("/next")]
        assert [a.url for a in conn.attempts] == urls


async def test_the_limit(nursery: trio.Nursery) -> None:
    # "x/" relative to /a/ is /a/x/, then /a/x/x/...: no loop, no end.
    server = await start_routes(nursery, lambda target: redirect(307, "x/"))
    with trio.fail_after(10), pytest.raises(RedirectError) as info:
        await trio_upgrade.upgrade(
            server.url("/a/"), "echo", limits=Limits(max_redirects=3)
        )
    error = info.value
    assert error.reason == "too_many"
    assert len(server.requests) == 4  # the first request and 3 redirects
    assert error.chain == (
        server.url("/a/"),
        server.url("/a/x/"),
        server.url("/a/x/x/"),
        server.url("/a/x/x/x/"),
        server.url("/a/x/x/x/x/"),
    )
    assert error.location == server.url("/a/x/x/x/x/")
    assert "more than 3 redirects" in str(error)
    assert [a.status_code for a in error.attempts] == [307] * 4
    with trio.fail_after(5):
        await server.wait_all_closed()


async def test_default_limit_is_ten(nursery: trio.Nursery) -> None:
    server = await start_routes(nursery, lambda target: redirect(302, "x/"))
    with trio.fail_after(10), pytest.raises(RedirectError, match="more than 10"):
        await trio_upgrade.upgrade(server.url("/"), "echo")
    assert len(server.requests) == 11


async def test_max_redirects_zero_refuses_the_first(nursery: trio.Nursery) -> None:
    server = await start_routes(nursery, lambda target: redirect(302, "/b"))
    with trio.fail_after(10), pytest.raises(RedirectError) as info:
        await trio_upgrade.upgrade(
            server.url("/a"), "echo", limits=Limits(max_redirects=0)
        )
    assert info.value.reason == "too_many"
    assert len(server.requests) == 1


async def test_a_loop_is_refused_at_once(nursery: trio.Nursery) -> None:
    urls: dict[str, str] = {}
    a = await start_routes(nursery, lambda target: redirect(302, urls["b"]))
    # B sends back to A with the http:// scheme of a ws:// request: one URL.
    b = await start_routes(nursery, lambda target: redirect(301, urls["a"]))
    urls["a"], urls["b"] = a.url("/", scheme="http"), b.url("/loop")
    with trio.fail_after(10), pytest.raises(RedirectError) as info:
        await trio_upgrade.upgrade(a.url("/", scheme="ws"), "echo")
    error = info.value
    assert error.reason == "loop"
    assert error.chain == (a.url("/", "ws"), b.url("/loop", "ws"), a.url("/", "ws"))
    assert len(a.requests) == 1 and len(b.requests) == 1
    assert [(a.url, a.status_code) for a in error.attempts] == [
        (urls["a"].replace("http", "ws"), 302),
        (urls["b"].replace("http", "ws"), 301),
    ]
    with trio.fail_after(5):
        await a.wait_all_closed()
        await b.wait_all_closed()


async def test_follow_redirects_false_gives_the_redirect(
    nursery: trio.Nursery,
) -> None:
    final = await start_routes(nursery, lambda target: None)
    first = await start_routes(nursery, lambda target: redirect(308, final.url()))
    with trio.fail_after(10), pytest.raises(UpgradeRefused) as info:
        await trio_upgrade.upgrade(first.url(), "echo", follow_redirects=False)
    assert not isinstance(info.value, RedirectError)
    assert info.value.status_code == 308
    assert info.value.location == final.url()
    assert final.requests == []


@pytest.mark.parametrize(
    "fields",
    [
        [],  # no Location
        [("Location", "ftp://127.0.0.1/")],  # not a URL we can request
        [("Location", "http://[::1/")],
        [("Location", "/a"), ("Location", "/b")],  # which one?
    ],
)
async def test_redirect_without_a_usable_location_is_a_refusal(
    nursery: trio.Nursery, fields: list[tuple[str, str]]
) -> None:
    server = await start_routes(nursery, lambda target: (302, fields))
    with trio.fail_after(10), pytest.raises(UpgradeRefused) as info:
        await trio_upgrade.upgrade(server.url(), "echo")
    assert type(info.value) is UpgradeRefused
    assert info.value.status_code == 302
    assert len(server.requests) == 1
    if fields and "ftp" in fields[0][1]:
        assert isinstance(info.value.__cause__, trio_upgrade.InvalidURL)


async def test_given_transport_cannot_follow_to_another_origin(
    nursery: trio.Nursery,
) -> None:
    final = await start_routes(nursery, lambda target: None)
    first = await start_routes(nursery, lambda target: redirect(302, final.url()))
    stream = await trio.open_tcp_stream("127.0.0.1", first.port)
    with trio.fail_after(10), pytest.raises(RedirectError) as info:
        await trio_upgrade.upgrade(first.url(), "echo", transport=stream)
    assert info.value.reason == "transport"
    assert final.requests == []
    with trio.fail_after(5):
        await first.wait_all_closed()  # the given transport was closed


async def test_given_transport_follows_on_the_same_connection(
    nursery: trio.Nursery,
) -> None:
    server = await start_routes(
        nursery, lambda target: None if target == "/b" else redirect(302, "/b")
    )
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(server.url("/a"), "echo", transport=stream)
        async with conn:
            await echo_once(conn)
    assert [r.target for r in server.requests] == ["/a", "/b"]
    assert server.opened == 1


# -- TLS -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_ws_to_wss_is_followed(nursery: trio.Nursery, ca: trustme.CA) -> None:
    secure = await start_routes(nursery, lambda t: None, ssl_context=server_context(ca))
    plain = await start_routes(
        nursery, lambda t: redirect(301, secure.url("/s", scheme="https"))
    )
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(
            plain.url("/", scheme="ws"), "echo", ssl_context=client_context(ca)
        )
        async with conn:
            await echo_once(conn)
            assert isinstance(conn.transport, trio.SSLStream)
    assert [a.url for a in conn.attempts] == [
        plain.url("/", scheme="ws"),
        secure.url("/s", scheme="wss"),
    ]


@pytest.mark.parametrize(("scheme", "to_scheme"), [("https", "http"), ("wss", "ws")])
async def test_tls_to_cleartext_is_refused(
    nursery: trio.Nursery, ca: trustme.CA, scheme: str, to_scheme: str
) -> None:
    plain = await start_routes(nursery, lambda t: None)
    secure = await start_routes(
        nursery,
        lambda t: redirect(302, plain.url("/", scheme=to_scheme)),
        ssl_context=server_context(ca),
    )
    with trio.fail_after(10), pytest.raises(RedirectError) as info:
        await trio_upgrade.upgrade(
            secure.url("/", scheme=scheme), "echo", ssl_context=client_context(ca)
        )
    assert info.value.reason == "insecure"
    assert info.value.attempts[-1].status_code == 302
    assert plain.opened == 0  # nothing was sent in the clear
    with trio.fail_after(5):
        await secure.wait_all_closed()


async def test_through_a_proxy_each_hop_gets_its_own_tunnel(
    nursery: trio.Nursery,
) -> None:
    final = await start_routes(nursery, lambda target: None)
    first = await start_routes(nursery, lambda target: redirect(302, final.url()))
    connects: list[bytes] = []

    async def proxy(client: trio.SocketStream) -> None:
        head = await read_head(client)
        connects.append(head.split(b"\r\n")[0])
        port = int(head.split(b" ")[1].rsplit(b":", 1)[1])
        upstream = await trio.open_tcp_stream("127.0.0.1", port)
        await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        async with trio.open_nursery() as pipes:
            pipes.start_soon(pipe, client, upstream)
            pipes.start_soon(pipe, upstream, client)

    listeners = await nursery.start(trio.serve_tcp, proxy, 0)
    proxy_port = listeners[0].socket.getsockname()[1]
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(
            first.url(), "echo", proxy=f"http://127.0.0.1:{proxy_port}"
        )
        async with conn:
            await echo_once(conn)
    assert connects == [
        f"CONNECT 127.0.0.1:{first.port} HTTP/1.1".encode(),
        f"CONNECT 127.0.0.1:{final.port} HTTP/1.1".encode(),
    ]


@pytest.mark.parametrize(
    ("value", "error"), [(1.5, TypeError), (-1, ValueError), (True, TypeError)]
)
def test_max_redirects_is_checked(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_redirects"):
        Limits(max_redirects=value)  # type: ignore[arg-type]


async def test_an_error_at_a_later_hop_lists_every_hop(nursery: trio.Nursery) -> None:
    # A port with nothing listening: the second hop cannot connect.
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    first = await start_routes(
        nursery, lambda target: redirect(302, f"http://127.0.0.1:{dead}/gone")
    )
    with trio.fail_after(10), pytest.raises(trio_upgrade.ConnectError) as info:
        await trio_upgrade.upgrade(first.url(), "echo")
    hops = [(a.url, a.status_code) for a in info.value.attempts]
    assert hops == [(first.url(), 302), (f"http://127.0.0.1:{dead}/gone", None)]
    assert info.value.attempts[-1].error is info.value
    with trio.fail_after(5):
        await first.wait_all_closed()


@pytest.mark.parametrize("how", ["cancelled", "handshake_timeout"])
async def test_a_stall_at_a_later_hop_leaves_no_connection_open(
    nursery: trio.Nursery, how: str
) -> None:
    # The second origin reads the request and never answers.
    async with open_upgrade_server(["echo"], script=Script([Hang()])) as stalling:
        first = await start_routes(
            nursery, lambda target: redirect(302, stalling.url("/stall"))
        )
        with trio.fail_after(10):
            if how == "cancelled":
                with trio.move_on_after(0.3) as scope:
                    await trio_upgrade.upgrade(first.url(), "echo")
                assert scope.cancelled_caught
            else:
                limits = Limits(handshake_timeout=0.3)
                with pytest.raises(trio_upgrade.UpgradeTimeout) as info:
                    await trio_upgrade.upgrade(first.url(), "echo", limits=limits)
                hops = [(a.url, a.status_code) for a in info.value.attempts]
                assert hops == [(first.url(), 302), (stalling.url("/stall"), None)]
            [record] = await stalling.wait_closed()
            assert record.client_closed
            await first.wait_all_closed()
        assert [r.target for r in stalling.requests] == ["/stall"]


async def test_follow_redirects_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="follow_redirects must be a bool"):
        await trio_upgrade.upgrade("ws://127.0.0.1:1/", "echo", follow_redirects=0)  # type: ignore[call-overload]


async def test_combined_offer_follows_too(nursery: trio.Nursery) -> None:
    server = await start_routes(
        nursery, lambda target: None if target == "/b" else redirect(303, "/b")
    )
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(
            server.url("/a"), [Raw("other"), Raw("echo")], strategy="combined"
        )
        await conn.aclose()
    assert [r.get("upgrade") for r in server.requests] == ["other, echo"] * 2
    assert [a.offered for a in conn.attempts] == [("other", "echo")] * 2


async def test_tls_upgrade_offer_is_not_followed_to_https(
    nursery: trio.Nursery,
) -> None:
    # An upgrade to TLS (RFC 2817) cannot be offered over TLS: the redirect
    # stays the refusal, and nothing is sent to the https server.
    secure = await start_routes(nursery, lambda t: None)
    plain = await start_routes(
        nursery, lambda t: redirect(301, secure.url("/", scheme="https"))
    )
    with trio.fail_after(10), pytest.raises(UpgradeRefused) as info:
        await trio_upgrade.upgrade(plain.url(), "TLS/1.2")
    assert type(info.value) is UpgradeRefused
    assert info.value.status_code == 301
    assert isinstance(info.value.__cause__, ValueError)
    assert "TLS already" in str(info.value.__cause__)
    assert secure.opened == 0
