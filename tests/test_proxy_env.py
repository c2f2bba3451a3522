"""Which proxy the environment names for a URL: the pure rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_upgrade._sansio._proxy_env import environment_proxy, parse_no_proxy
from trio_upgrade._sansio._url import parse_url


def proxy_for(url: str, **environ: str) -> str | None:
    return environment_proxy(parse_url(url), environ)


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        # The scheme's own variable first, then its HTTP one, then all_proxy.
        ("ws://h/", {"ws_proxy": "http://ws", "http_proxy": "http://h"}, "http://ws"),
        ("ws://h/", {"http_proxy": "http://h", "all_proxy": "http://a"}, "http://h"),
        ("ws://h/", {"https_proxy": "http://s", "all_proxy": "http://a"}, "http://a"),
        ("wss://h/", {"wss_proxy": "http://w", "https_proxy": "http://s"}, "http://w"),
        ("wss://h/", {"https_proxy": "http://s", "http_proxy": "http://h"}, "http://s"),
        ("wss://h/", {"http_proxy": "http://h"}, None),
        ("http://h/", {"http_proxy": "http://h", "ws_proxy": "http://w"}, "http://h"),
        (
            "https://h/",
            {"https_proxy": "http://s", "wss_proxy": "http://w"},
            "http://s",
        ),
        ("https://h/", {"ALL_PROXY": "socks5://a"}, "socks5://a"),
        ("http://h/", {}, None),
        # Lower case wins, even empty (then the next name is read).
        ("ws://h/", {"ws_proxy": "http://l", "WS_PROXY": "http://u"}, "http://l"),
        ("ws://h/", {"WS_PROXY": "http://u"}, "http://u"),
        ("ws://h/", {"ws_proxy": "", "WS_PROXY": "http://u"}, None),
        ("ws://h/", {"ws_proxy": " ", "http_proxy": "http://h"}, "http://h"),
        # No scheme: an HTTP proxy, as curl and requests read it.
        ("ws://h/", {"http_proxy": "proxy:3128"}, "http://proxy:3128"),
        ("ws://h/", {"http_proxy": " http://p:1 "}, "http://p:1"),
    ],
)
def test_variable_for_each_scheme(
    url: str, environ: dict[str, str], expected: str | None
) -> None:
    assert proxy_for(url, **environ) == expected


def test_upper_case_http_proxy_is_ignored_in_cgi() -> None:
    # httpoxy: in CGI the client's "Proxy:" header arrives as HTTP_PROXY.
    cgi = {"REQUEST_METHOD": "GET", "HTTP_PROXY": "http://evil"}
    assert proxy_for("ws://h/", **cgi) is None
    assert proxy_for("ws://h/", **cgi, http_proxy="http://mine") == "http://mine"
    assert proxy_for("wss://h/", **cgi, HTTPS_PROXY="http://s") == "http://s"
    assert proxy_for("ws://h/", HTTP_PROXY="http://u") == "http://u"


@pytest.mark.parametrize(
    ("no_proxy", "url", "bypassed"),
    [
        ("*", "ws://anything.test/", True),
        ("a.test, *", "ws://b.test/", True),
        # Names: the name itself and its subdomains, dot or not.
        ("example.com", "ws://example.com/", True),
        ("example.com", "ws://www.example.com/", True),
        ("example.com", "ws://notexample.com/", False),
        (".example.com", "ws://example.com/", True),
        (".example.com", "ws://a.b.example.com/", True),
        ("*.example.com", "ws://a.example.com/", True),
        ("EXAMPLE.com.", "ws://Example.COM./", True),
        ("example.com", "ws://example.org/", False),
        # Separators: commas, spaces, both, empty entries.
        (" a.test ,, b.test  c.test", "ws://c.test/", True),
        # Loopback is not bypassed implicitly (curl, urllib, httpx).
        ("", "ws://localhost/", False),
        ("example.com", "ws://127.0.0.1/", False),
        ("localhost", "ws://localhost:8080/", True),
        # Addresses and ranges.
        ("127.0.0.1", "ws://127.0.0.1:9/", True),
        ("127.0.0.1", "ws://127.0.0.2/", False),
        ("10.0.0.0/8", "ws://10.1.2.3/", True),
        ("10.0.0.0/8", "ws://11.1.2.3/", False),
        ("10.0.0.0/8", "ws://ten.test/", False),
        ("::1", "ws://[::1]/", True),
        ("[::1]", "ws://[::1]:81/", True),
        ("fd00::/8", "ws://[fd12::1]/", True),
        ("fd00::/8", "ws://[fe80::1]/", False),
        ("2001:db8::1", "ws://[2001:DB8:0::1]/", True),  # canonical forms
        ("127.0.0.0/8", "ws://[::ffff:127.0.0.1]/", True),  # v4-mapped
        ("fe80::1", "ws://[fe80::1%25eth0]/", True),  # zone ignored
        # host:port entries match that port only.
        ("example.com:8080", "ws://example.com:8080/", True),
        ("example.com:8080", "ws://example.com/", False),
        ("127.0.0.1:8080", "ws://127.0.0.1:8080/", True),
        ("127.0.0.1:8080", "ws://127.0.0.1:8081/", False),
        ("[::1]:8080", "ws://[::1]:8080/", True),
        ("[::1]:8080", "ws://[::1]:80/", False),
        ("example.com:80", "ws://example.com/", True),  # the default port
        # Internationalised names compare as A-labels, either way written.
        ("bücher.example", "ws://xn--bcher-kva.example/", True),
        ("xn--bcher-kva.example", "wss://BÜCHER.example/", True),
        ("bücher.example", "ws://www.bücher.example/", True),
        # Entries that are none of the above are skipped, not fatal.
        ("[::1, exa mple.com, :80, a.test:x, 10.0.0.0/99", "ws://a.test/", False),
        ("a_b!.test:99999, ok.test", "ws://ok.test/", True),
        ("[::1]:٨٠, a.test:٨٠", "ws://[::1]:80/", False),  # not ASCII
        ("-bad-.xn--a, ok.test", "ws://ok.test/", True),
    ],
)
def test_no_proxy(no_proxy: str, url: str, bypassed: bool) -> None:
    proxied = proxy_for(url, all_proxy="http://p:1", no_proxy=no_proxy)
    assert proxied == (None if bypassed else "http://p:1")


def test_no_proxy_lower_case_wins() -> None:
    env = {"all_proxy": "http://p:1", "NO_PROXY": "a.test"}
    assert proxy_for("ws://a.test/", **env) is None
    assert proxy_for("ws://a.test/", **env, no_proxy="b.test") == "http://p:1"


def test_no_proxy_is_bounded_and_cached() -> None:
    huge = "a.test," * 100_000
    parsed = parse_no_proxy(huge)
    assert len(parsed.entries) <= 65536 // len("a.test,") + 1
    assert parse_no_proxy(huge) is parsed


_NO_PROXY_PIECES = st.sampled_from(
    [
        "*",
        ".",
        ",",
        " ",
        ":",
        "[",
        "]",
        "/",
        "%",
        "::1",
        "10.0.0.0/8",
        "a.test",
        "bücher",
        "xn--",
        "-",
        "80",
        "99999",
        "*.",
        "fe80::1%25lo",
        "\t",
        "\0",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_NO_PROXY_PIECES | st.text(max_size=8), max_size=12))
def test_any_no_proxy_value_parses(pieces: list[str]) -> None:
    # The environment is not ours to validate: whatever it holds, the call
    # gets an answer, never an exception.
    value = "".join(pieces)
    for url in (
        "ws://a.test/",
        "ws://[::1]:80/",
        "wss://10.1.2.3/",
        "http://xn--bcher-kva.test/",
    ):
        environ = {"all_proxy": "http://p:1", "no_proxy": value}
        assert proxy_for(url, **environ) in (None, "http://p:1")


_NAMES = ["ws_proxy", "WS_PROXY", "http_proxy", "no_proxy", "REQUEST_METHOD"]


@pytest.mark.parametrize("name", _NAMES)
def test_process_environment_reads_what_os_environ_holds_now(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # The fast miss must never keep an answer: set, empty, changed and
    # removed again, each read agrees with os.environ at that moment.
    import os

    from trio_upgrade._sansio._proxy_env import PROCESS_ENVIRONMENT as env

    assert env.environ is os.environ
    monkeypatch.delenv(name, raising=False)
    for value in (None, "http://one", "", "http://two", None):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
        assert env.get(name) == os.environ.get(name)
        assert env.get(name, "default") == os.environ.get(name, "default")
        assert (name in env) == (name in os.environ)
    assert len(env) == len(os.environ)
    assert dict(env) == dict(os.environ)


def test_process_environment_proxy_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # End to end, as a connect reads it: the first read finds nothing, a
    # variable set afterwards is used by the next connect.
    from trio_upgrade._options import UPGRADE_KEYS, connect_settings

    target = parse_url("ws://example.test/")
    settings = connect_settings("upgrade", {}, UPGRADE_KEYS)
    monkeypatch.delenv("ws_proxy", raising=False)
    monkeypatch.delenv("WS_PROXY", raising=False)
    assert settings.proxy_for(target) is None
    monkeypatch.setenv("WS_PROXY", "http://127.0.0.1:3128")
    proxy = settings.proxy_for(target)
    assert proxy is not None and proxy.url == "http://127.0.0.1:3128"
    monkeypatch.setenv("no_proxy", "example.test")
    assert settings.proxy_for(target) is None


def test_process_environment_of_another_mapping_reads_it() -> None:
    # A mapping not laid out as os.environ: every read goes to it.
    from trio_upgrade._sansio._proxy_env import ProcessEnvironment

    plain = {"http_proxy": "http://p"}
    env = ProcessEnvironment(plain)
    assert env.get("http_proxy") == "http://p"
    assert env.get("ws_proxy") is None
    assert "http_proxy" in env and "ws_proxy" not in env
    plain["ws_proxy"] = "http://w"
    assert env.get("ws_proxy") == "http://w"
    assert environment_proxy(parse_url("ws://h/"), env) == "http://w"
