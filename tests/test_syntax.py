"""The RFC 9110 syntax every check of the library shares (_sansio/_syntax)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_upgrade._sansio._syntax import (
    FIELD_VALUE_BAD,
    PROTOCOL,
    TOKEN,
    TOKEN_LOWER_BYTES,
    list_elements,
    list_tokens,
)

# RFC 9110 §5.6.2, spelled out: tchar = "!" / "#" / "$" / "%" / "&" / "'" /
# "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
TCHAR = set("!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters)


def test_token_is_exactly_tchar() -> None:
    for code in range(256):
        char = chr(code)
        assert bool(TOKEN.fullmatch(char)) == (char in TCHAR), char
        lower = char in TCHAR and char not in string.ascii_uppercase
        assert bool(TOKEN_LOWER_BYTES.fullmatch(bytes([code]))) == lower, char


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("websocket", True),
        ("HTTP/2.0", True),
        ("my-proto/1", True),
        ("a/b/c", False),
        ("/1", False),
        ("h2c/", False),
        ("", False),
        ("web socket", False),
    ],
)
def test_protocol_is_name_and_optional_version(text: str, valid: bool) -> None:
    assert bool(PROTOCOL.fullmatch(text)) == valid


def test_field_values_refuse_controls_but_htab() -> None:
    for code in range(256):
        char = chr(code)
        bad = (code < 0x20 and char != "\t") or code == 0x7F
        assert bool(FIELD_VALUE_BAD.search(f"a{char}b")) == bad, char


def test_lists_read_every_line_and_skip_empty_elements() -> None:
    lines = [" WebSocket ,, h2c", "", "\tMy-Proto/1 ,"]
    assert list_elements(lines) == ["WebSocket", "h2c", "My-Proto/1"]
    assert list_tokens(lines) == ["websocket", "h2c", "my-proto/1"]


@given(st.lists(st.lists(st.text(alphabet=sorted(TCHAR), min_size=1), max_size=4)))
def test_lists_round_trip(lines: list[list[str]]) -> None:
    joined = [" , ".join(line) for line in lines]
    assert list_elements(joined) == [e for line in lines for e in line]
