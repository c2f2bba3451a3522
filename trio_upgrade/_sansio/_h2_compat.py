"""Every use of h2 beyond its documented API, in one place.

There is one. After a GOAWAY, h2 moves its connection state machine to
``CLOSED`` and refuses every later frame with a ``ProtocolError``, although
RFC 9113 §6.8 lets the server finish the streams up to the GOAWAY's
``last_stream_id``, and servers do (h2o, hypercorn on a graceful shutdown).
:func:`reopen_after_goaway` sets the state machine back to ``CLIENT_OPEN``,
which is what h2 would be in had the GOAWAY not come; the streams themselves
keep their own state, so h2 goes on checking every frame for them.

:data:`REOPENS` says whether that works with the h2 installed: at import, a
real h2 client is fed a GOAWAY and then DATA for a stream it kept, and must
hand that DATA over as a ``DataReceived`` event once reopened. If it does
not (a future h2 that renames the attribute or changes what it means), the
public behaviour is used instead: the GOAWAY ends the connection, so the
streams it kept fail with :class:`~trio_upgrade.ConnectionClosed` instead of
finishing. ``TRIO_UPGRADE_NO_SPEEDUPS=1`` does not turn this off: it is not
a speed-up but the RFC's behaviour.

Sans-I/O: nothing here imports trio.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.exceptions

__all__ = ["REOPENS", "reopen_after_goaway"]


def _reopen(conn: h2.connection.H2Connection) -> None:
    conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN


def _probe() -> bool:
    """Whether reopening makes h2 accept frames for kept streams."""
    try:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        client = h2.connection.H2Connection(config)
        client.initiate_connection()
        client.send_headers(
            1,
            [
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"a"),
                (b":path", b"/"),
            ],
            end_stream=True,
        )
        server = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        server.initiate_connection()
        server.receive_data(client.data_to_send())
        server.send_headers(1, [(b":status", b"200")])
        client.receive_data(server.data_to_send())
        server.close_connection(last_stream_id=1)
        client.receive_data(server.data_to_send())
        _reopen(client)
        # The server's h2 is closed too: the DATA frame by hand (RFC 9113
        # §4.1, §6.1): length 4, type DATA, END_STREAM, stream 1.
        kept = b"\x00\x00\x04\x00\x01\x00\x00\x00\x01kept"
        events = client.receive_data(kept)
    except (AttributeError, TypeError, ValueError, h2.exceptions.ProtocolError):
        return False
    data = [e for e in events if isinstance(e, h2.events.DataReceived)]
    ended = [e for e in events if isinstance(e, h2.events.StreamEnded)]
    return len(data) == 1 and data[0].data == b"kept" and len(ended) == 1


#: Whether :func:`reopen_after_goaway` works with the installed h2.
REOPENS = _probe()


def reopen_after_goaway(conn: h2.connection.H2Connection) -> bool:
    """Let h2 take the frames of the streams a GOAWAY kept (RFC 9113 §6.8).

    Returns whether it could; when it cannot (:data:`REOPENS` is false), h2
    stays closed and refuses what follows.
    """
    if REOPENS:
        _reopen(conn)
    return REOPENS
