"""The exceptions that trio_upgrade raises on purpose.

Every one of them derives from :class:`~trio_upgrade.UpgradeError`, so ``except
trio_upgrade.UpgradeError`` catches everything the library means to raise:

.. code-block:: text

    UpgradeError
    ├── InvalidURL (also ValueError)             the URL cannot be used
    ├── ConnectError (also OSError)              TCP/TLS/proxy connect failed
    │   └── ProxyError                           the proxy failed or refused
    ├── UpgradeTimeout (also trio.TooSlowError)  a deadline of ours passed
    ├── HandshakeError                           the HTTP/1.1 exchange went wrong
    │   ├── InvalidResponse                      not valid HTTP/1.1, or cut short
    │   │   └── ResponseTooLarge                 head over the size limit
    │   ├── UpgradeRefused                       a final status other than 101
    │   ├── HTTP2NotSelected                     TLS did not select h2 by ALPN
    │   ├── RedirectError                        a redirect that is not followed
    │   └── InvalidUpgrade                       a 101 that breaks the contract
    │       └── ProtocolNotOffered               names no/several/unoffered tokens
    ├── ProtocolError                            the peer broke the new protocol
    │   └── ContentLengthError                   an HTTP/2 body of the wrong length
    ├── StreamReset                              one HTTP/2 stream ended in error
    │   └── StreamRefused                        not processed by the server: retry
    ├── BodyTooLarge                             a body over its size limit
    └── ConnectionClosed                         the upgraded connection closed

Errors carry data, not only a message: the response that was received, what
was expected, the attempts that were made.
"""

# UpgradeTimeout lives in _timeout because it derives from trio.TooSlowError,
# and this module, like the rest of the handshake core, does not import trio.

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ._messages import Request, Response

__all__ = [
    "BodyTooLarge",
    "ConnectError",
    "ConnectionClosed",
    "ContentLengthError",
    "HTTP2NotSelected",
    "HandshakeError",
    "InvalidResponse",
    "InvalidURL",
    "InvalidUpgrade",
    "ProtocolError",
    "ProtocolNotOffered",
    "RedirectError",
    "RedirectReason",
    "ResponseTooLarge",
    "StreamRefused",
    "StreamReset",
    "UpgradeError",
    "UpgradeRefused",
]


class UpgradeError(Exception):
    """Base class of every error trio_upgrade raises on purpose.

    Attributes:
        attempts: when the error ended an ``upgrade()`` or ``open_upgrade()``
            call, every upgrade request that call made, in order; the last
            one is the attempt that failed, with this error as its ``error``
            (for :class:`UpgradeRefused`, the one that was declined). Empty
            for an error raised before any request, or elsewhere.
    """

    attempts: tuple[Attempt, ...] = ()


class InvalidURL(UpgradeError, ValueError):
    """The URL has a scheme, host or port that cannot be used."""


class ConnectError(UpgradeError, OSError):
    """Opening the connection failed (DNS, TCP, TLS or proxy).

    The underlying exception is chained as ``__cause__``.
    """


class HandshakeError(UpgradeError):
    """The HTTP/1.1 upgrade exchange did not end in a usable switch."""


class InvalidResponse(HandshakeError):
    """The server's reply is not valid HTTP/1.1, or ended before it was whole.

    Attributes:
        received: how many bytes of the reply had arrived.
    """

    def __init__(self, message: str, *, received: int = 0) -> None:
        super().__init__(message)
        self.received = received


class ResponseTooLarge(InvalidResponse):
    """The response head (or the count of 1xx responses) passed its limit.

    Attributes:
        limit: the limit that was exceeded.
    """

    def __init__(self, message: str, *, limit: int, received: int = 0) -> None:
        super().__init__(message, received=received)
        self.limit = limit


class Attempt:
    """One upgrade request that was sent and what came back.

    The ALPN offer of ``h2`` during a TLS handshake (``"h2"`` in the list
    for an ``https``/``wss`` URL) is an attempt too: ``offered`` is
    ``("h2",)``, ``status_code`` is ``None``, and when the server selected
    something else ``error`` is an :class:`HTTP2NotSelected`.

    Attributes:
        offered: the protocol tokens listed in the ``Upgrade`` header.
        status_code: the final status received (101 for the request that
            switched, a 3xx for a redirect that was followed), or ``None``
            if the attempt failed before one arrived.
        error: the exception that ended this attempt.
        url: the URL the request was sent to, credentials left out
            (``""`` when not known). After a redirect, the attempts of one
            call show each hop of the chain.
        request: the upgrade request as sent (its ``str`` redacts
            credentials), or ``None`` for an ALPN offer or an attempt that
            failed before sending one.
        response: the final response head received, or ``None``.
    """

    __slots__ = ("error", "offered", "request", "response", "status_code", "url")

    def __init__(
        self,
        offered: Sequence[str],
        status_code: int | None,
        error: BaseException | None,
        *,
        url: str = "",
        request: Request | None = None,
        response: Response | None = None,
    ) -> None:
        self.offered = tuple(offered)
        self.status_code = status_code
        self.error = error
        self.url = url
        self.request = request
        self.response = response

    def __repr__(self) -> str:
        return (
            f"Attempt(offered={list(self.offered)!r}, "
            f"status_code={self.status_code!r}, error={self.error!r}, "
            f"url={self.url!r})"
        )


class UpgradeRefused(HandshakeError):
    """The server answered with a final status other than 101.

    Raised with the status and headers as soon as they are whole, even when
    the body then ends badly: it is kept as far as it arrived, and
    ``body_truncated`` says so.

    Attributes:
        response: the final response (status, reason, headers).
        body: up to ``Limits.max_refusal_body`` bytes of its body.
        body_truncated: ``True`` when ``body`` is not the whole body: it was
            longer than ``Limits.max_refusal_body`` (the rest was not read),
            the server closed or reset the connection before its end, or
            ``Limits.handshake_timeout`` passed while it was being read.
        attempts: every request made before giving up, in order; the last one
            is the one that produced ``response``.
    """

    def __init__(
        self,
        response: Response,
        body: bytes,
        *,
        body_truncated: bool = False,
        attempts: Sequence[Attempt] = (),
    ) -> None:
        offered = ", ".join(a for at in attempts for a in at.offered) or "upgrade"
        super().__init__(
            f"expected 101 Switching Protocols for {offered!s}, got "
            f"{response.status_code} {response.reason}".rstrip()
        )
        self.response = response
        self.body = body
        self.body_truncated = body_truncated
        self.attempts = tuple(attempts)

    @property
    def status_code(self) -> int:
        """The status code of the final response."""
        return self.response.status_code

    @property
    def location(self) -> str | None:
        """The response's ``Location`` field as sent, or ``None``.

        Set on a redirect that was not followed (``follow_redirects=False``,
        or a status or ``Location`` that is not followed): where the server
        says the resource is.
        """
        return self.response.headers.get("location")


#: Why a redirect was not followed; see :class:`RedirectError`.
RedirectReason = Literal["too_many", "loop", "insecure", "transport"]


class RedirectError(HandshakeError):
    """A redirect of the upgrade request that is not followed.

    Raised instead of following a ``301``, ``302``, ``303``, ``307`` or
    ``308`` (with ``follow_redirects``, the default) when following would
    be unsafe or endless. ``reason`` says which:

    * ``"too_many"``: more than ``Limits.max_redirects`` redirects;
    * ``"loop"``: the ``Location`` is a URL this call was already sent to
      (raised at once, not at the limit);
    * ``"insecure"``: from TLS to cleartext (``https``/``wss`` to
      ``http``/``ws``), which would send the request, and what the next
      server answers, in the clear;
    * ``"transport"``: the call was given a ``transport`` and the redirect
      needs another connection (another origin, or the server closed this
      one).

    The message and the attributes show URLs without their credentials.

    Attributes:
        reason: one of the above.
        response: the redirect response (status, headers).
        location: the URL the redirect leads to, resolved against the
            request's URL, without credentials.
        chain: every URL the call was sent to, in order, then ``location``.
        attempts: every request of the call, as for any
            :class:`UpgradeError`; the last one got ``response``.
    """

    def __init__(
        self,
        reason: RedirectReason,
        *,
        response: Response,
        location: str,
        chain: Sequence[str],
        attempts: Sequence[Attempt] = (),
    ) -> None:
        status = response.status_code
        hops = " -> ".join(chain)
        explain = {
            "too_many": f"more than {len(chain) - 2} redirects",
            "loop": "a redirect loop",
            "insecure": "a redirect from TLS to cleartext",
            "transport": (
                "a redirect that needs another connection, but the call was "
                "given its transport"
            ),
        }[reason]
        super().__init__(f"{explain}: {status} to {location} ({hops})")
        self.reason: RedirectReason = reason
        self.response = response
        self.location = location
        self.chain = tuple(chain)
        self.attempts = tuple(attempts)

    @property
    def status_code(self) -> int:
        """The status code of the redirect response."""
        return self.response.status_code


class HTTP2NotSelected(HandshakeError):
    """The server did not select ``h2`` by ALPN, and nothing else was left.

    Raised by ``upgrade()`` when ``"h2"`` was offered for an ``https`` or
    ``wss`` URL, the server's TLS handshake selected another protocol (or
    none), and no other protocol of the list remained to try. When others
    remained, they were tried on the same connection and this error is only
    kept as the ``error`` of the ALPN attempt in ``attempts``.

    Attributes:
        authority: the server's host and port.
        selected: the ALPN protocol the server selected (``"http/1.1"``), or
            ``None`` when it selected none.
        attempts: every attempt of the call; the ALPN one has
            ``offered == ("h2",)`` and no ``status_code``.
    """

    def __init__(self, authority: str, selected: str | None) -> None:
        chose = "no protocol" if selected is None else repr(selected)
        super().__init__(
            f"{authority} did not select HTTP/2 by ALPN (offered 'h2', the "
            f"server selected {chose})"
        )
        self.authority = authority
        self.selected = selected


class InvalidUpgrade(HandshakeError):
    """A 101 response that breaks the upgrade contract.

    For example a ``Sec-WebSocket-Accept`` that does not match the key, or an
    ``HTTP2-Settings`` exchange that is not possible.

    Attributes:
        response: the 101 response.
        expected: what the client required, as text.
        received: what the server sent instead, as text.
    """

    def __init__(
        self,
        message: str,
        *,
        response: Response | None = None,
        expected: str | None = None,
        received: str | None = None,
    ) -> None:
        if expected is not None or received is not None:
            message = f"{message} (expected {expected}, received {received})"
        super().__init__(message)
        self.response = response
        self.expected = expected
        self.received = received


class ProtocolNotOffered(InvalidUpgrade):
    """The 101 names no protocol, several, or one that was not offered."""


class ProtocolError(UpgradeError):
    """The peer broke the upgraded protocol after the switch.

    Attributes:
        code: the protocol's error code when it has one (a WebSocket close
            code such as 1002, an HTTP/2 error code), else ``None``.
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ContentLengthError(ProtocolError):
    """An HTTP/2 body's length is not what its ``content-length`` said.

    RFC 9113 §8.1.1 makes such a response malformed: the body is never
    returned as if it were whole, shorter or longer.

    Attributes:
        expected: the ``content-length`` value.
        received: how many body bytes arrived (or were delivered).
        stream_id: the stream, when it is known.
    """

    def __init__(
        self, message: str, *, expected: int, received: int, stream_id: int | None
    ) -> None:
        super().__init__(message, code=0x1)  # PROTOCOL_ERROR
        self.expected = expected
        self.received = received
        self.stream_id = stream_id


class ConnectionClosed(UpgradeError):
    """The upgraded connection is closed.

    Attributes:
        code: the protocol's close or error code, when it has one (a
            WebSocket close code, an HTTP/2 error code), else ``None``.
        reason: the reason given with it, or ``""``.
        normal: ``True`` when the close was an orderly one.
    """

    def __init__(self, code: int | None, reason: str = "", *, normal: bool) -> None:
        # A plain int, whatever enum the protocol library gave (wsproto's
        # CloseReason, h2's ErrorCodes print as names on Python 3.10).
        code = None if code is None else int(code)
        detail = f"code {code}" if code is not None else "no code"
        if reason:
            detail += f", reason {reason!r}"
        kind = "closed" if normal else "closed abnormally"
        super().__init__(f"connection {kind} ({detail})")
        self.code = code
        self.reason = reason
        self.normal = normal


class StreamReset(UpgradeError):
    """One HTTP/2 stream ended in error; the connection itself goes on.

    Raised for the stream's request or body when the server reset it
    (``RST_STREAM``, RFC 9113 §6.4), and for streams that a ``GOAWAY``
    excluded (as :class:`StreamRefused`).

    Attributes:
        code: the HTTP/2 error code (RFC 9113 §7): 0x8 ``CANCEL``, 0x2
            ``INTERNAL_ERROR``...
        stream_id: the stream, or ``None`` for a request that never got one.
    """

    def __init__(self, message: str, *, code: int, stream_id: int | None) -> None:
        super().__init__(message)
        self.code = int(code)  # a plain int, not h2's ErrorCodes (see above)
        self.stream_id = stream_id


class StreamRefused(StreamReset):
    """The server did not process the request: it is safe to send it again.

    RFC 9113 §8.7: a ``RST_STREAM`` with ``REFUSED_STREAM``, or a stream above
    the ``last_stream_id`` of the server's ``GOAWAY``, was not processed at
    all. Also raised for a new request on a connection that received
    ``GOAWAY`` (it was never sent). Retry on a new connection.
    """


class BodyTooLarge(UpgradeError):
    """A body is larger than the limit on what is kept in memory.

    Attributes:
        limit: the limit in bytes.
    """

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit
