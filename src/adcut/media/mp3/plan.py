"""Planning a cut on frame boundaries: which input frames are kept, which copied and which re-encoded at a join."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adcut.core.units import Seconds
from adcut.media.mp3.frames import Mp3File


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


def without(ranges: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
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
