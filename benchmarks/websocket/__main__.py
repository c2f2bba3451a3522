"""``python -m benchmarks.websocket``: see :mod:`benchmarks.websocket.run`."""

import sys

from .run import main

sys.exit(main())
