"""Saying goodbye when the block that owns a connection ends in trouble.

A block ended by an exception (``trio.Cancelled`` from a timeout, Ctrl-C's
``KeyboardInterrupt``, an error), or ended in a scope that is already
cancelled, cannot close a connection the usual way: every await would be
cancelled, and the server would see the socket vanish. The connections'
``going_away()`` methods run their goodbye (WebSocket close 1001, HTTP/2
GOAWAY) inside :func:`goodbye_scope` instead: shielded, and bounded by
:data:`~._sansio._limits.GOING_AWAY_GRACE`.
"""

from __future__ import annotations

import math
from typing import Any

import trio

from ._sansio._limits import GOING_AWAY_GRACE

__all__ = ["cancelled", "close_after", "goodbye_scope"]


def cancelled() -> bool:
    """Whether the calling task's scope is already cancelled (any await
    would raise ``trio.Cancelled``)."""
    return trio.current_effective_deadline() == -math.inf


def goodbye_scope(close_timeout: float) -> trio.CancelScope:
    """A shielded scope that ends after the smaller of ``close_timeout``
    and :data:`GOING_AWAY_GRACE` seconds."""
    grace = min(close_timeout, GOING_AWAY_GRACE)
    return trio.CancelScope(shield=True, deadline=trio.current_time() + grace)


async def close_after(connection: Any, exc: BaseException | None) -> None:
    """Close ``connection`` as ``async with connection:`` would after the
    block ended with ``exc`` (``None``: it ended normally).

    A connection that is an async context manager (the library's own, and
    custom protocols' that are) closes through its ``__aexit__``, which may
    say goodbye to the server; any other through ``aclose()``.
    """
    if hasattr(type(connection), "__aexit__"):
        tb = exc.__traceback__ if exc is not None else None
        kind = type(exc) if exc is not None else None
        await connection.__aexit__(kind, exc, tb)
    else:
        await connection.aclose()
