"""Masking speed at 16 B, 64 KiB and 1 MiB: each masker available here.

    python -m benchmarks.masking

Ours compiled (``_ws_mask.mask`` and ``.frame``, if it was built), ours in
pure Python (as shipped, and the forms it was chosen from), and, for the
comparison in docs/perf/large-messages.rst, ``wsaccel`` and
``websockets.speedups`` when they are installed (neither is used by
trio_upgrade). Wall-clock, best of 5: on a loaded machine compare the
ratios, not the times.
"""

from __future__ import annotations

import functools
import os
import timeit
from collections.abc import Callable

from trio_upgrade._sansio import _ws_frames

SIZES = (16, 65536, 1 << 20)


def _int_xor(key: bytes, data: bytes) -> bytes:
    size = len(data)
    return _ws_frames._mask_int(key, data, size)


def _lanes(key: bytes, data: bytes) -> bytes:
    out = bytearray(data)
    _ws_frames._mask_lanes(key, out, 0)
    return bytes(out)


def _int_chunks(key: bytes, data: bytes, chunk: int = 4096) -> bytes:
    size = len(data)
    out = bytearray(size)
    wide = int.from_bytes(key * (chunk >> 2), "little")
    whole = size - size % chunk
    for i in range(0, whole, chunk):
        value = int.from_bytes(data[i : i + chunk], "little") ^ wide
        out[i : i + chunk] = value.to_bytes(chunk, "little")
    out[whole:] = _int_xor(key, data[whole:])
    return bytes(out)


def maskers() -> dict[str, Callable[[bytes, bytes], bytes]]:
    found: dict[str, Callable[[bytes, bytes], bytes]] = {}
    try:
        from trio_upgrade._sansio import _ws_mask
    except ImportError:
        pass
    else:
        found["ours, compiled"] = _ws_mask.mask
        found["ours, compiled, whole frame"] = lambda k, d: _ws_mask.frame(
            b"\x82\x7f\0\0\0\0\0\0\0\0", k, d
        )
    found["ours, pure Python (as shipped)"] = _ws_frames._mask_python
    found["pure: int XOR"] = _int_xor
    found["pure: int XOR, 4 KiB chunks"] = _int_chunks
    found["pure: translate lanes"] = _lanes
    try:
        from websockets.speedups import apply_mask
    except ImportError:
        pass
    else:
        found["websockets.speedups"] = lambda k, d: apply_mask(d, k)
    try:
        from wsaccel.xormask import XorMaskerSimple
    except ImportError:
        pass
    else:
        found["wsaccel"] = lambda k, d: XorMaskerSimple(k).process(d)
    return found


def main() -> None:
    key = os.urandom(4)
    for size in SIZES:
        data = os.urandom(size)
        expected = _ws_frames._mask_python(key, data)
        number = max(3, 2_000_000 // (size + 200) // 10)
        for name, masker in maskers().items():
            result = masker(key, data)
            if not result.endswith(expected):  # a frame ends with it
                raise AssertionError(f"{name} masks differently")
            run = functools.partial(masker, key, data)
            best = min(timeit.repeat(run, number=number, repeat=5))
            micros = best / number * 1e6
            print(f"{size:>8} B  {name:<32} {micros:>10.2f} µs")


if __name__ == "__main__":
    main()
