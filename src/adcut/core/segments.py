"""Labelled time spans (``Segment``), class names, and tilings of an episode."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adcut.core.units import TIME_EPSILON, Seconds
from adcut.errors import AdcutError, LabelError

DEFAULT_CLASSES: tuple[str, str] = ("ad", "content")


DEFAULT_BACKGROUND = "content"


def default_background(classes: Sequence[str]) -> str:
    """The background class where nothing says which: ``content`` when that is a class, else the last one."""
    return DEFAULT_BACKGROUND if DEFAULT_BACKGROUND in classes else classes[-1]


# Classes that ``adcut process`` cuts out (and may mark for review) unless told otherwise.
CUT_CLASSES: tuple[str, ...] = ("ad",)


# Label text that is read as the first / second class, whatever the classes are called.
_POSITIONAL_ALIASES = {"a": 0, "b": 1}


@dataclass(frozen=True, order=True)
class Segment:
    """A labelled span ``[start, end)`` of an episode, in seconds."""

    start: Seconds
    end: Seconds
    label: str

    @property
    def duration(self) -> Seconds:
        return self.end - self.start

    def to_dict(self) -> dict:
        return {"label": self.label, "start": round(self.start, 3), "end": round(self.end, 3)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Segment:
        """The segment ``to_dict`` wrote (a dataset manifest's or a JSON label's ``start``/``end``/``label``)."""
        return cls(float(data["start"]), float(data["end"]), str(data["label"]))


def canonical_label(text: str, classes: Sequence[str] = DEFAULT_CLASSES) -> str | None:
    """The class name that ``text`` stands for (case-insensitive; ``a``/``b`` are positional), or None."""
    key = text.strip().lower()
    for name in classes:
        if key == name.lower():
            return name
    if key in _POSITIONAL_ALIASES and _POSITIONAL_ALIASES[key] < len(classes):
        return classes[_POSITIONAL_ALIASES[key]]
    return None


def _require_label(text: str, classes: Sequence[str], where: str) -> str:
    name = canonical_label(text, classes)
    if name is None:
        known = ", ".join(classes)
        raise LabelError(f"{where}: unknown class {text.strip()!r} (known: {known}; a/b also accepted)")
    return name


def validate_segments(
    segments: Sequence[Segment],
    *,
    duration: Seconds | None = None,
    classes: Sequence[str] = DEFAULT_CLASSES,
    source: str = "labels",
    lines: Sequence[int] | None = None,
) -> None:
    """Raise LabelError unless segments are sorted, non-overlapping, non-negative, inside the audio.

    ``lines`` gives the file line of each segment, for messages like ``ep.txt:4: ...``.
    """

    def where(i: int) -> str:
        return f"{source}:{lines[i]}" if lines is not None else f"{source}: segment {i + 1}"

    previous_end = 0.0
    for i, seg in enumerate(segments):
        if seg.label not in classes:
            raise LabelError(f"{where(i)}: unknown class {seg.label!r} (known: {', '.join(classes)})")
        if not (math.isfinite(seg.start) and math.isfinite(seg.end)):
            raise LabelError(f"{where(i)}: times must be finite numbers")
        if seg.start < 0:
            raise LabelError(f"{where(i)}: negative time {seg.start:g}")
        if seg.end <= seg.start:
            raise LabelError(f"{where(i)}: end {seg.end:g} is not after start {seg.start:g}")
        if seg.start < previous_end - TIME_EPSILON:
            if i > 0 and seg.start < segments[i - 1].start:
                raise LabelError(f"{where(i)}: labels are not sorted by start time")
            raise LabelError(
                f"{where(i)}: overlaps the previous label (starts {seg.start:g} < {previous_end:g})"
            )
        if duration is not None and seg.end > duration + 0.05:
            raise LabelError(f"{where(i)}: ends at {seg.end:g} s, beyond the audio's end ({duration:.3f} s)")
        previous_end = seg.end


def extend_tiling(tiled: list[Segment], start: Seconds, end: Seconds, label: str) -> None:
    """Append ``[start, end)`` to a tiling being built: an empty span is dropped, and a span that touches
    the last segment and has its class lengthens it instead."""
    if end - start <= TIME_EPSILON:
        return
    if tiled and tiled[-1].label == label and abs(tiled[-1].end - start) <= TIME_EPSILON:
        tiled[-1] = Segment(tiled[-1].start, end, label)
    else:
        tiled.append(Segment(start, end, label))


def fill_background(
    segments: Sequence[Segment], duration: Seconds, background: str = DEFAULT_BACKGROUND
) -> list[Segment]:
    """Segments that tile ``[0, duration]``: gaps become ``background``, neighbours of one class merge."""
    tiled: list[Segment] = []

    def add(label: str, start: Seconds, end: Seconds) -> None:
        extend_tiling(tiled, start, min(end, duration), label)

    cursor = 0.0
    for seg in sorted(segments):
        if seg.start > cursor:
            add(background, cursor, seg.start)
        add(seg.label, max(seg.start, cursor), seg.end)
        cursor = max(cursor, min(seg.end, duration))
    if cursor < duration:
        add(background, cursor, duration)
    return tiled


def make_tiling(segments: Sequence[Segment], duration: Seconds) -> list[Segment]:
    """Force an exact tiling of [0, duration]: drop empty spans, close gaps (each segment starts where the
    previous one ends), merge equal neighbours; the last segment ends at ``duration``."""
    tiled: list[Segment] = []
    for seg in sorted(segments):
        start = tiled[-1].end if tiled else 0.0
        extend_tiling(tiled, start, min(max(seg.end, start), duration), seg.label)
    if not tiled:
        raise AdcutError("no segments could be made (episode too short?)")
    last = tiled[-1]
    tiled[-1] = Segment(last.start, duration, last.label)  # the last one always ends at the audio's end
    return tiled


def boundaries(segments: Sequence[Segment]) -> list[Seconds]:
    """Times where the class changes between neighbouring segments of a tiling."""
    return [b.start for a, b in zip(segments, segments[1:]) if a.label != b.label]


def subtract_spans(
    parts: Sequence[Sequence[float]], taken: Sequence[Sequence[float]], min_seconds: float = 1e-6
) -> list[tuple[float, float]]:
    """``parts`` (start, end) less what the ``taken`` spans cover; pieces shorter than ``min_seconds`` are dropped."""
    out: list[tuple[float, float]] = []
    for start, end in parts:
        pieces = [(start, end)]
        for lo, hi in taken:
            pieces = [
                p for a, b in pieces for p in ((a, min(b, lo)), (max(a, hi), b)) if p[1] - p[0] > min_seconds
            ]
        out += pieces
    return out
