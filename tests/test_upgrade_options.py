"""The options every entry point shares, and what upgrade() does once per call."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import ModuleType

import pytest
import trio

import trio_upgrade
import trio_upgrade._upgrade
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
