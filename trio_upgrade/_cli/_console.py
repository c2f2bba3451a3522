"""Where ``trio-upgrade`` writes, how it reads stdin, and its frame trace.

Data (received messages, response bodies, a raw stream's bytes) goes to
stdout; the attempts, the trace and errors go to stderr, so that
``trio-upgrade connect ... > file`` keeps only the data.

Stdin is read by a worker thread with :func:`os.read` on its file
descriptor: it works the same on a terminal, a pipe, a file and
``/dev/null``, on every platform, and leaves the descriptor in blocking
mode. (A :class:`trio.lowlevel.FdStream` would make it non-blocking, and on a
terminal stdin, stdout and stderr usually share one open file: stdout would
turn non-blocking too, and a large write could fail.) The thread is
abandoned when the session ends, blocked in ``os.read`` where no Python lock
is held, so interpreter shutdown never waits for it.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Sequence
from typing import BinaryIO, TextIO

import trio

from .._sansio._errors import Attempt
from .._sansio._messages import Request, Response

__all__ = ["Console", "Input"]

#: How much one read of stdin takes at most.
CHUNK = 65536
#: The longest line of stdin kept; a longer one is sent in pieces.
MAX_LINE = 1 << 20


class Input:
    """Stdin, read without blocking Trio: chunks, or lines."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._eof = False
        # Our own descriptor: a read abandoned when the session ended may
        # still be under way (or about to start) in its thread, and must
        # never read from another file that reused the number. Closed by
        # close(), or by that read when it ends after close().
        self._lock = threading.Lock()
        self._reading = False
        self._closed = False
        try:
            self._fd: int | None = os.dup(stream.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            self._fd = None  # an in-memory stream (tests)

    def _read(self) -> bytes:
        if self._fd is None:
            read1 = getattr(self._stream, "read1", None)
            data: bytes = (
                read1(CHUNK) if read1 is not None else self._stream.read(CHUNK)
            )
            return data
        with self._lock:
            if self._closed:
                return b""
            self._reading = True
        try:
            return os.read(self._fd, CHUNK)
        finally:
            self._done_reading(self._fd)

    def _done_reading(self, fd: int) -> None:
        with self._lock:
            self._reading = False
            if self._closed:  # close() came during the read: ours to do
                os.close(fd)

    def close(self) -> None:
        """Let go of stdin: now, or when a read under way ends."""
        with self._lock:
            if self._closed or self._fd is None:
                return
            self._closed = True
            if not self._reading:
                os.close(self._fd)

    async def read_chunk(self) -> bytes:
        """The next bytes of stdin, ``b""`` at its end."""
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            await trio.lowlevel.checkpoint()
            return data
        if self._eof:
            await trio.lowlevel.checkpoint()
            return b""
        data = await trio.to_thread.run_sync(self._read, abandon_on_cancel=True)
        self._eof = not data
        return data

    async def read_line(self) -> bytes | None:
        """The next line without its end (``\\n`` or ``\\r\\n``); ``None`` at EOF.

        A last line without a newline is a line; a line longer than
        :data:`MAX_LINE` comes in pieces of that size.
        """
        while True:
            end = self._buffer.find(b"\n")
            full = len(self._buffer) >= MAX_LINE
            if end >= 0 or full or (self._eof and self._buffer):
                if end < 0:
                    end = min(len(self._buffer), MAX_LINE)
                    line = bytes(self._buffer[:end])
                    del self._buffer[:end]
                else:
                    line = bytes(self._buffer[:end])
                    del self._buffer[: end + 1]
                await trio.lowlevel.checkpoint()
                return line.removesuffix(b"\r")
            if self._eof:
                await trio.lowlevel.checkpoint()
                return None
            data = await trio.to_thread.run_sync(self._read, abandon_on_cancel=True)
            self._eof = not data
            self._buffer += data


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


class Console:
    """The run's output: data to ``out``, everything else to ``err``.

    Args:
        out: where data goes (stdout).
        err: where attempts, trace lines and errors go (stderr).
        verbose: show every head and a line per message sent or received.
        quiet: show errors only.
    """

    def __init__(
        self, out: TextIO, err: TextIO, *, verbose: bool = False, quiet: bool = False
    ) -> None:
        self.out = out
        self.err = err
        self.verbose = verbose
        self.quiet = quiet
        self._start = time.monotonic()

    def data(self, text: str) -> None:
        """A line of data (stdout), even with ``-q``."""
        print(text, file=self.out, flush=True)

    def data_bytes(self, data: bytes) -> None:
        """Bytes as received (a raw stream): to stdout's binary buffer."""
        buffer = getattr(self.out, "buffer", None)
        if buffer is None:  # an in-memory text stream (tests)
            self.out.write(data.decode("utf-8", "replace"))
            self.out.flush()
        else:
            self.out.flush()
            buffer.write(data)
            buffer.flush()

    def info(self, text: str) -> None:
        """A line for the person running the command (not with ``-q``)."""
        if not self.quiet:
            print(text, file=self.err, flush=True)

    def error(self, text: str) -> None:
        """A line that is always shown."""
        print(text, file=self.err, flush=True)

    def trace(self, direction: str, text: str) -> None:
        """One line of the frame trace (``-v``): ``>`` sent, ``<`` received."""
        if self.verbose:
            elapsed = time.monotonic() - self._start
            print(f"[{elapsed:8.3f}] {direction} {text}", file=self.err, flush=True)

    def request(self, request: Request | None) -> None:
        """A request head, credentials redacted (``str(Request)`` does)."""
        if request is not None and not self.quiet:
            self.info(_indent(str(request), "> "))

    def response(self, response: Response | None) -> None:
        """A response head: in full with ``-v``, else its status line."""
        if response is None or self.quiet:
            return
        text = str(response)
        self.info(_indent(text if self.verbose else text.splitlines()[0], "< "))

    def attempts(self, attempts: Sequence[Attempt]) -> None:
        """Each attempt: what was offered where, the request, the answer."""
        for attempt in attempts:
            offered = ", ".join(attempt.offered)
            if attempt.request is None:  # ALPN, or no connection
                error = attempt.error
                kind = "ALPN offer" if attempt.offered == ("h2",) else "offer"
                result = "selected" if error is None else str(error)
                if error is None and kind == "offer":
                    result = "not sent"
                self.info(f"* {kind} of {offered} to {attempt.url}: {result}")
                continue
            status = attempt.status_code
            self.info(f"* offer of {offered} to {attempt.url}: {status}")
            self.request(attempt.request)
            self.response(attempt.response)
