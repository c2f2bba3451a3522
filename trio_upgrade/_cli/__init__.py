"""The ``probe`` and ``connect`` commands of ``trio-upgrade``.

``__main__`` parses the command line and runs the embedded demo and the URL
mode; the subcommands live here, one module each, over :mod:`._console`
(where output goes, stdin, the frame trace) and :mod:`._exits` (exit
statuses). Nothing in the library imports this package.
"""

from ._exits import EXIT_CODES as EXIT_CODES
from ._exits import Exit as Exit
from ._exits import exit_status as exit_status
from ._run import SUBCOMMANDS as SUBCOMMANDS
from ._run import run as run

__all__ = ["EXIT_CODES", "SUBCOMMANDS", "Exit", "exit_status", "run"]
