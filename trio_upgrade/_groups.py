"""Exception groups from the library's own nurseries, made friendlier."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["lone_errors_unwrapped"]


def _lone(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc


@contextmanager
def lone_errors_unwrapped() -> Iterator[None]:
    """Re-raise a group holding a single exception (however nested) as it.

    For context managers that own a nursery on the caller's behalf
    (``open_upgrade``, ``open_upgrade_server``): the caller did not open a
    nursery, so one error should come out as itself, not in a group. Groups
    of several errors are left alone: hiding all but one would lose errors.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        single = _lone(group)
        if single is None:
            raise
        # Keep the error's own cause (a keepalive's UpgradeTimeout behind a
        # ConnectionClosed); only the group around it goes.
        raise single from single.__cause__
