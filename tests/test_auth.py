"""Basic credentials (``auth=``, URL user info): sent where they belong, shown nowhere.

The servers are real loopback ones (tests/redirect_support.py); the tests
assert on what each of them received.
"""

from __future__ import annotations

import base64
import logging

import pytest
import trio
from redirect_support import redirect, start_routes

import trio_upgrade
from trio_upgrade import BasicAuth, Headers, RedirectError, Request, Response
from trio_upgrade._transport._proxy import parse_proxy

pytestmark = pytest.mark.timeout(30)

SECRET = "s3cret-pässword"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


#: Every form the secret could be shown in.
LEAKS = (SECRET, "s3cret", basic("alice", SECRET)[6:], "sessionid", "tok3n")


def assert_no_secret(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text


@pytest.mark.parametrize("auth", [("alice", SECRET), BasicAuth("alice", SECRET)])
async def test_auth_option_sends_basic_credentials(
    nursery: trio.Nursery, auth: trio_upgrade.BasicAuth | tuple[str, str]
) -> None:
    server = await start_routes(nursery, lambda target: None)
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(server.url(), "echo", auth=auth)
        await conn.aclose()
    # RFC 7617: base64 of the UTF-8 of "user:password".
    assert server.requests[0].get("authorization") == basic("alice", SECRET)


@pytest.mark.parametrize(
    ("userinfo", "user", "password"),
    [
        ("alice:s3cret", "alice", "s3cret"),
        ("al%40ice:p%3Ass%20w%C3%B6rd", "al@ice", "p:ss wörd"),
        ("alice", "alice", ""),
        ("alice:", "alice", ""),
        (":s3cret", "", "s3cret"),
    ],
)
async def test_url_userinfo_is_sent_as_basic_and_not_in_the_url(
    nursery: trio.Nursery, userinfo: str, user: str, password: str
) -> None:
    server = await start_routes(nursery, lambda target: None)
    url = f"ws://{userinfo}@127.0.0.1:{server.port}/p"
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(url, "echo")
        await conn.aclose()
    seen = server.requests[0]
    assert seen.get("authorization") == basic(user, password)
    assert seen.get("host") == f"127.0.0.1:{server.port}"
    assert seen.target == "/p"
    assert conn.attempts[0].url == f"ws://127.0.0.1:{server.port}/p"


async def test_credentials_given_twice_are_refused() -> None:
    with pytest.raises(ValueError, match="twice") as info:
        await trio_upgrade.upgrade(
            f"ws://alice:{SECRET}@127.0.0.1:1/", "echo", auth=("bob", SECRET)
        )
    assert_no_secret(str(info.value))
    with pytest.raises(ValueError, match="Authorization header") as info:
        await trio_upgrade.upgrade(
            "ws://127.0.0.1:1/",
            "echo",
            auth=("bob", SECRET),
            headers={"authorization": "Bearer tok3n"},
        )
    assert_no_secret(str(info.value))


@pytest.mark.parametrize(
    ("auth", "error"),
    [
        (("al:ice", SECRET), ValueError),
        (("alice", SECRET + "\r\nX: y"), ValueError),
        (("alice",), TypeError),
        ("alice:" + SECRET, TypeError),
        ((b"alice", SECRET), TypeError),
    ],
)
async def test_bad_auth_is_refused_before_connecting(
    auth: object, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        await trio_upgrade.upgrade("ws://127.0.0.1:1/", "echo", auth=auth)  # type: ignore[call-overload]
    assert_no_secret(str(info.value))


@pytest.mark.parametrize(
    ("userinfo", "message"),
    [("alice:s3cret%0D%0A", "control character"), ("al%3Aice:s3cret", "':'")],
)
async def test_url_credentials_that_cannot_be_sent(userinfo: str, message: str) -> None:
    with pytest.raises(trio_upgrade.InvalidURL, match=message) as info:
        await trio_upgrade.upgrade(f"ws://{userinfo}@127.0.0.1:1/", "echo")
    assert_no_secret(str(info.value))
    assert "***@127.0.0.1:1" in str(info.value)


SENSITIVE = {
    "Cookie": "sessionid=tok3n",
    "Proxy-Authorization": "Bearer tok3n",
    "X-Other": "kept",
}


async def test_credentials_and_cookies_are_dropped_across_origins(
    nursery: trio.Nursery,
) -> None:
    urls: dict[str, str] = {}
    # A -> B (another port: another origin) -> back to A, where it switches.
    a = await start_routes(
        nursery,
        lambda target: None if target == "/back" else redirect(302, urls["b"]),
    )
    b = await start_routes(nursery, lambda target: redirect(307, urls["back"]))
    urls["b"], urls["back"] = b.url("/"), a.url("/back")
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(
            a.url("/"), "echo", auth=("alice", SECRET), headers=SENSITIVE
        )
        await conn.aclose()
    first, back = a.requests
    assert first.get("authorization") == basic("alice", SECRET)
    assert first.get("cookie") == "sessionid=tok3n"
    assert first.get("proxy-authorization") == "Bearer tok3n"
    for seen in (b.requests[0], back):
        # Never sent to B, and never re-added on the way back to A.
        assert seen.get("authorization") is None
        assert seen.get("cookie") is None
        assert seen.get("proxy-authorization") is None
        assert seen.get("x-other") == "kept"
    assert b.requests[0].get("host") == f"127.0.0.1:{b.port}"


async def test_caller_authorization_and_host_are_dropped_across_origins(
    nursery: trio.Nursery,
) -> None:
    final = await start_routes(nursery, lambda target: None)
    first = await start_routes(nursery, lambda target: redirect(301, final.url()))
    fields = [("Authorization", "Bearer tok3n"), ("Host", f"127.0.0.1:{first.port}")]
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(first.url(), "echo", headers=fields)
        await conn.aclose()
    assert first.requests[0].get("authorization") == "Bearer tok3n"
    assert final.requests[0].get("authorization") is None
    # The caller's Host named the first server; the second gets its own.
    assert final.requests[0].get("host") == f"127.0.0.1:{final.port}"


async def test_credentials_are_kept_on_the_same_origin(nursery: trio.Nursery) -> None:
    # Relative, and absolute with the http:// spelling of the ws:// origin.
    server = await start_routes(
        nursery,
        lambda target: {
            "/1": redirect(302, "/2"),
            "/2": redirect(308, f"http://127.0.0.1:{server.port}/3"),
        }.get(target),
    )
    url = f"ws://alice:{SECRET.replace('ä', '%C3%A4')}@127.0.0.1:{server.port}/1"
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(url, "echo", headers=SENSITIVE)
        await conn.aclose()
    assert [r.target for r in server.requests] == ["/1", "/2", "/3"]
    for seen in server.requests:
        assert seen.get("authorization") == basic("alice", SECRET)
        assert seen.get("cookie") == "sessionid=tok3n"
    assert server.opened == 1


async def test_no_secret_in_reprs_errors_or_logs(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    urls: dict[str, str] = {}
    a = await start_routes(nursery, lambda target: redirect(302, urls["b"]))
    # B's Location carries credentials of its own: never used, never shown.
    b = await start_routes(nursery, lambda target: redirect(302, urls["loop"]))
    urls["b"] = f"http://mallory:s3cret@127.0.0.1:{b.port}/"
    urls["loop"] = f"http://eve:s3cret@127.0.0.1:{a.port}/"
    url = f"ws://alice:{SECRET.replace('ä', '%C3%A4')}@127.0.0.1:{a.port}/"
    with trio.fail_after(10), pytest.raises(RedirectError) as info:
        await trio_upgrade.upgrade(url, "echo", headers=SENSITIVE)
    error = info.value
    assert error.reason == "loop"
    assert b.requests[0].get("authorization") is None
    shown = [
        str(error),
        repr(error),
        repr(error.attempts),
        repr(error.response),
        str(error.response),
        repr(error.chain),
        error.location,
        caplog.text,
    ]
    for text in shown:
        assert_no_secret(text)
        assert "mallory" not in text and "eve" not in text
    assert "following redirect 302" in caplog.text


async def test_no_secret_on_the_connection(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_routes(nursery, lambda target: None)
    with trio.fail_after(10):
        conn = await trio_upgrade.upgrade(
            server.url(), "echo", auth=BasicAuth("alice", SECRET), headers=SENSITIVE
        )
        await conn.aclose()
    request = conn.handshake_request
    assert request is not None
    # The values are there to read...
    assert request.headers.get("authorization") == basic("alice", SECRET)
    # ...and shown nowhere.
    for text in (repr(conn), repr(conn.attempts), repr(request), str(request)):
        assert_no_secret(text)
    assert "Basic [redacted]" in str(request)
    assert_no_secret(caplog.text)


async def test_refusal_with_credentials_shows_none(nursery: trio.Nursery) -> None:
    server = await start_routes(
        nursery, lambda target: (401, [("WWW-Authenticate", 'Basic realm="x"')])
    )
    with trio.fail_after(10), pytest.raises(trio_upgrade.UpgradeRefused) as info:
        await trio_upgrade.upgrade(
            server.url().replace("//", f"//alice:{SECRET}@".replace("ä", "%C3%A4")),
            "echo",
        )
    assert server.requests[0].get("authorization") == basic("alice", SECRET)
    for text in (str(info.value), repr(info.value), repr(info.value.attempts)):
        assert_no_secret(text)


def test_basic_auth_repr_hides_the_password() -> None:
    auth = BasicAuth("alice", SECRET)
    assert repr(auth) == "BasicAuth(username='alice', password=[redacted])"
    assert auth.authorization == basic("alice", SECRET)


def test_headers_request_response_show_no_credentials() -> None:
    fields = [
        ("Authorization", basic("alice", SECRET)),
        ("proxy-authorization", "Basic " + basic("p", SECRET)[6:]),
        ("Cookie", "sessionid=tok3n"),
        ("Set-Cookie", "sessionid=tok3n; HttpOnly"),
        ("Location", f"http://alice:{SECRET}@h/"),
        ("X-Other", "kept"),
    ]
    headers = Headers(fields)
    for text in (
        repr(headers),
        str(Request("GET", "/", headers)),
        repr(Request("GET", "/", headers)),
        str(Response(302, "Found", headers)),
        repr(Response(302, "Found", headers)),
    ):
        assert_no_secret(text)
        assert "kept" in text and "Basic [redacted]" in text
        assert "http://***@h/" in text
    assert list(headers) == fields  # the values themselves are intact


def test_proxy_repr_hides_its_credentials() -> None:
    proxy = parse_proxy(f"http://alice:{SECRET}@127.0.0.1:3128".replace("ä", "%C3%A4"))
    assert list(proxy.headers) == [("Proxy-Authorization", basic("alice", SECRET))]
    assert_no_secret(repr(proxy))
    assert "Basic [redacted]" in repr(proxy)
