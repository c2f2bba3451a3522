"""What the DEBUG log and the ``trace`` hook see of a connection.

Loggers, all children of ``trio_upgrade``:

* ``trio_upgrade.connect``: the connection (address, proxy, TLS version and
  ALPN), with its timings;
* ``trio_upgrade.handshake``: each upgrade request and response head, one
  record per line (credentials redacted);
* ``trio_upgrade.websocket``, ``trio_upgrade.http2``, ``trio_upgrade.raw``:
  after the switch, one record per frame (per chunk for a raw protocol),
  ``>`` sent and ``<`` received.

Nothing is logged at INFO or above per connection or message. The frame
records come from :class:`ObservedStream`, a wrapper put around the
transport at the switch only when the protocol's logger is enabled for
DEBUG (or a ``trace`` hook wants the first byte): with logging off, the
connection runs on its transport as it always did, and the whole cost is
one ``isEnabledFor`` per connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import trio

__all__ = [
    "CONNECT_LOG",
    "HANDSHAKE_LOG",
    "ObservedStream",
    "Trace",
    "emit",
    "observe",
    "wire_logger",
]

#: A ``trace`` hook: called with an event name and its details; see
#: :class:`~trio_upgrade.ConnectOptions`.
Trace = Callable[[str, Mapping[str, Any]], None]

CONNECT_LOG = logging.getLogger("trio_upgrade.connect")
HANDSHAKE_LOG = logging.getLogger("trio_upgrade.handshake")
_WIRE_LOGS = {
    "websocket": logging.getLogger("trio_upgrade.websocket"),
    "h2c": logging.getLogger("trio_upgrade.http2"),
    "h2": logging.getLogger("trio_upgrade.http2"),
}
_RAW_LOG = logging.getLogger("trio_upgrade.raw")


class _Summary(Protocol):
    def feed(self, data: bytes | bytearray | memoryview) -> list[str]: ...


def wire_logger(protocol: str) -> logging.Logger:
    """The logger of the frames of ``protocol`` (a token)."""
    return _WIRE_LOGS.get(protocol, _RAW_LOG)


def _summaries(protocol: str, *, preface: bool) -> tuple[_Summary, _Summary]:
    # Imported here: only a connection someone looks at needs them.
    from .._sansio._wire_log import HTTP2Frames, RawChunks, WebSocketFrames

    if protocol == "websocket":
        return WebSocketFrames(), WebSocketFrames()
    if protocol in ("h2c", "h2"):
        return HTTP2Frames(client_preface=preface), HTTP2Frames()
    return RawChunks(), RawChunks()


class ObservedStream(trio.abc.HalfCloseableStream):
    """``inner``, its frames logged and its first byte traced.

    Args:
        inner: the transport after the switch.
        protocol: the token of the protocol spoken on it.
        label: how the log names the connection (its URL, no credentials).
        leftover: bytes that came with the 101, already received.
        trace: the caller's hook, told of the first byte received.
        preface: an HTTP/2 client preface starts what is sent.
    """

    def __init__(
        self,
        inner: trio.abc.Stream,
        protocol: str,
        label: str,
        *,
        leftover: bytes = b"",
        trace: Trace | None = None,
        preface: bool = True,
    ) -> None:
        self.inner = inner
        self._protocol = protocol
        self._label = label
        self._log = wire_logger(protocol)
        self._debug = self._log.isEnabledFor(logging.DEBUG)
        self._sent, self._received = _summaries(protocol, preface=preface)
        self._trace = trace
        self._switched = trio.current_time()
        if leftover:
            self._got(leftover)

    def _got(self, data: bytes | bytearray) -> None:
        if self._trace is not None:
            trace, self._trace = self._trace, None
            now = trio.current_time()
            trace(
                "first_byte",
                {
                    "protocol": self._protocol,
                    "url": self._label,
                    "time": now,
                    "elapsed": now - self._switched,
                },
            )
        if self._debug:
            for line in self._received.feed(data):
                self._log.debug("%s < %s", self._label, line)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)
        if self._debug:
            for line in self._sent.feed(data):
                self._log.debug("%s > %s", self._label, line)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        inner = self.inner
        if not isinstance(inner, trio.abc.HalfCloseableStream):
            raise TypeError(f"{type(inner).__name__} cannot half-close")
        await inner.send_eof()
        if self._debug:
            self._log.debug("%s > EOF", self._label)

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        if data:
            self._got(data)
        elif self._debug:
            self._log.debug("%s < EOF", self._label)
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __repr__(self) -> str:
        return f"<ObservedStream {self._protocol} {self._label} of {self.inner!r}>"


def emit(trace: Trace, event: str, info: dict[str, Any]) -> None:
    """Tell ``trace`` of ``event``, with the time (trio's clock) in ``info``."""
    info.setdefault("time", trio.current_time())
    trace(event, info)


def observe(
    stream: trio.abc.Stream,
    protocol: str,
    label: str,
    *,
    leftover: bytes = b"",
    trace: Trace | None = None,
    preface: bool = True,
) -> trio.abc.Stream:
    """``stream`` wrapped in an :class:`ObservedStream` if anyone is looking.

    That is, when the protocol's logger is enabled for DEBUG or a ``trace``
    hook is given; else ``stream`` itself.
    """
    if trace is None and not wire_logger(protocol).isEnabledFor(logging.DEBUG):
        return stream
    return ObservedStream(
        stream, protocol, label, leftover=leftover, trace=trace, preface=preface
    )
