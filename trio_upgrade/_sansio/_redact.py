"""Keeping credentials out of sight: what reprs, messages and logs show.

One place says which header fields are credentials, so every place that
shows header fields (reprs, ``str()``, error messages, logs) redacts the
same ones, and a redirect to another origin drops the same ones. Sans-I/O,
and importing nothing of the package, so that every other module may use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "REDACTED",
    "SENSITIVE_FIELDS",
    "URI",
    "redacted",
    "shown_fields",
    "shown_value",
]

# RFC 3986 Appendix B, with the presence of "?" kept (group 4 is None when
# the URL has no "?", "" when it has an empty query).
URI = re.compile(r"^(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#.*)?$")

#: Header fields (lower-case) that carry credentials or session state:
#: never shown, and never sent to an origin other than the first one.
#: ``Set-Cookie`` only ever comes from a server, so it is only redacted.
SENSITIVE_FIELDS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie"}
)

#: Header fields (lower-case) whose value is a URL, which may hold user info.
_URL_FIELDS = frozenset({"location", "content-location", "referer"})

#: What is shown in place of a credential.
REDACTED = "[redacted]"


def redacted(url: str) -> str:
    """``url`` with its user info, if any, shown as ``***`` (for messages)."""
    match = URI.match(url)
    authority = match.group(2) if match else None
    if authority is None or "@" not in authority:
        return url
    start = url.index(authority)
    rest = authority.rpartition("@")[2]
    return f"{url[:start]}***@{rest}{url[start + len(authority) :]}"


def shown_value(name: str, value: str) -> str:
    """``value`` as it may be shown: credentials replaced by :data:`REDACTED`.

    For ``Authorization`` and ``Proxy-Authorization`` the scheme stays
    (``Basic [redacted]``): it says what was sent without saying the secret.
    A URL field (``Location``...) is shown without its user info.
    """
    key = name.lower()
    if key not in SENSITIVE_FIELDS:
        return redacted(value) if key in _URL_FIELDS else value
    if key.endswith("authorization"):
        scheme, space, _ = value.partition(" ")
        if space:
            return f"{scheme} {REDACTED}"
    return REDACTED


def shown_fields(fields: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``fields`` with every credential replaced, as :func:`shown_value`."""
    return [(name, shown_value(name, value)) for name, value in fields]
