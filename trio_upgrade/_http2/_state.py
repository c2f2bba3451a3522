"""Per-stream state of an HTTP/2 connection and the small pieces around it.

Sans-I/O apart from :class:`trio.Event` in :class:`Waiter`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import trio
from h2.errors import ErrorCodes

from .._errors import ContentLengthError, StreamRefused

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
    empty and the stream has not ended) and writes raise. ``delivered``
    counts the body bytes handed to the application, checked at the end of
    the body against ``expected_length`` (the response's ``content-length``;
    0 for a HEAD request), so that no body is ever returned short.
    """

    __slots__ = (
        "buffered",
        "chunks",
        "closed",
        "delivered",
        "error",
        "expected_length",
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

    def __init__(
        self, stream_id: int, *, local_ended: bool, head_request: bool = False
    ) -> None:
        self.stream_id = stream_id
        self.recv_waiter = Waiter()
        self.send_waiter = Waiter()
        self.status = 0
        self.headers: list[Header] | None = None
        self.trailers: list[Header] | None = None
        self.informational = 0
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.delivered = 0
        # RFC 9110 §9.3.2: a response to HEAD has no body, whatever its
        # content-length says.
        self.expected_length: int | None = 0 if head_request else None
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

    def check_length(self) -> None:
        """At the end of the body: raise unless it had its declared length."""
        expected = self.expected_length
        if expected is not None and self.delivered != expected:
            raise ContentLengthError(
                f"stream {self.stream_id}: the body ended after {self.delivered} "
                f"bytes but content-length said {expected}",
                expected=expected,
                received=self.delivered,
                stream_id=self.stream_id,
            )


def split_head(headers: list[Header]) -> tuple[int, list[Header], int | None]:
    """The ``:status`` (h2 has checked it is there), the regular fields and
    the ``content-length`` (h2 has checked that it is digits, and the same
    in every field line) or ``None``."""
    status = 0
    length: int | None = None
    rest: list[Header] = []
    for name, value in headers:
        if name == b":status":
            status = int(value)
        elif not name.startswith(b":"):
            if name == b"content-length":
                length = int(value)
            rest.append((name, value))
    return status, rest, length


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
