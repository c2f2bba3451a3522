from __future__ import annotations

import math

import pytest

from trio_upgrade import InvalidURL, Limits
from trio_upgrade._sansio._url import parse_url


@pytest.mark.parametrize(
    ("url", "host", "port", "target", "secure", "authority"),
    [
        ("http://example.test", "example.test", 80, "/", False, "example.test"),
        (
            "ws://example.test:8080/a?b=c",
            "example.test",
            8080,
            "/a?b=c",
            False,
            "example.test:8080",
        ),
        ("HTTPS://Example.TEST/x", "example.test", 443, "/x", True, "example.test"),
        ("wss://h:443/", "h", 443, "/", True, "h"),
        ("http://[::1]:9000/p", "::1", 9000, "/p", False, "[::1]:9000"),
        ("http://127.0.0.1:80/", "127.0.0.1", 80, "/", False, "127.0.0.1"),
        ("http://h/?q", "h", 80, "/?q", False, "h"),
        ("http://h/#frag", "h", 80, "/", False, "h"),
    ],
)
def test_parse(
    url: str, host: str, port: int, target: str, secure: bool, authority: str
) -> None:
    parsed = parse_url(url)
    assert (parsed.host, parsed.port, parsed.target, parsed.secure) == (
        host,
        port,
        target,
        secure,
    )
    assert parsed.authority == authority


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://h/", "unsupported URL scheme"),
        ("h:80", "unsupported URL scheme"),
        ("http:///path", "no host"),
        ("http://h:99999/", "invalid URL"),
        ("http://h:0/", "port 0"),
        ("http://user:pw@h/", "credentials"),
        ("http://h/a b", "whitespace"),
        ("http://h/\r\nX: y", "whitespace"),
    ],
)
def test_invalid(url: str, message: str) -> None:
    with pytest.raises(InvalidURL, match=message):
        parse_url(url)


def test_invalid_url_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="scheme"):
        parse_url("gopher://h/")


def test_ip_literal() -> None:
    assert parse_url("http://127.0.0.1/").is_ip_literal
    assert parse_url("http://[::1]/").is_ip_literal
    assert not parse_url("http://localhost/").is_ip_literal


def test_limits_validation() -> None:
    assert Limits(handshake_timeout=math.inf).handshake_timeout == math.inf
    with pytest.raises(ValueError, match="handshake_timeout"):
        Limits(handshake_timeout=-1)
    with pytest.raises(ValueError, match=">= 0"):
        Limits(connect_timeout=math.nan)
    with pytest.raises(TypeError, match="max_head_size"):
        Limits(max_head_size=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="number"):
        Limits(max_head_size="big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_attempts"):
        Limits(max_attempts=0)
