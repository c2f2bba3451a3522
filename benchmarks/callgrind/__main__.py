"""``python -m benchmarks.callgrind``: instruction counts against the baseline."""

import sys

from .run import main

sys.exit(main())
