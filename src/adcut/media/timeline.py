"""The timeline of a cut: which spans of the episode are kept, where the original's times land in the
cut audio, and the fade curve at each join — shared by the re-encode path and every copy path."""

from __future__ import annotations

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
