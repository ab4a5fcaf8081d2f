"""WAV cut sample-exact with no codec at all: the kept PCM sample frames are copied byte for byte.

Only the samples inside each fade (on the kept side of a cut, as the re-encode path fades them) are
read as numbers, scaled and written back in the file's own sample format. The header's sizes are
rewritten (RIFF size, ``data`` size, the ``fact`` sample count), cue points are re-timed, and every
other chunk (``LIST``/``INFO`` tags, ``bext``, ...) is kept as it was, in its place. The data is
streamed in blocks, so a long episode never sits in memory.

What this path cannot copy (RF64 and big-endian RIFX files, compressed WAV such as ADPCM or
mu-law) raises ``CopyUnsupported`` so that the caller re-encodes instead.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adcut.core.segments import Segment
from adcut.core.units import Seconds
from adcut.errors import CopyUnsupported
from adcut.media.timeline import CutResult, kept_plan, ramp, sample_spans

COPY_BLOCK_BYTES = 1 << 22  # 4 MiB read and written at a time

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


@dataclass(frozen=True)
class WavLayout:
    """Where a WAV file's parts are, and how its samples are stored."""

    chunks: list[tuple[bytes, int, int]]  # (id, offset of the chunk's data, size of its data), in file order
    data_offset: int
    data_bytes: int  # whole sample frames only
    sample_rate: int
    channels: int
    block_align: int  # bytes per sample frame
    bits: int
    is_float: bool

    @property
    def frames(self) -> int:
        return self.data_bytes // self.block_align


def _unsupported(message: str) -> Exception:
    return CopyUnsupported(message)


def read_layout(path: Path) -> WavLayout:
    """The chunks and sample format of the WAV file at ``path`` (CopyUnsupported if it cannot be copied)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RF64", b"RIFX"):
            raise _unsupported(f"{path.name}: not a RIFF/WAVE file")
        if head[:4] != b"RIFF":
            raise _unsupported(f"{path.name}: {head[:4].decode()} WAV files are not copied")
        chunks: list[tuple[bytes, int, int]] = []
        fmt: bytes | None = None
        data: tuple[int, int] | None = None
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            start = offset + 8
            if chunk_id == b"data":
                # Streamed WAVs leave the size at 0 or 0xFFFFFFFF; a truncated file has less than it says.
                if chunk_size in (0, 0xFFFFFFFF) or start + chunk_size > size:
                    chunk_size = size - start
                data = (start, chunk_size)
            elif start + chunk_size > size:
                break  # a damaged trailing chunk: dropped
            elif chunk_id == b"fmt ":
                fmt = handle.read(chunk_size)
            chunks.append((chunk_id, start, chunk_size))
            offset = start + chunk_size + (chunk_size & 1)
        if fmt is None or data is None or len(fmt) < 16:
            raise _unsupported(f"{path.name}: WAV without a fmt and a data chunk")
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # the sub-format GUID starts with the format tag
    if tag not in (_PCM, _FLOAT) or channels < 1 or rate < 1 or block_align != channels * ((bits + 7) // 8):
        raise _unsupported(f"{path.name}: WAV sample format {tag:#x} ({bits} bit) is not copied")
    if (tag == _FLOAT and bits not in (32, 64)) or (tag == _PCM and bits not in (8, 16, 24, 32)):
        raise _unsupported(f"{path.name}: {bits}-bit WAV samples are not copied")
    data_offset, data_size = data
    chunks = [
        (cid, off, (data_size // block_align) * block_align if cid == b"data" else n)
        for cid, off, n in chunks
    ]
    return WavLayout(
        chunks,
        data_offset,
        (data_size // block_align) * block_align,
        rate,
        channels,
        block_align,
        bits,
        tag == _FLOAT,
    )


def _to_float(raw: bytes, layout: WavLayout) -> np.ndarray:
    width = layout.block_align // layout.channels
    if layout.is_float:
        return np.frombuffer(raw, "<f4" if width == 4 else "<f8").astype(np.float64)
    if width == 1:
        return (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        values = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
        return values.astype(np.float64) / float(1 << 23)
    return np.frombuffer(raw, "<i2" if width == 2 else "<i4").astype(np.float64) / float(1 << (8 * width - 1))


def _from_float(values: np.ndarray, layout: WavLayout) -> bytes:
    width = layout.block_align // layout.channels
    if layout.is_float:
        return values.astype("<f4" if width == 4 else "<f8").tobytes()
    scale = float(1 << (8 * width - 1))
    ints = np.clip(np.round(values * scale), -scale, scale - 1).astype(np.int64)
    if width == 1:
        return (ints + 128).astype(np.uint8).tobytes()
    if width == 3:
        ints = ints.reshape(-1) & 0xFFFFFF
        return (
            np.stack([ints & 0xFF, (ints >> 8) & 0xFF, (ints >> 16) & 0xFF], axis=1)
            .astype(np.uint8)
            .tobytes()
        )
    return ints.astype("<i2" if width == 2 else "<i4").tobytes()


def _ramp(x: np.ndarray) -> np.ndarray:
    return ramp(x).astype(np.float64)  # the samples are rescaled in float64


def _retimed_cue(raw: bytes, kept: list[tuple[int, int, int, int]]) -> bytes:
    """A ``cue `` chunk with each point's sample position moved to the cut audio's timeline."""
    if len(raw) < 4:
        return raw
    count = min(struct.unpack("<I", raw[:4])[0], (len(raw) - 4) // 24)
    out = bytearray(struct.pack("<I", count))
    for i in range(count):
        ident, position, chunk, chunk_start, block_start, offset = struct.unpack(
            "<I I 4s I I I", raw[4 + 24 * i : 28 + 24 * i]
        )
        new = 0
        for a, b, _, _ in kept:
            if offset <= a:
                break
            new += min(offset, b) - a
        out += struct.pack("<I I 4s I I I", ident, new, chunk, chunk_start, block_start, new)
    return bytes(out)


def write_wav_cut(
    path: Path,
    spans: Sequence[tuple[Seconds, Seconds]],
    out: Path,
    *,
    duration: Seconds,
    fade_seconds: Seconds,
) -> tuple[int, int, int]:
    """Write ``path`` keeping only ``spans`` (seconds) to ``out``; returns (kept frames, all frames, rate)."""
    layout = read_layout(path)
    frames, rate, align = layout.frames, layout.sample_rate, layout.block_align
    kept = sample_spans(spans, rate, max(duration, frames / rate), fade_seconds, frames)
    kept_frames = sum(b - a for a, b, _, _ in kept)
    data_bytes = kept_frames * align
    with open(path, "rb") as source, open(out, "wb") as target:
        parts: list[tuple[bytes, bytes | None, int]] = []
        for chunk_id, offset, size in layout.chunks:
            if chunk_id == b"data":
                parts.append((chunk_id, None, data_bytes))
                continue
            source.seek(offset)
            body = source.read(size)
            if chunk_id == b"fact" and len(body) >= 4:
                body = struct.pack("<I", kept_frames) + body[4:]
            elif chunk_id == b"cue ":
                body = _retimed_cue(body, kept)
            parts.append((chunk_id, body, len(body)))
        riff_size = 4 + sum(8 + n + (n & 1) for _, _, n in parts)
        if riff_size > 0xFFFFFFFF:
            raise _unsupported(f"{Path(path).name}: the cut WAV would be over 4 GiB")
        target.write(b"RIFF" + struct.pack("<I", riff_size) + b"WAVE")
        for chunk_id, content, n in parts:
            target.write(chunk_id + struct.pack("<I", n))
            if content is None:
                _copy_data(source, target, layout, kept)
            else:
                target.write(content)
            if n & 1:
                target.write(b"\0")
    return kept_frames, frames, rate


def _copy_data(source, target, layout: WavLayout, kept: list[tuple[int, int, int, int]]) -> None:
    align = layout.block_align

    def copy(first: int, end: int) -> None:
        source.seek(layout.data_offset + first * align)
        left = (end - first) * align
        while left > 0:
            block = source.read(min(left, COPY_BLOCK_BYTES))
            if not block:
                raise OSError(f"{source.name}: ended early")
            target.write(block)
            left -= len(block)

    def faded(first: int, end: int, gain: np.ndarray) -> None:
        source.seek(layout.data_offset + first * align)
        values = _to_float(source.read((end - first) * align), layout).reshape(end - first, layout.channels)
        target.write(_from_float(values * gain[:, None], layout))

    for a, b, fade_in, fade_out in kept:
        inner_a, inner_b = a + fade_in, b - fade_out
        if fade_in:
            faded(a, inner_a, _ramp((np.arange(a, inner_a) - a + 0.5) / fade_in))
        copy(inner_a, inner_b)
        if fade_out:
            faded(inner_b, b, _ramp((b - np.arange(inner_b, b) - 0.5) / fade_out))


def cut_wav(
    path: Path,
    info,
    segments: Sequence[Segment],
    tmp: Path,
    out_path: Path,
    *,
    remove: Sequence[str] = ("ad",),
    fade_seconds: Seconds = 0.03,
):
    """The WAV copy path (``media.cut.COPY_PATHS``): write the cut to ``tmp``; a CutResult for ``out_path``."""
    duration, spans = kept_plan(info, segments, remove)
    kept, total, rate = write_wav_cut(path, spans, tmp, duration=duration, fade_seconds=fade_seconds)
    return CutResult(Path(out_path), kept / rate, (total - kept) / rate, 0, False, "copy-wav")
