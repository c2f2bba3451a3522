"""HTTP/2 conveniences: ``HTTP2Response.text`` and ``.json()``, absolute URLs."""

from __future__ import annotations

import json

import pytest
import trio
from h2_helpers import h2c_server

import trio_upgrade
from trio_upgrade import InvalidURL
from trio_upgrade.testing._h2_server import H2Handler, H2Reply, H2Request
from trio_upgrade.testing._http2 import H2CServerProtocol

pytestmark = pytest.mark.timeout(30)

BODIES: dict[str, tuple[bytes, str | None]] = {
    "/utf8": ("héllo €".encode(), "text/plain; charset=utf-8"),
    "/latin1": ("héllo".encode("latin-1"), 'text/plain; Charset="ISO-8859-1"'),
    "/none": ("héllo".encode(), "text/plain"),
    "/bad-charset": ("héllo".encode(), "text/plain; charset=no-such-codec"),
    "/broken": (b"ok \xff\xfe end", "text/plain; charset=utf-8"),
    "/json": (json.dumps({"a": [1, "é"]}).encode(), "application/json"),
    "/json16": (json.dumps({"b": 2}).encode("utf-16"), None),
    "/not-json": (b"<html>", "text/html"),
}


def _routes() -> dict[tuple[str, str], H2Handler]:
    def handler(path: str) -> H2Handler:
        body, content_type = BODIES[path]
        headers = [] if content_type is None else [("content-type", content_type)]

        async def route(request: H2Request) -> H2Reply:
            return H2Reply(200, body, headers)

        return route

    return {("GET", path): handler(path) for path in BODIES}


async def test_text_uses_the_charset_and_defaults_to_utf8() -> None:
    protocol = H2CServerProtocol(routes=_routes())
    async with h2c_server(protocol) as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                await conn.upgrade_response.aclose()
                expected = {
                    "/utf8": ("utf-8", "héllo €"),
                    "/latin1": ("iso8859-1", "héllo"),
                    "/none": ("utf-8", "héllo"),
                    "/bad-charset": ("utf-8", "héllo"),
                    "/broken": ("utf-8", "ok \ufffd\ufffd end"),
                }
                for path, (encoding, text) in expected.items():
                    response = await conn.request("GET", path)
                    assert (response.encoding, response.text) == (encoding, text)
                response = await conn.request("GET", "/json")
                assert response.json() == {"a": [1, "é"]}
                response = await conn.request("GET", "/json16")
                assert response.json() == {"b": 2}
                response = await conn.request("GET", "/not-json")
                with pytest.raises(json.JSONDecodeError):
                    response.json()
                # Streamed: nothing to decode until the body is read.
                async with conn.stream("GET", "/json") as streamed:
                    with pytest.raises(RuntimeError, match="read"):
                        streamed.text  # noqa: B018
                    with pytest.raises(RuntimeError, match="read"):
                        streamed.json()
                    await streamed.read()
                    assert streamed.json(parse_int=str) == {"a": ["1", "é"]}


async def test_requests_by_absolute_url_on_the_same_origin() -> None:
    async with h2c_server() as (server, _):
        with trio.fail_after(10):
            url = server.url()  # http://127.0.0.1:PORT/
            async with await trio_upgrade.upgrade(url, "h2c") as conn:
                first = conn.upgrade_response
                await first.read()
                assert first.text == "ok"
                response = await conn.request("GET", url + "bytes/3")
                assert response.content == b"\x00\x01\x02"
                response = await conn.request(
                    "POST", f"HTTP://127.0.0.1:{server.port}/echo?x=1#f", body=b"e"
                )
                assert response.text == "e"
                async with conn.stream("GET", url) as streamed:
                    assert await streamed.read() == b"ok"
                for other in [
                    f"https://127.0.0.1:{server.port}/",  # another scheme
                    f"ws://127.0.0.1:{server.port}/",
                    f"http://localhost:{server.port}/",  # another host
                    f"http://127.0.0.1:{server.port + 1}/",  # another port
                ]:
                    with pytest.raises(ValueError, match="not on this connection"):
                        await conn.request("GET", other)
                with pytest.raises(InvalidURL, match="credentials") as info:
                    await conn.request(
                        "GET", f"http://u:s3cret@127.0.0.1:{server.port}/"
                    )
                assert "s3cret" not in str(info.value)
                # The connection is still usable after the refusals.
                response = await conn.request("GET", "/")
                assert response.text == "ok"
