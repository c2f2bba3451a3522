"""Independent readings of what a server sent after the 101.

The fault and fuzz tests compare what trio_upgrade reports with what these
read from the same bytes: wsproto's own client parser for WebSocket (no
fast path, no trio_upgrade code), h2's client for HTTP/2. A client may
report less than these (it stopped at an error, or at a deadline), never
something else.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import wsproto
import wsproto.events
import wsproto.utilities

from trio_upgrade._sansio._h2_compat import reopen_after_goaway


def ws_messages(data: bytes) -> list[object]:
    """The messages wsproto reads from the server's bytes after the 101."""
    conn = wsproto.Connection(wsproto.ConnectionType.CLIENT)
    messages: list[object] = []
    parts: list[str | bytes] = []
    try:
        conn.receive_data(data)
        for event in conn.events():
            if isinstance(event, wsproto.events.Message):
                parts.append(event.data)
                if event.message_finished:
                    messages.append(_join(parts))
                    parts = []
            elif isinstance(event, wsproto.events.CloseConnection):
                break
    except (
        wsproto.utilities.LocalProtocolError,
        wsproto.utilities.RemoteProtocolError,
    ):
        pass
    return messages


def _join(parts: list[str | bytes]) -> str | bytes:
    if all(isinstance(p, str) for p in parts):
        return "".join(str(p) for p in parts)
    # wsproto before 1.3 gives binary data as bytearray: bytes-like, kept.
    return b"".join(bytes(p) for p in parts if not isinstance(p, str))


def h2_bodies(data: bytes) -> list[object]:
    """The bodies of streams 1, 3, 5 that h2 reads, as far as each is whole."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    conn.initiate_upgrade_connection()
    # The requests of streams 3 and 5, as the client sent them: h2 accepts
    # responses only on streams it opened.
    for stream_id, method, path in ((3, b"POST", b"/echo"), (5, b"GET", b"/")):
        head = [(b":method", method), (b":scheme", b"http")]
        head += [(b":authority", b"127.0.0.1"), (b":path", path)]
        conn.send_headers(stream_id, head, end_stream=True)
    bodies: dict[int, bytes] = {1: b"", 3: b"", 5: b""}
    ended: set[int] = set()
    try:
        for event in _feed_frames(conn, data):
            if isinstance(event, h2.events.DataReceived) and event.stream_id:
                bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
            elif isinstance(event, h2.events.StreamEnded):
                ended.add(event.stream_id)
    except h2.exceptions.H2Error:
        pass
    # A body counts once its stream ended: a cut one is reported as an error.
    result: list[object] = []
    for stream_id in (1, 3, 5):
        if stream_id not in ended:
            break
        result.append(bodies[stream_id])
    return result


def _feed_frames(conn: h2.connection.H2Connection, data: bytes) -> list[object]:
    """h2's events for ``data`` fed a frame at a time.

    A connection error raised by a later frame then leaves the events of
    the earlier ones (one ``receive_data`` call would lose them all), as a
    client reading frame by frame sees them.
    """
    events: list[object] = []
    pos = 0
    last: int | None = None  # of the GOAWAYs so far, the lowest
    while pos < len(data):
        end = pos + 9 + int.from_bytes(data[pos : pos + 3], "big")
        try:
            received = conn.receive_data(data[pos:end])
        except h2.exceptions.H2Error:
            return events
        for event in received:
            if isinstance(event, h2.events.ConnectionTerminated):
                sid = event.last_stream_id or 0
                last = sid if last is None else min(last, sid)
            elif last is not None and (getattr(event, "stream_id", 0) or 0) > last:
                continue  # a stream the GOAWAY refused: nothing of it counts
            events.append(event)
        if last is not None:
            # RFC 9113 §6.8: the streams up to last_stream_id may still end;
            # h2 alone refuses every frame after a GOAWAY (the client reopens
            # it the same way).
            reopen_after_goaway(conn)
        pos = end
    return events
