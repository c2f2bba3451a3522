"""The instruction-count harness measures what it says (benchmarks/callgrind).

``nox -s callgrind`` runs the operations under valgrind, which is far too
slow for the suite; here each operation runs natively, once, against the
current library, so that a change to a hot path that breaks the scripted
peer (a client that now waits for bytes the script never sends, a replay
out of step) fails here rather than in the lead's baseline run. The
comparison's verdict (+5 %), the segment accounting and the summary's
ratios are checked on numbers given here.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import trio

from benchmarks import summary
from benchmarks.callgrind import operations
from benchmarks.callgrind import run as counts


@pytest.mark.parametrize("name", list(operations.OPERATIONS))
async def test_each_operation_runs_against_its_scripted_peer(name: str) -> None:
    operation = operations.OPERATIONS[name]
    with trio.fail_after(20):
        run = await operation.prepare((1, 1, 2))
        for count in (1, 1, 2):
            await run(count)


async def test_measure_marks_four_times_per_operation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The runner reads dumps 2 and 4 of every 4 as the N and 2N segments.
    marks: list[int] = []
    sends: list[int] = []
    monkeypatch.setattr(operations, "MARK", lambda: marks.append(len(sends)))
    original = operations.ScriptedStream.send_all

    async def counted(self: operations.ScriptedStream, data: bytes) -> None:
        sends.append(len(data))
        await original(self, data)

    monkeypatch.setattr(operations.ScriptedStream, "send_all", counted)
    with trio.fail_after(20):
        await operations.measure("ws_send_16")
    n = operations.OPERATIONS["ws_send_16"].n
    assert len(marks) == operations.DUMPS_PER_OPERATION
    # Between marks 1-2 the N sends, between 3-4 the 2N sends, none between.
    assert [b - a for a, b in itertools.pairwise(marks)] == [n, 0, 2 * n]


async def test_a_replay_out_of_step_fails_loudly() -> None:
    recording = operations.Recording(operations.H2Peer())
    conn = await operations.h2_open("16", recording.record)
    await conn.aclose()
    play = recording.player()
    first_length = recording.answers[0][0]
    with pytest.raises(RuntimeError, match="not deterministic"):
        play(b"x" * (first_length + 1))


async def test_the_scripted_peer_never_lets_a_client_hang() -> None:
    stream = operations.ScriptedStream(None)
    with pytest.raises(RuntimeError, match="never sends"):
        await stream.receive_some(10)
    stream.cycle = b"abcdef"
    assert [await stream.receive_some(4) for _ in range(3)] == [b"abcd", b"ef", b"abcd"]


def test_over_five_percent_fails_and_is_marked() -> None:
    baseline = {
        "operations": {"a": {"instructions": 1000}, "b": {"instructions": 1000}}
    }
    found = {
        "a": {"instructions": 1050, "dumps": ["x.2", "x.4"]},  # +5.0 %: allowed
        "b": {"instructions": 1051, "dumps": ["x.6", "x.8"]},  # +5.1 %: fails
        "c": {"instructions": 7, "dumps": ["x.10", "x.12"]},  # new
    }
    rows, worse = counts.table(found, baseline)
    assert worse == ["b"]
    assert [row[3] for row in rows[1:]] == ["+5.0%", "+5.1%  <-- over +5 %", "(new)"]


def test_a_different_environment_is_named() -> None:
    now = counts.environment()
    baseline = json.loads(json.dumps(now))
    assert counts.differences(baseline, now) == []
    baseline["python"] = "3.0.0"
    baseline["versions"]["h2"] = "0.1"
    found = counts.differences(baseline, now)
    assert any(line.startswith("Python") for line in found)
    assert any(line.startswith("h2 ") and "baseline: 0.1" in line for line in found)


def test_the_committed_baseline_covers_every_operation() -> None:
    baseline = counts.load_baseline()
    assert baseline is not None
    assert set(baseline["operations"]) == set(operations.OPERATIONS)
    assert all(op["instructions"] > 0 for op in baseline["operations"].values())
    for dist in ("trio", "h11", "wsproto", "h2"):
        assert baseline["versions"][dist]


def ws_results(**figures: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for key, per_client in figures.items():
        for client, (value, cpu) in per_client.items():
            results.setdefault(client, {})[key] = {"value": value, "cpu_us": cpu}
    return results


def test_summary_rows_are_ratios_to_the_floor_and_check_the_targets() -> None:
    results = ws_results(
        handshake={
            "raw-trio": (1000.0, 100.0),
            "trio_upgrade": (900.0, 150.0),
            "websockets-asyncio": (800.0, 200.0),
            "aiohttp": (700.0, 210.0),
            "picows": (950.0, 90.0),
        },
        echo1m={
            "raw-trio": (400.0, 1000.0),
            "trio_upgrade": (380.0, 1200.0),
            "websockets-asyncio": (300.0, 1800.0),
            "aiohttp": (200.0, 2000.0),
        },
        memory_rss={"raw-trio": (0.3, None), "trio_upgrade": (3.5, None)},
    )
    rows, cpu_rows = summary.websocket_rows(results)
    header, handshake, echo, memory = rows
    assert header[:2] == ["figure", "floor (abs)"]
    assert header[2:6] == ["trio_upgrade", "websockets (asyncio)", "aiohttp", "picows"]
    # 0.90 >= 0.85 but picows is ahead (0.95): not met.
    assert handshake[1:6] == ["1,000", "0.90", "0.80", "0.70", "0.95"]
    assert handshake[-1] == "no"
    # CPU 1.2x the floor's (<= 1.3) and ahead of websockets and aiohttp.
    assert echo[2:4] == ["0.95", "0.75"]
    assert echo[5] == "-"  # picows did not run this figure
    assert echo[-1] == "yes"
    assert memory[1:3] == ["0.30", "3.50"]
    assert cpu_rows[1][1:3] == ["100", "1.50x"]


def test_summary_page_renders_from_the_suites_json(tmp_path: Path) -> None:
    http2 = {
        "date": "2026-12-07T13:30:00+00:00",
        "machine": {"cpus": 2, "cpu": "Xeon", "kernel": "6.1", "python": "3.11.7"},
        "argv": ["benchmarks/http2/run.py", "--server", "h2o"],
        "server": "h2o",
        "server_max_concurrent_streams": 100,
        "results": [
            {"figure": "rps", "client": "minimal", "ok": True, "rate": 1000.0},
            {"figure": "rps", "client": "trio_upgrade", "ok": True, "rate": 1300.0},
            {"figure": "rps", "client": "trio_upgrade-h2c", "ok": True, "rate": 1250.0},
            {"figure": "rps", "client": "httpx", "ok": True, "rate": 200.0},
            {"figure": "hps", "client": "minimal-h2c", "ok": True, "rate": 800.0},
            {"figure": "hps", "client": "trio_upgrade-h2c", "ok": True, "rate": 700.0},
        ],
    }
    path = tmp_path / "http2.json"
    path.write_text(json.dumps(http2))
    out = tmp_path / "summary.inc"
    assert summary.main(["--http2", str(path), "--output", str(out)]) == 0
    text = out.read_text()
    assert "python -m benchmarks.http2 --server h2o" in text
    assert "2026-12-07 13:30 UTC" in text
    # rps: 1.30 and 1.25 of the floor, 6.5x httpx: met.
    assert "     - 1.30\n     - 1.25\n     - 0.20\n     - 6.5x" in text
    # hps: 0.875 < 0.95: not met.
    assert "     - 0.88\n     - 0.88" not in text
    assert "     - 0.88\n     - 0.00" not in text
    assert text.count("     - yes") == 1 and text.count("     - no") == 1
