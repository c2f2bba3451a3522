"""Time and size limits, with the reasoning behind each default.

Sans-I/O: nothing here imports trio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["GOING_AWAY_GRACE", "RECEIVE_SIZE", "Limits"]

#: Bytes asked of the transport in one read, everywhere the library reads
#: (handshake, proxy tunnel, WebSocket, HTTP/2, the testing server). 64 KiB:
#: the most a loopback or LAN read usually yields, and wsproto/h2 parse large
#: messages several times faster when fed big chunks (measured: 8x for 1 MiB
#: WebSocket messages, 64 KiB vs 4 KiB reads). A read size, not a bound.
RECEIVE_SIZE = 65536


@dataclass(frozen=True)
class Limits:
    """Every bound the library enforces during connect and handshake.

    All fields can be overridden; ``math.inf`` (for times) turns a deadline
    off. Protocol-specific bounds (WebSocket message size, HTTP/2 streams)
    live on the protocol objects that use them.

    Attributes:
        connect_timeout: seconds allowed for DNS, TCP (and later TLS)
            connect. 10 s: browsers give up between 10 s (Chromium's
            per-attempt connect) and 30 s; long enough for a slow loopback
            under load, short enough that a black-holed address fails while a
            person is still waiting.
        handshake_timeout: seconds one attempt may take, from sending its
            request until the upgraded connection is built (each attempt of a
            negotiation gets its own). When it passes before a final status
            arrived, :class:`~trio_upgrade.UpgradeTimeout`; when it passes
            while a refusal's body is being read, the refusal stands (its
            ``body_truncated`` set) and the next offer, if any, is tried.
            10 s matches the ``websockets`` library's ``open_timeout``.
        close_timeout: seconds a clean close may take before the transport is
            dropped (used by protocols that have a closing handshake).
            10 s matches ``websockets``' ``close_timeout``. When the block
            that owns the connection ends with an exception (cancellation,
            Ctrl-C), the goodbye (WebSocket close 1001, HTTP/2 GOAWAY) gets
            the smaller of this and 1 s, shielded from the cancellation.
        max_head_size: bytes allowed in one response head (status line plus
            header fields; each 1xx head counts on its own), however its
            bytes are split across reads. 64 KiB: h11 defaults to 16 KiB,
            nginx to 8-32 KiB for request heads, Node's
            ``--max-http-header-size`` is 16 KiB; a 101 with long
            ``Set-Cookie`` lines still fits with room to spare, and the
            buffer stays small.
        max_informational: how many 1xx responses (other than 101) may come
            before the final response. 16: a legitimate server sends at most
            a ``100 Continue`` and a few ``103 Early Hints``; anything more is
            a server stalling without end.
        max_refusal_body: bytes of a refusal's body kept on the
            :class:`~trio_upgrade.UpgradeRefused` error. 64 KiB is enough for
            an error page; the rest is not read.
        max_attempts: upgrade requests one negotiation may make (the
            one-protocol-per-request strategy makes one per protocol).
            Redirects that are followed do not count here but against
            ``max_redirects``.
        max_redirects: redirects one call follows (with
            ``follow_redirects``, the default); one more is a
            :class:`~trio_upgrade.RedirectError`. 10: what ``websockets``
            follows (``MAX_REDIRECTS``), below curl's 50 and Chromium's 20 for
            pages, since an upgrade endpoint has little reason to move more
            than once or twice. 0 refuses every redirect with that error.
    """

    connect_timeout: float = 10.0
    handshake_timeout: float = 10.0
    close_timeout: float = 10.0
    max_head_size: int = 64 * 1024
    max_informational: int = 16
    max_refusal_body: int = 64 * 1024
    max_attempts: int = 8
    max_redirects: int = 10

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Limits.{f.name} must be a number, got {value!r}")
            if math.isnan(value) or value < 0:
                raise ValueError(f"Limits.{f.name} must be >= 0, got {value!r}")
        for name in (
            "max_head_size",
            "max_informational",
            "max_refusal_body",
            "max_redirects",
        ):
            if not isinstance(getattr(self, name), int):
                raise TypeError(f"Limits.{name} must be an int")
        if self.max_attempts < 1 or not isinstance(self.max_attempts, int):
            raise ValueError("Limits.max_attempts must be an int >= 1")


#: Seconds a connection may spend saying goodbye when the block that owns it
#: ends with an exception (cancelled by a timeout, Ctrl-C, an error in the
#: body): the WebSocket close frame 1001 "going away" and the server's
#: answer, or HTTP/2's GOAWAY, under a shield, then the socket is closed.
#: The smaller of this and ``Limits.close_timeout`` applies. 1 s: a few round
#: trips on any real path (300 ms across the world), so a healthy server
#: sees the goodbye; short enough that whoever cancelled, or the person who
#: pressed Ctrl-C, is not kept waiting by a server that stopped reading. The
#: same bound as HTTP/2's RST_STREAM of a cancelled stream.
GOING_AWAY_GRACE = 1.0
