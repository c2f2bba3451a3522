"""A real upgrade server for tests and demos: :mod:`trio_upgrade.testing`.

``open_upgrade_server()`` runs an h11-based HTTP/1.1 server on loopback
port 0 (or over memory streams) that upgrades to the protocols it is given
(raw, WebSocket, h2c, TLS),
answers offers it does not take the way real servers do (426, or 200 when it
ignores Upgrade), and records what it saw. A :class:`Script` replaces the
normal handling with byte-exact steps to stage misbehaving servers. For
pytest, installing trio_upgrade provides the ``upgrade_server`` and
``upgrade_server_in_memory`` fixtures (a plugin pytest loads by itself).
"""

from ._choose import Chooser as Chooser
from ._choose import Reply as Reply
from ._handlers import HandlerTimeout as HandlerTimeout
from ._http2 import ConnectHandler as ConnectHandler
from ._http2 import H2CServerProtocol as H2CServerProtocol
from ._http2 import H2Handler as H2Handler
from ._http2 import H2Reply as H2Reply
from ._http2 import H2Request as H2Request
from ._http2 import H2ServerConnection as H2ServerConnection
from ._http2 import H2ServerStream as H2ServerStream
from ._http2 import pattern as pattern
from ._http2 import websocket_over_h2 as websocket_over_h2
from ._protocols import RawHandler as RawHandler
from ._protocols import RawServerProtocol as RawServerProtocol
from ._protocols import ServerProtocol as ServerProtocol
from ._protocols import echo as echo
from ._records import ConnectionRecord as ConnectionRecord
from ._script import REPEAT_LIMIT as REPEAT_LIMIT
from ._script import Abort as Abort
from ._script import Close as Close
from ._script import Echo as Echo
from ._script import Handle as Handle
from ._script import Hang as Hang
from ._script import ReadRequest as ReadRequest
from ._script import Repeat as Repeat
from ._script import Script as Script
from ._script import Send as Send
from ._script import SendSlowly as SendSlowly
from ._script import Sleep as Sleep
from ._script import Step as Step
from ._server import UpgradeServer as UpgradeServer
from ._server import open_upgrade_server as open_upgrade_server
from ._tls import TLSHandler as TLSHandler
from ._tls import TLSServerProtocol as TLSServerProtocol
from ._tls import respond_over_tls as respond_over_tls
from ._websocket import ServerWebSocket as ServerWebSocket
from ._websocket import WebSocketHandler as WebSocketHandler
from ._websocket import WebSocketServerProtocol as WebSocketServerProtocol
from ._websocket import echo_messages as echo_messages
from ._wire import http_response as http_response
from ._wire import response_head as response_head
from ._wire import switching_response as switching_response

__all__ = [
    "ConnectHandler",
    "H2CServerProtocol",
    "H2Handler",
    "H2Reply",
    "H2Request",
    "H2ServerConnection",
    "H2ServerStream",
    "pattern",
    "websocket_over_h2",
    "ServerWebSocket",
    "WebSocketHandler",
    "WebSocketServerProtocol",
    "echo_messages",
    "REPEAT_LIMIT",
    "Abort",
    "Chooser",
    "Close",
    "ConnectionRecord",
    "Echo",
    "Handle",
    "HandlerTimeout",
    "Hang",
    "RawHandler",
    "RawServerProtocol",
    "ReadRequest",
    "Repeat",
    "Reply",
    "Script",
    "Send",
    "SendSlowly",
    "ServerProtocol",
    "Sleep",
    "Step",
    "TLSHandler",
    "TLSServerProtocol",
    "UpgradeServer",
    "echo",
    "http_response",
    "open_upgrade_server",
    "respond_over_tls",
    "response_head",
    "switching_response",
]


def _claim_public_names() -> None:
    # Show trio_upgrade.testing.X, not trio_upgrade.testing._module.X, in
    # reprs, tracebacks and docs: users import from here.
    # Only classes and functions: setting an attribute on a typing alias
    # (Chooser, Step) would set it on the aliased class instead.
    import contextlib
    import inspect

    namespace = globals()
    for name in __all__:
        obj = namespace[name]
        if isinstance(obj, type) or inspect.isfunction(obj):
            module = getattr(obj, "__module__", "")
            if isinstance(module, str) and module.startswith(__name__ + "._"):
                with contextlib.suppress(AttributeError, TypeError):
                    obj.__module__ = __name__


_claim_public_names()
del _claim_public_names
