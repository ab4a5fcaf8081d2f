"""The MP3 bitstream as read: frame headers and side info (``main_data_begin``, data lengths), the extent of the
tags at either end, the Xing/Info frame with its LAME tag, and the audio frames. The file is mapped, not read:
pages already parsed are released, so a long episode never sits in memory whole."""

from __future__ import annotations

import mmap
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path

from adcut.errors import CopyUnsupported
from adcut.media.mp3.id3 import id3v2_size, syncsafe

DECODER_DELAY = 529  # samples the MP3 synthesis filterbank delays its output (FFmpeg's 528 + 1)

BITRATES = {  # kbit/s by bit-rate index, for MPEG-1 and MPEG-2/2.5 layer III
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_HEADER_MASK = 0xFFFE0C00 | 0x000000C0  # sync, version, layer, bit rate, sample rate, and mono or not
XING_FRAMES, XING_BYTES, XING_TOC, XING_QUALITY = 1, 2, 4, 8


@dataclass(frozen=True)
class Header:
    """One frame header, decoded."""

    word: int
    mpeg1: bool
    crc: bool
    bitrate_index: int
    sample_rate: int
    padding: int
    channels: int
    size: int  # the whole frame in bytes

    @property
    def samples(self) -> int:
        return 1152 if self.mpeg1 else 576

    @property
    def side_info(self) -> int:
        if self.mpeg1:
            return 17 if self.channels == 1 else 32
        return 9 if self.channels == 1 else 17

    @property
    def data_start(self) -> int:
        """Where the side info ends and the main data (or reservoir) bytes begin, from the frame's start."""
        return 4 + (2 if self.crc else 0) + self.side_info

    @property
    def max_back(self) -> int:
        return 511 if self.mpeg1 else 255


def parse_header(word: int) -> Header | None:
    """The layer III header in the 32-bit ``word``, or None when it is not one (or is free format)."""
    if word >> 21 != 0x7FF:
        return None
    version = (word >> 19) & 3
    layer = (word >> 17) & 3
    bitrate_index = (word >> 12) & 15
    rate_index = (word >> 10) & 3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    sample_rate = _SAMPLE_RATES[version][rate_index]
    padding = (word >> 9) & 1
    bitrate = BITRATES[mpeg1][bitrate_index] * 1000
    size = (144 if mpeg1 else 72) * bitrate // sample_rate + padding
    channels = 1 if (word >> 6) & 3 == 3 else 2
    return Header(word, mpeg1, not (word >> 16) & 1, bitrate_index, sample_rate, padding, channels, size)


def with_bitrate(header: Header, bitrate_index: int) -> Header:
    """The same header at another bit rate, without padding and without a CRC."""
    word = (header.word & ~(0xF << 12) & ~(1 << 9)) | (bitrate_index << 12) | (1 << 16)
    new = parse_header(word)
    assert new is not None
    return new


# ---------------------------------------------------------------- the file: tags, Xing frame, audio frames


@dataclass
class Xing:
    """The Xing/Info frame at the start, with its LAME tag when there is one."""

    offset: int
    size: int
    name: bytes  # b"Xing" or b"Info" (b"VBRI" for Fraunhofer's, which is replaced by a Xing frame)
    flags: int = 0
    tag_at: int | None = None  # offset of the LAME tag inside the frame
    delay: int = 0
    padding: int = 0


@dataclass
class Mp3File:
    data: mmap.mmap | bytes
    id3v2: bytes  # the tags in front, as they were
    trailer: bytes  # ID3v1 / APE tags at the end, as they were
    xing: Xing | None
    offsets: array  # of int: where each audio frame starts (the Xing frame excluded); compact for long files
    sizes: array  # of int: each frame's bytes
    first: Header  # the first audio frame's header: version, sample rate, channels of the stream
    damaged: list[tuple[int, int]]  # (offset, bytes) skipped because they were not frames
    gaps: set[int]  # frames that do not follow the one before in the file (damaged bytes between)

    def header(self, index: int) -> Header:
        header = parse_header(int.from_bytes(self.data[self.offsets[index] : self.offsets[index] + 4], "big"))
        assert header is not None
        return header

    def frame(self, index: int) -> bytes:
        return bytes(self.data[self.offsets[index] : self.offsets[index] + self.sizes[index]])

    @property
    def samples_per_frame(self) -> int:
        return self.first.samples

    @property
    def skip(self) -> int:
        """Decoded samples FFmpeg drops at the start: the LAME tag's delay plus the decoder's own."""
        return self.xing.delay + DECODER_DELAY if self.xing and self.xing.tag_at is not None else 0

    @property
    def end_trim(self) -> int:
        """Decoded samples FFmpeg drops at the end (LAME padding beyond the decoder delay)."""
        if self.xing and self.xing.tag_at is not None:
            return max(0, self.xing.padding - DECODER_DELAY)
        return 0

    @property
    def decoded_samples(self) -> int:
        return len(self.offsets) * self.samples_per_frame - self.skip - self.end_trim


def _trailer_start(data, end: int) -> int:
    """Where ID3v1, APE and appended ID3v2 tags at the end begin (``end`` when there are none)."""
    while True:
        if end >= 128 and data[end - 128 : end - 125] == b"TAG":
            end -= 128
            continue
        if end >= 20 and data[end - 10 : end - 7] == b"3DI":  # an ID3v2.4 tag appended, with its footer
            total = syncsafe(data[end - 4 : end]) + 20
            if total <= end and data[end - total : end - total + 3] == b"ID3":
                end -= total
                continue
        if end >= 32 and data[end - 32 : end - 24] == b"APETAGEX":
            size, flags = struct.unpack("<II", data[end - 20 : end - 12])
            total = size + (32 if flags & 0x80000000 else 0)
            if 0 < total <= end:
                end -= total
                continue
        return end


def read_mp3(path: Path, data) -> Mp3File:
    """Parse ``data`` (the file's bytes, or a mapping of them) into tags, Xing frame and audio frames."""
    n = len(data)
    pos = 0
    while (size := id3v2_size(data, pos)) > 0:
        pos += size
    id3_end = pos
    end = _trailer_start(data, n)
    offsets = array("q")
    sizes = array("q")
    damaged: list[tuple[int, int]] = []
    gaps: set[int] = set()  # frames that do not follow the one before (damaged bytes skipped between)
    cache: dict[int, Header | None] = {}
    first: Header | None = None
    lock = 0  # the masked header bits every frame of the stream shares
    lock_mask = 0xFFFE0C00  # sync, version, layer and sample rate
    bad_from = -1

    def lookup(word: int) -> Header | None:
        key = word & 0xFFFFFEC0
        if key not in cache:
            cache[key] = parse_header(word)
        return cache[key]

    def header_at(at: int) -> Header | None:
        if at + 4 > end:
            return None
        word = int.from_bytes(data[at : at + 4], "big")
        if first is not None and (word & lock_mask) != lock:
            return None
        return lookup(word)

    known: dict[bytes, int] = {}  # header bytes already seen in this stream -> frame size
    released = 0
    while pos + 4 <= end:
        if pos - released >= _RELEASE_BYTES:
            released = release(data, released, pos)
        if bad_from < 0:
            # The common case, kept tight: a header seen before, the frame within the file.
            size = known.get(data[pos : pos + 4], 0)
            if size and pos + size <= end:
                offsets.append(pos)
                sizes.append(size)
                pos += size
                continue
        header = header_at(pos)
        ok = header is not None and pos + header.size <= end
        if header is not None and ok and (first is None or bad_from >= 0):
            # Before the stream is locked, or right after damage: the next frame must agree too.
            after = pos + header.size
            if after < end:
                nxt = header_at(after)
                ok = nxt is not None and (nxt.word & lock_mask) == (header.word & lock_mask)
        if header is None or not ok:
            if bad_from < 0:
                bad_from = pos
            found = data.find(b"\xff", pos + 1, end)
            pos = end if found < 0 else found
            continue
        if bad_from >= 0:
            if first is not None or bad_from > id3_end:
                damaged.append((bad_from, pos - bad_from))
            bad_from = -1
        if first is None:
            first = header
            lock = header.word & lock_mask
        if offsets and pos != offsets[-1] + sizes[-1]:
            gaps.add(len(offsets))
        known[bytes(data[pos : pos + 4])] = header.size
        offsets.append(pos)
        sizes.append(header.size)
        pos += header.size
    if bad_from >= 0 and pos - bad_from > 0 and first is not None:
        damaged.append((bad_from, end - bad_from))
    if first is None or len(offsets) < 2:
        raise CopyUnsupported("no MPEG layer III frames found")
    xing = _read_xing(data, offsets[0], sizes[0])
    if xing is not None:
        offsets, sizes = offsets[1:], sizes[1:]
        gaps = {g - 1 for g in gaps if g > 1}
        first = parse_header(int.from_bytes(data[offsets[0] : offsets[0] + 4], "big"))
        assert first is not None
    return Mp3File(
        data, bytes(data[:id3_end]), bytes(data[end:n]), xing, offsets, sizes, first, damaged, gaps
    )


_RELEASE_BYTES = 8 << 20


def release(data, start: int, end: int) -> int:
    """Let the kernel drop the mapped pages of ``data[start:end]`` already read (they stay in the page cache, out
    of this process's memory): a long episode is streamed through, never resident whole. Returns the new start."""
    if isinstance(data, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        lo = start - start % mmap.PAGESIZE
        hi = end - end % mmap.PAGESIZE
        if hi > lo:
            try:
                data.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
            except (OSError, ValueError):
                pass
            return hi
    return end


def _read_xing(data, offset: int, size: int) -> Xing | None:
    header = parse_header(int.from_bytes(data[offset : offset + 4], "big"))
    assert header is not None
    at = offset + header.data_start
    name = bytes(data[at : at + 4])
    if name == b"VBRI" or bytes(data[offset + 36 : offset + 40]) == b"VBRI":
        return Xing(offset, size, b"VBRI")
    if name not in (b"Xing", b"Info"):
        return None
    flags = int.from_bytes(data[at + 4 : at + 8], "big")
    xing = Xing(offset, size, name, flags)
    tag = (
        at
        + 8
        + 4 * bool(flags & XING_FRAMES)
        + 4 * bool(flags & XING_BYTES)
        + 100 * bool(flags & XING_TOC)
        + 4 * bool(flags & XING_QUALITY)
    )
    # FFmpeg reads the delay and padding from the tags LAME and FFmpeg itself write, and so does this.
    if tag + 36 <= offset + size and bytes(data[tag : tag + 4]) in (b"LAME", b"Lavf", b"Lavc"):
        xing.tag_at = tag - offset
        packed = int.from_bytes(data[tag + 21 : tag + 24], "big")
        xing.delay, xing.padding = packed >> 12, packed & 0xFFF
    return xing


# ---------------------------------------------------------------- side info: main_data_begin and data lengths


def main_data_begin(frame: bytes, header: Header) -> int:
    at = 4 + (2 if header.crc else 0)
    if header.mpeg1:
        return (frame[at] << 1) | (frame[at + 1] >> 7)
    return frame[at]


def set_main_data_begin(side: bytearray, header: Header, value: int) -> None:
    if header.mpeg1:
        side[0] = value >> 1
        side[1] = (side[1] & 0x7F) | ((value & 1) << 7)
    else:
        side[0] = value


def main_data_length(frame: bytes, header: Header) -> int:
    """Bytes of audio data the frame's granules use (the sum of their part2_3_length, rounded up)."""
    at = 4 + (2 if header.crc else 0)
    side = int.from_bytes(frame[at : at + header.side_info], "big")
    total = 8 * header.side_info
    nch = header.channels

    def bits(pos: int, n: int) -> int:
        return (side >> (total - pos - n)) & ((1 << n) - 1)

    length = 0
    if header.mpeg1:
        base = 9 + (5 if nch == 1 else 3) + 4 * nch
        for gr in range(2):
            for ch in range(nch):
                length += bits(base + (gr * nch + ch) * 59, 12)
    else:
        base = 8 + (1 if nch == 1 else 2)
        for ch in range(nch):
            length += bits(base + ch * 63, 12)
    return (length + 7) // 8
