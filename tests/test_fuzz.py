"""Hostile server bytes after a valid 101: typed errors or correct events.

Hypothesis drives the targets of ``fuzz_targets.py`` (the same ones atheris
runs in ``nox -s fuzz``) with near-valid input: WebSocket frames with valid
headers and fuzzed opcodes, flags, lengths and payloads; HTTP/2 frames of
every type with a valid HEADERS block for stream 1 among them, fuzzed
flags, stream ids, lengths and payloads; and plain noise. Each run must
end within ``fuzz_targets.RUN_TIMEOUT`` with the messages or body that an
independent parser (wsproto, h2) reads from the same bytes, or with a
documented error; the memory traced during a run stays under a bound that
does not grow with what the server announces (a 64-bit length, a huge
window or frame size). ``HYPOTHESIS_PROFILE=ci-long`` runs more examples.
"""

from __future__ import annotations

import os
import tracemalloc

import pytest
import trio
from fuzz_targets import (
    MAX_SIZE,
    TARGETS,
    check_http2,
    check_websocket,
    chunks,
    h2_frame,
    response_headers,
    run_http2,
    run_websocket,
    seeds,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

_LONG = os.environ.get("HYPOTHESIS_PROFILE") == "ci-long"
EXAMPLES = 2000 if _LONG else 25
_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # each run is bounded by trio.fail_after instead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
pytestmark = pytest.mark.timeout(0 if _LONG else 120)

#: Bytes the client may hold at its peak for one of these inputs (a few KiB
#: each): its buffers, h2's and wsproto's state, trio's tasks. A client that
#: believed an announced length or window would go far beyond.
MEMORY_BOUND = 2 * 1024 * 1024

# -- WebSocket ------------------------------------------------------------------

OPCODES = st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA]) | st.integers(0, 15)
#: Payload lengths around each encoding's edge, and around max_size.
LENGTHS = st.sampled_from([0, 1, 2, 125, 126, 127, 65535, 65536, MAX_SIZE])


@st.composite
def ws_frames(draw: st.DrawFn) -> bytes:
    """One server frame: usually well-formed, with fuzzed fields."""
    opcode = draw(OPCODES)
    fin = draw(st.booleans() | st.just(True))
    rsv = draw(st.sampled_from([0, 0, 0, 0x40, 0x20, 0x10]))
    masked = draw(st.sampled_from([False, False, False, True]))
    if opcode == 0x8:
        code = draw(st.sampled_from([1000, 1001, 1002, 1005, 1015, 3000, 999, 5000]))
        reason = draw(st.text(max_size=10).map(str.encode) | st.binary(max_size=4))
        payload = (
            draw(st.sampled_from([b"", b"\x03"])) or code.to_bytes(2, "big") + reason
        )
    elif opcode == 0x1:
        payload = draw(
            st.text(max_size=40).map(str.encode)
            | st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82"])
        )
    else:
        payload = draw(st.binary(max_size=300))
    n = len(payload)
    if draw(st.integers(0, 9)) == 0:  # a lying length, near an edge or anywhere
        n = draw(LENGTHS | st.integers(0, 2**63 - 1))
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    mask_bit = 0x80 if masked else 0
    form = draw(st.sampled_from(["short", "short", "short", "16", "64"]))
    if n < 126 and form == "short":
        head += bytes([mask_bit | n])
    elif n < 65536 and form != "64":
        head += bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    if masked:
        head += b"\x00\x00\x00\x00"
    return head + payload


ws_streams = st.lists(ws_frames(), max_size=8).map(b"".join) | st.binary(max_size=200)


async def _traced(fn: object, *args: object) -> tuple[object, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = await fn(*args)  # type: ignore[operator]
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak


@_SETTINGS
@given(body=ws_streams, seed=st.integers(0, 255))
@example(body=b"\x82\x7f" + (2**63 - 1).to_bytes(8, "big"), seed=0)
@example(body=b"\x82\x7e\xff\xff" + bytes(100), seed=3)
def test_websocket_after_the_101_gives_wsprotos_messages_or_a_typed_error(
    body: bytes, seed: int
) -> None:
    (received, ended), peak = trio.run(_traced, run_websocket, chunks(body, seed))  # type: ignore[misc]
    check_websocket(body, received, ended)
    assert peak < MEMORY_BOUND, f"peak {peak} B"


# -- HTTP/2 ---------------------------------------------------------------------

FRAME_TYPES = st.sampled_from(range(10)) | st.integers(0, 255)
STREAM_IDS = st.sampled_from([0, 1, 1, 1, 3, 2]) | st.integers(0, 2**31 - 1)
#: Payloads of the right size for each type, before fuzzing.
PAYLOAD_SIZES = {2: 5, 3: 4, 6: 8, 7: 8, 8: 4}


@st.composite
def h2_frames(draw: st.DrawFn) -> bytes:
    """One server frame: a known type with a plausible payload, fuzzed."""
    kind = draw(FRAME_TYPES)
    flags = draw(st.sampled_from([0, 0x1, 0x4, 0x5, 0x8, 0x20]) | st.integers(0, 255))
    stream_id = draw(STREAM_IDS)
    if kind == 0x1:
        extra = draw(
            st.lists(
                st.sampled_from(
                    [
                        ("content-length", "2"),
                        ("content-length", "x"),
                        ("x-a", "b"),
                        (":path", "/"),
                        ("connection", "close"),
                    ]
                ),
                max_size=2,
            )
        )
        payload = response_headers(*extra)
    elif kind == 0x4:
        pairs = draw(
            st.lists(
                st.tuples(st.integers(0, 8), st.integers(0, 2**32 - 1)), max_size=3
            )
        )
        payload = b"".join(
            i.to_bytes(2, "big") + v.to_bytes(4, "big") for i, v in pairs
        )
    elif kind in PAYLOAD_SIZES:
        payload = draw(
            st.binary(min_size=PAYLOAD_SIZES[kind], max_size=PAYLOAD_SIZES[kind])
        )
    else:
        payload = draw(st.binary(max_size=100))
    frame = h2_frame(kind, flags, stream_id, payload)
    if draw(st.integers(0, 9)) == 0:  # a lying length field
        frame = draw(st.integers(0, 2**24 - 1)).to_bytes(3, "big") + frame[3:]
    return frame


def _answered() -> st.SearchStrategy[bytes]:
    """A valid answer on stream 1 with fuzzed frames before, between, after."""
    head = h2_frame(1, 0x4, 1, response_headers(("content-length", "2")))
    fuzz = st.lists(h2_frames(), max_size=3).map(b"".join)
    return st.tuples(fuzz, fuzz, fuzz).map(
        lambda f: f[0] + head + f[1] + h2_frame(0, 0x1, 1, b"ok") + f[2]
    )


h2_streams = (
    _answered()
    | st.lists(h2_frames(), max_size=8).map(b"".join)
    | st.binary(max_size=200)
)


@_SETTINGS
@given(body=h2_streams, seed=st.integers(0, 255))
@example(body=h2_frame(0, 0, 1, b"")[:3] + b"\x00" * 6, seed=0)
@example(body=b"\xff\xff\xff\x00\x00\x00\x00\x00\x01", seed=1)
# GOAWAY (last stream 1, NO_ERROR) between stream 1's head and its body:
# the body still comes (RFC 9113 §6.8); the reference once said otherwise.
@example(
    body=h2_frame(1, 4, 1, b"\x88\\\x81\x17")
    + h2_frame(7, 0, 0, b"\x00\x00\x00\x01\x00\x00\x00\x00")
    + h2_frame(0, 1, 1, b"ok"),
    seed=0,
)
def test_http2_after_the_101_gives_h2s_body_or_a_typed_error(
    body: bytes, seed: int
) -> None:
    (got, error), peak = trio.run(_traced, run_http2, chunks(body, seed))  # type: ignore[misc]
    check_http2(body, got, error)
    assert peak < MEMORY_BOUND, f"peak {peak} B"


def test_a_valid_answer_after_the_101_is_read_whole() -> None:
    # The property above must not pass by always failing: the strategy's
    # valid case gives the body.
    head = h2_frame(1, 0x4, 1, response_headers(("content-length", "2")))
    got, error = trio.run(run_http2, [head + h2_frame(0, 0x1, 1, b"ok")])
    assert (got, error) == (b"ok", None)


# -- the atheris targets, under hypothesis --------------------------------------------


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target_seeds_pass(name: str) -> None:
    for seed in seeds(name):
        TARGETS[name](seed)


@_SETTINGS
@given(data=st.binary(max_size=400))
def test_handshake_target_on_noise(data: bytes) -> None:
    TARGETS["handshake"](data)


@_SETTINGS
@given(
    data=st.sampled_from(seeds("handshake")).flatmap(
        lambda s: st.tuples(st.integers(0, len(s)), st.binary(max_size=8)).map(
            lambda cut: s[: cut[0]] + cut[1] + s[cut[0] :]
        )
    )
)
def test_handshake_target_on_near_valid_responses(data: bytes) -> None:
    TARGETS["handshake"](data)
