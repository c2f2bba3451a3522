"""The WebSocket opening handshake: what is offered, and how strictly the 101
is checked (RFC 6455 §4.1, RFC 7692 §7.1), sans-I/O and over loopback."""

from __future__ import annotations

import base64

import pytest
import trio

import trio_upgrade
from trio_upgrade import (
    Headers,
    InvalidUpgrade,
    ProtocolNotOffered,
    Response,
    WebSocket,
)
from trio_upgrade._sansio._ws_handshake import (
    DeflateParams,
    ExtensionError,
    Switch,
    accept_key,
    check_switch,
    parse_deflate_params,
    parse_extensions,
    valid_key,
)
from trio_upgrade._websocket import Deflate
from trio_upgrade.testing import Hang, Script, Send, open_upgrade_server, response_head
from trio_upgrade.testing._websocket import WebSocketServerProtocol

pytestmark = pytest.mark.timeout(30)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
OFFER = Deflate().offer()


def switch(*fields: tuple[str, str], accept: str = ACCEPT) -> Response:
    base = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
    return Response(
        101,
        "Switching Protocols",
        Headers([*base, ("Sec-WebSocket-Accept", accept), *fields]),
    )


def check(
    response: Response,
    subprotocols: tuple[str, ...] = (),
    deflate: DeflateParams | None = OFFER,
    *,
    require_subprotocol: bool = True,
) -> Switch:
    return check_switch(
        response, KEY, subprotocols, deflate, require_subprotocol=require_subprotocol
    )


def test_accept_key_matches_rfc_example() -> None:
    assert accept_key(KEY) == ACCEPT
    assert valid_key(KEY)
    assert not valid_key("c2hvcnQ=")  # 5 bytes
    assert not valid_key("not base64!")


def test_minimal_valid_switch() -> None:
    result = check(switch(), deflate=None)
    assert result == check(switch(), deflate=OFFER)


@pytest.mark.parametrize(
    ("fields", "received"),
    [
        ([("Upgrade", "WebSocket"), ("Connection", "keep-alive, UPGRADE")], None),
        ([("Upgrade", "websocket"), ("Connection", "upgrade")], None),
    ],
)
def test_tokens_compare_case_insensitively(
    fields: list[tuple[str, str]], received: None
) -> None:
    response = Response(101, "", Headers([*fields, ("Sec-WebSocket-Accept", ACCEPT)]))
    check(response)


@pytest.mark.parametrize(
    ("fields", "expected", "received"),
    [
        (
            [("Upgrade", "websocket"), ("Connection", "Upgrade")],
            f"Sec-WebSocket-Accept: {ACCEPT}",
            "Sec-WebSocket-Accept: (none)",
        ),
        (
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", "x"),
            ],
            f"Sec-WebSocket-Accept: {ACCEPT}",
            "Sec-WebSocket-Accept: x",
        ),
        (
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", ACCEPT),
                ("Sec-WebSocket-Accept", ACCEPT),
            ],
            f"Sec-WebSocket-Accept: {ACCEPT}",
            f"Sec-WebSocket-Accept: {ACCEPT}, {ACCEPT}",
        ),
        (
            [("Connection", "Upgrade"), ("Sec-WebSocket-Accept", ACCEPT)],
            "Upgrade: websocket",
            "Upgrade: (none)",
        ),
        (
            [
                ("Upgrade", "websocket, h2c"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", ACCEPT),
            ],
            "Upgrade: websocket",
            "Upgrade: websocket, h2c",
        ),
        (
            [("Upgrade", "websocket"), ("Sec-WebSocket-Accept", ACCEPT)],
            "Connection: upgrade",
            "Connection: (none)",
        ),
        (
            [
                ("Upgrade", "websocket"),
                ("Connection", "keep-alive"),
                ("Sec-WebSocket-Accept", ACCEPT),
            ],
            "Connection: upgrade",
            "Connection: keep-alive",
        ),
    ],
)
def test_required_fields(
    fields: list[tuple[str, str]], expected: str, received: str
) -> None:
    with pytest.raises(InvalidUpgrade) as info:
        check(Response(101, "", Headers(fields)))
    assert info.value.expected == expected
    assert info.value.received == received
    assert info.value.response is not None


def test_subprotocol_rules() -> None:
    chosen = check(switch(("Sec-WebSocket-Protocol", "chat")), ("soap", "chat"))
    assert chosen.subprotocol == "chat"
    with pytest.raises(InvalidUpgrade, match="not offered") as info:
        check(switch(("Sec-WebSocket-Protocol", "other")), ("soap", "chat"))
    assert info.value.expected == "one of soap, chat"
    with pytest.raises(InvalidUpgrade, match="not offered") as info:
        check(switch(("Sec-WebSocket-Protocol", "chat")))
    assert info.value.expected == "no Sec-WebSocket-Protocol"
    with pytest.raises(InvalidUpgrade, match="not offered"):
        check(switch(("Sec-WebSocket-Protocol", "soap, chat")), ("soap", "chat"))
    with pytest.raises(InvalidUpgrade, match="chose none"):
        check(switch(), ("chat",))
    # RFC 6455 allows a server to pick none; browsers do not.
    none = check(switch(), ("chat",), require_subprotocol=False)
    assert none.subprotocol is None
    # Subprotocol names compare exactly.
    with pytest.raises(InvalidUpgrade):
        check(switch(("Sec-WebSocket-Protocol", "Chat")), ("chat",))


@pytest.mark.parametrize(
    "value",
    [
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
        "permessage-deflate;server_max_window_bits=12",
        'permessage-deflate; server_max_window_bits="10"',
        "PerMessage-Deflate; Server_Max_Window_Bits=9; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=8; client_max_window_bits=9",
        "permessage-deflate; server_max_window_bits=12; server_no_context_takeover",
        # RFC 7692 §7.1.2.2: offered without a value, the server picks it.
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=15",
        "permessage-deflate; client_max_window_bits=8; server_max_window_bits=12",
    ],
)
def test_acceptable_deflate_answers(value: str) -> None:
    result = check(switch(("Sec-WebSocket-Extensions", value)))
    assert result.deflate is not None
    assert result.extensions == (value,)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("x-webkit-deflate-frame", "not offered"),
        (
            "permessage-deflate; server_max_window_bits=12, "
            "permessage-deflate; server_max_window_bits=12",
            "not offered",
        ),
        ("permessage-deflate", "server_max_window_bits was requested"),
        ("permessage-deflate; server_max_window_bits=13", "exceeds"),
        (
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits",
            "from 8 to 15",
        ),
        (
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=16",
            "from 8 to 15",
        ),
        (
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=7",
            "from 8 to 15",
        ),
        (
            "permessage-deflate; client_max_window_bits=9; server_max_window_bits=12; "
            "client_max_window_bits=9",
            "twice",
        ),
        ("permessage-deflate; server_max_window_bits=7", "from 8 to 15"),
        ("permessage-deflate; server_max_window_bits=012", "from 8 to 15"),
        ("permessage-deflate; server_max_window_bits", "from 8 to 15"),
        (
            "permessage-deflate; server_max_window_bits=12; server_max_window_bits=12",
            "twice",
        ),
        (
            "permessage-deflate; server_max_window_bits=12; mystery=1",
            "unknown parameter",
        ),
        (
            "permessage-deflate; server_max_window_bits=12; "
            "client_no_context_takeover=1",
            "no value",
        ),
        ("permessage-deflate; server_max_window_bits=12 junk", "malformed"),
        ('permessage-deflate; server_max_window_bits="1 2"', "malformed"),
    ],
)
def test_unacceptable_deflate_answers(value: str, match: str) -> None:
    with pytest.raises(InvalidUpgrade, match=match) as info:
        check(switch(("Sec-WebSocket-Extensions", value)))
    assert info.value.received == value
    expected = (
        "a valid extension list" if match == "malformed" else OFFER.header_value()
    )
    assert info.value.expected == expected


def test_extensions_when_none_offered() -> None:
    with pytest.raises(InvalidUpgrade, match="not offered") as info:
        check(switch(("Sec-WebSocket-Extensions", "permessage-deflate")), deflate=None)
    assert info.value.expected == "no extensions"


def test_deflate_offer_rules() -> None:
    asked = DeflateParams(server_no_context_takeover=True)
    with pytest.raises(ExtensionError, match="requested but not agreed"):
        parse_deflate_params([], asked)
    # client_max_window_bits may come back only if offered, no larger.
    with pytest.raises(ExtensionError, match="not offered"):
        parse_deflate_params([("client_max_window_bits", "10")], DeflateParams())
    valueless = DeflateParams(client_max_window_bits=0)
    assert valueless.header_value() == "permessage-deflate; client_max_window_bits"
    agreed = parse_deflate_params([("client_max_window_bits", "15")], valueless)
    assert agreed.client_max_window_bits == 15


def test_parse_extensions_grammar() -> None:
    parsed = parse_extensions(['a; x=1; y="two", , b', "c;z", ' D ; W = "1\\5" '])
    assert parsed[0] == ("a", [("x", "1"), ("y", "two")])
    assert parsed[1] == ("b", [])
    assert parsed[2] == ("c", [("z", None)])
    assert parsed[3] == ("d", [("w", "15")])  # quoted-pair unescaped
    with pytest.raises(ExtensionError):  # an unquoted " is not a token
        parse_extensions(['d; w="q\\"s"'])
    for bad in ["a;", "a; =1", "a b", "a; x=", ";a"]:
        with pytest.raises(ExtensionError):
            parse_extensions([bad])


def test_deflate_settings_validate() -> None:
    with pytest.raises(ValueError, match="9 to 15"):
        Deflate(client_max_window_bits=8)
    with pytest.raises(ValueError, match="8 to 15"):
        Deflate(server_max_window_bits=16)
    with pytest.raises(ValueError, match="level"):
        Deflate(level=10)
    with pytest.raises(ValueError, match="mem_level"):
        Deflate(mem_level=0)


def test_websocket_options_validate() -> None:
    with pytest.raises(ValueError, match="twice"):
        WebSocket(["chat", "chat"])
    with pytest.raises(ValueError, match="invalid upgrade protocol"):
        WebSocket(["bad token"])
    with pytest.raises(ValueError, match="must be a token"):
        WebSocket(["chat/2"])
    with pytest.raises(ValueError, match="max_size"):
        WebSocket(max_size=0)
    with pytest.raises(TypeError, match="max_queue"):
        WebSocket(max_queue=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="compression"):
        WebSocket(compression="gzip")  # type: ignore[arg-type]
    assert WebSocket("chat").subprotocols == ("chat",)
    assert WebSocket(compression=None).compression is None
    assert (
        repr(WebSocket(["a"], compression=None))
        == "WebSocket(subprotocols=['a'], compression=None)"
    )


# -- over loopback ----------------------------------------------------------


async def test_offer_headers() -> None:
    protocol = WebSocketServerProtocol(subprotocols=["chat"])
    async with open_upgrade_server([protocol]) as server:
        offer = WebSocket(["chat", "v2.chat"], origin="https://app.example")
        for _ in range(2):
            with trio.fail_after(5):
                async with await trio_upgrade.upgrade(server.url(), offer):
                    pass
        async with await trio_upgrade.upgrade(
            server.url(), WebSocket(compression=None)
        ):
            pass
    first, second, plain = (r.headers for r in server.requests)
    assert first.get("sec-websocket-version") == "13"
    assert first.get("origin") == "https://app.example"
    assert first.get("sec-websocket-protocol") == "chat, v2.chat"
    assert first.get("sec-websocket-extensions") == (
        "permessage-deflate; client_max_window_bits; server_max_window_bits=12"
    )
    keys = [h.get("sec-websocket-key") for h in (first, second, plain)]
    assert all(k is not None and len(base64.b64decode(k)) == 16 for k in keys)
    assert len(set(keys)) == 3  # fresh per request
    assert "sec-websocket-extensions" not in plain
    assert "sec-websocket-protocol" not in plain


async def test_subprotocol_and_extensions_negotiated() -> None:
    async with open_upgrade_server(
        [WebSocketServerProtocol(subprotocols=["v2.chat"])]
    ) as server:
        with trio.fail_after(5):
            ws = await trio_upgrade.upgrade(
                server.url(), WebSocket(["chat", "v2.chat"])
            )
            async with ws:
                assert ws.subprotocol == "v2.chat"
                assert ws.protocol == "websocket"
                # wsproto's server names the client window it allows.
                assert ws.extensions == (
                    "permessage-deflate; client_max_window_bits=15; "
                    "server_max_window_bits=12",
                )
                assert ws.handshake_response.status_code == 101
                assert ws.handshake_request.headers.get("upgrade") == "websocket"


def _101(*fields: tuple[str, str]) -> bytes:
    return response_head(101, list(fields))


@pytest.mark.parametrize(
    ("reply", "error", "match"),
    [
        (
            _101(
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", "bogus"),
            ),
            InvalidUpgrade,
            "does not match the key",
        ),
        (
            _101(("Connection", "Upgrade"), ("Sec-WebSocket-Accept", ACCEPT)),
            ProtocolNotOffered,
            "does not say which protocol",
        ),
        (
            _101(("Upgrade", "h2c"), ("Connection", "Upgrade")),
            ProtocolNotOffered,
            "not offered",
        ),
        (
            _101(("Upgrade", "websocket"), ("Sec-WebSocket-Accept", ACCEPT)),
            InvalidUpgrade,
            "Connection: upgrade",
        ),
    ],
)
async def test_bad_101_fails_and_closes(
    reply: bytes, error: type[Exception], match: str
) -> None:
    async with open_upgrade_server(script=Script([Send(reply), Hang()])) as server:
        with trio.fail_after(5):
            with pytest.raises(error, match=match):
                await trio_upgrade.upgrade(server.url(), ["websocket"])
            [record] = await server.wait_closed(1)
    assert record.client_closed


@pytest.mark.parametrize(
    ("offer", "headers", "match"),
    [
        (
            WebSocket(),
            [("Sec-WebSocket-Protocol", "chat")],
            "subprotocol that was not offered",
        ),
        (
            WebSocket(["chat"]),
            [("Sec-WebSocket-Protocol", "other")],
            "subprotocol that was not offered",
        ),
        (
            WebSocket(),
            [("Sec-WebSocket-Extensions", "x-custom")],
            "extension 'x-custom'",
        ),
        (
            WebSocket(compression=None),
            [("Sec-WebSocket-Extensions", "permessage-deflate")],
            "extension 'permessage-deflate'",
        ),
        (
            WebSocket(),
            [
                (
                    "Sec-WebSocket-Extensions",
                    "permessage-deflate; server_max_window_bits=15",
                )
            ],
            "exceeds",
        ),
        (WebSocket(["chat"], require_subprotocol=True), [], "chose none"),
    ],
)
async def test_unoffered_choices_fail_and_close(
    offer: WebSocket, headers: list[tuple[str, str]], match: str
) -> None:
    protocol = WebSocketServerProtocol(compression=False, headers=headers)
    async with open_upgrade_server([protocol]) as server:
        with trio.fail_after(5):
            with pytest.raises(InvalidUpgrade, match=match) as info:
                await trio_upgrade.upgrade(server.url(), offer)
            [record] = await server.wait_closed(1)
    assert record.client_closed
    assert info.value.expected is not None
    assert info.value.received is not None


async def test_server_declines_bad_key() -> None:
    protocol = WebSocketServerProtocol()
    assert protocol.accept(trio_upgrade.Request("GET", "/", Headers([]))) is None
    good = [("Sec-WebSocket-Key", KEY), ("Sec-WebSocket-Version", "13")]
    accepted = protocol.accept(trio_upgrade.Request("GET", "/", Headers(good)))
    assert accepted == [("Sec-WebSocket-Accept", ACCEPT)]
    old = [("Sec-WebSocket-Key", KEY), ("Sec-WebSocket-Version", "8")]
    assert protocol.accept(trio_upgrade.Request("GET", "/", Headers(old))) is None
    await trio.lowlevel.checkpoint()


# -- leniency where the RFCs allow it ----------------------------------------


def test_no_subprotocol_is_accepted_by_default() -> None:
    # RFC 6455 §4.1: a server may choose none of the subprotocols offered.
    assert WebSocket(["chat"]).require_subprotocol is False
    assert WebSocket(["chat"], require_subprotocol=True).require_subprotocol


async def test_server_choosing_no_subprotocol_over_loopback() -> None:
    async with open_upgrade_server([WebSocketServerProtocol()]) as server:
        with trio.fail_after(5):
            async with await trio_upgrade.upgrade(
                server.url(), WebSocket(["chat", "v2.chat"])
            ) as ws:
                assert ws.subprotocol is None
                await ws.send("hi")
                assert await ws.receive() == "hi"
            with pytest.raises(InvalidUpgrade, match="chose none"):
                await trio_upgrade.upgrade(
                    server.url(), WebSocket(["chat"], require_subprotocol=True)
                )


async def test_server_choosing_no_subprotocol_over_http2() -> None:
    from h2_helpers import h2c_server

    from trio_upgrade.testing._http2 import H2CServerProtocol, websocket_over_h2

    protocol = H2CServerProtocol(
        connect={
            "websocket": websocket_over_h2(
                WebSocketServerProtocol(subprotocols=["other"], compression=False)
            )
        }
    )
    async with h2c_server(protocol) as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                ws = await conn.websocket("/", protocol=WebSocket(["chat"]))
                async with ws:
                    assert ws.subprotocol is None
                    await ws.send("hi")
                    assert await ws.receive() == "hi"
                with pytest.raises(InvalidUpgrade, match="chose none"):
                    await conn.websocket(
                        "/", protocol=WebSocket(["chat"], require_subprotocol=True)
                    )


def test_client_window_is_offered_without_a_value() -> None:
    # RFC 7692 §7.1.2.2, as browsers and websockets offer it: the server may
    # then name any window from 8 to 15 for us, or none (meaning 15).
    expected = "permessage-deflate; client_max_window_bits; server_max_window_bits=12"
    assert Deflate().offer().header_value() == expected
    assert Deflate(client_max_window_bits=15).offer().header_value() == expected
    nct = Deflate(client_max_window_bits=9, client_no_context_takeover=True)
    assert nct.offer().header_value() == (
        "permessage-deflate; client_no_context_takeover; client_max_window_bits; "
        "server_max_window_bits=12"
    )


_WINDOW_VALUES = [None, "7", "8", "12", "13", "15", "16", "012", '"9"']
_FLAG_VALUES = [None, "1"]
_ABSENT = object()


def _acceptable(params: dict[str, object]) -> bool:
    """RFC 7692 §7.1, for our default offer (``client_max_window_bits``
    without a value, ``server_max_window_bits=12``)."""

    def bits(value: object) -> int | None:
        if not isinstance(value, str):
            return None
        value = value.strip('"')
        if not value.isdigit() or value.startswith("0") or not 8 <= int(value) <= 15:
            return None
        return int(value)

    for flag in ("client_no_context_takeover", "server_no_context_takeover"):
        if params[flag] not in (_ABSENT, None):
            return False
    server = params["server_max_window_bits"]
    server_bits = bits(server)
    if server_bits is None or server_bits > 12:
        return False  # requested: must be echoed, no larger
    client = params["client_max_window_bits"]
    return client is _ABSENT or bits(client) is not None


def _element(params: dict[str, object], order: list[str]) -> str:
    parts = ["permessage-deflate"]
    for name in order:
        value = params[name]
        if value is not _ABSENT:
            parts.append(name if value is None else f"{name}={value}")
    return "; ".join(parts)


def test_every_parameter_combination_is_checked() -> None:
    import itertools
    import random

    from trio_upgrade._sansio._ws_deflate import BoundedDeflate

    names = [
        "client_no_context_takeover",
        "server_no_context_takeover",
        "client_max_window_bits",
        "server_max_window_bits",
    ]
    rng = random.Random(7692)
    flags = [_ABSENT, *_FLAG_VALUES]
    windows = [_ABSENT, *_WINDOW_VALUES]
    accepted = 0
    for values in itertools.product(flags, flags, windows, windows):
        params = dict(zip(names, values, strict=True))
        order = rng.sample(names, len(names))
        element = _element(params, order)
        ok = _acceptable(params)
        extras = [
            ("", ok),
            ("; mystery", False),  # unknown parameter
            (", permessage-deflate", False),  # accepted twice
        ]
        present = [name for name in order if params[name] is not _ABSENT]
        if present:  # a parameter given twice
            extras.append((f"; {_element(params, present[:1])[20:]}", False))
        for extra, still_ok in extras:
            value = element + extra
            if still_ok:
                result = check(switch(("Sec-WebSocket-Extensions", value)))
                assert result.deflate is not None, value
                deflate = BoundedDeflate(Deflate(), 2**20)
                deflate.finalize(value)  # the build step agrees
                accepted += 1
            else:
                with pytest.raises(InvalidUpgrade):
                    check(switch(("Sec-WebSocket-Extensions", value)))
    assert accepted > 50  # the model is not refusing everything


def _deflated(message: bytes, bits: int) -> bytes:
    """``message`` as ``Deflate()`` settings compress it with ``bits``."""
    import zlib

    deflater = zlib.compressobj(6, zlib.DEFLATED, -bits, 5)
    return (deflater.compress(message) + deflater.flush(zlib.Z_SYNC_FLUSH))[:-4]


@pytest.mark.parametrize(
    ("ours", "answer", "used"),
    [
        (12, "", 12),  # no answer: up to 15 allowed, we use our 12
        (12, "; client_max_window_bits=15", 12),
        (15, "; client_max_window_bits=15", 15),
        (12, "; client_max_window_bits=10", 10),
        (9, "; client_max_window_bits=13", 9),
        (12, "; client_max_window_bits=8", None),  # zlib cannot: uncompressed
    ],
)
async def test_client_compresses_with_the_smaller_window(
    ours: int, answer: str, used: int | None
) -> None:
    import random

    from ws_support import read_client_frame, ws_script

    # Repeats at distances that only windows of 15, 12, 10 and 9 bits reach.
    rng = random.Random(ours)
    message = b"".join(rng.randbytes(n) * 2 for n in (16384, 3000, 800, 400))
    outputs = {bits: _deflated(message, bits) for bits in range(9, 16)}
    assert len(set(outputs.values())) >= 4  # the window shows in the bytes
    seen: list[tuple[bool, bytes]] = []

    async def server(stream: trio_upgrade.RawStream) -> None:
        buffer = bytearray()
        opcode, fin, rsv1, payload = await read_client_frame(stream, buffer)
        assert (opcode, fin) == (2, True)
        seen.append((rsv1, payload))
        opcode, *_ = await read_client_frame(stream, buffer)
        assert opcode == 8  # the client's close: the script then closes

    extension = f"permessage-deflate; server_max_window_bits=12{answer}"
    script = ws_script(server, headers=[("Sec-WebSocket-Extensions", extension)])
    async with open_upgrade_server(script=script) as server_:
        with trio.fail_after(10):
            offer = WebSocket(compression=Deflate(client_max_window_bits=ours))
            async with await trio_upgrade.upgrade(server_.url(), offer) as ws:
                assert ws.extensions == (extension,)
                await ws.send(message)
            await server_.wait_closed(1)
    [(rsv1, payload)] = seen
    if used is None:
        assert (rsv1, payload) == (False, message)
    else:
        # Byte for byte what zlib makes with that window (and no larger).
        assert rsv1
        assert payload == outputs[used]
