"""Messages that can be checked byte for byte, and the ledger of outcomes.

Every WebSocket message and HTTP/2 body the soak sends starts with the id of
its connection (or stream) and its sequence number, followed by a slice of
the interop pattern (``servers.payload``) chosen by both; text messages
carry the same in hexadecimal. The receiver rebuilds the message it expects
next and compares the whole of it, so a lost, reordered, duplicated or
corrupted message (or one whose type changed) cannot pass unnoticed: the
first one ends its connection, as a real application would be broken from
there on.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from .. import servers

#: Enough pattern for any slice: the soak's largest message is below 256 KiB.
_PATTERN = servers.payload(256 * 1024 + 65521)
_TEXT = _PATTERN[: len(_PATTERN) // 2].hex()
_HEAD = struct.Struct("!IQ")
_PRIME = 7919

#: Body sizes the 1,000 x 1,000 run cycles through: both sides of the
#: 7-bit length (125/126 bytes with the 12-byte head) and small messages.
SMALL_SIZES = (0, 1, 113, 114, 500, 2048)
#: The mixed run adds the 16-bit length's edge (65,535/65,536 bytes with the
#: head) and a message of 64-bit length.
MIXED_SIZES = (*SMALL_SIZES, 65523, 65524, 200_000)


def _offset(ident: int, seq: int) -> int:
    return (ident * 1_000_003 + seq * _PRIME) % 65521


def message(ident: int, seq: int, sizes: Sequence[int]) -> bytes | str:
    """Message ``seq`` of connection ``ident``: binary when even, text when odd."""
    size = sizes[seq % len(sizes)]
    start = _offset(ident, seq)
    if seq % 2 == 0:
        return _HEAD.pack(ident, seq) + _PATTERN[start : start + size]
    return f"{ident:08x}:{seq:016x}:" + _TEXT[start : start + size]


def body(ident: int, seq: int, size: int) -> bytes:
    """An HTTP/2 request body, ``size`` bytes after its 12-byte head."""
    start = _offset(ident, seq)
    return _HEAD.pack(ident, seq) + _PATTERN[start : start + size]


def sequence_of(got: bytes | str) -> tuple[int, int] | None:
    """The ``(ident, seq)`` a received message claims, if it is readable."""
    try:
        if isinstance(got, str):
            ident, seq, _ = got.split(":", 2)
            return int(ident, 16), int(seq, 16)
        if len(got) >= _HEAD.size:
            ident, seq = _HEAD.unpack_from(got)
            return int(ident), int(seq)
    except ValueError:
        pass
    return None


class Mismatch(Exception):
    """A message or body is not the one expected next."""


@dataclass
class Ledger:
    """Counts of what was sent and verified, and every failure, by kind.

    Kinds: ``lost`` (the next message never came), ``skipped`` (a later
    message came in its place: the expected one was lost, or comes later
    out of order), ``duplicated`` (an earlier one came again),
    ``corrupted`` (the right place, the wrong bytes or type), ``error`` (an
    exception ended a session), ``close`` (a close code other than 1000).
    """

    sent: int = 0
    verified: int = 0
    bytes_verified: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)

    def fail(self, kind: str, detail: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1
        if len(self.details) < 20:
            self.details.append(f"{kind}: {detail}")

    def check(
        self, ident: int, seq: int, got: bytes | str, expected: bytes | str
    ) -> None:
        """Count ``got`` as verified, or record the failure and raise Mismatch."""
        if got == expected:
            self.verified += 1
            self.bytes_verified += len(got)
            return
        claimed = sequence_of(got)
        if claimed is None or claimed[0] != ident or claimed[1] == seq:
            kind = "corrupted"
        elif claimed[1] < seq:
            kind = "duplicated"
        else:
            kind = "skipped"
        where = f"connection {ident}, message {seq}"
        detail = f"{where}: got {type(got).__name__} of {len(got)}, claims {claimed}"
        self.fail(kind, detail)
        raise Mismatch(detail)

    @property
    def ok(self) -> bool:
        return not self.failures and self.sent == self.verified

    def summary(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "verified": self.verified,
            "bytes_verified": self.bytes_verified,
            "unaccounted": self.sent - self.verified,
            "failures": dict(self.failures),
            "details": list(self.details),
        }
