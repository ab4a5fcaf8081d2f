"""The timeline of a cut: which spans of the episode are kept, where the original's times land in the
cut audio, and the fade curve at each join — shared by the re-encode path and every copy path."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from adcut.core.segments import Segment
from adcut.core.units import Seconds
from adcut.errors import OutputError

# Chapters shorter than this after re-timing (they lay inside removed audio) are dropped.
MIN_CHAPTER_SECONDS: Seconds = 0.5


class NothingKept(OutputError):
    """The whole episode would be removed: there is no audio to write."""


@dataclass(frozen=True)
class CutResult:
    path: Path
    kept_seconds: Seconds
    removed_seconds: Seconds
    chapters: int  # chapters carried over from the input
    cover_art: bool
    method: str = "reencode"  # which path wrote the file: "reencode", or a copy path's name ("copy-mp3", ...)


def kept_spans(
    segments: Sequence[Segment], remove: Sequence[str], duration: Seconds
) -> list[tuple[Seconds, Seconds]]:
    """Merged ``(start, end)`` spans of the segments whose class is not removed."""
    spans: list[tuple[Seconds, Seconds]] = []
    for seg in sorted(segments):
        if seg.label in remove:
            continue
        start, end = max(0.0, seg.start), min(seg.end, duration)
        if end <= start:
            continue
        if spans and start <= spans[-1][1] + 1e-9:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def retime(t: Seconds, spans: Sequence[tuple[Seconds, Seconds]]) -> Seconds:
    """Where time ``t`` of the original lands in the cut audio (removed time maps to its cut point)."""
    new = 0.0
    for start, end in spans:
        if t <= start:
            break
        new += min(t, end) - start
    return new


def retime_chapters(chapters: list[dict], spans, duration: Seconds) -> list[dict]:
    """Input chapters moved to the cut audio's times; those that fall inside removed audio are dropped."""
    out: list[dict] = []
    for chapter in chapters:
        base = chapter["time_base"] or Fraction(1, 1000)
        start = float(chapter["start"] * base)
        end = float(chapter["end"] * base) if chapter.get("end") is not None else duration
        new_start, new_end = retime(start, spans), retime(end, spans)
        if new_end - new_start < MIN_CHAPTER_SECONDS:
            continue
        out.append(
            {
                "id": len(out) + 1,
                "start": round(new_start * 1000),
                "end": round(new_end * 1000),
                "time_base": Fraction(1, 1000),
                "metadata": dict(chapter.get("metadata") or {}),
            }
        )
    return out


def kept_plan(
    info, segments: Sequence[Segment], remove: Sequence[str]
) -> tuple[Seconds, list[tuple[Seconds, Seconds]]]:
    """The timeline's length (the container's declared duration, else the last segment's end) and its kept spans."""
    duration = max([s.end for s in segments] + [info.duration or 0.0])
    return duration, kept_spans(segments, remove, duration)


def ramp(x: np.ndarray) -> np.ndarray:
    """Raised-cosine fade from 0 to 1 over x in [0, 1]; 1 beyond."""
    x = np.clip(x, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * x)).astype(np.float32)


def sample_spans(
    spans: Sequence[tuple[Seconds, Seconds]],
    sample_rate: int,
    duration: Seconds,
    fade_seconds: Seconds,
    frames: int | None = None,
) -> list[tuple[int, int, int, int]]:
    """``(first, end, fade_in, fade_out)`` in samples of each kept span, as every cut path rounds them.

    The episode's own edges are not cuts: no fade there. ``frames``, the stream's length in samples, bounds
    the spans; without it a span reaching the end stays open (it keeps whatever the decoder still delivers:
    decoded lengths differ from the declared duration by a few samples).
    """
    out = []
    for start, end in spans:
        at_start, at_end = start <= 1e-3, end >= duration - 1e-3
        a = 0 if at_start else int(round(start * sample_rate))
        if frames is None:
            b = sys.maxsize if at_end else int(round(end * sample_rate))
        else:
            b = frames if at_end else min(frames, int(round(end * sample_rate)))
        if b <= a:
            continue
        fade = max(1, min(int(round(fade_seconds * sample_rate)), (b - a) // 2)) if fade_seconds > 0 else 0
        out.append((a, b, 0 if at_start else fade, 0 if at_end else fade))
    return out


def fade_gain(lo: int, hi: int, a: int, b: int, fade_in: int, fade_out: int) -> np.ndarray:
    """Gain of samples ``[lo, hi)`` inside the kept span ``[a, b)``: ramps over its first ``fade_in`` and
    last ``fade_out`` samples, 1 between."""
    times = np.arange(lo, hi)
    gain = np.ones(hi - lo, np.float32)
    if fade_in:
        gain = np.minimum(gain, ramp((times - a + 0.5) / fade_in))
    if fade_out:
        gain = np.minimum(gain, ramp((b - times - 0.5) / fade_out))
    return gain
