"""Exit statuses of ``trio-upgrade``: one per way a run can end."""

from __future__ import annotations

import enum

import trio

from .._sansio._errors import (
    ConnectError,
    ConnectionClosed,
    HTTP2NotSelected,
    InvalidURL,
    UpgradeError,
    UpgradeRefused,
)

__all__ = ["EXIT_CODES", "Exit", "exit_status"]


class Exit(enum.IntEnum):
    """How a run ended; the value is the process exit status."""

    OK = 0
    REFUSED = 1
    USAGE = 2
    CONNECT = 3
    TIMEOUT = 4
    PROTOCOL = 5
    CLOSED = 6
    INTERRUPTED = 130


#: What each status means, for ``--help`` and the docs (one line each).
EXIT_CODES: dict[Exit, str] = {
    Exit.OK: "success; a WebSocket closed normally (1000, 1001, no code)",
    Exit.REFUSED: "the server declined every offer (no 101, or ALPN without h2)",
    Exit.USAGE: "bad command line, URL, header or certificate file",
    Exit.CONNECT: "could not connect: DNS, TCP, TLS or the proxy failed",
    Exit.TIMEOUT: "--timeout passed while connecting or negotiating",
    Exit.PROTOCOL: "the server broke HTTP/1.1, the handshake or the protocol",
    Exit.CLOSED: "the server closed the WebSocket with another code, or "
    "the connection broke",
    Exit.INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_status(exc: BaseException) -> Exit:
    """The exit status for a run that ended with ``exc``."""
    if isinstance(exc, trio.TooSlowError):  # UpgradeTimeout included
        return Exit.TIMEOUT
    if isinstance(exc, (UpgradeRefused, HTTP2NotSelected)):
        return Exit.REFUSED
    if isinstance(exc, (InvalidURL, ValueError)):
        return Exit.USAGE
    if isinstance(exc, (ConnectError, OSError)):  # ProxyError included
        return Exit.CONNECT
    if isinstance(exc, ConnectionClosed):
        return Exit.OK if exc.normal else Exit.CLOSED
    if isinstance(exc, trio.BrokenResourceError):
        return Exit.CLOSED
    if isinstance(exc, UpgradeError):
        return Exit.PROTOCOL
    raise exc


def exit_table() -> str:
    """The exit statuses as lines of text (``--help``)."""
    return "\n".join(f"  {int(code):>3}  {text}" for code, text in EXIT_CODES.items())
