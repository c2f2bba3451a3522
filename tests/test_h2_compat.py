"""The uses of h2 beyond its documented API, their probes and fallbacks."""

from __future__ import annotations

import h2.connection
import h2.exceptions
import pytest
import trio
from h2_helpers import h2c_server

import trio_upgrade
from trio_upgrade import ConnectionClosed, ProtocolError
from trio_upgrade._sansio import _h2_compat
from trio_upgrade._sansio._errors import StreamRefused
from trio_upgrade._sansio._h2_options import HTTP2Options, new_client_state

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
    assert _h2_compat._probe_reopen() is False


@pytest.mark.parametrize(
    ("fit", "errors"),
    [
        # The client's fallback, the public behaviour: h2 refuses the frames
        # after GOAWAY, so the stream the server meant to finish fails.
        ("REOPENS", (ConnectionClosed, ProtocolError)),
        # The test server's fallback: GOAWAY the public way, then close.
        ("KEEPS_SENDING", (ConnectionClosed, StreamRefused)),
    ],
)
async def test_without_keeping_streams_a_goaway_ends_them_clearly(
    monkeypatch: pytest.MonkeyPatch, fit: str, errors: tuple[type[Exception], ...]
) -> None:
    # Either way the stream fails with a typed error, at once.
    monkeypatch.setattr(_h2_compat, fit, False)
    async with h2c_server() as (server, _):
        with trio.fail_after(10):
            async with await trio_upgrade.upgrade(server.url(), "h2c") as conn:
                with pytest.raises(errors):
                    await conn.request("GET", "/goaway")
                assert not conn.is_usable


def test_every_probe_finds_the_installed_h2_fits() -> None:
    assert _h2_compat.KEEPS_SENDING
    assert _h2_compat.BOUNDS_HEADERS


@pytest.mark.parametrize(
    ("operation", "probe"),
    [
        ("_keep_sending", "_probe_keep_sending"),
        ("_bound", "_probe_header_limit"),
    ],
)
def test_each_probe_fails_closed_when_its_operation_does_not_fit(
    monkeypatch: pytest.MonkeyPatch, operation: str, probe: str
) -> None:
    def misfit(*args: object) -> None:
        raise AttributeError("state_machine")

    monkeypatch.setattr(_h2_compat, operation, misfit)
    assert getattr(_h2_compat, probe)() is False


def test_the_reopen_probe_covers_what_follows_a_goaway(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reopened but refusing to send (a window update, a reset): not a fit.
    real = _h2_compat._reopen

    def half(conn: h2.connection.H2Connection) -> None:
        real(conn)
        monkeypatch.setattr(
            conn, "increment_flow_control_window", _refuse, raising=True
        )

    monkeypatch.setattr(_h2_compat, "_reopen", half)
    assert _h2_compat._probe_reopen() is False


def _refuse(*args: object, **kwargs: object) -> None:
    raise h2.exceptions.ProtocolError("closed")


def test_without_the_header_bound_h2_applies_its_own_until_acknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_h2_compat, "BOUNDS_HEADERS", False)
    state = new_client_state(HTTP2Options(max_header_list_size=5000))
    # The setting is still sent; h2 applies it once the server acks it.
    assert state.local_settings.max_header_list_size == 5000
    assert state.decoder.max_header_list_size != 5000


def test_the_installed_h2_reads_its_closed_stream_bound_from_the_class() -> None:
    assert _h2_compat.BOUNDS_CLOSED
    state = new_client_state(HTTP2Options())
    assert isinstance(state, _h2_compat.BoundedH2Connection)
    assert state.MAX_CLOSED_STREAMS == _h2_compat.CLOSED_STREAMS_KEPT


async def test_a_long_lived_connection_remembers_a_bounded_number_of_streams() -> None:
    # Each request used to leave ~170 bytes in h2's memory of closed streams,
    # up to 65,536 of them (about 11 MiB per connection): now at most
    # CLOSED_STREAMS_KEPT, on the client and on the test server alike.
    kept = _h2_compat.CLOSED_STREAMS_KEPT
    async with h2c_server(connection_timeout=60) as (server, _):
        with trio.fail_after(30):
            async with trio_upgrade.open_upgrade(server.url(), ["h2c"]) as conn:
                await conn.upgrade_response.read()
                for _ in range(kept + 100):
                    response = await conn.request("GET", "/")
                    assert response.status_code == 200
                closed = conn._engine.h2._closed_streams
                assert kept - 10 <= len(closed) <= kept
                # Still usable, and stream ids go on from where they were.
                response = await conn.request("GET", "/")
                assert response.status_code == 200
                assert conn._engine.h2.highest_outbound_stream_id > 2 * kept


def test_the_installed_h2_reads_through_the_quiet_frame_buffer() -> None:
    assert _h2_compat.QUIETS_DATA


@pytest.mark.parametrize("pad", [0, 1, 9, 10, 11, 255])
@pytest.mark.parametrize("size", [0, 1, 9, 10, 11, 16384])
def test_quiet_data_frames_are_described_as_h2_describes_them(
    pad: int, size: int
) -> None:
    # What h2's trace log would say of each frame is unchanged (only no
    # longer worked out from the whole payload), and the events are h2's.
    from hyperframe.frame import DataFrame

    client, plain = new_client_state(HTTP2Options()), h2.connection.H2Connection()
    assert _h2_compat.quiet_data_frames(client)
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    frame = DataFrame(1, data, pad_length=pad)
    if pad:
        frame.flags.add("PADDED")
    for buffer in (client.incoming_buffer, plain.incoming_buffer):
        buffer.max_frame_size = 2**24 - 1
        buffer.add_data(frame.serialize())
    (quiet,) = list(client.incoming_buffer)
    (loud,) = list(plain.incoming_buffer)
    assert repr(quiet) == repr(loud) == repr(frame)
    assert (quiet.data, quiet.pad_length) == (loud.data, loud.pad_length) == (data, pad)


def test_the_quiet_probe_fails_closed_when_h2_does_not_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A future h2 without a replaceable frame buffer.
    def refuse(conn: object) -> None:
        raise AttributeError("incoming_buffer")

    monkeypatch.setattr(_h2_compat, "_quiet", refuse)
    assert _h2_compat._probe_quiet() is False
    monkeypatch.setattr(_h2_compat, "QUIETS_DATA", False)
    conn = h2.connection.H2Connection()
    buffer = conn.incoming_buffer
    assert _h2_compat.quiet_data_frames(conn) is False
    assert conn.incoming_buffer is buffer
