"""The one use of h2 beyond its documented API, and its fallback."""

from __future__ import annotations

import pytest
import trio
from h2_helpers import h2c_server

import trio_upgrade
from trio_upgrade import ConnectionClosed, ProtocolError
from trio_upgrade._sansio import _h2_compat

pytestmark = pytest.mark.timeout(30)


def test_the_installed_h2_can_be_reopened_after_goaway() -> None:
    # CI runs the suite at both ends of the supported h2 range: the probe
    # must find its way with each of them, or the range is wrong.
    assert _h2_compat.REOPENS


def test_the_probe_fails_closed_when_h2_does_not_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A future h2 whose state machine no longer takes the reopened state.
    def refuse(conn: object) -> None:
        raise AttributeError("state_machine")

    monkeypatch.setattr(_h2_compat, "_reopen", refuse)
    assert _h2_compat._probe() is False


async def test_without_reopening_a_goaway_ends_the_kept_streams_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The public behaviour: h2 refuses the frames after GOAWAY, so the
    # stream the server meant to finish fails with a typed error, at once.
    monkeypatch.setattr(_h2_compat, "REOPENS", False)
    async with h2c_server() as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                with pytest.raises((ConnectionClosed, ProtocolError)):
                    await conn.request("GET", "/goaway")
