"""Fast paths beside wsproto for plain data frames (no extension in force).

wsproto stays the parser and state machine of record: these functions only
handle the cases where the result is, byte for byte and state for state,
what wsproto would produce, and leave everything else to it.

* :func:`build_frame` builds a client's unfragmented text or binary frame:
  FIN set, no RSV bits, a fresh masking key from :func:`os.urandom` per frame
  (RFC 6455 §5.3; drawn 256 at a time, :func:`mask_key`). wsproto's
  ``Connection.send`` of such a frame changes no state when no extension is
  in force and no fragmented message is being sent, so the caller checks
  exactly that
  (``_wsproto_compat.can_build_frames``) and otherwise calls wsproto.
* :func:`plain_header` recognises the header of a server frame that wsproto
  would accept and turn into one complete message on its own: FIN, no RSV
  bits, text or binary, unmasked, the length in its shortest encoding. The
  engine takes such frames itself only while wsproto holds no partial frame
  or message, so wsproto's state is the same after as before.

Masking is compiled when the optional module ``_ws_mask`` (``_ws_mask.c``,
built at install time where a C compiler is at hand) is there: it also
builds a whole frame in one allocation. Otherwise it is pure Python: XOR of
two integers for short payloads, and for longer ones ``bytes.translate``
over the four byte lanes (what wsproto does, minus its copies), measured
fastest at each size (docs/perf/large-messages.rst). The tests hold both to
the same bytes; the environment variable ``TRIO_UPGRADE_NO_SPEEDUPS=1``
turns the compiled one off. No other package's masker is ever used.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from typing import Protocol

from . import _speedups
from ._wsproto_compat import xor_tables

__all__ = ["ACCELERATED", "MORE", "build_frame", "mask", "plain_header"]

_urandom = os.urandom

#: Bytes of masking keys drawn from the system's CSPRNG at a time: 256 keys
#: per call of os.urandom. A call is a system call (about a microsecond, as
#: much as building a small frame); each key is as unpredictable as one
#: drawn alone (RFC 6455 §5.3 asks for a strong source of entropy).
_KEY_BLOCK = 1024


#: Unused masking keys. ``deque.popleft`` is atomic, so threads never take
#: the same key; each key is 4 bytes of one os.urandom block, used once.
_keys: deque[bytes] = deque()


def _forget_keys() -> None:
    # A forked child must not send the keys its parent will send.
    _keys.clear()


if hasattr(os, "register_at_fork"):  # pragma: no branch - not on Windows
    os.register_at_fork(after_in_child=_forget_keys)


def mask_key() -> bytes:
    """A fresh 4-byte masking key from the system's CSPRNG, never reused."""
    while True:
        try:
            return _keys.popleft()
        except IndexError:
            block = _urandom(_KEY_BLOCK)
            _keys.extend([block[i : i + 4] for i in range(0, _KEY_BLOCK, 4)])


_pack_H = struct.Struct("!H").pack
_pack_Q = struct.Struct("!Q").pack

#: :func:`plain_header`'s answer for a header that is not complete yet.
MORE = -1

#: Below this many bytes, XOR of two ints masks faster than translate().
_INT_MASK_BELOW = 512


class _Compiled(Protocol):
    """What ``_ws_mask.c`` provides."""

    def mask(self, key: bytes, data: bytes, /) -> bytes: ...

    def frame(self, head: bytes, key: bytes, data: bytes, /) -> bytes: ...


_TABLES = xor_tables()


def _load_accelerator() -> _Compiled | None:
    """The compiled masker ``_ws_mask``, if it was built and is not off.

    An optional speedup, never required: a failed build at install time
    leaves it out and pure Python masks instead.
    """
    if not _speedups._enabled(os.environ.get("TRIO_UPGRADE_NO_SPEEDUPS")):
        return None
    try:
        from . import _ws_mask
    except ImportError:  # not built: pure Python
        return None
    compiled: _Compiled = _ws_mask
    return compiled


def _mask_python(key: bytes, data: bytes) -> bytes:
    size = len(data)
    if size < _INT_MASK_BELOW:
        return _mask_int(key, data, size)
    out = bytearray(data)
    _mask_lanes(key, out, 0)
    return bytes(out)


def _mask_int(key: bytes, data: bytes, size: int) -> bytes:
    repeated = key * ((size >> 2) + 1)
    return (
        int.from_bytes(data, "little") ^ int.from_bytes(repeated[:size], "little")
    ).to_bytes(size, "little")


def _mask_lanes(key: bytes, buf: bytearray, start: int) -> None:
    """Mask ``buf[start:]`` in place, one translate() per key byte."""
    tables = _TABLES
    for lane in range(4):
        buf[start + lane :: 4] = buf[start + lane :: 4].translate(tables[key[lane]])


_accelerator = _load_accelerator()

#: Whether the compiled masker is in use.
ACCELERATED = _accelerator is not None


def mask(key: bytes, data: bytes) -> bytes:
    """``data`` XOR the repeated 4-byte ``key`` (RFC 6455 §5.3)."""
    if _accelerator is not None:
        return _accelerator.mask(key, data)
    return _mask_python(key, data)


def _head(opcode: int, size: int) -> bytes:
    # FIN + opcode, then MASK + the length in its shortest form (§5.2).
    if size < 126:
        return bytes((0x80 | opcode, 0x80 | size))
    if size < 65536:
        return bytes((0x80 | opcode, 0xFE)) + _pack_H(size)
    return bytes((0x80 | opcode, 0xFF)) + _pack_Q(size)


def build_frame(opcode: int, payload: bytes) -> bytes | bytearray:
    """A masked client frame: FIN, ``opcode`` (1, 2 or 8), ``payload``.

    The same bytes as wsproto's ``Connection.send`` for the same masking
    key; the key is fresh from :func:`os.urandom` (:func:`mask_key`).
    """
    key = mask_key()
    size = len(payload)
    if _accelerator is not None:
        # One allocation: header, key and masked payload written in place.
        return _accelerator.frame(_head(opcode, size), key, payload)
    if size < _INT_MASK_BELOW:
        return _head(opcode, size) + key + _mask_int(key, payload, size)
    frame = bytearray(_head(opcode, size))
    frame += key
    start = len(frame)
    frame += payload
    _mask_lanes(key, frame, start)
    return frame


def plain_header(data: bytes | bytearray, pos: int) -> tuple[int, int, int]:
    """Parse the frame header at ``data[pos:]`` if it is a plain one.

    Returns ``(opcode, header size, payload size)`` for an unmasked text or
    binary frame with FIN set and no RSV bit, whose length wsproto accepts;
    ``(MORE, 0, 0)`` when the bytes so far could start such a header but it
    is not complete; ``(0, 0, 0)`` for anything else, which wsproto then
    parses (and reports any error in).
    """
    end = len(data)
    first = data[pos]
    if first != 0x82 and first != 0x81:
        return 0, 0, 0
    if end - pos < 2:
        return MORE, 0, 0
    size = data[pos + 1]  # MASK bit set: not plain (wsproto fails it)
    if size < 126:
        return first & 0x0F, 2, size
    if size == 126:
        if end - pos < 4:
            return MORE, 0, 0
        size = (data[pos + 2] << 8) | data[pos + 3]
        if size < 126:
            return 0, 0, 0
        return first & 0x0F, 4, size
    if size == 127:
        if end - pos < 10:
            return MORE, 0, 0
        size = int.from_bytes(data[pos + 2 : pos + 10], "big")
        if size < 65536 or size >> 63:
            return 0, 0, 0
        return first & 0x0F, 10, size
    return 0, 0, 0
