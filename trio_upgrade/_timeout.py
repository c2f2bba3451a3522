"""The timeout error: an UpgradeError that is also a trio.TooSlowError."""

from __future__ import annotations

import trio

from ._sansio._errors import UpgradeError

__all__ = ["UpgradeTimeout"]


class UpgradeTimeout(UpgradeError, trio.TooSlowError):
    """A deadline set by trio_upgrade's options passed.

    It is also a :class:`trio.TooSlowError`, so code that already handles
    ``trio.fail_after`` keeps working. Deadlines set by the caller's own
    cancel scopes behave as usual in Trio and do not raise this.

    Attributes:
        phase: what was being waited for: ``"connect"``, ``"handshake"`` or
            ``"close"``.
        timeout: the limit in seconds that passed.
        proxy: for a connect through a proxy, its URL (credentials shown as
            ``***``), also named in the message; else empty.
    """

    def __init__(self, phase: str, timeout: float, *, proxy: str = "") -> None:
        message = f"{phase} did not finish within {timeout:g} s"
        if proxy:
            message += f" (through the proxy {proxy})"
        super().__init__(message)
        self.phase = phase
        self.timeout = timeout
        self.proxy = proxy
