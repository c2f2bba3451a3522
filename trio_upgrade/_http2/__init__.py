"""HTTP/2 (RFC 9113) on h2: the h2c upgrade, prior knowledge, and RFC 8441.

The public face is :class:`HTTP2Connection` and its streams; the frame-level
work that needs no I/O (frame scanning, settings, the h2 compat seam) lives in
``trio_upgrade._sansio``.
"""

from __future__ import annotations

from ._protocol import H2C as H2C
from ._protocol import HTTP2Connection as HTTP2Connection
from ._protocol import connect_http2 as connect_http2
from ._protocol import open_http2 as open_http2
from ._stream import HTTP2Response as HTTP2Response
from ._stream import HTTP2Stream as HTTP2Stream

__all__ = [
    "H2C",
    "HTTP2Connection",
    "HTTP2Response",
    "HTTP2Stream",
    "connect_http2",
    "open_http2",
]
