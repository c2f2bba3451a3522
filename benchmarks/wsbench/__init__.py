"""Helpers of ``benchmarks/ws_bench.py``: client adapters and measurements."""
