"""Every use of h2 beyond its documented API, in one place.

Three operations, each checked at import by running the real h2 on sample
input (:func:`_probe_reopen`, :func:`_probe_keep_sending`,
:func:`_probe_header_limit`), each with the public behaviour as its
fallback when the check fails (a future h2 that renames an attribute or
changes what it means). None of them is a speed-up:
``TRIO_UPGRADE_NO_SPEEDUPS=1`` does not turn them off, since each is the
RFC's behaviour (or a bound) that h2's public API does not give.

* :func:`reopen_after_goaway` (client). After a GOAWAY, h2 moves its
  connection state machine to ``CLOSED`` and refuses every later frame with
  a ``ProtocolError``, although RFC 9113 §6.8 lets the server finish the
  streams up to the GOAWAY's ``last_stream_id``, and servers do (h2o,
  hypercorn on a graceful shutdown). This sets the state machine back to
  ``CLIENT_OPEN``, what h2 would be in had the GOAWAY not come; the streams
  keep their own state, so h2 goes on checking every frame for them.
  Fallback (:data:`REOPENS` false): the GOAWAY ends the connection, so the
  streams it kept fail with :class:`~trio_upgrade.ConnectionClosed`.
* :func:`send_goaway_keeping_streams` (the test server). The same after
  *sending* a GOAWAY: h2 would refuse to send the rest of the streams it
  kept. Fallback (:data:`KEEPS_SENDING` false): the GOAWAY is sent the
  public way and the caller closes the connection.
* :class:`BoundedH2Connection` (client and test server). h2 remembers how
  each closed stream ended, for the last ``MAX_CLOSED_STREAMS`` (65,536)
  streams: about 170 bytes a stream, so a long-lived connection grows by
  that much per request up to some 11 MiB. The protocol needs the memory
  only for frames the peer sent before it learned of the close (RFC 9113
  §5.1: frames after our RST_STREAM are ignored, not errors), which arrive
  within a round trip: :data:`CLOSED_STREAMS_KEPT` (1,024) covers ten
  thousand requests a second over a 100 ms path, and a frame for a stream
  forgotten sooner only draws h2's RST_STREAM (``STREAM_CLOSED``), a stream
  error on a stream that is over. ``MAX_CLOSED_STREAMS`` is a public class
  attribute, undocumented: the subclass sets it. Fallback
  (:data:`BOUNDS_CLOSED` false, the attribute gone): h2's own bound.
* :func:`bound_header_list` (client). h2 applies our
  ``SETTINGS_MAX_HEADER_LIST_SIZE`` to its HPACK decoder only once the
  server acknowledged our SETTINGS; this applies it from the first byte.
  Fallback (:data:`BOUNDS_HEADERS` false): the bound applies from the
  server's acknowledgement on (h2's own behaviour).
* :func:`quiet_data_frames` (client; a speed-up, off with
  ``TRIO_UPGRADE_NO_SPEEDUPS=1``). For every frame it receives, h2 builds
  the frame's ``repr()`` for its trace log before calling the logger, even
  when the logger drops it (h2's default): for a DATA frame that
  serializes the whole payload again and hex-encodes it, only to keep the
  first ten bytes. A third of the client's instructions for a 64 KiB
  response went there (callgrind, docs/perf/http2-throughput.rst). This
  gives h2's frame buffer a subclass (``incoming_buffer`` is a public
  attribute) that hands each DATA frame a description of its own body made
  from its first bytes only: the same text, without the work. Fallback
  (:data:`QUIETS_DATA` false): h2's frames as they are.

Sans-I/O: nothing here imports trio.
"""

from __future__ import annotations

from functools import partial

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.frame_buffer
from hyperframe.frame import DataFrame, Frame

__all__ = [
    "BOUNDS_CLOSED",
    "BOUNDS_HEADERS",
    "CLOSED_STREAMS_KEPT",
    "BoundedH2Connection",
    "KEEPS_SENDING",
    "QUIETS_DATA",
    "REOPENS",
    "bound_header_list",
    "quiet_data_frames",
    "reopen_after_goaway",
    "send_goaway_keeping_streams",
]

#: Closed streams whose ending h2 remembers, per connection (see above).
CLOSED_STREAMS_KEPT = 1024

#: Whether h2 still reads its bound on closed streams from the class.
BOUNDS_CLOSED = isinstance(
    getattr(h2.connection.H2Connection, "MAX_CLOSED_STREAMS", None), int
)


class BoundedH2Connection(h2.connection.H2Connection):
    """h2's connection, remembering :data:`CLOSED_STREAMS_KEPT` closed streams."""

    MAX_CLOSED_STREAMS = CLOSED_STREAMS_KEPT


_REQUEST = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"a"),
    (b":path", b"/"),
]
# What h2 raises when an operation no longer fits it.
_MISFITS = (AttributeError, TypeError, ValueError, h2.exceptions.ProtocolError)


def _pair() -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    """A client and a server h2, prefaces exchanged, stream 1 and 3 open."""
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    client.initiate_connection()
    client.send_headers(1, _REQUEST, end_stream=True)
    client.send_headers(3, _REQUEST, end_stream=False)
    server = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    return client, server


def _reopen(conn: h2.connection.H2Connection) -> None:
    conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN


def _probe_reopen() -> bool:
    """Whether reopening makes h2 take (and answer) frames for kept streams.

    What the client does after a GOAWAY, on a real h2: receive DATA and the
    end of a kept stream, give the window back, reset another kept stream.
    """
    try:
        client, server = _pair()
        server.send_headers(1, [(b":status", b"200")])
        client.receive_data(server.data_to_send())
        server.close_connection(last_stream_id=3)
        client.receive_data(server.data_to_send())
        _reopen(client)
        # The server's h2 is closed too: the DATA frame by hand (RFC 9113
        # §4.1, §6.1): length 4, type DATA, END_STREAM, stream 1.
        kept = b"\x00\x00\x04\x00\x01\x00\x00\x00\x01kept"
        events = client.receive_data(kept)
        client.increment_flow_control_window(4)
        client.reset_stream(3)
        sent = client.data_to_send()
    except _MISFITS:
        return False
    data = [e for e in events if isinstance(e, h2.events.DataReceived)]
    ended = [e for e in events if isinstance(e, h2.events.StreamEnded)]
    return (
        len(data) == 1
        and data[0].data == b"kept"
        and len(ended) == 1
        # WINDOW_UPDATE (13 bytes) and RST_STREAM (13 bytes) went out.
        and len(sent) == 26
    )


#: Whether :func:`reopen_after_goaway` works with the installed h2.
REOPENS = _probe_reopen()


def reopen_after_goaway(conn: h2.connection.H2Connection) -> bool:
    """Let h2 take the frames of the streams a GOAWAY kept (RFC 9113 §6.8).

    Returns whether it could; when it cannot (:data:`REOPENS` is false), h2
    stays closed and refuses what follows.
    """
    if REOPENS:
        _reopen(conn)
    return REOPENS


def _keep_sending(conn: h2.connection.H2Connection, code: int, last: int) -> None:
    machine = conn.state_machine
    state = machine.state
    conn.close_connection(code, last_stream_id=last)
    machine.state = state


def _probe_keep_sending() -> bool:
    """Whether a server h2 still sends a kept stream's answer after GOAWAY."""
    try:
        client, server = _pair()
        _keep_sending(server, 0, 1)
        goaway = server.data_to_send()
        server.send_headers(1, [(b":status", b"200")])
        server.send_data(1, b"kept", end_stream=True)
        # The answer read by a client that has not seen the GOAWAY yet (a
        # client that had would close, unless reopened).
        answer = client.receive_data(server.data_to_send())
        terminated = client.receive_data(goaway)
    except _MISFITS:
        return False
    kinds = [type(e) for e in answer + terminated]
    return kinds == [
        h2.events.ResponseReceived,
        h2.events.DataReceived,
        h2.events.StreamEnded,
        h2.events.ConnectionTerminated,
    ]


#: Whether :func:`send_goaway_keeping_streams` works with the installed h2.
KEEPS_SENDING = _probe_keep_sending()


def send_goaway_keeping_streams(
    conn: h2.connection.H2Connection, code: int, last_stream_id: int
) -> bool:
    """Queue GOAWAY and go on sending on streams up to ``last_stream_id``.

    Returns whether h2 will; when it will not (:data:`KEEPS_SENDING` is
    false), the GOAWAY is queued the public way and h2 refuses to send
    more: the caller should close the connection.
    """
    if KEEPS_SENDING:
        _keep_sending(conn, code, last_stream_id)
    else:
        conn.close_connection(code, last_stream_id=last_stream_id)
    return KEEPS_SENDING


def _bound(conn: h2.connection.H2Connection, size: int) -> None:
    conn.decoder.max_header_list_size = size


def _probe_header_limit() -> bool:
    """Whether the bound makes h2 refuse a larger header block at once."""
    try:
        client, server = _pair()
        _bound(client, 100)
        server.send_headers(1, [(b":status", b"200"), (b"x-big", b"x" * 200)])
        client.receive_data(server.data_to_send())
    except h2.exceptions.DenialOfServiceError:
        return True
    except _MISFITS:
        return False
    return False


#: Whether :func:`bound_header_list` works with the installed h2.
BOUNDS_HEADERS = _probe_header_limit()


def bound_header_list(conn: h2.connection.H2Connection, size: int) -> bool:
    """Refuse header blocks over ``size`` bytes (RFC 9113 §6.5.2) at once.

    Returns whether it could; else the bound applies once the server has
    acknowledged our SETTINGS.
    """
    if BOUNDS_HEADERS:
        _bound(conn, size)
    return BOUNDS_HEADERS


# hyperframe describes a frame body by its first ten bytes, in hex.
_REPR_BYTES = 10


def _body_repr(head: bytes) -> str:
    # What hyperframe's DATA frame repr says of a body that starts with
    # ``head`` (at most one byte more than it shows, to know whether it
    # cut), without serializing and hex-encoding all of it.
    if not head:
        return "None"
    text = head[:_REPR_BYTES].hex()
    return f"<hex:{text}...>" if len(head) > _REPR_BYTES else f"<hex:{text}>"


class _QuietFrameBuffer(h2.frame_buffer.FrameBuffer):
    """h2's frame buffer, its DATA frames described by their head only."""

    def __next__(self) -> Frame:
        frame = super().__next__()
        if frame.__class__ is DataFrame:
            assert isinstance(frame, DataFrame)
            # The body as serialized: pad length, data, padding (zeros).
            head = frame.serialize_padding_data() + frame.data[: _REPR_BYTES + 1]
            if frame.pad_length and len(head) <= _REPR_BYTES:
                head += bytes(frame.pad_length)
            # An instance attribute, found before the class's method; it
            # holds bytes, not the frame (no reference cycle).
            frame._body_repr = partial(_body_repr, head[: _REPR_BYTES + 1])  # type: ignore[method-assign]
        return frame


def _quiet(conn: h2.connection.H2Connection) -> None:
    buffer = _QuietFrameBuffer(server=not conn.config.client_side)
    buffer.max_frame_size = conn.incoming_buffer.max_frame_size
    conn.incoming_buffer = buffer


def _probe_quiet() -> bool:
    """Whether h2 reads through the subclass, and its reprs are h2's own."""
    samples = [b"", b"x", b"0123456789", b"0123456789a", bytes(range(40))]
    try:
        client, server = _pair()
        _quiet(client)
        expected: list[str] = []
        for pad in (0, 1, 3, 20):
            for data in samples:
                frame = DataFrame(1, data, pad_length=pad)
                if pad:
                    frame.flags.add("PADDED")
                expected.append(repr(frame))
                client.incoming_buffer.add_data(frame.serialize())
        client.incoming_buffer.max_frame_size = 16384
        got = [repr(frame) for frame in client.incoming_buffer]
        server.send_headers(1, [(b":status", b"200")])
        server.send_data(1, b"quiet", end_stream=True)
        events = client.receive_data(server.data_to_send())
    except _MISFITS:
        return False
    received = [e.data for e in events if isinstance(e, h2.events.DataReceived)]
    return got == expected and received == [b"quiet"]


#: Whether :func:`quiet_data_frames` works with the installed h2.
QUIETS_DATA = _probe_quiet()


def quiet_data_frames(conn: h2.connection.H2Connection) -> bool:
    """Spare h2 describing every DATA frame it receives in full.

    Call before ``conn`` receives anything. Returns whether it could
    (:data:`QUIETS_DATA`); h2 goes on as before when it cannot.
    """
    if QUIETS_DATA:
        _quiet(conn)
    return QUIETS_DATA
