"""HTTP/1.1 protocol upgrades (``101 Switching Protocols``) for Trio.

``await trio_upgrade.upgrade(url, ["websocket", "h2c"])`` connects, offers the
protocols in order of preference, and returns the connection of the one the
server chose: a :class:`WebSocketConnection`, an :class:`HTTP2Connection` or,
for any other token, a :class:`RawStream` of bytes.
"""

from ._client import Client as Client
from ._client import Remembered as Remembered
from ._http2._protocol import H2 as H2
from ._http2._protocol import H2C as H2C
from ._http2._protocol import HTTP2Connection as HTTP2Connection
from ._http2._protocol import connect_http2 as connect_http2
from ._http2._protocol import open_http2 as open_http2
from ._http2._stream import HTTP2Response as HTTP2Response
from ._http2._stream import HTTP2Stream as HTTP2Stream
from ._options import ConnectOptions as ConnectOptions
from ._options import Strategy as Strategy
from ._options import UpgradeOptions as UpgradeOptions
from ._protocol import BuildContext as BuildContext
from ._protocol import Offer as Offer
from ._protocol import UpgradeProtocol as UpgradeProtocol
from ._raw import TLS as TLS
from ._raw import Raw as Raw
from ._raw import RawStream as RawStream
from ._reconnect import Backoff as Backoff
from ._reconnect import Reconnecting as Reconnecting
from ._reconnect import open_reconnecting as open_reconnecting
from ._reconnect import retryable as retryable
from ._sansio._auth import BasicAuth as BasicAuth
from ._sansio._errors import Attempt as Attempt
from ._sansio._errors import BodyTooLarge as BodyTooLarge
from ._sansio._errors import ConnectError as ConnectError
from ._sansio._errors import ConnectionClosed as ConnectionClosed
from ._sansio._errors import ContentLengthError as ContentLengthError
from ._sansio._errors import HandshakeError as HandshakeError
from ._sansio._errors import HTTP2NotSelected as HTTP2NotSelected
from ._sansio._errors import InvalidResponse as InvalidResponse
from ._sansio._errors import InvalidUpgrade as InvalidUpgrade
from ._sansio._errors import InvalidURL as InvalidURL
from ._sansio._errors import ProtocolError as ProtocolError
from ._sansio._errors import ProtocolNotOffered as ProtocolNotOffered
from ._sansio._errors import RedirectError as RedirectError
from ._sansio._errors import RedirectReason as RedirectReason
from ._sansio._errors import ResponseTooLarge as ResponseTooLarge
from ._sansio._errors import StreamRefused as StreamRefused
from ._sansio._errors import StreamReset as StreamReset
from ._sansio._errors import UpgradeError as UpgradeError
from ._sansio._errors import UpgradeRefused as UpgradeRefused
from ._sansio._h2_options import HTTP2Options as HTTP2Options
from ._sansio._limits import Limits as Limits
from ._sansio._messages import Headers as Headers
from ._sansio._messages import Request as Request
from ._sansio._messages import Response as Response
from ._timeout import UpgradeTimeout as UpgradeTimeout
from ._transport._proxy import ProxyError as ProxyError
from ._upgrade import open_upgrade as open_upgrade
from ._upgrade import upgrade as upgrade
from ._version import __version__ as __version__
from ._websocket import Deflate as Deflate
from ._websocket import WebSocket as WebSocket
from ._websocket import WebSocketConnection as WebSocketConnection

__all__ = [
    "Client",
    "Remembered",
    "H2",
    "HTTP2NotSelected",
    "H2C",
    "BodyTooLarge",
    "HTTP2Options",
    "HTTP2Response",
    "HTTP2Stream",
    "StreamRefused",
    "StreamReset",
    "connect_http2",
    "open_http2",
    "Attempt",
    "BasicAuth",
    "RedirectError",
    "RedirectReason",
    "BuildContext",
    "ConnectError",
    "ConnectOptions",
    "ConnectionClosed",
    "ContentLengthError",
    "Deflate",
    "HTTP2Connection",
    "HandshakeError",
    "Headers",
    "InvalidResponse",
    "InvalidURL",
    "InvalidUpgrade",
    "Limits",
    "Offer",
    "ProtocolError",
    "ProtocolNotOffered",
    "ProxyError",
    "Raw",
    "RawStream",
    "Request",
    "Response",
    "ResponseTooLarge",
    "Strategy",
    "TLS",
    "UpgradeError",
    "UpgradeOptions",
    "UpgradeProtocol",
    "UpgradeRefused",
    "UpgradeTimeout",
    "WebSocket",
    "WebSocketConnection",
    "__version__",
    "open_upgrade",
    "upgrade",
    "Backoff",
    "Reconnecting",
    "open_reconnecting",
    "retryable",
]


def _claim_public_names() -> None:
    # Show trio_upgrade.X, not trio_upgrade._module.X, in reprs, tracebacks
    # and docs: users import from here, so that is where things live.
    namespace = globals()
    for name in __all__:
        obj = namespace[name]
        module = getattr(obj, "__module__", "")
        if isinstance(module, str) and module.startswith("trio_upgrade._"):
            obj.__module__ = "trio_upgrade"


_claim_public_names()
del _claim_public_names
