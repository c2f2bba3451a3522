"""One switch for every fast path: ``TRIO_UPGRADE_NO_SPEEDUPS=1``.

The library is correct without any of its fast paths: each one (the
WebSocket frame reader and writer over wsproto's state, the compiled mask
accelerator, the HTTP/2 shortcuts around h2) has a plain path beside it that
uses only the public API of wsproto and h2, and the differential tests hold
the two to identical results. Setting ``TRIO_UPGRADE_NO_SPEEDUPS`` to a
non-empty value other than ``0`` before trio_upgrade is imported selects the
plain paths everywhere: to rule the fast paths out when chasing a bug, and so
that CI runs the whole suite on the plain paths too (``nox -s tests_plain``).

It is read once, at import: a fast path is chosen when a connection is built,
and switching mid-run would mix the two on one connection.
"""

from __future__ import annotations

import os

__all__ = ["ENABLED"]


def _enabled(value: str | None) -> bool:
    return value is None or value.strip() in ("", "0")


#: False when ``TRIO_UPGRADE_NO_SPEEDUPS`` asks for the plain paths.
ENABLED: bool = _enabled(os.environ.get("TRIO_UPGRADE_NO_SPEEDUPS"))
