"""The sans-I/O layer: everything that turns bytes into events and back.

Nothing in this package imports trio, opens a socket or waits: each module
takes bytes (or parsed fields) and returns bytes, events or a typed error,
the way h11 and wsproto do. The I/O layers above (``_transport``,
``_websocket``, ``_http2``, ``_upgrade``) drive these objects from Trio.
An import-linter contract in ``pyproject.toml`` keeps it that way: this
package imports only itself, the error tree and the limits (``_errors``,
``_limits``, ``_version``) and the sans-I/O libraries h11, wsproto and h2.

Private state of wsproto and h2 is touched only by the two compat modules,
``_wsproto_compat`` and ``_h2_compat``; each checks at import time, on the
real library, that what it relies on still holds.
"""
