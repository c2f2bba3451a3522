"""Client: default options, and the per-origin memory of accepted and refused.

On loopback against the embedded server, counting the requests it receives:
the second call to an origin goes straight to the protocol that worked,
expiry (a fake clock) restores the full offer, the bound evicts, and a
remembered protocol that is now refused falls back within the same call.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator, Sequence

import pytest
import trio
import trustme
from alpn_support import alpn_server, trust_by_default

import trio_upgrade
from trio_upgrade import (
    Client,
    InvalidURL,
    Limits,
    RawStream,
    Remembered,
    UpgradeRefused,
    UpgradeTimeout,
    WebSocketConnection,
)
from trio_upgrade._sansio._errors import Attempt
from trio_upgrade._sansio._messages import Request
from trio_upgrade._upgrade import Record, parse_target
from trio_upgrade.testing import (
    Hang,
    ReadRequest,
    Reply,
    Script,
    WebSocketServerProtocol,
    open_upgrade_server,
)

pytestmark = pytest.mark.timeout(30)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tokens(requests: Sequence[Request]) -> list[str | None]:
    return [r.headers.get("upgrade") for r in requests]


async def test_second_call_goes_straight_to_what_worked() -> None:
    client = Client()
    async with open_upgrade_server(["echo"]) as server:
        url = server.url()
        with trio.fail_after(10):
            for _ in range(2):
                conn = await client.upgrade(url, ["websocket", "echo"])
                assert isinstance(conn, RawStream)
                await conn.aclose()
    # First call: websocket refused (426), echo accepted; second: echo only.
    assert tokens(server.requests) == ["websocket", "echo", "echo"]
    assert client.remembered(url) == Remembered("echo", frozenset({"websocket"}))
    # The same server by its ws:// name is the same origin.
    assert client.remembered(url.replace("http://", "ws://")) is not None


async def test_upgrade_itself_stays_stateless() -> None:
    async with open_upgrade_server(["echo"]) as server:
        url = server.url()
        with trio.fail_after(10):
            for _ in range(2):
                conn = await trio_upgrade.upgrade(url, ["websocket", "echo"])
                await conn.aclose()
    assert tokens(server.requests) == ["websocket", "echo"] * 2


async def test_expiry_restores_the_full_offer() -> None:
    clock = FakeClock()
    client = Client(ttl=60, clock=clock)
    async with open_upgrade_server(["echo"]) as server:
        url = server.url()

        async def call() -> None:
            with trio.fail_after(10):
                conn = await client.upgrade(url, ["websocket", "echo"])
                await conn.aclose()

        await call()
        clock.now += 59.9
        await call()  # still remembered: straight to echo
        clock.now += 0.2  # 60.1 s after websocket was refused
        # The refusal expired; the acceptance, seen again at 59.9 s, did not.
        assert client.remembered(url) == Remembered("echo", frozenset())
        await call()
    assert tokens(server.requests) == ["websocket", "echo", "echo", "websocket", "echo"]


async def test_the_bound_evicts_the_least_recently_used() -> None:
    client = Client(max_origins=2)
    async with (
        open_upgrade_server(["echo"]) as one,
        open_upgrade_server(["echo"]) as two,
    ):
        # Three origins: 127.0.0.1 and localhost are two names, two origins.
        urls = [one.url(), two.url(), one.url().replace("127.0.0.1", "localhost")]
        with trio.fail_after(10):

            async def use(url: str) -> None:
                await (await client.upgrade(url, ["websocket", "echo"])).aclose()

            await use(urls[0])
            await use(urls[1])
            # Using the first again makes the second the least recent.
            await use(urls[0])
            # Looking does not count as a use.
            assert client.remembered(urls[1]) is not None
            await use(urls[2])
            assert client.remembered(urls[0]) is not None
            assert client.remembered(urls[1]) is None
            assert client.remembered(urls[2]) is not None
            # A forgotten origin is offered the full list again.
            before = len(one.requests) + len(two.requests)
            await use(urls[1])
            assert len(one.requests) + len(two.requests) == before + 2
            assert client.remembered(urls[0]) is None  # now the least recent
    assert "remembering 2 of at most 2 origins" in repr(client)


async def test_remembered_protocol_now_refused_falls_back_in_the_same_call() -> None:
    allowed = {"echo"}

    def choose(offered: Sequence[str], request: Request) -> str | None:
        return next((t for t in offered if t in allowed), None)

    client = Client()
    offer = ["websocket", "echo", "other"]
    async with open_upgrade_server(["echo", "other"], choose=choose) as server:
        url = server.url()
        with trio.fail_after(10):
            await (await client.upgrade(url, offer)).aclose()
            assert client.remembered(url) == Remembered(
                "echo", frozenset({"websocket"})
            )
            allowed = {"other"}  # the server was reconfigured
            conn = await client.upgrade(url, offer)
            await conn.aclose()
    assert isinstance(conn, RawStream)
    assert conn.protocol == "other"
    # Second call: echo (first now) refused, then other, in the same call;
    # websocket, refused before, last and not needed.
    assert tokens(server.requests) == ["websocket", "echo", "echo", "other"]
    assert client.remembered(url) == Remembered(
        "other", frozenset({"websocket", "echo"})
    )


async def test_refused_protocols_are_still_offered_last() -> None:
    client = Client()
    async with open_upgrade_server(["echo"]) as server:
        url = server.url()
        with trio.fail_after(10):
            for _ in range(2):
                with pytest.raises(UpgradeRefused):
                    await client.upgrade(url, ["websocket", "h2c"])
    # Nothing is skipped: all refused, all offered again, in order.
    assert tokens(server.requests) == ["websocket", "h2c"] * 2
    remembered = client.remembered(url)
    assert remembered == Remembered(None, frozenset({"websocket", "h2c"}))


async def test_a_preferred_protocol_never_tried_is_tried_first() -> None:
    client = Client()
    ws = WebSocketServerProtocol()
    async with open_upgrade_server([ws, "echo"]) as server:
        url = server.url()
        with trio.fail_after(10):
            await (await client.upgrade(url, ["echo"])).aclose()
            conn = await client.upgrade(url, ["websocket", "echo"])
            await conn.aclose()
    assert isinstance(conn, WebSocketConnection)
    assert client.remembered(url) == Remembered("websocket", frozenset())


@pytest.mark.parametrize("status", [401, 403, 404, 302, 503])
async def test_statuses_about_something_else_are_not_remembered(status: int) -> None:
    # A redirect not followed is a refusal like the others (followed, this
    # one would be a loop: a RedirectError, not remembered either).
    client = Client(follow_redirects=False)
    reply = Reply(status, b"no", [("Location", "/x")] if status == 302 else [])
    async with open_upgrade_server(["echo"], fallback=reply) as server:
        url = server.url()
        with trio.fail_after(10), pytest.raises(UpgradeRefused):
            await client.upgrade(url, ["websocket"])
    assert client.remembered(url) is None


async def test_timeouts_are_not_remembered() -> None:
    client = Client(limits=Limits(handshake_timeout=0.1))
    script = Script([ReadRequest(), Hang()])
    async with open_upgrade_server(script=script) as server:
        url = server.url()
        with trio.fail_after(10), pytest.raises(UpgradeTimeout):
            await client.upgrade(url, ["echo"])
    assert client.remembered(url) is None


@pytest.fixture
def ca(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[trustme.CA]:
    """A CA that the library's default TLS contexts trust during the test."""
    ca = trustme.CA()
    yield from (ca for _ in trust_by_default(ca, tmp_path, monkeypatch))


async def test_h2_not_selected_is_remembered(ca: trustme.CA) -> None:
    client = Client()
    ws = WebSocketServerProtocol()
    async with alpn_server(ca, ["http/1.1"], [ws]) as server:
        url = server.url()
        with trio.fail_after(10):
            for _ in range(2):
                conn = await client.upgrade(url, ["h2", "websocket"])
                await conn.aclose()
                assert isinstance(conn, WebSocketConnection)
    assert client.remembered(url) == Remembered("websocket", frozenset({"h2"}))
    # One TLS connection per call.
    assert len(server.selected) == 2


async def test_h2_refused_goes_last_on_the_next_call(ca: trustme.CA) -> None:
    # A server that answers h2 when asked: after h2 was remembered as refused
    # (forced here), ["h2", "websocket"] asks for websocket first, on a
    # connection that offers http/1.1 only by ALPN.
    client = Client()
    ws = WebSocketServerProtocol()
    async with alpn_server(ca, protocols=[ws]) as server:
        url = server.url()
        with trio.fail_after(10):
            record = _record_refusal(client, url, "h2")
            conn = await client.upgrade(url, ["h2", "websocket"])
            await conn.aclose()
    assert record
    assert isinstance(conn, WebSocketConnection)
    assert server.selected == ["http/1.1"]


def _record_refusal(client: Client, url: str, token: str) -> bool:
    """Teach ``client`` that ``url``'s origin refused ``token`` (as a 426 would)."""
    record = Record([Attempt([token], 426, None)])
    client._learn(parse_target(url), record)
    remembered = client.remembered(url)
    return remembered is not None and token in remembered.refused


async def test_concurrent_calls_share_the_memory() -> None:
    client = Client()
    async with open_upgrade_server(["echo"]) as server:
        url = server.url()
        with trio.fail_after(10):

            async def call() -> None:
                await (await client.upgrade(url, ["websocket", "echo"])).aclose()

            async with trio.open_nursery() as nursery:
                for _ in range(5):
                    nursery.start_soon(call)
            await call()
    # The five ran at once, each learning the same; the sixth went straight.
    assert tokens(server.requests)[-1:] == ["echo"]
    assert len(server.requests) == 11
    assert client.remembered(url) == Remembered("echo", frozenset({"websocket"}))


# -- options ---------------------------------------------------------------------


async def test_default_options_and_header_merge() -> None:
    client = Client(
        headers=[
            ("X-Trace", "a"),
            ("X-Trace", "b"),
            ("Authorization", "Bearer s3cret"),
        ],
        strategy="combined",
    )
    async with open_upgrade_server(["echo"]) as server:
        url = server.url()
        with trio.fail_after(10):
            conn = await client.upgrade(
                url, ["websocket", "echo"], headers={"x-trace": "call"}
            )
            await conn.aclose()
            # A call's option wins over the default.
            with pytest.raises(UpgradeRefused):
                await client.upgrade(url, ["websocket"], strategy="sequential")
    first = server.requests[0]
    assert first.headers.get("upgrade") == "websocket, echo"  # combined
    assert first.headers.get_all("x-trace") == ["call"]
    assert first.headers.get("authorization") == "Bearer s3cret"
    assert server.requests[1].headers.get_all("x-trace") == ["a", "b"]
    assert "s3cret" not in repr(client)


def test_options_merge_without_a_connection() -> None:
    client = Client(limits=Limits(max_attempts=2), proxy="http://p.test:3128")
    merged = client.options(proxy=None, headers={"A": "1"})
    assert merged["limits"] == Limits(max_attempts=2)
    assert merged["proxy"] is None
    assert merged["headers"] == [("A", "1")]
    assert "headers" not in client.options()


async def test_open_upgrade_uses_the_defaults_and_memory() -> None:
    client = Client(headers={"Origin": "http://o.test"})
    async with open_upgrade_server([WebSocketServerProtocol()]) as server:
        url = server.url()
        with trio.fail_after(10):
            async with client.open_upgrade(url, ["echo", "websocket"]) as ws:
                assert isinstance(ws, WebSocketConnection)
                await ws.send("hi")
                assert await ws.receive() == "hi"
            async with client.open_upgrade(url, ["echo", "websocket"]) as ws:
                assert isinstance(ws, WebSocketConnection)
    assert tokens(server.requests) == ["echo", "websocket", "websocket"]
    assert server.requests[0].headers.get("origin") == "http://o.test"


async def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="transport"):
        Client(transport=None)
    with pytest.raises(TypeError, match="bogus"):
        Client(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="ttl"):
        Client(ttl=0)
    with pytest.raises(ValueError, match="ttl"):
        Client(ttl=float("nan"))
    with pytest.raises(ValueError, match="max_origins"):
        Client(max_origins=0)
    with pytest.raises(ValueError, match="strategy"):
        Client(strategy="parallel")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="control characters"):
        Client(headers={"X": "a\r\nb"})
    with pytest.raises(InvalidURL):
        Client(proxy="ftp://user:pw@p.test/")
    with pytest.raises(TypeError, match=r"^upgrade\(\) got .* 'bogus'"):
        await Client().upgrade("ws://h/", "websocket", bogus=1)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="bogus"):
        Client().open_upgrade("ws://h/", "websocket", bogus=1)  # type: ignore[call-overload]


def test_forget() -> None:
    client = Client()
    assert client.remembered("http://h.test/") is None
    client.forget("http://h.test/")
    client.forget()
