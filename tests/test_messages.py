"""``Headers``: construction paths and the one-pass field lookup."""

from __future__ import annotations

import pytest

from trio_upgrade import Limits
from trio_upgrade._sansio._handshake import NEED_DATA, Handshake
from trio_upgrade._sansio._messages import Headers, Request, Response, shared_text


class _Str(str):
    """A str subclass: takes the general conversion path, not the fast one."""


def test_init_mixes_str_bytes_and_str_subclasses() -> None:
    headers = Headers([(b"A", "1"), ("b", b"\xe9"), (_Str("C"), _Str("3"))])
    assert list(headers) == [("A", "1"), ("b", "\xe9"), ("C", "3")]


def test_from_raw_equals_init_and_keeps_order_and_case() -> None:
    raw = [(b"Upgrade", b"websocket"), (b"X-A", b"\xff"), (b"x-a", b"2")]
    headers = Headers._from_raw(raw)
    assert headers == Headers(raw)
    assert list(headers) == [("Upgrade", "websocket"), ("X-A", "\xff"), ("x-a", "2")]
    assert headers.get_all("x-a") == ["\xff", "2"]
    assert hash(headers) == hash(Headers(raw))


def test_from_raw_empty() -> None:
    assert len(Headers._from_raw([])) == 0


def test_select_is_case_insensitive_keeps_repeats_and_order() -> None:
    headers = Headers(
        [
            ("UPGRADE", "a"),
            ("Connection", "upgrade"),
            ("x-other", "ignored"),
            ("upgrade", "b"),
            ("Upgrade", "c"),
        ]
    )
    found = headers._select(("upgrade", "connection", "sec-websocket-accept"))
    assert found == {
        "upgrade": ["a", "b", "c"],
        "connection": ["upgrade"],
        "sec-websocket-accept": [],
    }
    # Nothing is cached on the object: each call is a fresh scan.
    assert headers._select(("upgrade",))["upgrade"] == headers.get_all("Upgrade")
    assert not hasattr(headers, "__dict__")


def test_fields_read_as_a_sequence_of_pairs() -> None:
    # Kept flat (name, value, name, value...): read back as pairs.
    headers = Headers([("A", "1"), ("Authorization", "Bearer s3cret"), ("a", "3")])
    assert len(headers) == 3
    assert headers[0] == ("A", "1")
    assert headers[-1] == ("a", "3")
    with pytest.raises(IndexError):
        headers[3]
    assert list(headers) == [("A", "1"), ("Authorization", "Bearer s3cret"), ("a", "3")]
    assert dict(headers)["Authorization"] == "Bearer s3cret"
    assert "authorization" in headers and "1" not in headers and 1 not in headers
    assert headers.get("a") == "1, 3"
    assert headers.raw()[1] == (b"Authorization", b"Bearer s3cret")
    assert "s3cret" not in repr(headers) and "[redacted]" in repr(headers)
    # Order and pairing matter to equality.
    assert headers != Headers([("A", "1"), ("a", "3"), ("Authorization", "x")])
    assert Headers([("a", "b"), ("c", "d")]) != Headers([("a", "c"), ("b", "d")])
    assert len(Headers()) == 0 and list(Headers()) == []


def test_common_response_strings_are_shared() -> None:
    # The 101's head lives as long as its connection: the strings nearly
    # every one of them holds are one object each, not a copy per head.
    raw = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]
    first, second = Headers._from_raw(raw), Headers._from_raw(list(raw))
    for (name1, value1), (name2, value2) in zip(first, second, strict=True):
        assert name1 is name2 and value1 is value2
    assert shared_text(b"Switching Protocols") is shared_text(b"Switching Protocols")
    # Anything else is decoded as before, as a string of its own.
    assert shared_text(b"X-\xe9") == "X-\xe9"
    accept = [(b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]
    assert list(Headers._from_raw(accept)) == [
        ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    ]


def test_heads_keep_no_instance_dict() -> None:
    # __slots__: a dict per head would cost about 100 bytes per connection.
    request = Request("GET", "/", Headers([("Host", "h")]))
    response = Response(101, "Switching Protocols")
    assert not hasattr(request, "__dict__") and not hasattr(response, "__dict__")
    assert request == Request("GET", "/", Headers([("Host", "h")]))
    with pytest.raises(AttributeError):
        response.status_code = 200  # type: ignore[misc]


@pytest.mark.parametrize("data", [b"", b"HTTP/1.1 101"])
def test_fresh_handshake_needs_data_until_fed(data: bytes) -> None:
    hs = Handshake(Limits())
    assert hs.next_event() is NEED_DATA
    hs.receive_data(data)
    if data:
        assert hs.next_event() is NEED_DATA
    else:
        # EOF before any byte: the fresh shortcut must not hide it.
        with pytest.raises(Exception, match="without sending a response"):
            hs.next_event()
