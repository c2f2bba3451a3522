from __future__ import annotations

import pytest

from trio_upgrade import H2C, Raw, WebSocket
from trio_upgrade._resolve import resolve_protocols


def test_builtin_names_and_raw_tokens() -> None:
    resolved = resolve_protocols(["WebSocket", "h2c", "my-proto/1"])
    assert [type(p) for p in resolved] == [WebSocket, H2C, Raw]
    assert [p.token for p in resolved] == ["websocket", "h2c", "my-proto/1"]


def test_single_string_or_object_is_one_offer() -> None:
    assert [p.token for p in resolve_protocols("echo")] == ["echo"]
    raw = Raw("x")
    assert resolve_protocols(raw) == [raw]


def test_objects_are_kept_as_given() -> None:
    ws = WebSocket()
    assert resolve_protocols([ws, "echo"])[0] is ws


@pytest.mark.parametrize(
    ("protocols", "message"),
    [
        ([], "at least one"),
        (["a", "A"], "offered twice"),
        (["websocket", WebSocket()], "offered twice"),
        # A WebSocket object takes the short way through: still counted.
        ([WebSocket(), "WebSocket"], "offered twice"),
        ([WebSocket(), WebSocket()], "offered twice"),
        ((WebSocket(), WebSocket()), "offered twice"),
        (["bad token"], "invalid upgrade protocol"),
        (["a/b/c"], "invalid upgrade protocol"),
        ([""], "invalid upgrade protocol"),
        (["a,b"], "invalid upgrade protocol"),
    ],
)
def test_invalid_offers(protocols: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_protocols(protocols)  # type: ignore[arg-type]


def test_wrong_type() -> None:
    with pytest.raises(TypeError, match="UpgradeProtocol"):
        resolve_protocols([42])  # type: ignore[list-item]


def test_raw_token_is_checked() -> None:
    with pytest.raises(ValueError, match="token"):
        Raw("no spaces")


def test_websocket_objects_keep_their_place_in_any_sequence() -> None:
    ws = WebSocket()
    for protocols in ([ws, "echo"], ("echo", ws), [Raw("x"), ws, "h2c"]):
        resolved = resolve_protocols(protocols)
        assert [p.token for p in resolved] == [
            p if isinstance(p, str) else p.token for p in protocols
        ]
        assert ws in resolved and resolved.count(ws) == 1
    assert resolve_protocols(ws) == [ws]
