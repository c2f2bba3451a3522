"""``python -m benchmarks.http2``: see :mod:`benchmarks.http2.run`."""

import sys

from .run import main

sys.exit(main())
