"""The optional compiled speedup; everything else is in pyproject.toml.

``trio_upgrade._sansio._ws_mask`` (WebSocket masking in C) is built when a
C compiler is at hand. It is optional in both senses: a failed build leaves
a working pure-Python install (``optional=True``), and the package never
requires it (``_sansio/_ws_frames.py`` falls back to Python, which the tests
hold to the same bytes). ``TRIO_UPGRADE_NO_EXTENSIONS=1`` skips the build,
for a pure-Python wheel. See docs/perf/large-messages.rst for why.
"""

from __future__ import annotations

import os

from setuptools import Extension, setup

if os.environ.get("TRIO_UPGRADE_NO_EXTENSIONS", "").strip() in ("", "0"):
    extensions = [
        Extension(
            "trio_upgrade._sansio._ws_mask",
            ["trio_upgrade/_sansio/_ws_mask.c"],
            optional=True,
        )
    ]
else:
    extensions = []

setup(ext_modules=extensions)
