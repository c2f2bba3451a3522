"""``Headers``: construction paths and the one-pass field lookup."""

from __future__ import annotations

import pytest

from trio_upgrade import Limits
from trio_upgrade._sansio._handshake import NEED_DATA, Handshake
from trio_upgrade._sansio._messages import Headers


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
