"""HTTP/2 over TLS, selected by ALPN: the tutorial's last session.

Run it: ``python docs/examples/alpn_h2.py``. It starts an HTTPS server on
loopback with a certificate of its own, made by trustme (``pip install
trustme``), whose ALPN selects ``h2``.
"""

from __future__ import annotations

import ssl
from functools import partial

import trio
import trustme

import trio_upgrade
from trio_upgrade.testing import H2CServerProtocol


async def talk(url: str, context: ssl.SSLContext) -> str:
    # "h2" is offered in the TLS handshake (ALPN), not by an Upgrade header;
    # "websocket" is the fallback, asked for by HTTP/1.1 on the same
    # connection if the server does not select h2.
    protocols = ["h2", "websocket"]
    async with trio_upgrade.open_upgrade(url, protocols, ssl_context=context) as conn:
        match conn:
            case trio_upgrade.HTTP2Connection():
                response = await conn.request("GET", "/")
                return f"{conn.protocol}: {response.status_code} {response.text!r}"
            case trio_upgrade.WebSocketConnection():
                return "websocket: the server did not select h2"
            case _:
                return f"unexpected {conn.protocol}"


# -- the demonstration: an HTTPS server whose ALPN selects h2 ------------------


async def https_h2_server(nursery: trio.Nursery, ca: trustme.CA) -> int:
    """Serve HTTP/2 over TLS on loopback; return the port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    context.set_alpn_protocols(["h2"])
    http2 = H2CServerProtocol()

    async def handle(tls: trio.SSLStream[trio.SocketStream]) -> None:
        await tls.do_handshake()
        await http2.serve_prior_knowledge(tls)

    serve = partial(trio.serve_ssl_over_tcp, handle, 0, context, host="127.0.0.1")
    listeners = await nursery.start(serve)
    port: int = listeners[0].transport_listener.socket.getsockname()[1]
    return port


async def main() -> str:
    ca = trustme.CA()
    context = ssl.create_default_context()  # verifies, as by default
    ca.configure_trust(context)
    # A context of your own is used as given: it must offer h2 itself.
    context.set_alpn_protocols(["h2", "http/1.1"])
    async with trio.open_nursery() as nursery:
        port = await https_h2_server(nursery, ca)
        said = await talk(f"https://localhost:{port}/", context)
        nursery.cancel_scope.cancel()
    print(said)
    return said


if __name__ == "__main__":
    trio.run(main)
