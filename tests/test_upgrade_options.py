"""The options every entry point shares, and what upgrade() does once per call."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from types import ModuleType

import pytest
import trio
import trio.testing

import trio_upgrade
import trio_upgrade._upgrade
from trio_upgrade import ConnectOptions, UpgradeOptions
from trio_upgrade._sansio import _handshake
from trio_upgrade.testing import open_upgrade_server

pytestmark = pytest.mark.timeout(30)


def _count_calls(
    monkeypatch: pytest.MonkeyPatch, name: str, modules: Iterable[ModuleType]
) -> list[int]:
    """Wrap ``name`` wherever ``modules`` look it up; count the calls."""
    calls = [0]
    original: Callable[..., object] = getattr(_handshake, name)

    def counting(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return original(*args, **kwargs)

    for module in modules:
        if hasattr(module, name):
            monkeypatch.setattr(module, name, counting)
    return calls


async def test_extra_headers_are_checked_once_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _count_calls(
        monkeypatch, "check_extra_headers", [_handshake, trio_upgrade._upgrade]
    )
    async with open_upgrade_server(["b"], tcp=False) as server:
        with trio.fail_after(5):
            conn = await trio_upgrade.upgrade(
                "http://memory.test/",
                ["a", "b"],
                headers={"Authorization": "Bearer t"},
                transport=await server.connect_in_memory(),
            )
            await conn.aclose()
        # Two requests on one connection, each carrying the field.
        assert [r.headers.get("authorization") for r in server.requests] == [
            "Bearer t",
            "Bearer t",
        ]
    assert calls[0] == 1


# -- one set of options for every entry point --------------------------------


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: trio_upgrade.upgrade("http://h/", "x", bogus=1), "upgrade"),
        (lambda: trio_upgrade.connect_http2("http://h/", bogus=1), "connect_http2"),
        # Not an HTTP/2 option: no request carries them.
        (lambda: trio_upgrade.connect_http2("http://h/", headers={}), "connect_http2"),
    ],
)
async def test_unknown_option_is_a_type_error(
    call: Callable[[], Awaitable[object]], name: str
) -> None:
    with pytest.raises(TypeError, match=rf"^{name}\(\) got an unexpected keyword"):
        await call()


def test_context_managers_refuse_unknown_options_at_once() -> None:
    # Before any `async with`: as for any function called with a bad keyword.
    with pytest.raises(TypeError, match=r"^open_upgrade\(\) .* 'bogus'"):
        trio_upgrade.open_upgrade("http://h/", "x", bogus=1)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"^open_upgrade\(\) .* 'nursery'"):
        trio_upgrade.open_upgrade("http://h/", "x", nursery=None)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"^open_http2\(\) .* 'strategy'"):
        trio_upgrade.open_http2("http://h/", strategy="combined")  # type: ignore[call-arg]


def test_upgrade_options_extend_the_connect_options() -> None:
    connect = ConnectOptions.__optional_keys__
    assert connect == {
        "limits",
        "ssl_context",
        "proxy",
        "proxy_ssl_context",
        "transport",
        "unix_socket",
        "trace",
    }
    assert UpgradeOptions.__optional_keys__ == connect | {
        "headers",
        "strategy",
        "follow_redirects",
        "auth",
    }
    assert not UpgradeOptions.__required_keys__


@pytest.mark.parametrize(
    ("options", "keys"),
    [
        (ConnectOptions, ConnectOptions.__optional_keys__),
        (UpgradeOptions, {"headers", "strategy"}),
    ],
)
def test_every_option_is_documented_with_its_default(
    options: type, keys: set[str]
) -> None:
    doc = inspect.getdoc(options) or ""
    for key in keys:
        entry = re.search(rf"^    {key} \(.+?\):(.+?)(?=^    \w|\Z)", doc, re.S | re.M)
        assert entry is not None, key
        assert "Default:" in entry.group(1), key


async def test_options_built_ahead_pass_through(nursery: trio.Nursery) -> None:
    async with open_upgrade_server(["echo"], tcp=False) as server:
        options: UpgradeOptions = {
            "headers": [("X-A", "1")],
            "strategy": "combined",
            "limits": trio_upgrade.Limits(handshake_timeout=5),
            "transport": await server.connect_in_memory(),
        }
        with trio.fail_after(5):
            async with trio_upgrade.open_upgrade(
                "http://memory.test/", ["echo"], **options
            ) as conn:
                await conn.send_all(b"x")
                assert await conn.receive_some() == b"x"
        assert server.requests[0].headers.get("x-a") == "1"


async def test_connect_http2_over_a_given_transport(nursery: trio.Nursery) -> None:
    from trio_upgrade.testing._http2 import H2CServerProtocol

    protocol = H2CServerProtocol()
    client_side, server_side = trio.testing.memory_stream_pair()
    nursery.start_soon(protocol.serve_prior_knowledge, server_side)
    with trio.fail_after(5):
        # https: the given stream is used as it is, no TLS is added to it.
        async with trio_upgrade.open_http2(
            "https://memory.test/", transport=client_side
        ) as conn:
            response = await conn.request("POST", "/echo", body=b"in memory")
            assert response.content == b"in memory"
    assert len(protocol.connections) == 1


def test_no_options_are_the_defaults_given_explicitly() -> None:
    # connect_settings() answers a call without options from one shared
    # object: it must be what the documented defaults give, field by field.
    from trio_upgrade._options import (
        CONNECT_KEYS,
        UPGRADE_KEYS,
        ConnectSettings,
        connect_settings,
    )

    explicit: ConnectOptions = {
        "limits": None,
        "ssl_context": None,
        "proxy": True,
        "transport": None,
        "proxy_ssl_context": None,
        "unix_socket": None,
        "trace": None,
    }
    for keys in (CONNECT_KEYS, UPGRADE_KEYS):
        bare = connect_settings("upgrade", {}, keys)
        assert isinstance(bare, ConnectSettings)
        assert bare == connect_settings("upgrade", explicit, keys)
        assert bare.limits == trio_upgrade.Limits()
        assert bare.proxy_from_environment
