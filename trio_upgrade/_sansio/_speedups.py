"""One switch for every fast path: ``TRIO_UPGRADE_NO_SPEEDUPS=1``.

The library is correct without any of its fast paths: each one (the
WebSocket frame reader and writer over wsproto's state, the compiled mask
accelerator, HTTP/2's request checks left to us) has a plain path beside it that
uses only the public API of wsproto and h2, and the differential tests hold
the two to identical results. Setting ``TRIO_UPGRADE_NO_SPEEDUPS`` to a
non-empty value other than ``0`` before trio_upgrade is imported selects the
plain paths everywhere: to rule the fast paths out when chasing a bug, and so
that CI runs the whole suite on the plain paths too (``nox -s tests_plain``).

It is read once, at import: a fast path is chosen when a connection is built,
and switching mid-run would mix the two on one connection.

HTTP/2 has two fast paths: h2 is told not to validate and normalize
the request headers (``validate_outbound_headers=False``,
``normalize_outbound_headers=False`` in ``_h2_options.new_client_state``),
since ``HTTP2Connection`` has already checked them against RFC 9113
§8.2-8.3; switched off, h2 checks them as well. And h2 reads through a
frame buffer that spares it describing each DATA frame in full for a trace
log nobody reads (``_h2_compat.quiet_data_frames``); switched off, h2's own
buffer. Everything else in the
HTTP/2 engine uses h2's documented API only (events in, ``data_to_send()``
out, its flow-control calls) and has no second path: writes are coalesced
by taking turns (one task writes what every task queued in h2), which is how
the engine shares one socket among tasks, not a shortcut around h2; reads
feed h2 and dispatch its events. The other three h2 operations beyond its
API (``_h2_compat``) are not fast paths: they give the RFC's behaviour,
each probed at import with the public behaviour as fallback, and this switch
leaves them on.
"""

from __future__ import annotations

import os

__all__ = ["ENABLED"]


def _enabled(value: str | None) -> bool:
    return value is None or value.strip() in ("", "0")


#: False when ``TRIO_UPGRADE_NO_SPEEDUPS`` asks for the plain paths.
ENABLED: bool = _enabled(os.environ.get("TRIO_UPGRADE_NO_SPEEDUPS"))
