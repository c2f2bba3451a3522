"""What the HTTP/2 suite measures: the clients, the figures, the durations."""

from __future__ import annotations

import dataclasses

PATH = "/index.html"
#: The body of the throughput figure (``mbps``): 64 KiB, issue 13.
BIG_PATH = "/64k.bin"
#: Seconds without one completed request (or handshake) before a worker
#: gives up on a client as hung.
STALL = 5.0
CONCURRENCY = 100


@dataclasses.dataclass(frozen=True)
class Params:
    """Durations (seconds) and sizes of one run.

    Every client runs ``rounds`` times, the rounds of all clients
    interleaved (A B C A B C ...), each in a fresh process with its own
    connection and warm-up, so that a change of background load touches
    every client alike; the median round is reported.
    """

    rounds: int = 5
    warmup: float = 0.5
    duration: float = 2.0
    hs_warmup: float = 0.3
    hs_duration: float = 1.5
    sansio_requests: int = 10_000
    #: Re-runs of a round that shared its CPU with other processes, while
    #: the run has taken less than ``retry_until`` seconds.
    retries: int = 2
    retry_until: float = 150.0

    def budget(self, figure: str) -> float:
        """The longest one worker round may take before it is called hung."""
        if figure == "hps":
            return self.hs_warmup + self.hs_duration + 20.0
        return self.warmup + self.duration + 20.0


FULL = Params()
QUICK = Params(
    rounds=2,
    warmup=0.3,
    duration=0.6,
    hs_warmup=0.2,
    hs_duration=0.5,
    sansio_requests=3_000,
    retries=0,
)
PROFILE = Params(rounds=1, warmup=0.5, duration=6.0, hs_duration=6.0)

#: (figure, client, label), in the order they run and are printed.
PLAN: list[tuple[str, str, str]] = [
    ("rps", "h2load", "h2load -c1 -m100 (native ceiling)"),
    ("rps", "h2-sansio", "h2 alone, sans-I/O (CPU floor)"),
    ("rps", "minimal", "minimal Trio + h2 (reference)"),
    ("rps", "trio_upgrade", "trio_upgrade, prior knowledge"),
    ("rps", "trio_upgrade-h2c", "trio_upgrade, after h2c upgrade"),
    ("rps", "httpx", "httpx http2=True on Trio"),
    ("mbps", "minimal", "minimal Trio + h2 (reference)"),
    ("mbps", "trio_upgrade", "trio_upgrade, prior knowledge"),
    ("mbps", "httpx", "httpx http2=True on Trio"),
    ("hps", "minimal-h2c", "minimal Trio + h2 (reference)"),
    ("hps", "trio_upgrade-h2c", "trio_upgrade upgrade(url, ['h2c'])"),
]
REFERENCE = {"rps": "minimal", "mbps": "minimal", "hps": "minimal-h2c"}
HTTPX = "httpx"
