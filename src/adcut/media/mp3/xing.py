"""Writing the Xing/Info frame of the cut file (frame count, byte count, seek table, LAME tag with its encoder delay,
padding and checksums), and the CRC-16 those checksums use."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from adcut.media.mp3.frames import (
    XING_BYTES,
    XING_FRAMES,
    XING_QUALITY,
    XING_TOC,
    Mp3File,
    parse_header,
    with_bitrate,
)


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
            if mp3.xing.flags & XING_QUALITY:
                quality = old[mp3.xing.tag_at - 4 : mp3.xing.tag_at]
        name = b"Xing" if bitrates_vary else mp3.xing.name
    else:
        header = mp3.first
        name = b"Xing" if bitrates_vary else b"Info"
    need = header.data_start + 120 + 36
    if header.size < need or header.crc:
        index = header.bitrate_index
        candidate = with_bitrate(header, index)
        while candidate.size < need and index < 14:
            index += 1
            candidate = with_bitrate(header, index)
        header = candidate
    frame = bytearray(header.size)
    frame[:4] = header.word.to_bytes(4, "big")
    at = header.data_start
    frames = len(frame_sizes)
    total = header.size + audio_bytes
    frame[at : at + 4] = name
    frame[at + 4 : at + 8] = (XING_FRAMES | XING_BYTES | XING_TOC | XING_QUALITY).to_bytes(4, "big")
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
