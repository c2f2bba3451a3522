"""Upgrades to TLS (RFC 2817), as printers serve them, over real loopback.

The client offers ``Upgrade: TLS/1.2``, gets a :class:`~trio_upgrade.RawStream`
and starts TLS on it with ``trio.SSLStream``; the test server's
:class:`~trio_upgrade.testing.TLSServerProtocol` runs the server side and
answers the upgrading request over TLS (RFC 2817 §3.3).
"""

from __future__ import annotations

import os
import ssl

import h11
import pytest
import trio
import trustme

import trio_upgrade
from trio_upgrade import TLS, ProtocolNotOffered, Raw, RawStream, UpgradeRefused
from trio_upgrade._resolve import resolve_protocols
from trio_upgrade.testing import (
    Hang,
    Reply,
    Script,
    Send,
    SendSlowly,
    TLSServerProtocol,
    open_upgrade_server,
    switching_response,
)

pytestmark = pytest.mark.timeout(30)

#: A TLS fatal alert record, handshake_failure (RFC 8446 §6): what a server
#: that gives up on TLS right after its 101 sends.
HANDSHAKE_FAILURE_ALERT = bytes([21, 3, 3, 0, 2, 2, 40])


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    return context


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def answered(request: trio_upgrade.Request) -> h11.Connection:
    """An h11 client that has sent ``request``, the one the server answers.

    RFC 2817 §3.3: after the handshake the server answers the request that
    asked for the upgrade, over TLS; h11 must know that request was sent.
    """
    conn = h11.Connection(h11.CLIENT)
    hop = {"upgrade", "connection"}
    fields = [(n, v) for n, v in request.headers if n.lower() not in hop]
    conn.send(h11.Request(method=request.method, target=request.target, headers=fields))
    conn.send(h11.EndOfMessage())
    return conn


async def read_response(
    tls: trio.SSLStream[RawStream], conn: h11.Connection
) -> tuple[h11.Response, bytes]:
    head: h11.Response | None = None
    body = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await tls.receive_some())
        elif isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, body
        else:
            raise AssertionError(f"unexpected {event!r}")


async def start_tls(
    raw: RawStream, context: ssl.SSLContext, hostname: str = "localhost"
) -> trio.SSLStream[RawStream]:
    tls = trio.SSLStream(raw, context, server_hostname=hostname)
    await tls.do_handshake()
    return tls


async def test_upgrade_then_tls_with_data_both_ways(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async with open_upgrade_server([TLSServerProtocol(server_context)]) as server:
        raw = await trio_upgrade.upgrade(server.url("/printers/p1"), ["TLS/1.2"])
        assert isinstance(raw, RawStream)
        assert raw.protocol == "TLS/1.2"
        assert raw.handshake_request is not None
        assert raw.handshake_request.headers.get("upgrade") == "TLS/1.2"
        async with await start_tls(raw, client_context) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            conn = answered(raw.handshake_request)
            head, body = await read_response(tls, conn)
            assert head.status_code == 200
            assert body == f"GET /printers/p1 over {tls.version()}\n".encode()
            # Client to server and back, larger than one TLS record.
            payload = os.urandom(100_000)
            conn.start_next_cycle()
            request = h11.Request(
                method="POST",
                target="/ipp/print",
                headers=[("Host", "localhost"), ("Content-Length", str(len(payload)))],
            )
            await tls.send_all(
                conn.send(request)
                + conn.send(h11.Data(data=payload))  # type: ignore[operator]
                + conn.send(h11.EndOfMessage())
            )
            head, body = await read_response(tls, conn)
            assert head.status_code == 200
            assert body == payload
        (record,) = await server.wait_closed()
    assert record.protocol == "TLS/1.2"
    # The client's close_notify ended the exchange (TLS's end of stream).
    assert record.error is None
    assert record.done


async def test_wrong_hostname_fails_the_handshake_clearly(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async with open_upgrade_server([TLSServerProtocol(server_context)]) as server:
        raw = await trio_upgrade.upgrade(server.url(), ["TLS/1.2"])
        assert isinstance(raw, RawStream)
        tls = trio.SSLStream(raw, client_context, server_hostname="printer.example")
        with pytest.raises(trio.BrokenResourceError) as info:
            await tls.do_handshake()
        await tls.aclose()
        (record,) = await server.wait_closed()
    cause = info.value.__cause__
    assert isinstance(cause, ssl.SSLCertVerificationError)
    assert "printer.example" in cause.verify_message
    assert record.error is not None
    assert record.error.startswith("TLS handshake failed")


async def test_an_untrusted_certificate_fails_the_handshake(
    server_context: ssl.SSLContext,
) -> None:
    async with open_upgrade_server([TLSServerProtocol(server_context)]) as server:
        raw = await trio_upgrade.upgrade(server.url(), ["TLS/1.2"])
        assert isinstance(raw, RawStream)
        tls = trio.SSLStream(
            raw, ssl.create_default_context(), server_hostname="localhost"
        )
        with pytest.raises(trio.BrokenResourceError) as info:
            await tls.do_handshake()
        await tls.aclose()
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


@pytest.mark.parametrize(
    "upgrade",
    [
        "TLS/1.0, HTTP/1.1",  # RFC 2817 3.3's own example: the stack, bottom up
        "TLS/1.3,TLS/1.2",  # libcups: the versions it speaks
        "tls/1.2",
    ],
)
async def test_a_101_naming_the_tls_stack_is_accepted(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, upgrade: str
) -> None:
    protocol = TLSServerProtocol(server_context, upgrade=upgrade)
    async with open_upgrade_server([protocol]) as server:
        raw = await trio_upgrade.upgrade(server.url(), ["TLS/1.2"])
        assert isinstance(raw, RawStream)
        assert raw.handshake_response is not None
        assert raw.handshake_response.headers.get_all("upgrade") == [upgrade]
        assert raw.handshake_request is not None
        async with await start_tls(raw, client_context) as tls:
            head, _ = await read_response(tls, answered(raw.handshake_request))
            assert head.status_code == 200


@pytest.mark.parametrize(
    ("offer", "upgrade"),
    [
        # Raw keeps the strict rule: exactly one token.
        (Raw("TLS/1.2"), "TLS/1.2, HTTP/1.1"),
        # TLS must be the bottom layer, and the rest HTTP/1.x or TLS.
        (TLS(), "HTTP/1.1, TLS/1.2"),
        (TLS(), "TLS/1.2, websocket"),
    ],
)
async def test_other_lists_of_protocols_are_still_refused(
    offer: Raw, upgrade: str
) -> None:
    head = switching_response(upgrade)
    async with open_upgrade_server(["TLS/1.2"], script=Script([Send(head)])) as server:
        with pytest.raises(ProtocolNotOffered, match="several"):
            await trio_upgrade.upgrade(server.url(), offer)


@pytest.mark.parametrize("slowly", [False, True], ids=["same-read", "byte-by-byte"])
async def test_bytes_right_after_the_101_reach_the_tls_layer(
    client_context: ssl.SSLContext, slowly: bool
) -> None:
    # TLS starts with the client, so a conforming server sends nothing after
    # its 101 until the ClientHello: a ServerHello cannot share a read with
    # the 101. What can is a server that gives up at once: its alert, sent
    # in the same write as the 101 head (with libcups' Content-Length: 0).
    # Lost, the client would wait for a ServerHello that never comes.
    data = switching_response(
        "TLS/1.2", [("Content-Length", "0")], trailing=HANDSHAKE_FAILURE_ALERT
    )
    step = SendSlowly(data) if slowly else Send(data)
    async with open_upgrade_server(
        ["TLS/1.2"], script=Script([step, Hang()])
    ) as server:
        raw = await trio_upgrade.upgrade(server.url(), ["TLS/1.2"])
        assert isinstance(raw, RawStream)
        tls = trio.SSLStream(raw, client_context, server_hostname="localhost")
        with trio.fail_after(10), pytest.raises(trio.BrokenResourceError) as info:
            await tls.do_handshake()
        await tls.aclose()
    cause = info.value.__cause__
    assert isinstance(cause, ssl.SSLError)
    assert "ALERT_HANDSHAKE_FAILURE" in str(cause.reason)


@pytest.mark.parametrize(
    "fallback",
    [None, Reply(400, b"no TLS here\n"), Reply(501, b"501 - Not Implemented\n")],
    ids=["426", "400", "501"],
)
async def test_a_server_that_refuses_gives_upgrade_refused(
    fallback: Reply | None,
) -> None:
    async with open_upgrade_server(["echo"], fallback=fallback) as server:
        with pytest.raises(UpgradeRefused) as info:
            await trio_upgrade.upgrade(server.url(), ["TLS/1.2"])
    expected = 426 if fallback is None else fallback.status_code
    assert info.value.status_code == expected
    if fallback is not None:
        assert info.value.body == fallback.body
    assert info.value.attempts[0].offered == ("TLS/1.2",)


def test_tls_tokens_resolve_to_tls() -> None:
    for token in ("TLS/1.2", "tls/1.0", "TLS"):
        (protocol,) = resolve_protocols([token])
        assert type(protocol) is TLS
        assert protocol.token == token
    (other,) = resolve_protocols(["TLSish/1"])
    assert type(other) is Raw


def test_bad_tls_arguments_are_clear_errors(server_context: ssl.SSLContext) -> None:
    with pytest.raises(ValueError, match="not a TLS upgrade token"):
        TLS("websocket")
    with pytest.raises(ValueError, match="not a TLS upgrade token"):
        TLSServerProtocol(server_context, "h2c")
    with pytest.raises(ValueError, match="invalid upgrade protocol"):
        TLS("TLS/1 .2")


async def test_tls_over_https_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="TLS already"):
        await trio_upgrade.upgrade("https://127.0.0.1:1/", ["TLS/1.2"])
