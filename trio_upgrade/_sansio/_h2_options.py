"""HTTP/2 options: every bound of an :class:`HTTP2Connection`, justified.

Sans-I/O: nothing here imports trio.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import h2.config
import h2.connection
import h2.settings
from h2.settings import SettingCodes

from . import _speedups
from ._h2_compat import BoundedH2Connection, bound_header_list, quiet_data_frames

__all__ = ["HTTP2Options", "new_client_state"]

# RFC 9113 §6.9.1: a flow-control window may not exceed 2^31 - 1.
MAX_WINDOW = 2**31 - 1
# RFC 9113 §6.5.2: the initial window of a new connection, before any
# WINDOW_UPDATE; the connection window cannot be changed by SETTINGS.
DEFAULT_WINDOW = 65_535


#: The options that are durations, not counts of bytes or streams.
_SECONDS = ("ping_interval", "ping_timeout", "idle_timeout")


@dataclass(frozen=True)
class HTTP2Options:
    """Bounds and settings of an HTTP/2 connection, each overridable.

    Attributes:
        max_concurrent_streams: streams this client keeps open at once,
            whatever the server allows (the lower of the two applies;
            requests beyond it wait for a free stream, they do not fail).
            100: RFC 9113 §6.5.2 recommends that servers allow at least 100,
            h2 and Apache default to 100, nginx to 128, and Chrome assumes
            100 until told otherwise.
        stream_window: the receive window of each stream (sent as
            ``SETTINGS_INITIAL_WINDOW_SIZE``), which is also the most that is
            buffered for a stream the application does not read: the window
            is reopened (``WINDOW_UPDATE``) only as the application consumes
            data. 1 MiB: h2 and httpx keep the 64 KiB default (slow on long
            paths), Go's client uses 4 MiB and Chrome 6 MiB; 1 MiB fills a
            100 Mbit/s path with 80 ms of round trip while 100 unread streams
            hold at most 100 MiB.
        connection_window: the connection's receive window, opened with a
            ``WINDOW_UPDATE`` right after the preface and refilled as data
            arrives (whether or not it is read: the per-stream windows
            already bound memory, so an unread stream cannot starve the
            others). 16 MiB: httpx opens 16 MiB, Chrome 15 MiB.
        max_header_list_size: bytes a response head (or trailer block) may
            take once decoded, as RFC 9113 §6.5.2 counts them (name + value
            + 32 per field); sent as ``SETTINGS_MAX_HEADER_LIST_SIZE`` and
            enforced: a larger head ends the connection with
            ``ENHANCE_YOUR_CALM``. 64 KiB: h2's and httpx's value, and the
            library's HTTP/1.1 head limit (``Limits.max_head_size``); nginx
            accepts 32 KiB of request headers by default.
        max_body_size: bytes of a response body that
            :meth:`~HTTP2Connection.request` and
            :meth:`~HTTP2Response.read` keep in memory; a larger body raises
            :class:`~trio_upgrade.BodyTooLarge` (stream it with
            :meth:`~HTTP2Connection.stream` instead). 64 MiB: httpx and
            browsers keep whatever comes, which lets an endless body exhaust
            memory; 64 MiB is far beyond API responses and pages.
        max_informational: 1xx responses (``100 Continue``, ``103 Early
            Hints``) accepted before the final one on a stream; beyond, the
            stream is reset. 16, like ``Limits.max_informational``.
        ping_interval: with a nursery (:func:`~trio_upgrade.open_http2`,
            :func:`~trio_upgrade.open_upgrade` or ``nursery=``), send a PING
            after this many seconds and expect its ACK within
            ``ping_timeout``, so a dead peer or path is found while the
            connection is idle. ``None`` (default): no keepalive PINGs. The
            connection is serviced while idle either way (the server's
            PINGs answered, its GOAWAY seen); unlike WebSocket, HTTP/2
            clients send no keepalive by default (httpx, Go, curl), and a
            server that wants one asks with its own PINGs.
        ping_timeout: seconds to wait for a keepalive PING's ACK; then the
            connection fails with :class:`~trio_upgrade.ConnectionClosed`
            (every request on it too). 20, as for WebSocket.
        idle_timeout: with a nursery, close the connection (GOAWAY) once no
            stream has been open for this many seconds. ``None`` (default):
            never; a long-lived client keeps its connection.
    """

    max_concurrent_streams: int = 100
    stream_window: int = 1024 * 1024
    connection_window: int = 16 * 1024 * 1024
    max_header_list_size: int = 64 * 1024
    max_body_size: int = 64 * 1024 * 1024
    max_informational: int = 16
    ping_interval: float | None = None
    ping_timeout: float = 20.0
    idle_timeout: float | None = None

    def __post_init__(self) -> None:
        for name in _SECONDS:
            value = getattr(self, name)
            if value is None and name != "ping_timeout":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(
                    f"HTTP2Options.{name} must be a number of seconds, got {value!r}"
                )
            if not value > 0:  # also refuses NaN
                raise ValueError(f"HTTP2Options.{name} must be > 0, got {value}")
        for f in fields(self):
            if f.name in _SECONDS:
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"HTTP2Options.{f.name} must be an int, got {value!r}")
            if value < 1 and f.name != "max_informational":
                raise ValueError(f"HTTP2Options.{f.name} must be >= 1, got {value}")
        if self.max_informational < 0:
            raise ValueError("HTTP2Options.max_informational must be >= 0")
        for name in ("stream_window", "connection_window"):
            value = getattr(self, name)
            if not DEFAULT_WINDOW <= value <= MAX_WINDOW:
                # Below 65535 the connection window could not be set (it only
                # grows by WINDOW_UPDATE); above 2^31-1 is a protocol error.
                raise ValueError(
                    f"HTTP2Options.{name} must be between {DEFAULT_WINDOW} and "
                    f"{MAX_WINDOW}, got {value}"
                )


_CONFIGS: dict[bool, h2.config.H2Configuration] = {}


def new_client_state(options: HTTP2Options) -> h2.connection.H2Connection:
    """A client-side h2 state machine with our local settings in place.

    The settings are the initial values (not an update), so that
    ``initiate_upgrade_connection()`` puts them in the ``HTTP2-Settings``
    header and ``initiate_connection()`` in the preface's SETTINGS frame.
    """
    # The fast path: requests are checked against RFC 9113 §8.2-8.3 before
    # they reach h2 (HTTP2Connection), so h2's second pass over every field
    # (a quarter of the client's CPU time for small requests) is skipped.
    # The plain path lets h2 check and normalize them too. What the server
    # sends is validated by h2 either way.
    h2_checks_requests = not _speedups.ENABLED
    config = _CONFIGS.get(h2_checks_requests)
    if config is None:
        # One per mode, shared by every connection: h2 only reads it.
        config = _CONFIGS[h2_checks_requests] = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=h2_checks_requests,
            normalize_outbound_headers=h2_checks_requests,
        )
    state = BoundedH2Connection(config=config)
    settings = h2.settings.Settings(
        client=True,
        initial_values={
            # RFC 9113 §8.4: a client that does not want server push says so.
            SettingCodes.ENABLE_PUSH: 0,
            # Push is off, so the server opens no stream whatever this says;
            # h2's own value, which httpx sends too.
            SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            SettingCodes.INITIAL_WINDOW_SIZE: options.stream_window,
            SettingCodes.MAX_HEADER_LIST_SIZE: options.max_header_list_size,
        },
    )
    # RFC 8441's setting means nothing coming from a client, and httpx drops
    # it too: some servers balk at it in the client's SETTINGS even though
    # RFC 9113 §6.5.2 tells them to ignore settings they do not know.
    del settings[SettingCodes.ENABLE_CONNECT_PROTOCOL]
    state.local_settings = settings
    # h2 applies MAX_HEADER_LIST_SIZE to its HPACK decoder only when the
    # server acknowledges our SETTINGS; enforce it from the first byte.
    bound_header_list(state, options.max_header_list_size)
    if _speedups.ENABLED:
        # The other fast path: h2 no longer hex-encodes every DATA frame it
        # receives for a trace log nobody reads (_h2_compat).
        quiet_data_frames(state)
    return state
