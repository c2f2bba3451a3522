"""The client TLS contexts the library makes when the caller gives none.

Making a verifying context loads the system's CA bundle, which costs far
more than the handshake's own work; a context is meant to be shared by many
connections (the ``ssl`` module's docs). So one context is made per
configuration and reused; a caller's ``ssl_context`` is always used as given.
"""

from __future__ import annotations

import functools
import ssl

__all__ = ["H2_UPGRADE_ALPN", "HTTP11_ALPN", "client_context"]

#: What the upgrade path offers by ALPN. Offering ``h2`` would let the server
#: pick HTTP/2 during TLS, and the HTTP/1.1 upgrade would never happen
#: (measured on real servers; see docs/interop.rst).
HTTP11_ALPN = ("http/1.1",)

#: What the upgrade path offers when ``"h2"`` is in the list: the server
#: selects HTTP/2 or HTTP/1.1, and on HTTP/1.1 the upgrade goes on.
H2_UPGRADE_ALPN = ("h2", "http/1.1")


# Bounded: the configurations come from the library, not from callers, so a
# handful exist; the bound only keeps that true if that ever changes.
@functools.lru_cache(maxsize=8)
def client_context(alpn: tuple[str, ...]) -> ssl.SSLContext:
    """A verifying client context offering ``alpn``, shared per configuration.

    Certificates and host names are verified against the system's CA bundle
    as loaded on first use. The context is shared: do not change it; pass
    your own ``ssl_context`` to the entry points instead.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.set_alpn_protocols(list(alpn))
    return context
