"""Byte-exact HTTP/1.1 responses for scripts, valid or deliberately not.

Nothing here validates: a test that wants a header with a bare newline in it,
a status of 999 or a reason phrase in Latin-1 gets exactly those bytes. That
is the point of scripting a server instead of driving h11.
"""

from __future__ import annotations

import http
from collections.abc import Sequence

__all__ = ["http_response", "response_head", "switching_response", "status_phrase"]

HeaderList = Sequence[tuple[str, str]]


def status_phrase(status_code: int) -> str:
    """The standard reason phrase for ``status_code``, or ``""`` if none."""
    try:
        return http.HTTPStatus(status_code).phrase
    except ValueError:
        return ""


def response_head(
    status_code: int,
    headers: HeaderList = (),
    *,
    reason: str | None = None,
    http_version: str = "1.1",
) -> bytes:
    """A status line and header fields, ended by the empty line.

    Args:
        status_code: any integer; it is not checked.
        headers: ``(name, value)`` pairs written as given, in order.
        reason: the reason phrase; ``None`` means the standard one (``""`` for
            an unknown status), ``""`` sends ``"HTTP/1.1 101 "`` as some
            servers do.
        http_version: written after ``HTTP/``.

    Returns:
        The head, Latin-1 encoded.
    """
    phrase = status_phrase(status_code) if reason is None else reason
    lines = [f"HTTP/{http_version} {status_code} {phrase}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http_response(
    status_code: int,
    body: bytes = b"",
    headers: HeaderList = (),
    *,
    reason: str | None = None,
) -> bytes:
    """A whole response framed by ``Content-Length``, head and body in one.

    ``Content-Length`` is added after ``headers`` unless they already frame
    the body (``Content-Length`` or ``Transfer-Encoding``), so a test can
    also lie about the length.
    """
    names = {name.lower() for name, _ in headers}
    fields = list(headers)
    if not names & {"content-length", "transfer-encoding"}:
        fields.append(("Content-Length", str(len(body))))
    return response_head(status_code, fields, reason=reason) + body


def switching_response(
    token: str | None,
    headers: HeaderList = (),
    *,
    trailing: bytes = b"",
    reason: str | None = None,
) -> bytes:
    """A ``101 Switching Protocols`` head, then ``trailing`` in the same bytes.

    Sent in one :class:`~trio_upgrade.testing.Send`, ``trailing`` reaches the
    client in the same write as the head: the case where the first bytes of
    the new protocol arrive in the same read as the 101.

    Args:
        token: the ``Upgrade`` value (several tokens may be joined with
            ``", "`` to test a client's check); ``None`` omits the field.
        headers: more fields, after ``Connection`` and ``Upgrade``.
        trailing: bytes right after the head.
        reason: as for :func:`response_head`.
    """
    fields = [("Connection", "Upgrade")]
    if token is not None:
        fields.append(("Upgrade", token))
    fields += headers
    return response_head(101, fields, reason=reason) + trailing
