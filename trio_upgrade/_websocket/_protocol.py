"""``WebSocket``: the protocol object that offers WebSocket in an upgrade."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import trio
from wsproto.extensions import Extension

from .._protocol import BuildContext, Offer, UpgradeProtocol, check_token
from .._sansio._messages import Request, Response
from .._sansio._url import Target
from .._sansio._ws_deflate import BoundedDeflate, Deflate
from .._sansio._ws_handshake import Switch, check_switch, new_key
from ._connection import WebSocketConnection
from ._reader import client_wsproto
from ._shared import DEFAULT_WRITE_BUFFER_LIMIT, ConnectionSettings

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_PING_TIMEOUT",
    "WebSocket",
]

#: Largest incoming message, in bytes after decompression: 1 MiB, the
#: ``websockets`` default (``max_size=2**20``). Browsers accept far more
#: (hundreds of MiB) because a tab is one user's; a client library may hold
#: many connections, and a server that sends more than 1 MiB in one message
#: is better met with a deliberate, larger setting.
DEFAULT_MAX_SIZE = 2**20

#: Complete messages waiting for ``receive()``: 16, the ``websockets``
#: default (``max_queue=16``). With ``max_size`` it bounds what one slow
#: consumer can make a connection hold (16 MiB at worst, usually far less),
#: while leaving room for bursts.
DEFAULT_MAX_QUEUE = 16

#: Seconds of silence from the server before a keepalive ping: 20, as in
#: ``websockets`` (``ping_interval=20``); shorter than the idle timeouts of
#: common proxies and load balancers (60 s for nginx and AWS ALB).
#: Browsers send no pings of their own.
DEFAULT_PING_INTERVAL = 20.0

#: Seconds to wait, after a keepalive ping, for anything from the server:
#: 20, as in ``websockets`` (``ping_timeout=20``).
DEFAULT_PING_TIMEOUT = 20.0


def _positive(name: str, value: float | None, *, integer: bool) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, got {value!r}")
    if integer and not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, got {value!r}")
    if math.isnan(value) or value <= 0:
        raise ValueError(f"{name} must be > 0 or None, got {value!r}")


class _WebSocketOffer(Offer[WebSocketConnection]):
    # RFC 6455 §4.1: a 101 without "Upgrade: websocket" fails the handshake.
    accept_missing_upgrade_header = False

    def __init__(self, protocol: WebSocket) -> None:
        super().__init__("websocket")
        self._protocol = protocol
        self._key = new_key()
        self._switch: Switch | None = None

    def headers(self) -> list[tuple[str, str]]:
        p = self._protocol
        fields = [("Sec-WebSocket-Key", self._key), ("Sec-WebSocket-Version", "13")]
        if p.origin is not None:
            fields.append(("Origin", p.origin))
        if p.subprotocols:
            fields.append(("Sec-WebSocket-Protocol", ", ".join(p.subprotocols)))
        if p.compression is not None:
            fields.append(
                ("Sec-WebSocket-Extensions", p.compression.offer().header_value())
            )
        return fields

    def validate(self, response: Response) -> None:
        p = self._protocol
        self._switch = check_switch(
            response,
            self._key,
            p.subprotocols,
            p.compression.offer() if p.compression is not None else None,
            require_subprotocol=p.require_subprotocol,
        )

    async def build(
        self, stream: trio.abc.Stream, leftover: bytes, context: BuildContext
    ) -> WebSocketConnection:
        if self._switch is None:
            self.validate(context.response)
        switch = self._switch
        assert switch is not None
        p = self._protocol
        extensions: list[Extension] = []
        if switch.deflate is not None:
            assert p.compression is not None
            deflate = BoundedDeflate(p.compression, p.max_size)
            [element] = [
                e for e in switch.extensions if e.lower().startswith(deflate.name)
            ]
            deflate.finalize(element)
            extensions.append(deflate)
        ws = client_wsproto(extensions, leftover)
        connection = WebSocketConnection(
            stream,
            ws,
            p._settings,
            close_timeout=context.limits.close_timeout,
            request=context.request,
            response=context.response,
            attempts=context.attempts,
            subprotocol=switch.subprotocol,
            extensions=switch.extensions,
            buffered=bool(leftover),
        )
        if context.nursery is not None:
            connection._engine.start_background(context.nursery)
        else:
            p._warn_no_keepalive(
                "keepalive pings need a nursery: use trio_upgrade.open_upgrade(), "
                "or upgrade(..., nursery=...)"
            )
        # No checkpoint of its own: upgrade() has passed several already.
        return connection


def connection_on_stream(
    protocol: WebSocket,
    stream: trio.abc.Stream,
    *,
    close_timeout: float,
    request: Request,
    response: Response,
    subprotocol: str | None,
) -> WebSocketConnection:
    """A client connection on a stream whose handshake was done elsewhere.

    For WebSockets over HTTP/2 (RFC 8441): the extended CONNECT and the
    check of its 2xx belong to the HTTP/2 package, which hands over the
    stream; no extension is in force (compression is not offered there).
    The connection gets the same per-connection bounds as after a 101;
    no keepalive runs on it (the HTTP/2 connection's own PINGs keep the
    connection alive: ``HTTP2Options.ping_interval``).
    """
    protocol._warn_no_keepalive(
        "keepalive pings do not run on a WebSocket over HTTP/2; the HTTP/2 "
        "connection's PINGs (HTTP2Options.ping_interval) keep it alive"
    )
    return WebSocketConnection(
        stream,
        client_wsproto(),
        protocol._settings,
        close_timeout=close_timeout,
        request=request,
        response=response,
        subprotocol=subprotocol,
    )


class WebSocket(UpgradeProtocol[WebSocketConnection]):
    """WebSocket (RFC 6455) with its options; the string ``"websocket"`` is
    ``WebSocket()``.

    The offer sends a fresh ``Sec-WebSocket-Key``, ``Sec-WebSocket-Version:
    13``, and the optional ``Origin``, ``Sec-WebSocket-Protocol`` and
    ``Sec-WebSocket-Extensions`` (permessage-deflate). The 101 is checked as
    RFC 6455 §4.1 and RFC 7692 §7.1 require: ``Upgrade: websocket``,
    ``Connection: upgrade``, the ``Sec-WebSocket-Accept`` of our key, no
    subprotocol or one among those offered, extensions and parameters among
    those offered; otherwise :class:`~trio_upgrade.InvalidUpgrade`.

    Args:
        subprotocols: subprotocols to offer, in order of preference.
        origin: the ``Origin`` header to send, if any.
        compression: permessage-deflate settings (a ``Deflate``);
            ``"deflate"`` means ``Deflate()``, ``None`` offers no compression.
        max_size: largest incoming message in bytes, after decompression
            (default 1 MiB, as in ``websockets``); a larger one fails the
            connection with close code 1009, as soon as a frame header
            announces it (uncompressed), or as soon as it inflates past the
            limit. A compressed frame longer than any compressed form of
            ``max_size`` bytes can be is refused from its header too.
            ``None`` for no limit.
        max_queue: complete messages held for ``receive()`` before reading
            pauses (default 16, as in ``websockets``); ``None`` for no
            limit.
        max_fragment_size: send messages larger than this many bytes as
            several frames. ``None`` (default) sends each message as one
            frame, as browsers and ``websockets`` do.
        ping_interval: with a nursery, send a ping after this many seconds
            without incoming data (default 20); ``None`` for no keepalive.
            Keepalive is a background task, so it runs only for
            connections opened with a nursery
            (:func:`~trio_upgrade.open_upgrade`, or ``upgrade(...,
            nursery=)``). A ``ping_interval`` given here for a connection
            opened without one (or for a WebSocket over HTTP/2) would do
            nothing: the first such connection emits a
            :exc:`RuntimeWarning`, once per ``WebSocket`` object.
        ping_timeout: fail the connection (close code 1011) when nothing
            comes within this many seconds of a keepalive ping (default 20);
            ``None`` to never fail.
        write_buffer_limit: bytes of frames that ``send()`` calls may queue
            behind a write in progress (default 64 KiB, what aiohttp writes
            before it waits; ``websockets`` uses 32 KiB). The task writing
            sends what was queued in one write when its own returns; a call
            whose message would take the queue past the limit waits until
            that write takes it (a message larger than the limit queues
            alone). ``None`` for no limit: queued messages are then bounded
            only by the number of tasks sending.
        require_subprotocol: when ``subprotocols`` are offered, fail the
            handshake if the server chose none. ``False`` (default) accepts
            such a 101, as RFC 6455 §4.1 allows and the ``websockets``
            client does; the connection's
            :attr:`~trio_upgrade.WebSocketConnection.subprotocol` is then
            ``None``. A subprotocol that was not offered always fails.

    Raises:
        ValueError: an invalid subprotocol token, a repeated one, or a bound
            that is not positive.
        TypeError: a bound of the wrong type, or an unknown ``compression``.
    """

    def __init__(
        self,
        subprotocols: Sequence[str] = (),
        *,
        origin: str | None = None,
        compression: Deflate | Literal["deflate"] | None = "deflate",
        max_size: int | None = DEFAULT_MAX_SIZE,
        max_queue: int | None = DEFAULT_MAX_QUEUE,
        max_fragment_size: int | None = None,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
        require_subprotocol: bool = False,
        write_buffer_limit: int | None = DEFAULT_WRITE_BUFFER_LIMIT,
    ) -> None:
        if isinstance(subprotocols, str):
            subprotocols = [subprotocols]
        for sub in subprotocols:
            check_token(sub)
            if "/" in sub:
                raise ValueError(f"invalid subprotocol {sub!r}: must be a token")
        if len(set(subprotocols)) != len(subprotocols):
            raise ValueError("a subprotocol is offered twice")
        if compression == "deflate":
            compression = Deflate()
        elif compression is not None and not isinstance(compression, Deflate):
            raise TypeError(
                f"compression must be a Deflate, 'deflate' or None, got {compression!r}"
            )
        _positive("max_size", max_size, integer=True)
        _positive("max_queue", max_queue, integer=True)
        _positive("max_fragment_size", max_fragment_size, integer=True)
        _positive("ping_interval", ping_interval, integer=False)
        _positive("ping_timeout", ping_timeout, integer=False)
        _positive("write_buffer_limit", write_buffer_limit, integer=True)
        # Given explicitly (any value but the default object itself): a
        # connection where it cannot run warns, once (_warn_no_keepalive).
        self._keepalive_asked = (
            ping_interval is not None and ping_interval is not DEFAULT_PING_INTERVAL
        )
        self._subprotocols = tuple(subprotocols)
        self._origin = origin
        self._compression = compression
        self._require_subprotocol = require_subprotocol
        self._settings = ConnectionSettings(
            max_size=max_size,
            max_queue=max_queue,
            max_fragment_size=max_fragment_size,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            write_buffer_limit=write_buffer_limit,
        )

    @property
    def token(self) -> str:
        return "websocket"

    @property
    def subprotocols(self) -> tuple[str, ...]:
        """The subprotocols offered, in order."""
        return self._subprotocols

    @property
    def origin(self) -> str | None:
        """The ``Origin`` sent, if any."""
        return self._origin

    @property
    def compression(self) -> Deflate | None:
        """The permessage-deflate settings, or ``None``."""
        return self._compression

    @property
    def require_subprotocol(self) -> bool:
        """Whether a 101 without a chosen subprotocol fails (see above)."""
        return self._require_subprotocol

    @property
    def max_size(self) -> int | None:
        """The incoming message size limit in bytes, or ``None``."""
        return self._settings.max_size

    @property
    def max_queue(self) -> int | None:
        """The incoming queue bound in messages, or ``None``."""
        return self._settings.max_queue

    @property
    def max_fragment_size(self) -> int | None:
        """The outgoing fragment size in bytes, or ``None``."""
        return self._settings.max_fragment_size

    @property
    def ping_interval(self) -> float | None:
        """Seconds of silence before a keepalive ping, or ``None``."""
        return self._settings.ping_interval

    @property
    def ping_timeout(self) -> float | None:
        """Seconds a keepalive ping may go unanswered, or ``None``."""
        return self._settings.ping_timeout

    @property
    def write_buffer_limit(self) -> int | None:
        """Bytes of frames concurrent sends may queue, or ``None``."""
        return self._settings.write_buffer_limit

    def offer(self, target: Target) -> Offer[WebSocketConnection]:
        return _WebSocketOffer(self)

    def _warn_no_keepalive(self, why: str) -> None:
        """A connection without keepalive was built: warn if this object's
        ``ping_interval`` was given explicitly, the first time only."""
        if self._keepalive_asked:
            self._keepalive_asked = False
            warnings.warn(
                f"WebSocket(ping_interval={self.ping_interval}) sends no pings "
                f"on this connection: {why}; pass ping_interval=None when no "
                "keepalive is wanted",
                RuntimeWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        options = []
        if self._subprotocols:
            options.append(f"subprotocols={list(self._subprotocols)!r}")
        if self._compression is None:
            options.append("compression=None")
        return f"WebSocket({', '.join(options)})"
