"""permessage-deflate (RFC 7692) settings and bounded wsproto extensions.

wsproto's :class:`~wsproto.extensions.PerMessageDeflate` inflates each
frame chunk whole: 64 KiB of a "deflate bomb" can expand to 64 MiB before
anything can look at the size. :class:`BoundedDeflate` inflates with
``zlib.Decompress.decompress(data, max_length)`` and fails the message with
close code 1009 as soon as its inflated size would pass ``max_size``, so a
bomb costs at most ``max_size`` bytes. It also creates its zlib objects
lazily (an idle connection holds none), uses a small ``memLevel``, and keeps
a fragmented compressed message compressed across an interleaved ping
(wsproto 1.2/1.3 forget it).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import (
    CloseReason,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    RsvBits,
)

from ._ws_handshake import DeflateParams, parse_deflate_params, parse_extensions

__all__ = ["BoundedDeflate", "Deflate", "SizeGuard"]

# RFC 7692 §7.2.2: each compressed message ends with an empty stored block
# whose last 4 bytes the sender drops and the receiver appends back.
_TAIL = b"\x00\x00\xff\xff"

_NO_RSV = RsvBits(False, False, False)
_RSV1 = RsvBits(True, False, False)


def _deflated_bound(size: int) -> int:
    """The most bytes a frame of a compressed message within ``size`` needs.

    zlib's worst case for any settings (``deflateBound``: stored blocks,
    5 bytes each) plus room for a sync flush (RFC 7692 §7.2.1), which some
    senders end every frame with. A longer frame cannot hold such a
    message's data, and is refused from its header.
    """
    return size + ((size + 7) >> 3) + ((size + 63) >> 6) + 16


@dataclass(frozen=True)
class Deflate:
    """Settings of permessage-deflate for ``WebSocket(compression=...)``.

    The defaults keep a connection's compression memory small: zlib needs
    about ``2**(window_bits + 2) + 2**(mem_level + 9)`` bytes plus 6 KiB to
    compress and ``2**window_bits`` plus 7 KiB to inflate, so 12 bits and
    ``mem_level=5`` cost about 38 KiB and 11 KiB (measured: 54 KiB per
    connection in all, against under 6 KiB idle), where zlib's defaults
    would cost 262 KiB and 39 KiB. Each is allocated on the first compressed
    message in its direction; the ``*_no_context_takeover`` settings free it
    after every message.

    Attributes:
        client_max_window_bits: the largest LZ77 window (base-2 log, 9 to
            15) this client compresses with. The offer carries
            ``client_max_window_bits`` without a value, as browsers and
            ``websockets`` send it (RFC 7692 §7.1.2.2): the server may answer
            with any window from 8 to 15, and the client compresses with the
            smaller of that and this one (a sender may always use a smaller
            window than allowed), so the memory stays what this setting
            says. An answer of 8, which zlib cannot produce, means messages
            go out uncompressed. 12 (4 KiB): the ``websockets`` server's
            default for its own side; compression of typical JSON messages
            barely improves past it.
        server_max_window_bits: the window (8 to 15) the server must not
            exceed, which bounds this client's inflate memory; ``None`` asks
            nothing (the server may use 15, 32 KiB, as browsers allow). 12,
            for the same reasons. A server that cannot honour it declines
            compression (RFC 7692 §7.1.2.1) and the connection goes on
            without it.
        client_no_context_takeover: reset the compressor after each message
            (no memory held between messages, worse ratio).
        server_no_context_takeover: ask the server to do the same, which
            frees our inflater between messages.
        level: zlib compression level, 0 to 9 (6 is zlib's default and what
            ``websockets`` and browsers use).
        mem_level: zlib ``memLevel``, 1 to 9. 5, as ``websockets`` uses: much
            less memory than zlib's 8 for nearly the same ratio on messages.

    Raises:
        ValueError: a value is out of range.
    """

    client_max_window_bits: int = 12
    server_max_window_bits: int | None = 12
    client_no_context_takeover: bool = False
    server_no_context_takeover: bool = False
    level: int = 6
    mem_level: int = 5

    def __post_init__(self) -> None:
        # 8 is valid in RFC 7692 but zlib cannot compress with it (it
        # silently uses 9), so a client may not promise it.
        if not 9 <= self.client_max_window_bits <= 15:
            raise ValueError("client_max_window_bits must be from 9 to 15")
        if self.server_max_window_bits is not None and not (
            8 <= self.server_max_window_bits <= 15
        ):
            raise ValueError("server_max_window_bits must be from 8 to 15 or None")
        if not 0 <= self.level <= 9:
            raise ValueError("level must be from 0 to 9")
        if not 1 <= self.mem_level <= 9:
            raise ValueError("mem_level must be from 1 to 9")

    def offer(self) -> DeflateParams:
        """The parameters this client offers.

        ``client_max_window_bits`` goes without a value ("name my window"):
        offering ours as a value would make a server that answers with a
        larger one (legal for the server, which must not exceed it, yet seen
        in the wild) fail the handshake, while the window we use is ours to
        choose below whatever the server allows.
        """
        return DeflateParams(
            client_max_window_bits=0,
            server_max_window_bits=self.server_max_window_bits,
            client_no_context_takeover=self.client_no_context_takeover,
            server_no_context_takeover=self.server_no_context_takeover,
        )


class BoundedDeflate(PerMessageDeflate):
    """Client-side permessage-deflate for wsproto with a bound on inflation.

    Configure it with the :class:`Deflate` settings, then call
    :meth:`finalize` with the extension element the server accepted.

    Args:
        settings: what was offered and how to compress.
        max_size: the most bytes one inflated message may have, or ``None``.
    """

    def __init__(self, settings: Deflate, max_size: int | None) -> None:
        super().__init__()
        self._settings = settings
        self._max_size = max_size
        self._deflate_bits: int | None = None  # None: send uncompressed
        self._inflate_bits = 15
        self._deflater: zlib._Compress | None = None
        self._inflater: zlib._Decompress | None = None
        # The peer ended its deflate stream (a BFINAL block, RFC 7692
        # §7.2.3.3) in the last message: nothing after can be inflated.
        self._inflater_ended = False
        self._out_compressed = False
        self._in_compressed = False
        self._in_control = False
        self._in_message = False  # a data message's frames are arriving
        self._inflated = 0
        self._announced = 0  # payload bytes of the message, by its headers
        self._frame_limit = None if max_size is None else _deflated_bound(max_size)

    def finalize(self, offer: str) -> None:
        """Apply the server's accepted ``permessage-deflate; ...`` element.

        Raises:
            ValueError: the element is not an acceptable answer to our offer
                (the handshake has already checked it; this re-checks).
        """
        [(name, params)] = parse_extensions([offer])
        if name != self.name:
            raise ValueError(f"not a {self.name} element: {offer!r}")
        agreed = parse_deflate_params(params, self._settings.offer())
        super().finalize(self.name)  # marks the extension enabled
        self.client_no_context_takeover = agreed.client_no_context_takeover
        self.server_no_context_takeover = agreed.server_no_context_takeover
        # RFC 7692 §7.1.2.2: the server's value bounds our window, 15 when
        # it names none; within that bound we use our own setting.
        allowed = agreed.client_max_window_bits or 15
        client_bits = min(allowed, self._settings.client_max_window_bits)
        # A server may hold us to 8 bits, which zlib cannot produce; sending
        # uncompressed messages is always allowed (RFC 7692 §6), so do that.
        self._deflate_bits = None if client_bits < 9 else client_bits
        self.client_max_window_bits = max(client_bits, 9)
        # Inflating with a larger window than the sender's is always safe,
        # and zlib itself compresses "8" with 9 bits.
        self._inflate_bits = max(agreed.server_max_window_bits or 15, 9)
        self.server_max_window_bits = self._inflate_bits

    # -- receiving ----------------------------------------------------------

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            self._in_control = True
            # RFC 7692 §6.1: RSV1 only on the first frame of a data message.
            return CloseReason.PROTOCOL_ERROR if rsv.rsv1 else _NO_RSV
        self._in_control = False
        if opcode is Opcode.CONTINUATION:
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR
            self._announced += payload_length
        else:
            if not self._in_message:
                self._in_compressed = rsv.rsv1
                self._inflated = 0
            # else: a text or binary frame inside a fragmented message, which
            # wsproto's parser fails (1002) when its payload comes; as with
            # wsproto's own extension, that payload is taken the way the
            # message's is, so that the same error wins.
            self._announced = payload_length
        self._in_message = True
        # A length over the bound fails the message from its header (1009),
        # before any of its payload comes: uncompressed, the headers' total
        # is the message's size; compressed, each frame has a bound of its
        # own, and the inflated size is checked as it grows.
        max_size = self._max_size
        if max_size is not None:
            if self._in_compressed:
                assert self._frame_limit is not None
                if payload_length > self._frame_limit:
                    return CloseReason.MESSAGE_TOO_BIG
            elif self._announced > max_size:
                return CloseReason.MESSAGE_TOO_BIG
        return _RSV1

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if self._in_control or not self._in_compressed:
            return data
        return self._inflate(data)

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if self._in_control or not fin:
            return None
        # The message is whole: the next frame's headers start a new count
        # (a stray continuation is not added to this message's).
        self._in_message = False
        self._announced = 0
        if not self._in_compressed:
            return None
        self._in_compressed = False
        result = self._inflate(_TAIL)
        if self.server_no_context_takeover:
            self._inflater = None
        elif self._inflater is not None and self._inflater.eof:
            # zlib would take the next message's bytes as trailing data and
            # return nothing: the message would come out empty. wsproto's
            # extension fails it (1007), and so does this one.
            self._inflater_ended = True
        return result

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        if self._inflater_ended:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        inflater = self._inflater
        if inflater is None:
            inflater = self._inflater = zlib.decompressobj(-self._inflate_bits)
        try:
            if self._max_size is None:
                out = inflater.decompress(data)
            else:
                room = self._max_size - self._inflated
                # One byte over the room proves the message too big, and
                # zlib stops there: the rest stays in unconsumed_tail.
                out = inflater.decompress(data, room + 1)
                if len(out) > room:
                    return CloseReason.MESSAGE_TOO_BIG
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        return out

    # -- sending ------------------------------------------------------------

    def frame_outbound(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        if opcode.iscontrol():
            return rsv, data
        if opcode is not Opcode.CONTINUATION:
            # Compression is decided per message (RFC 7692 §6).
            self._out_compressed = self._deflate_bits is not None
            if self._out_compressed:
                rsv = RsvBits(True, rsv.rsv2, rsv.rsv3)
        if not self._out_compressed:
            return rsv, data
        deflater = self._deflater
        if deflater is None:
            assert self._deflate_bits is not None
            deflater = self._deflater = zlib.compressobj(
                self._settings.level,
                zlib.DEFLATED,
                -self._deflate_bits,
                self._settings.mem_level,
            )
        out = deflater.compress(data)
        if fin:
            out += deflater.flush(zlib.Z_SYNC_FLUSH)
            out = out[:-4]  # RFC 7692 §7.2.1: drop the sync flush's tail
            if self.client_no_context_takeover:
                self._deflater = None
        return rsv, out

    def __repr__(self) -> str:
        return (
            f"<BoundedDeflate deflate_bits={self._deflate_bits} "
            f"inflate_bits={self._inflate_bits} max_size={self._max_size}>"
        )


class SizeGuard(Extension):
    """Adds up, from frame headers, the payload a message announces.

    For connections without extensions on wsproto's public path: the reader
    fails the connection (1009) once :attr:`announced` passes ``max_size``,
    after wsproto has parsed what it was given, as the fast reader does
    from the header it reads itself, so that the same error wins on both
    paths (a header wsproto rejects, masked or with an RSV bit, or a
    payload it fails first, fails with wsproto's code). With
    permessage-deflate, :class:`BoundedDeflate` checks the sizes. Nothing
    is negotiated: it changes no frame.
    """

    name = "trio-upgrade-size-guard"

    def __init__(self) -> None:
        #: Payload bytes of the message being read, by its frames' headers
        #: (the frame being read included); 0 between messages.
        self.announced = 0
        self._in_control = False

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        self._in_control = opcode.iscontrol()
        if self._in_control:
            pass
        elif opcode is Opcode.CONTINUATION:
            self.announced += payload_length
        else:
            self.announced = payload_length
        return _NO_RSV

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if fin and not self._in_control:
            self.announced = 0  # the message is whole
        return None
