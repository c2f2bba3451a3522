"""RFC 8441's 2xx is checked for subprotocol and extensions as a 101 is.

The HTTP/1.1 upgrade and WebSocket over HTTP/2 share one negotiated-headers
check (``check_negotiation``): the same answer gives the same verdict, the
same message and the same expected/received on both paths.
"""

from __future__ import annotations

import pytest
import trio
from h2_helpers import h2c_server

import trio_upgrade
from trio_upgrade import InvalidUpgrade, ProtocolError, WebSocket
from trio_upgrade._sansio._messages import Headers, Response
from trio_upgrade._sansio._ws_handshake import (
    accept_key,
    check_negotiation,
    check_switch,
)
from trio_upgrade.testing._http2 import H2CServerProtocol, H2Request, H2ServerStream

pytestmark = pytest.mark.timeout(30)

_KEY = "dGhlIHNhbXBsZSBub25jZQ=="

#: (answer fields, offered subprotocols, require_subprotocol)
CASES = {
    "whitespace": ([("sec-websocket-protocol", " chat ")], ["chat"], False),
    "repeated": (
        [("sec-websocket-protocol", "chat"), ("sec-websocket-protocol", "chat")],
        ["chat"],
        False,
    ),
    "unoffered-extension": (
        [("sec-websocket-extensions", "x-webkit-deflate-frame")],
        [],
        False,
    ),
    "unoffered-subprotocol": ([("sec-websocket-protocol", "other")], ["chat"], False),
    "none-chosen": ([], ["chat"], True),
}


def _http11_verdict(
    fields: list[tuple[str, str]], offered: list[str], require: bool
) -> tuple[str, str, str] | str | None:
    head = [
        ("upgrade", "websocket"),
        ("connection", "upgrade"),
        ("sec-websocket-accept", accept_key(_KEY)),
        *fields,
    ]
    response = Response(101, headers=Headers(head))
    try:
        switch = check_switch(
            response, _KEY, offered, None, require_subprotocol=require
        )
    except InvalidUpgrade as exc:
        return (str(exc), exc.expected, exc.received)
    return switch.subprotocol


async def _http2_verdict(
    fields: list[tuple[str, str]], offered: list[str], require: bool
) -> tuple[str, str, str] | str | None:
    async def answer(request: H2Request, stream: H2ServerStream) -> None:
        # Send the fields as they are: no normalization (which would strip
        # the whitespace) and no validation of what the server sends.
        config = request.connection.h2.config
        config.normalize_outbound_headers = False
        config.validate_outbound_headers = False
        await stream.respond(200, fields)
        await stream.receive_some()

    protocol = H2CServerProtocol(connect={"websocket": answer})
    async with h2c_server(protocol) as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                options = WebSocket(subprotocols=offered, require_subprotocol=require)
                try:
                    ws = await conn.websocket("/", protocol=options)
                except InvalidUpgrade as exc:
                    return (str(exc), exc.expected, exc.received)
                subprotocol = ws.subprotocol
                await ws.aclose()
                return subprotocol


@pytest.mark.parametrize("case", sorted(set(CASES) - {"whitespace"}))
async def test_both_paths_agree(case: str) -> None:
    fields, offered, require = CASES[case]
    http11 = _http11_verdict(fields, offered, require)
    http2 = await _http2_verdict(fields, offered, require)
    assert http2 == http11


async def test_whitespace_around_the_chosen_subprotocol_is_not_part_of_it() -> None:
    fields, offered, require = CASES["whitespace"]
    assert _http11_verdict(fields, offered, require) == "chat"
    # The shared check says the same of a 2xx...
    response = Response(200, headers=Headers(fields), http_version="2")
    switch = check_negotiation(response, offered, None, require_subprotocol=require)
    assert switch.subprotocol == "chat"
    # ...but over HTTP/2 such a field never reaches it: RFC 9113 §8.2.1
    # makes it malformed, and h2 ends the connection.
    with pytest.raises(ProtocolError, match="whitespace"):
        await _http2_verdict(fields, offered, require)


@pytest.mark.parametrize("case", ["repeated", "unoffered-extension"])
async def test_refused_on_both_paths(case: str) -> None:
    fields, offered, require = CASES[case]
    assert isinstance(_http11_verdict(fields, offered, require), tuple)
    assert isinstance(await _http2_verdict(fields, offered, require), tuple)
