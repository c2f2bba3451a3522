"""Benchmarks of trio_upgrade against other clients, on real servers.

Run from the repository root::

    python -m benchmarks.websocket --quick     # WebSocket clients, Node's ws
    python -m benchmarks.http2 --quick         # HTTP/2 clients, lighttpd or h2o

``harness`` holds what both suites share (worker processes, CPU placement,
the environment record, reports, the profiler); ``servers`` launches the
third-party servers, for the interop tests as well. The suites import only
trio_upgrade's public API, in their worker processes, so that
``PYTHONPATH=/path/to/old/checkout`` measures another version of the
library with this harness (benchmarks/README.md).
"""
