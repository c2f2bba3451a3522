"""The frame-header walk ahead of h2, and the HTTP/2 options, sans I/O.

Every input is fed whole, one byte at a time, and in two halves at every
split point: the offsets found must not depend on how reads cut the bytes.
"""

from __future__ import annotations

import pytest
from h2_helpers import frame_bytes, server_settings
from hyperframe.frame import DataFrame, GoAwayFrame, PingFrame

from trio_upgrade._sansio._h2_frames import FrameScanner, PrefaceError
from trio_upgrade._sansio._h2_options import HTTP2Options, new_client_state

GOAWAY = frame_bytes(GoAwayFrame(0, last_stream_id=1, additional_data=b"bye"))
PING = frame_bytes(PingFrame(0, opaque_data=b"12345678"))
DATA = frame_bytes(DataFrame(1, data=b"x" * 40))


def cuts_fed(data: bytes, pieces: list[int]) -> list[int]:
    """Absolute GOAWAY-end offsets, feeding ``data`` cut at ``pieces``."""
    scanner = FrameScanner()
    found: list[int] = []
    start = 0
    for end in [*pieces, len(data)]:
        found += [start + cut for cut in scanner.feed(data[start:end])]
        start = end
    return found


def all_ways(data: bytes) -> list[list[int]]:
    ways = [cuts_fed(data, []), cuts_fed(data, list(range(1, len(data))))]
    ways += [cuts_fed(data, [split]) for split in range(1, len(data))]
    return ways


def test_goaway_ends_are_found_however_the_bytes_come() -> None:
    data = server_settings(MAX_CONCURRENT_STREAMS=5) + DATA + GOAWAY + PING + GOAWAY
    first = len(data) - len(PING) - len(GOAWAY)
    expected = [first, len(data)]
    for found in all_ways(data):
        assert found == expected


def test_empty_goaway_payload_and_no_goaway() -> None:
    bare = b"\x00\x00\x00\x07\x00\x00\x00\x00\x00"  # GOAWAY, length 0 (invalid)
    data = server_settings() + bare + PING
    for found in all_ways(data):
        assert found == [len(server_settings()) + 9]
    for found in all_ways(server_settings() + DATA + PING):
        assert found == []


@pytest.mark.parametrize(
    "first",
    [PING, DATA, b"HTTP/1.1 200 OK\r\n\r\n", b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"],
)
def test_first_frame_must_be_settings(first: bytes) -> None:
    scanner = FrameScanner()
    for byte in first[:8]:
        assert scanner.feed(bytes([byte])) == []
    with pytest.raises(PrefaceError, match="SETTINGS"):
        scanner.feed(first[8:])
    assert not scanner.preface_seen


def test_settings_on_a_stream_is_not_a_preface() -> None:
    with pytest.raises(PrefaceError, match="on a stream"):
        FrameScanner().feed(b"\x00\x00\x00\x04\x00\x00\x00\x00\x01")


def test_preface_seen() -> None:
    scanner = FrameScanner()
    scanner.feed(server_settings()[:5])
    assert not scanner.preface_seen
    scanner.feed(server_settings()[5:])
    assert scanner.preface_seen


def test_options_defaults_and_validation() -> None:
    options = HTTP2Options()
    assert options.stream_window == 1024 * 1024
    assert options.max_concurrent_streams == 100
    with pytest.raises(ValueError, match="stream_window"):
        HTTP2Options(stream_window=1000)
    with pytest.raises(ValueError, match="connection_window"):
        HTTP2Options(connection_window=2**31)
    with pytest.raises(ValueError, match="max_concurrent_streams"):
        HTTP2Options(max_concurrent_streams=0)
    with pytest.raises(TypeError):
        HTTP2Options(max_body_size=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        HTTP2Options(max_header_list_size=True)
    assert HTTP2Options(max_informational=0).max_informational == 0


def test_client_state_settings() -> None:
    state = new_client_state(HTTP2Options(max_header_list_size=5000))
    assert state.local_settings.enable_push == 0
    assert state.local_settings.max_header_list_size == 5000
    assert state.decoder.max_header_list_size == 5000
