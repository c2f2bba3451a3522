"""Per-stream state of an HTTP/2 connection and the small pieces around it.

Sans-I/O apart from :class:`trio.Event` in :class:`Waiter`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import trio
from h2.errors import ErrorCodes

from ._errors import StreamRefused

__all__ = [
    "CLEANUP_GRACE",
    "RECEIVE_SIZE",
    "ErrorFactory",
    "Grant",
    "Header",
    "PingWaiter",
    "StreamState",
    "Waiter",
    "closed_error",
    "code_name",
    "refused_by_goaway",
    "split_head",
]

#: One read's size: 64 KiB, the most a loopback or LAN read usually yields;
#: h2 parses four 16 KiB DATA frames per call instead of one.
RECEIVE_SIZE = 65536

#: Seconds a task that was cancelled may still spend sending its stream's
#: RST_STREAM. Such a write normally completes at once; when the socket is
#: full (the server stopped reading) the cancel is not held up longer than
#: this, and the connection is then given up (a write cut short breaks the
#: framing). 1 s: short next to any caller's timeout, long next to a write.
CLEANUP_GRACE = 1.0

#: Makes the exception to raise: a fresh one per raise, since one error (a
#: lost connection) reaches many tasks, and one exception object raised in
#: several tasks would collect all their tracebacks.
ErrorFactory = Callable[[], Exception]
Header = tuple[bytes, bytes]


class Waiter:
    """Where one waiting task is woken; at most one task waits on each."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event: trio.Event | None = None


class Grant(Waiter):
    """A task waiting for a free stream; ``granted`` once it has one."""

    __slots__ = ("granted",)

    def __init__(self) -> None:
        super().__init__()
        self.granted = False


class PingWaiter(Waiter):
    """A task waiting for its PING's ACK."""

    __slots__ = ("acked",)

    def __init__(self) -> None:
        super().__init__()
        self.acked = False


class StreamState:
    """What the connection knows of one stream, as the application sees it.

    ``chunks`` holds received DATA the application has not consumed (at most
    the stream's receive window); ``error`` makes reads (once ``chunks`` is
    empty and the stream has not ended) and writes raise.
    """

    __slots__ = (
        "buffered",
        "chunks",
        "closed",
        "error",
        "headers",
        "informational",
        "local_ended",
        "peer_reset",
        "recv_waiter",
        "remote_ended",
        "reset_code",
        "send_waiter",
        "status",
        "stream_id",
        "trailers",
        "unacked",
    )

    def __init__(self, stream_id: int, *, local_ended: bool) -> None:
        self.stream_id = stream_id
        self.recv_waiter = Waiter()
        self.send_waiter = Waiter()
        self.status = 0
        self.headers: list[Header] | None = None
        self.trailers: list[Header] | None = None
        self.informational = 0
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.unacked = 0  # consumed bytes not yet given back to the window
        self.local_ended = local_ended
        self.remote_ended = False
        self.reset_code: int | None = None
        self.peer_reset: ErrorFactory | None = None  # the server's RST_STREAM
        self.closed = False  # closed in HTTP/2 terms: its slot is free
        self.error: ErrorFactory | None = None

    def has_head(self) -> bool:
        return self.headers is not None or self.error is not None

    def readable(self) -> bool:
        return bool(self.chunks) or self.remote_ended or self.error is not None


def split_head(headers: list[Header]) -> tuple[int, list[Header]]:
    """The ``:status`` (h2 has checked it is there) and the regular fields."""
    status = 0
    rest: list[Header] = []
    for name, value in headers:
        if name == b":status":
            status = int(value)
        elif not name.startswith(b":"):
            rest.append((name, value))
    return status, rest


def closed_error() -> Exception:
    return trio.ClosedResourceError("the HTTP/2 connection was closed")


def code_name(code: int) -> str:
    """``"CANCEL (0x8)"``: an HTTP/2 error code as RFC 9113 §7 names it."""
    try:
        return f"{ErrorCodes(code).name} (0x{code:x})"
    except ValueError:
        return f"error code 0x{code:x}"


def refused_by_goaway(sid: int, code: int, last: int) -> ErrorFactory:
    name = code_name(code)
    return lambda: StreamRefused(
        f"the server sent GOAWAY ({name}) with last stream {last}: stream "
        f"{sid} was not processed; the request can be retried on a new connection",
        code=code,
        stream_id=sid,
    )
