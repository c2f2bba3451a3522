"""Our pings and the pongs that answer them."""

from __future__ import annotations

import os

import trio

__all__ = ["PingTracker", "PongWaiter"]


class PongWaiter:
    """One ping of ours; ``latency`` is set when its pong comes."""

    __slots__ = ("latency", "sent_at")

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at
        self.latency: float | None = None


class PingTracker:
    """The pings awaiting their pong, oldest first, keyed by payload.

    Made on the first ``ping()``: an idle connection holds none.
    """

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: dict[bytes, PongWaiter] = {}

    def payload(self, payload: bytes | None) -> bytes:
        """``payload`` checked, or 4 fresh random bytes.

        Raises:
            ValueError: too long, or already awaiting its pong.
        """
        waiters = self._waiters
        if payload is None:
            payload = os.urandom(4)
            while payload in waiters:
                payload = os.urandom(4)
            return payload
        payload = bytes(payload)
        if len(payload) > 125:
            raise ValueError("a ping payload has at most 125 bytes")
        if payload in waiters:
            raise ValueError("a ping with this payload is already awaiting its pong")
        return payload

    def add(self, payload: bytes) -> PongWaiter:
        waiter = self._waiters[payload] = PongWaiter(trio.current_time())
        return waiter

    def discard(self, payload: bytes) -> None:
        self._waiters.pop(payload, None)

    def got_pong(self, payload: bytes) -> None:
        waiters = self._waiters
        if payload not in waiters:
            return
        # A pong answers its ping and every earlier one (RFC 6455 §5.5.3
        # lets a peer answer only the latest).
        now = trio.current_time()
        for key in list(waiters):
            waiter = waiters.pop(key)
            waiter.latency = now - waiter.sent_at
            if key == payload:
                break
