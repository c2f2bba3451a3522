"""Soak and load runs: many connections, long sessions, every byte checked.

``python -m benchmarks.soak`` (or ``nox -s soak``) runs, in one process
against real servers, 1,000 concurrent WebSocket connections x 1,000
messages (Node ``ws``), 1,000 concurrent HTTP/2 streams (h2o), a long-lived
HTTP/2 connection doing sequential requests, and a mixed run of all of it
for ten minutes, sampling RSS and open file descriptors. It exits non-zero
on any lost, reordered or corrupted byte, on descriptors not back to their
baseline, or on an RSS slope above the threshold after warm-up. The
figures are in ``docs/soak.rst``; see :mod:`benchmarks.soak.run`.
"""
