"""The MP3 copy path of the cut: kept frames copied byte for byte, only a few frames at each join re-encoded.

An MP3 file is a run of frames (1152 samples for MPEG-1, 576 for MPEG-2/2.5 layer III), optionally
behind an ID3v2 tag and a first "Xing"/"Info" frame that says how many frames and bytes follow
(with a seek table and, from LAME and FFmpeg, the encoder delay and padding that gapless players
trim). Ads are cut on frame boundaries, each edge rounded outward (no ad audio is kept, at most one
frame of content is lost per edge).

The **bit reservoir** is what makes this more than a byte copy: a frame's audio data may begin up to
511 bytes (255 for MPEG-2) *before* its header, inside earlier frames. At each join, therefore:

* the last few kept frames before the cut and the first few after it are decoded (from a few frames
  earlier, so that their own reservoir and the decoder's overlap are right), faded on the kept side
  as the re-encode path does, and encoded again with LAME *without* a reservoir, from a warm start
  (the encoder is fed the copied audio before the stretch, whose frames are then thrown away, so
  the first new frame overlaps the last copied one as the original did);
* the first copied frame after the stretch still points back ``main_data_begin`` bytes: those bytes
  (the input's own) are placed at the end of the new frames' bytes; the last new frames are made
  larger (a higher bit-rate index) when they have no room, their data moving back into the
  reservoir of the new frames before them, and when even that is not enough (a 320 kbps file)
  the stretch is encoded again a bit-rate step lower.

The Xing/Info frame is rewritten (frame count, byte count, seek table) with the LAME tag's encoder
delay and padding and its checksums (the audio CRC computed while writing); ID3v2 tags (cover art
included) are copied, with chapter (``CHAP``) times re-timed to the cut audio; tags after the audio
(ID3v1, APE, an appended ID3v2) are copied as they are. Bytes that are not frames (a damaged stretch)
are skipped with a warning; the frame after them lost the reservoir bytes it needed, so it and the
next are dropped and the gap is joined like a cut. Anything this module cannot handle (free-format
bit rates, layer I/II, a stream that changes sample rate, chapters in an unsynchronised ID3v2 tag)
raises CopyUnsupported and the cut
falls back to the re-encode path. The file is mapped, not read: pages already parsed or copied are
released, so a long episode never sits in memory whole.
"""

from __future__ import annotations

import bisect
import logging
from array import array
import mmap
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adcut.core.segments import Segment
from adcut.core.units import Seconds
from adcut.errors import AudioError, CopyUnsupported, OutputError

log = logging.getLogger(__name__)

METHOD = "copy-mp3"
DECODER_DELAY = 529  # samples the MP3 synthesis filterbank delays its output (FFmpeg's 528 + 1)
LAME_DELAY = 576  # the encoder delay LAME adds in front of its input
WARMUP_SAMPLES = 1152  # audio the encoder has seen before a re-encoded stretch starts (the frames it makes
# of it, and of the codec delay before it, are thrown away)
TRAIL_FRAMES = 2  # frames fed after it, so its last frames are coded with the audio that follows

_BITRATES = {  # kbit/s by bit-rate index, for MPEG-1 and MPEG-2/2.5 layer III
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_HEADER_MASK = 0xFFFE0C00 | 0x000000C0  # sync, version, layer, bit rate, sample rate, and mono or not
_XING_FRAMES, _XING_BYTES, _XING_TOC, _XING_QUALITY = 1, 2, 4, 8


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
    bitrate = _BITRATES[mpeg1][bitrate_index] * 1000
    size = (144 if mpeg1 else 72) * bitrate // sample_rate + padding
    channels = 1 if (word >> 6) & 3 == 3 else 2
    return Header(word, mpeg1, not (word >> 16) & 1, bitrate_index, sample_rate, padding, channels, size)


def _with_bitrate(header: Header, bitrate_index: int) -> Header:
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


def _id3v2_size(data, at: int) -> int:
    if data[at : at + 3] != b"ID3" or len(data) < at + 10:
        return 0
    size = _syncsafe(data[at + 6 : at + 10])
    footer = 10 if data[at + 5] & 0x10 else 0
    return 10 + size + footer


def _syncsafe(b: bytes) -> int:
    return (b[0] & 0x7F) << 21 | (b[1] & 0x7F) << 14 | (b[2] & 0x7F) << 7 | (b[3] & 0x7F)


def _to_syncsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def _trailer_start(data, end: int) -> int:
    """Where ID3v1, APE and appended ID3v2 tags at the end begin (``end`` when there are none)."""
    while True:
        if end >= 128 and data[end - 128 : end - 125] == b"TAG":
            end -= 128
            continue
        if end >= 20 and data[end - 10 : end - 7] == b"3DI":  # an ID3v2.4 tag appended, with its footer
            total = _syncsafe(data[end - 4 : end]) + 20
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
    while (size := _id3v2_size(data, pos)) > 0:
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
            released = _release(data, released, pos)
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


def _release(data, start: int, end: int) -> int:
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
        + 4 * bool(flags & _XING_FRAMES)
        + 4 * bool(flags & _XING_BYTES)
        + 100 * bool(flags & _XING_TOC)
        + 4 * bool(flags & _XING_QUALITY)
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


def _set_main_data_begin(side: bytearray, header: Header, value: int) -> None:
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


# ---------------------------------------------------------------- planning: which frames are copied, which re-encoded


@dataclass
class Piece:
    """Input frames ``lo..hi`` of kept span ``span``: copied, or re-encoded with fades at the span's edges."""

    lo: int
    hi: int
    copy: bool
    fade_in: bool = False  # the span starts here after a cut
    fade_out: bool = False  # the span ends here before a cut


def kept_frames(mp3: Mp3File, spans: Sequence[tuple[Seconds, Seconds]]) -> list[tuple[int, int]]:
    """Kept ``[lo, hi)`` frame ranges: the frames wholly inside a kept span (so every frame that holds removed
    audio is dropped: each cut's edges are rounded outward). A span from the start or to the end keeps those."""
    import math

    n = mp3.samples_per_frame
    rate = mp3.first.sample_rate
    total = len(mp3.offsets)
    end_time = mp3.decoded_samples / rate
    ranges: list[tuple[int, int]] = []
    for start, end in spans:
        lo = 0 if start <= 1e-3 else max(0, math.ceil((start * rate + mp3.skip) / n - 1e-6))
        hi = (
            total
            if end >= end_time - 0.5 * n / rate
            else min(total, math.floor((end * rate + mp3.skip) / n + 1e-6))
        )
        if hi <= lo:
            continue
        if ranges and lo <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(hi, ranges[-1][1]))
        else:
            ranges.append((lo, hi))
    return ranges


def _without(ranges: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """Frame ranges less frames ``lo..hi``."""
    out = []
    for a, b in ranges:
        if b <= lo or a >= hi:
            out.append((a, b))
            continue
        if a < lo:
            out.append((a, lo))
        if b > hi:
            out.append((hi, b))
    return out


def plan_pieces(ranges: list[tuple[int, int]], total: int, edge_frames: int) -> list[Piece]:
    pieces: list[Piece] = []
    for lo, hi in ranges:
        head = lo > 0
        tail = hi < total
        inner_lo = lo + (edge_frames if head else 0)
        inner_hi = hi - (edge_frames if tail else 0)
        if (head or tail) and inner_hi - inner_lo < 2:
            pieces.append(Piece(lo, hi, False, head, tail))
            continue
        if head:
            pieces.append(Piece(lo, inner_lo, False, True, False))
        pieces.append(Piece(inner_lo, inner_hi, True))
        if tail:
            pieces.append(Piece(inner_hi, hi, False, False, True))
    return pieces


# ---------------------------------------------------------------- decoding and re-encoding a stretch


def _av():
    """PyAV, imported when a join is rebuilt (its FFmpeg log stays as adcut leaves it: off by default)."""
    import av

    return av


def decode_frames(mp3: Mp3File, lo: int, hi: int) -> np.ndarray:
    """The decoded-stream samples of frames ``lo..hi`` as float32 ``(channels, n)``, decoded from early enough
    that their bit reservoir and the decoder's overlap are those of the whole file."""
    av = _av()
    start = lo
    back = 0
    # The frame before lo must decode right (its overlap feeds lo): go back past its reservoir too.
    while start > 0 and (back < 2 * mp3.first.max_back or lo - start < 3):
        start -= 1
        back += mp3.sizes[start]
    decoder = av.CodecContext.create("mp3float", "r")
    channels = mp3.first.channels
    out = []
    for index in range(start, hi):
        try:
            frames = decoder.decode(av.Packet(mp3.frame(index)))
        except av.FFmpegError:
            frames = []
        if index < lo:
            continue
        got = [f.to_ndarray().reshape(channels, -1) for f in frames]
        block = np.concatenate(got, axis=1) if got else np.zeros((channels, 0), np.float32)
        n = mp3.samples_per_frame
        if block.shape[1] != n:  # a frame the decoder refused: silence in its place
            block = np.zeros((channels, n), np.float32) if block.shape[1] < n else block[:, :n]
        out.append(block.astype(np.float32, copy=False))
    return np.concatenate(out, axis=1) if out else np.zeros((channels, 0), np.float32)


def _ramp(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * x)).astype(np.float32)


def encode_stretch(mp3: Mp3File, pcm: np.ndarray, bit_rate: int) -> list[bytes]:
    """LAME frames, without bit reservoir, for float ``pcm``; output frame j decodes to ``pcm`` frame j's samples
    when ``pcm`` starts LAME_DELAY + DECODER_DELAY samples late (the caller shifts it)."""
    av = _av()
    n = mp3.samples_per_frame
    channels = mp3.first.channels
    layout = "mono" if channels == 1 else "stereo"
    ctx = av.CodecContext.create("libmp3lame", "w")
    ctx.sample_rate = mp3.first.sample_rate
    ctx.layout = layout
    ctx.format = "fltp"
    ctx.bit_rate = bit_rate
    ctx.options = {"reservoir": "0"}
    ctx.open()
    packets = []
    pcm = np.clip(pcm, -1.0, 1.0).astype(np.float32)
    for start in range(0, pcm.shape[1], n):
        chunk = pcm[:, start : start + n]
        if chunk.shape[1] < n:
            chunk = np.pad(chunk, ((0, 0), (0, n - chunk.shape[1])))
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=layout)
        frame.sample_rate = mp3.first.sample_rate
        frame.pts = start
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))
    if packets and packets[0].pts is not None and -packets[0].pts != LAME_DELAY + DECODER_DELAY:
        raise CopyUnsupported(
            f"the MP3 encoder's delay is {-packets[0].pts} samples, not {LAME_DELAY + DECODER_DELAY}"
        )
    return [bytes(p) for p in packets]


@dataclass
class NewFrame:
    header: Header
    side: bytearray
    data: bytes  # its main data (it starts in its own frame: no reservoir)


def _split_new(frame: bytes) -> NewFrame:
    header = parse_header(int.from_bytes(frame[:4], "big"))
    if header is None:
        raise CopyUnsupported("the MP3 encoder wrote a frame this module cannot read")
    at = 4 + (2 if header.crc else 0)
    side = bytearray(frame[at : at + header.side_info])
    if main_data_begin(frame, header):
        raise CopyUnsupported("the MP3 encoder used its bit reservoir")
    length = main_data_length(frame, header)
    data = frame[header.data_start : header.data_start + length]
    header = _with_bitrate(header, header.bitrate_index) if header.crc else header
    return NewFrame(header, side, data)


def pack_frames(frames: list[NewFrame], reservoir: bytes) -> list[bytes]:
    """Lay the new frames' data into frames so that the stream ends with ``reservoir`` (what the next, copied
    frame points back to); frames are enlarged (higher bit-rate index) where the bytes do not fit."""
    if not frames:
        if reservoir:
            raise CopyUnsupported("no frame to carry the bit reservoir")
        return []
    headers = [f.header for f in frames]
    top = 14
    while True:
        layout = _layout(frames, headers, len(reservoir))
        if layout is not None:
            break
        # Enlarge the last frame that can grow; the data moves back into it.
        for j in range(len(headers) - 1, -1, -1):
            if headers[j].bitrate_index < top:
                headers[j] = _with_bitrate(headers[j], headers[j].bitrate_index + 1)
                break
        else:
            raise CopyUnsupported("a join's re-encoded frames cannot carry the bit reservoir")
    starts, caps = layout
    stream = bytearray(sum(caps))
    position = 0
    for frame, start in zip(frames, starts):
        stream[start : start + len(frame.data)] = frame.data
    if reservoir:
        stream[len(stream) - len(reservoir) :] = reservoir
    out = []
    for frame, header, start, cap in zip(frames, headers, starts, caps):
        side = bytearray(frame.side)
        _set_main_data_begin(side, header, position - start)
        out.append(header.word.to_bytes(4, "big") + bytes(side) + bytes(stream[position : position + cap]))
        position += cap
    return out


def _layout(frames: list[NewFrame], headers: list[Header], reserve: int):
    starts, caps = [], []
    at = 0  # where the frame's payload starts in the stream
    used = 0  # where the data so far ends
    for frame, header in zip(frames, headers):
        cap = header.size - header.data_start
        start = max(used, at - header.max_back)
        if start + len(frame.data) > at + cap:
            return None
        starts.append(start)
        caps.append(cap)
        used = start + len(frame.data)
        at += cap
    if used > at - reserve:
        return None
    return starts, caps


def reservoir_before(mp3: Mp3File, index: int) -> bytes:
    """The ``main_data_begin`` bytes frame ``index`` reads from the frames before it, as the input has them."""
    header = mp3.header(index)
    need = main_data_begin(mp3.frame(index), header)
    parts: list[bytes] = []
    got = 0
    k = index - 1
    while got < need and k >= 0:
        h = mp3.header(k)
        payload = mp3.frame(k)[h.data_start :]
        parts.append(payload)
        got += len(payload)
        k -= 1
    joined = b"".join(reversed(parts))
    if len(joined) < need:
        joined = bytes(need - len(joined)) + joined
    return joined[len(joined) - need :] if need else b""


def stretch_bit_rate(mp3: Mp3File) -> int:
    """The CBR rate for re-encoded frames: the stream's mean rate, rounded up to a valid one."""
    total_bytes = sum(mp3.sizes)
    seconds = len(mp3.sizes) * mp3.samples_per_frame / mp3.first.sample_rate
    mean = 8 * total_bytes / seconds
    for kbps in _BITRATES[mp3.first.mpeg1][1:]:
        if kbps * 1000 >= mean * 0.98:
            return kbps * 1000
    return _BITRATES[mp3.first.mpeg1][-1] * 1000


def warmup_frames(mp3: Mp3File) -> int:
    """Frames fed before a stretch: the codec delay (LAME's and the decoder's) plus WARMUP_SAMPLES of audio."""
    n = mp3.samples_per_frame
    return -(-(LAME_DELAY + DECODER_DELAY + WARMUP_SAMPLES) // n)


def stretch_pcm(
    mp3: Mp3File,
    run: list[Piece],
    before: tuple[int, int] | None,
    after: tuple[int, int] | None,
    fade_samples: int,
) -> np.ndarray:
    """What the encoder is fed for a run of re-encoded pieces: warm-up audio, the pieces (faded at cut edges), and
    audio to look ahead into, shifted by the codec's delay so that new frame j decodes to fed frame j.

    ``before``/``after``: input frames of copied audio that sit right before/after the run in the output
    (fed to warm the encoder up / let it look ahead, then thrown away); None where the output starts or
    ends, or a cut is (silence is fed there). Input frames that follow one another are decoded in one go.
    """
    n = mp3.samples_per_frame
    channels = mp3.first.channels
    wanted: list[tuple[int, int, Piece | None]] = []
    if before is not None:
        wanted.append((max(before[0], before[1] - warmup_frames(mp3)), before[1], None))
    wanted += [(piece.lo, piece.hi, piece) for piece in run]
    if after is not None:
        wanted.append((after[0], min(after[1], after[0] + TRAIL_FRAMES), None))
    decoded: list[np.ndarray] = []
    i = 0
    while i < len(wanted):
        j = i + 1
        while j < len(wanted) and wanted[j][0] == wanted[j - 1][1]:
            j += 1
        pcm = decode_frames(mp3, wanted[i][0], wanted[j - 1][1])
        for lo, hi, _ in wanted[i:j]:
            decoded.append(pcm[:, (lo - wanted[i][0]) * n : (hi - wanted[i][0]) * n])
        i = j
    parts = []
    if before is None:
        parts.append(np.zeros((channels, warmup_frames(mp3) * n), np.float32))
    for index, ((_, _, piece), pcm) in enumerate(zip(wanted, decoded)):
        if piece is None:
            if index == 0 and before is not None:  # the warm-up: silence in front where it is short
                pcm = np.concatenate(
                    [np.zeros((channels, warmup_frames(mp3) * n - pcm.shape[1]), np.float32), pcm], axis=1
                )
            parts.append(pcm)
            continue
        length = pcm.shape[1]
        gain = np.ones(length, np.float32)
        fade = max(1, min(fade_samples, length // 2)) if fade_samples > 0 else 0
        times = np.arange(length)
        if piece.fade_in and fade:
            gain = np.minimum(gain, _ramp((times + 0.5) / fade))
        if piece.fade_out and fade:
            gain = np.minimum(gain, _ramp((length - times - 0.5) / fade))
        parts.append(pcm * gain)
    trail = wanted[-1][1] - wanted[-1][0] if after is not None else 0
    parts.append(np.zeros((channels, (TRAIL_FRAMES - trail) * n), np.float32))
    return np.concatenate(parts, axis=1)[:, LAME_DELAY + DECODER_DELAY :]


def encode_run(mp3: Mp3File, run: list[Piece], pcm: np.ndarray, bit_rate: int) -> list[bytes]:
    """New frames for a run (``pcm`` from stretch_pcm): one per input frame of its pieces, in order."""
    encoded = encode_stretch(mp3, pcm, bit_rate)
    wanted = sum(p.hi - p.lo for p in run)
    warmup = warmup_frames(mp3)
    if len(encoded) < warmup + wanted:
        raise CopyUnsupported("the MP3 encoder returned fewer frames than fed")
    return encoded[warmup : warmup + wanted]


# ---------------------------------------------------------------- headers: Xing/Info + LAME tag, ID3v2 chapters


def crc16(data: bytes, crc: int = 0) -> int:
    """CRC-16/ARC (polynomial 0x8005, reflected), the LAME tag's checksum."""
    table = _crc_table()
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


_CRC_TABLE: list[int] = []


def _crc_table() -> list[int]:
    if not _CRC_TABLE:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
            _CRC_TABLE.append(c)
    return _CRC_TABLE


class Crc16:
    """CRC-16/ARC over a long stream fed in chunks (the LAME tag's music CRC). numpy runs thousands of lanes side
    by side, two bytes a step through a 65536-entry table, straight from each chunk's memory; only the few bytes
    left over between chunks are copied."""

    def __init__(self, crc: int = 0):
        self.crc = crc
        self.pending = bytearray()

    def update(self, chunk) -> None:
        whole = 2 * _CRC_LANES
        with memoryview(chunk) as view:
            if self.pending:
                take = whole - len(self.pending)
                self.pending += view[:take]
                view = view[take:]
                if len(self.pending) < whole:
                    return
                self.crc = _crc_lanes(self.crc, self.pending)
                self.pending.clear()
            cut = len(view) // whole * whole
            if cut:
                self.crc = _crc_lanes(self.crc, view[:cut])
            self.pending += view[cut:]

    def value(self) -> int:
        self.crc = crc16(bytes(self.pending), self.crc)
        self.pending.clear()
        return self.crc


def crc16_fast(chunks, crc: int = 0) -> int:
    """CRC-16/ARC of the concatenated ``chunks`` (see Crc16)."""
    state = Crc16(crc)
    for chunk in chunks:
        state.update(chunk)
    return state.value()


_CRC_LANES = 16384  # a power of two (the lanes are folded pairwise)
_CRC_TABLES: dict[str, np.ndarray] = {}


def _advance_table(words: int) -> np.ndarray:
    """A 65536-entry table: a CRC state advanced over ``words`` zero 16-bit words."""
    key = f"advance{words}"
    if key not in _CRC_TABLES:
        low, high = (np.array(t, np.uint16) for t in _shift_tables(2 * words))
        x = np.arange(65536, dtype=np.uint32)
        _CRC_TABLES[key] = low[x & 0xFF] ^ high[x >> 8]
    return _CRC_TABLES[key]


def _crc_lanes(crc: int, data) -> int:
    """The CRC of ``data`` (a whole number of 2 x lanes bytes) continued from ``crc``. Lane j takes the 16-bit
    words j, j + K, j + 2K, ...: a step reads K contiguous words (one per lane) through a table that takes in a
    word and then skips the K - 1 words the other lanes hold; the lanes are then folded pairwise. CRC-16 is
    linear over GF(2), so this is exact."""
    lanes = _CRC_LANES
    if "two" not in _CRC_TABLES:
        table = np.array(_crc_table(), np.uint16)
        x = np.arange(65536, dtype=np.uint32)
        first = table[x & 0xFF]
        # two bytes at once: the state after both depends only on (state ^ the two bytes, little-endian)
        _CRC_TABLES["two"] = (table[(first ^ (x >> 8)) & 0xFF] ^ (first >> 8)).astype(np.uint16)
        _CRC_TABLES["step"] = _advance_table(lanes - 1)[_CRC_TABLES["two"]]
    two, step = _CRC_TABLES["two"], _CRC_TABLES["step"]
    words = np.frombuffer(data, "<u2").reshape(-1, lanes)
    state = words[0].copy()
    state[0] ^= np.uint16(crc)  # the running CRC enters with the first word
    for row in words[1:]:
        np.take(step, state, out=state)
        state ^= row
    np.take(two, state, out=state)
    # Lane j's state still has K - 1 - j words after it: fold neighbours, the earlier advanced past the later.
    span = 1
    while len(state) > 1:
        state = _advance_table(span)[state[0::2]] ^ state[1::2]
        span *= 2
    return int(state[0])


_SHIFT_CACHE: dict[int, tuple[list[int], list[int]]] = {}


def _shift_tables(length: int) -> tuple[list[int], list[int]]:
    """Tables that advance a CRC state over ``length`` zero bytes (it is linear: low and high byte apart)."""
    if length not in _SHIFT_CACHE:
        table = _crc_table()
        columns = [table[(1 << bit) & 0xFF] ^ ((1 << bit) >> 8) for bit in range(16)]  # one zero byte

        def apply(cols: list[int], state: int) -> int:
            out, bit = 0, 0
            while state:
                if state & 1:
                    out ^= cols[bit]
                state >>= 1
                bit += 1
            return out

        result: list[int] | None = None
        power, k = columns, length
        while k:  # square and multiply over the 16x16 matrix over GF(2)
            if k & 1:
                result = power if result is None else [apply(power, c) for c in result]
            power = [apply(power, c) for c in power]
            k >>= 1
        matrix = result or [1 << bit for bit in range(16)]
        _SHIFT_CACHE[length] = (
            [apply(matrix, b) for b in range(256)],
            [apply(matrix, b << 8) for b in range(256)],
        )
    return _SHIFT_CACHE[length]


def build_xing(
    mp3: Mp3File,
    frame_sizes: Sequence[int],
    bitrates_vary: bool,
    delay: int,
    padding: int,
    music_crc: int | None,
) -> bytes:
    """The Xing/Info frame for the output's audio frames (sizes given), with a LAME tag when the input had one."""
    audio_bytes = sum(frame_sizes)
    tag_source = None
    quality = bytes(4)
    if mp3.xing is not None and mp3.xing.name != b"VBRI":
        old = bytes(mp3.data[mp3.xing.offset : mp3.xing.offset + mp3.xing.size])
        header = parse_header(int.from_bytes(old[:4], "big"))
        assert header is not None
        if mp3.xing.tag_at is not None:
            tag_source = old[mp3.xing.tag_at : mp3.xing.tag_at + 36]
            if mp3.xing.flags & _XING_QUALITY:
                quality = old[mp3.xing.tag_at - 4 : mp3.xing.tag_at]
        name = b"Xing" if bitrates_vary else mp3.xing.name
    else:
        header = mp3.first
        name = b"Xing" if bitrates_vary else b"Info"
    need = header.data_start + 120 + 36
    if header.size < need or header.crc:
        index = header.bitrate_index
        candidate = _with_bitrate(header, index)
        while candidate.size < need and index < 14:
            index += 1
            candidate = _with_bitrate(header, index)
        header = candidate
    frame = bytearray(header.size)
    frame[:4] = header.word.to_bytes(4, "big")
    at = header.data_start
    frames = len(frame_sizes)
    total = header.size + audio_bytes
    frame[at : at + 4] = name
    frame[at + 4 : at + 8] = (_XING_FRAMES | _XING_BYTES | _XING_TOC | _XING_QUALITY).to_bytes(4, "big")
    frame[at + 8 : at + 12] = frames.to_bytes(4, "big")
    frame[at + 12 : at + 16] = total.to_bytes(4, "big")
    # Seek table: for i% of the duration, the byte position (of the whole, in 1/256) where that frame starts.
    positions = np.concatenate([[0], np.cumsum(frame_sizes)]) + header.size
    for i in range(100):
        k = min(frames - 1, int(i / 100 * frames))
        frame[at + 16 + i] = min(255, int(positions[k] * 256 // total))
    frame[at + 116 : at + 120] = quality
    tag = at + 120
    if tag_source is not None:
        frame[tag : tag + 36] = tag_source
        frame[tag + 21 : tag + 24] = ((min(delay, 4095) << 12) | min(padding, 4095)).to_bytes(3, "big")
        frame[tag + 28 : tag + 32] = total.to_bytes(4, "big")
        if music_crc is not None:
            frame[tag + 32 : tag + 34] = music_crc.to_bytes(2, "big")
        frame[tag + 34 : tag + 36] = crc16(bytes(frame[: tag + 34])).to_bytes(2, "big")
    return bytes(frame)


def retime_id3(tag: bytes, spans_seconds: list[tuple[float, float]]) -> tuple[bytes, int, bool]:
    """The ID3v2 tag with its CHAP frames re-timed to the cut audio (those inside removed audio dropped, and from
    CTOC lists); returns (tag, chapters kept, has cover art). Tags this cannot read are returned as they are."""
    from adcut.media.cut import MIN_CHAPTER_SECONDS, retime

    if len(tag) < 10 or tag[:3] != b"ID3":
        return tag, 0, False
    version, flags = tag[3], tag[5]
    size = _syncsafe(tag[6:10])
    body = tag[10 : 10 + size]
    has_picture = b"APIC" in body
    if version not in (3, 4) or flags & 0x80 or flags & 0x40:  # unsynchronised, or an extended header
        if b"CHAP" in body:
            raise CopyUnsupported("its ID3v2 chapters are in a form this cannot re-time")
        return tag, 0, has_picture
    frames = []
    pos = 0
    while pos + 10 <= len(body) and body[pos : pos + 4] != b"\x00\x00\x00\x00":
        fid = body[pos : pos + 4]
        fsize = (
            _syncsafe(body[pos + 4 : pos + 8])
            if version == 4
            else int.from_bytes(body[pos + 4 : pos + 8], "big")
        )
        fflags = body[pos + 8 : pos + 10]
        if pos + 10 + fsize > len(body):
            if b"CHAP" in body:
                raise CopyUnsupported("its ID3v2 tag cannot be read to re-time the chapters")
            return tag, 0, has_picture
        frames.append([fid, fflags, body[pos + 10 : pos + 10 + fsize]])
        pos += 10 + fsize
    dropped: set[bytes] = set()
    kept_chapters = 0
    out_frames = []
    for fid, fflags, payload in frames:
        if fid == b"CHAP":
            end_id = payload.find(b"\x00")
            if end_id < 0 or end_id + 17 > len(payload):
                out_frames.append((fid, fflags, payload))
                continue
            element = payload[:end_id]
            start_ms, end_ms = struct.unpack(">II", payload[end_id + 1 : end_id + 9])
            new_start = retime(start_ms / 1000, spans_seconds)
            new_end = retime(end_ms / 1000, spans_seconds)
            if new_end - new_start < MIN_CHAPTER_SECONDS:
                dropped.add(element)
                continue
            kept_chapters += 1
            times = struct.pack(
                ">IIII", round(new_start * 1000), round(new_end * 1000), 0xFFFFFFFF, 0xFFFFFFFF
            )
            payload = payload[: end_id + 1] + times + payload[end_id + 17 :]
        out_frames.append((fid, fflags, payload))
    if dropped:
        for i, (fid, fflags, payload) in enumerate(out_frames):
            if fid == b"CTOC":
                out_frames[i] = (fid, fflags, _ctoc_without(payload, dropped))
    new_body = b"".join(
        fid + (_to_syncsafe(len(p)) if version == 4 else len(p).to_bytes(4, "big")) + fflags + p
        for fid, fflags, p in out_frames
    )
    if len(new_body) <= size:
        new_body += bytes(size - len(new_body))  # keep the tag's size: the rest is padding
    return tag[:6] + _to_syncsafe(len(new_body)) + new_body + tag[10 + size :], kept_chapters, has_picture


def _ctoc_without(payload: bytes, dropped: set[bytes]) -> bytes:
    end_id = payload.find(b"\x00")
    if end_id < 0 or end_id + 3 > len(payload):
        return payload
    count = payload[end_id + 2]
    pos = end_id + 3
    children = []
    for _ in range(count):
        end = payload.find(b"\x00", pos)
        if end < 0:
            return payload
        children.append(payload[pos:end])
        pos = end + 1
    kept = [c for c in children if c not in dropped]
    return payload[: end_id + 2] + bytes([len(kept)]) + b"".join(c + b"\x00" for c in kept) + payload[pos:]


# ---------------------------------------------------------------- the copy path


def cut_mp3(
    path: Path,
    info,
    segments: Sequence[Segment],
    tmp: Path,
    out_path: Path,
    *,
    remove: Sequence[str] = ("ad",),
    fade_seconds: Seconds = 0.03,
):
    """Write the cut MP3 to ``tmp``; see the module's description. Returns a CutResult."""
    from adcut.media.cut import CutResult, NothingKept

    path = Path(path)
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise AudioError(f"{path}: cannot open ({error.strerror})") from None
    with handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):
            raise CopyUnsupported("cannot map the file") from None
        mp3 = None
        try:
            mp3 = read_mp3(path, data)
            if mp3.damaged:
                skipped = sum(size for _, size in mp3.damaged)
                if skipped > len(data) // 20 or max(size for _, size in mp3.damaged) > 1 << 14:
                    # Not a damaged stretch: a stream that changes sample rate or version, or not MP3 at all.
                    raise CopyUnsupported(f"{skipped} bytes are not frames like the first ones")
                where = ", ".join(f"byte {offset}" for offset, _ in mp3.damaged[:3])
                log.warning(
                    "%s: skipped %d damaged byte(s) that are not MP3 frames (at %s%s)",
                    path.name,
                    skipped,
                    where,
                    ", ..." if len(mp3.damaged) > 3 else "",
                )
            return _write(
                path, mp3, info, segments, tmp, out_path, remove, fade_seconds, CutResult, NothingKept
            )
        finally:
            del mp3  # release the mapping's exported slices before closing it
            data.close()


def _rebuild(
    mp3: Mp3File, run, before, after, fade_samples: int, bit_rate: int, reservoir: bytes
) -> list[bytes]:
    """The new frames of a run. Where LAME filled them so full (a high bit rate) that even enlarged they cannot
    also carry the next frame's reservoir bytes, the few frames are encoded again at a lower rate."""
    rates = [r * 1000 for r in _BITRATES[mp3.first.mpeg1][1:] if r * 1000 <= bit_rate][::-1][:4]
    pcm = stretch_pcm(mp3, run, before, after, fade_samples)
    for attempt, rate in enumerate(rates or [bit_rate]):
        frames = [_split_new(f) for f in encode_run(mp3, run, pcm, rate)]
        try:
            return pack_frames(frames, reservoir)
        except CopyUnsupported:
            if attempt == len(rates) - 1:
                raise
    raise CopyUnsupported("a join's re-encoded frames cannot carry the bit reservoir")


def _write(path, mp3: Mp3File, info, segments, tmp, out_path, remove, fade_seconds, CutResult, NothingKept):
    n = mp3.samples_per_frame
    rate = mp3.first.sample_rate
    total = len(mp3.offsets)
    duration_in = mp3.decoded_samples / rate
    from adcut.media.cut import kept_spans

    duration = max([s.end for s in segments] + [info.duration or 0.0, duration_in])
    ranges = kept_frames(mp3, kept_spans(segments, remove, duration))
    for gap in sorted(mp3.gaps):
        # After damaged bytes, the first frame's reservoir bytes are lost (it would decode to noise) and the next
        # one overlaps with it: both go, and the gap is joined like a cut, faded on both sides.
        ranges = _without(ranges, gap, gap + 2)
    if not ranges:
        raise NothingKept(f"{path}: every segment is {'/'.join(remove)}; no cut file written")
    fade_samples = int(round(fade_seconds * rate))
    edge = max(1, -(-fade_samples // n))  # re-encoded frames on each side of a join: the fade fits in them
    pieces = plan_pieces(ranges, total, edge)
    bit_rate = stretch_bit_rate(mp3)

    # Output frames, in order: (lo, hi) runs of input frames copied as they are, or lists of new frames.
    output: list[tuple[int, int] | list[bytes]] = []
    i = 0
    while i < len(pieces):
        piece = pieces[i]
        if piece.copy:
            output.append((piece.lo, piece.hi))
            i += 1
            continue
        run = [piece]
        while i + len(run) < len(pieces) and not pieces[i + len(run)].copy:
            run.append(pieces[i + len(run)])
        before = (pieces[i - 1].lo, pieces[i - 1].hi) if i > 0 and pieces[i - 1].copy else None
        j = i + len(run)
        after = (pieces[j].lo, pieces[j].hi) if j < len(pieces) else None
        reservoir = reservoir_before(mp3, after[0]) if after is not None else b""
        output.append(_rebuild(mp3, run, before, after, fade_samples, bit_rate, reservoir))
        i = j

    sizes = array("q")
    for item in output:
        if isinstance(item, tuple):
            sizes.extend(mp3.sizes[item[0] : item[1]])
        else:
            sizes.extend(len(f) for f in item)
    new_rates = {
        int.from_bytes(f[:4], "big") >> 12 & 15 for item in output if isinstance(item, list) for f in item
    }
    input_cbr = max(mp3.sizes) - min(mp3.sizes) <= 1 and not (
        mp3.xing is not None and mp3.xing.name == b"Xing"
    )
    bitrates_vary = not input_cbr or bool(new_rates - {mp3.first.bitrate_index})

    # Gapless trimming: the input's delay where the output starts with its first frame, its padding where it
    # ends with its last; a cut edge keeps its whole frame (the fade is inside it).
    first_lo, last_hi = ranges[0][0], ranges[-1][1]
    delay = mp3.xing.delay if (mp3.xing and first_lo == 0) else 0
    padding = mp3.xing.padding if (mp3.xing and last_hi == total) else DECODER_DELAY
    has_tag = mp3.xing is not None and mp3.xing.tag_at is not None
    write_xing = mp3.xing is not None or bitrates_vary

    # Kept spans in the input's (trimmed) seconds, as the frames actually kept them: chapters are re-timed by these.
    spans = []
    skip = mp3.skip
    for lo, hi in ranges:
        start = max(0.0, (lo * n - skip) / rate)
        end = min(duration_in, (hi * n - skip) / rate)
        spans.append((start, end))
    id3, chapters, cover = retime_id3(mp3.id3v2, spans)

    frames_out = len(sizes)
    if has_tag:
        kept_samples = frames_out * n - delay - padding
    else:
        kept_samples = frames_out * n
    kept_seconds = max(0.0, kept_samples / rate)

    try:
        with open(tmp, "wb") as out:
            out.write(id3)
            xing_at = out.tell()
            if write_xing:  # written again below, once the audio's CRC is known
                out.write(build_xing(mp3, sizes, bitrates_vary, delay, padding, None))
            crc = Crc16() if write_xing and has_tag else None
            for chunk in _audio_chunks(mp3, output):
                out.write(chunk)
                if crc is not None:
                    crc.update(chunk)
            out.write(mp3.trailer)
            if crc is not None:
                out.seek(xing_at)
                out.write(build_xing(mp3, sizes, bitrates_vary, delay, padding, crc.value()))
    except OSError as error:
        raise OutputError(f"{out_path}: cannot write ({error.strerror})") from None
    return CutResult(
        Path(out_path), kept_seconds, max(0.0, duration_in - kept_seconds), chapters, cover, METHOD
    )


def _audio_chunks(mp3: Mp3File, output: list[tuple[int, int] | list[bytes]]):
    """The output's audio frames as byte chunks: copied runs straight from the input (in pieces of about 1 MB)."""
    for item in output:
        if isinstance(item, tuple):
            lo, hi = item
            # Contiguous input frames are one byte range, unless damaged bytes were skipped between them;
            # long ranges go in pieces of about 1 MB.
            cuts = sorted({lo, hi} | {g for g in mp3.gaps if lo < g < hi})
            for a, b in zip(cuts, cuts[1:]):
                start = a
                while start < b:
                    end = min(
                        b, bisect.bisect_right(mp3.offsets, mp3.offsets[start] + (1 << 20), start + 1, b)
                    )
                    first, last = mp3.offsets[start], mp3.offsets[end - 1] + mp3.sizes[end - 1]
                    yield mp3.data[first:last]
                    _release(mp3.data, first, last)
                    start = end
        else:
            yield from item
