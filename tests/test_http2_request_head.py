"""The request head's checked pseudo-header fields, kept between requests.

``request_head`` keeps what it checked for a method, target and origin
(docs/perf/http2-requests.rst): the fields must be those of a fresh check,
every bad value must still raise every time, and the store stays bounded.
"""

from __future__ import annotations

import pytest

from trio_upgrade._http2 import _request
from trio_upgrade._http2._request import request_head
from trio_upgrade._http2._state import split_head

ORIGIN = {"scheme": "http", "authority": "example.com:8080"}


def test_kept_fields_are_a_fresh_checks_and_headers_still_apply() -> None:
    _request._PSEUDO.clear()
    first = request_head("GET", "/a?b", None, **ORIGIN)
    again = request_head("GET", "/a?b", {"Host": "other.test", "x-y": "z"}, **ORIGIN)
    assert first == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"example.com:8080"),
        (b":path", b"/a?b"),
    ]
    # Host still becomes :authority; the other fields follow.
    assert again == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"other.test"),
        (b":path", b"/a?b"),
        (b"x-y", b"z"),
    ]
    connect = request_head("CONNECT", "/chat", None, protocol="websocket", **ORIGIN)
    assert connect[-1] == (b":protocol", b"websocket")
    # The same strings with another protocol are another entry.
    with pytest.raises(ValueError, match="plain CONNECT"):
        request_head("CONNECT", "/chat", None, **ORIGIN)


@pytest.mark.parametrize(
    ("method", "target", "message"),
    [
        ("G T", "/", "invalid request method"),
        ("GET", "a", "must start with '/'"),
        ("GET", "/a b", "whitespace or non-ASCII"),
        ("GET", "https://elsewhere.test/", "not on this connection's origin"),
        (b"GET", "/", "invalid request method"),
        ("GET", ["/"], "must start with '/'"),
    ],
)
def test_bad_values_raise_every_time(
    method: object, target: object, message: str
) -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match=message):
            request_head(method, target, None, **ORIGIN)  # type: ignore[arg-type]
    assert all(key[:2] != (method, target) for key in _request._PSEUDO)


def test_the_store_is_bounded() -> None:
    for n in range(3 * _request._PSEUDO_SIZE):
        request_head("GET", f"/{n}", None, **ORIGIN)
        assert len(_request._PSEUDO) <= _request._PSEUDO_SIZE


def test_split_head_takes_any_order_h2_might_give() -> None:
    usual = [(b":status", b"200"), (b"content-length", b"3"), (b"a", b"b")]
    assert split_head(usual) == (200, [(b"content-length", b"3"), (b"a", b"b")], 3)
    # Not the shape h2's checks let through: the general loop still sorts it.
    odd = [(b"a", b"b"), (b":status", b"204"), (b"content-length", b"0")]
    assert split_head(odd) == (204, [(b"a", b"b"), (b"content-length", b"0")], 0)
    assert split_head([(b":status", b"200")]) == (200, [], None)
