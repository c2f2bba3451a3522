"""The server side of an upgrade to TLS (RFC 2817), as printers serve it.

After the 101 the server waits for the client's TLS handshake on the same
connection (the client speaks first), then answers the request that asked
for the upgrade, over TLS (RFC 2817 §3.3), and goes on serving HTTP/1.1.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

import h11
import trio

from .._protocol import check_token
from .._raw import is_tls_token
from .._sansio._messages import Request
from .._transport._stream import RawStream
from ._handlers import current_record, own, run_handler
from ._http import read_request, send_response
from ._protocols import ServerProtocol
from ._wire import http_response

__all__ = ["TLSHandler", "TLSServerProtocol", "respond_over_tls"]

#: A handler of the TLS side: the stream once the handshake is done, and the
#: request that asked for the upgrade, which it must answer (RFC 2817 §3.3).
TLSHandler = Callable[["trio.SSLStream[RawStream]", Request], Awaitable[None]]


def _body_for(request: Request, body: bytes, version: str | None) -> bytes:
    if body:
        return body
    return f"{request.method} {request.target} over {version}\n".encode()


@own
async def respond_over_tls(tls: trio.SSLStream[RawStream], request: Request) -> None:
    """Answer ``request`` over TLS, then every later request on the connection.

    Each answer is ``200 OK`` whose body is the request's body, or, for a
    request without one, a line naming the request and the TLS version
    (``GET / over TLSv1.3``). Ends when the client closes.
    """
    text = _body_for(request, b"", tls.version())
    fields = [("Content-Type", "text/plain; charset=utf-8")]
    await tls.send_all(
        http_response(200, b"" if request.method == "HEAD" else text, fields)
    )
    conn = h11.Connection(h11.SERVER)
    while True:
        body = bytearray()
        try:
            later = await read_request(tls, conn, body=body)
        except h11.RemoteProtocolError:
            return  # the client closed in mid-request: nothing to answer
        if later is None:
            return
        answer = _body_for(later, bytes(body), tls.version())
        await send_response(
            tls, conn, 200, fields, answer, include_body=later.method != "HEAD"
        )
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return
        conn.start_next_cycle()


class TLSServerProtocol(ServerProtocol):
    """Upgrade to TLS on the same connection (RFC 2817), then HTTP/1.1 over it.

    After the 101 it runs the server side of the TLS handshake
    (``trio.SSLStream(stream, ssl_context, server_side=True)``) and hands the
    TLS stream and the upgrading request to ``handler``. A handshake the
    client abandons (it rejected the certificate, or closed) ends the
    connection; the reason is in the connection's
    :attr:`~ConnectionRecord.error`.

    ::

        import ssl
        import trustme
        from trio_upgrade.testing import TLSServerProtocol

        ca = trustme.CA()
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost").configure_cert(server_context)
        printer = TLSServerProtocol(server_context)

    Args:
        ssl_context: the server's context, holding its certificate.
        token: the token it switches for, matched case-insensitively
            against the client's offer: ``TLS`` or ``TLS/x.y``.
        handler: runs on the TLS stream; it must answer the upgrading
            request first. Default: :func:`respond_over_tls`. What it
            raises fails the test, as for every handler.
        upgrade: the 101's ``Upgrade`` value; default the offered token.
            RFC 2817 §3.3 names a stack (``"TLS/1.0, HTTP/1.1"``), libcups
            the versions it speaks (``"TLS/1.3,TLS/1.2"``).
        https_compatible: as for :class:`trio.SSLStream`: ``True`` (the
            default) takes a client's close without TLS ``close_notify`` as
            the end of stream, as HTTPS servers do.

    Raises:
        ValueError: ``token`` is not a ``TLS`` token.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        token: str = "TLS/1.2",
        *,
        handler: TLSHandler = respond_over_tls,
        upgrade: str | None = None,
        https_compatible: bool = True,
    ) -> None:
        if not is_tls_token(check_token(token)):
            raise ValueError(f"not a TLS upgrade token: {token!r} (e.g. 'TLS/1.2')")
        self.token = token
        self._context = ssl_context
        self._handler = handler
        self._upgrade = upgrade
        self._https_compatible = https_compatible

    def accept(self, request: Request) -> list[tuple[str, str]] | None:
        return [] if self._upgrade is None else [("Upgrade", self._upgrade)]

    @own
    async def serve(self, stream: RawStream, request: Request) -> None:
        tls = trio.SSLStream(
            stream,
            self._context,
            server_side=True,
            https_compatible=self._https_compatible,
        )
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError as exc:
            record = current_record()
            if record is not None:
                record.error = f"TLS handshake failed: {exc.__cause__ or exc}"
            return
        try:
            await run_handler(self._handler, tls, request)
        finally:
            # close_notify, then the socket; a broken one is closed quietly.
            await tls.aclose()
