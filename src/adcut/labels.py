"""Labelled time spans (`Segment`) and the label-file formats adcut reads and writes.

Formats:
- Audacity label track (``.txt``): ``start<TAB>end<TAB>label`` per line, seconds. The primary
  human-editable format; Audacity, the browser labeller and ``adcut process`` all write it.
- JSON (``.json``): ``{"segments": [{"label": ..., "start": ..., "end": ...}, ...]}`` (a bare list
  of such objects is accepted too).
- CSV (``.csv``): header ``label,start,end``.
- The reference project's ``segments.txt`` (import only): a ``[basename]`` line per episode, then
  one boundary time per line. The boundaries cut the episode into segments that alternate
  between the two classes, starting with the first class (A = ad) at the first boundary; time
  before the first boundary is background. ``[ep1]`` / ``0`` / ``30`` / ``90`` means ad 0–30 s,
  content 30–90 s, ad from 90 s to the end.

Time that a label file leaves unlabelled belongs to the background class (default ``content``),
so a person only has to mark the ads.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from adcut.errors import AdcutError, LabelError

Seconds = float

DEFAULT_CLASSES: tuple[str, str] = ("ad", "content")
DEFAULT_BACKGROUND = "content"
# Label text that is read as the first / second class, whatever the classes are called.
_POSITIONAL_ALIASES = {"a": 0, "b": 1}
# Two boundaries closer than this are the same time (label files are written with ms precision).
TIME_EPSILON: Seconds = 1e-3


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


# --------------------------------------------------------------------------- class names


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


# --------------------------------------------------------------------------- time text


_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def parse_time(text: str) -> Seconds:
    """Seconds from ``90``, ``90.5``, ``1:30``, ``01:02:03.5``; ValueError otherwise."""
    text = text.strip()
    match = _CLOCK.match(text)
    if match:
        hours, minutes, seconds = match.groups()
        if int(minutes) >= 60 and hours is not None or float(seconds) >= 60:
            raise ValueError(f"not a time: {text!r}")
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    value = float(text)  # raises ValueError for junk
    if not math.isfinite(value):
        raise ValueError(f"not a time: {text!r}")
    return value


def format_time(seconds: Seconds, decimals: int = 0) -> str:
    """``h:mm:ss`` (``decimals`` digits after the second), e.g. ``1:02:03.5``; hours always shown."""
    scale = 10**decimals
    total = round(seconds * scale)
    whole, frac = divmod(total, scale)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}"
    if decimals:
        text += f".{frac:0{decimals}d}"
    return text


# --------------------------------------------------------------------------- validation


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
            raise LabelError(f"{where(i)}: overlaps the previous label (starts {seg.start:g} < {previous_end:g})")
        if duration is not None and seg.end > duration + 0.05:
            raise LabelError(f"{where(i)}: ends at {seg.end:g} s, beyond the audio's end ({duration:.3f} s)")
        previous_end = seg.end


def fill_background(
    segments: Sequence[Segment], duration: Seconds, background: str = DEFAULT_BACKGROUND
) -> list[Segment]:
    """Segments that tile ``[0, duration]``: gaps become ``background``, neighbours of one class merge."""
    tiled: list[Segment] = []

    def add(label: str, start: Seconds, end: Seconds) -> None:
        end = min(end, duration)
        if end - start <= TIME_EPSILON:
            return
        if tiled and tiled[-1].label == label and abs(tiled[-1].end - start) <= TIME_EPSILON:
            tiled[-1] = Segment(tiled[-1].start, end, label)
        else:
            tiled.append(Segment(start, end, label))

    cursor = 0.0
    for seg in sorted(segments):
        if seg.start > cursor:
            add(background, cursor, seg.start)
        add(seg.label, max(seg.start, cursor), seg.end)
        cursor = max(cursor, min(seg.end, duration))
    if cursor < duration:
        add(background, cursor, duration)
    return tiled


def boundaries(segments: Sequence[Segment]) -> list[Seconds]:
    """Times where the class changes between neighbouring segments of a tiling."""
    return [b.start for a, b in zip(segments, segments[1:]) if a.label != b.label]


# --------------------------------------------------------------------------- readers


def read_text_file(path: Path, what: str = "label file", error: type[AdcutError] = LabelError) -> str:
    """A UTF-8 text file's contents (a BOM is dropped); every failure is one ``error`` naming ``what``."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a text {what} (not UTF-8)") from None
    except OSError as problem:
        raise error(f"{path}: cannot read {what} ({problem.strerror})") from None



def _parse_number(text: str, where: str, what: str) -> float:
    try:
        return parse_time(text)
    except ValueError:
        raise LabelError(f"{where}: {what} {text.strip()!r} is not a time in seconds") from None


def parse_audacity(
    text: str, *, source: str = "labels", classes: Sequence[str] = DEFAULT_CLASSES
) -> tuple[list[Segment], list[int]]:
    """Segments and their line numbers from Audacity label-track text (point labels are skipped)."""
    segments: list[Segment] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("\\"):  # Audacity's spectral-selection line belonging to the label above
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            fields = line.split()
        where = f"{source}:{number}"
        if len(fields) < 3:
            raise LabelError(f"{where}: expected 'start<TAB>end<TAB>label', got {line.strip()!r}")
        start = _parse_number(fields[0], where, "start")
        end = _parse_number(fields[1], where, "end")
        label_text = "\t".join(fields[2:]).strip()
        if end == start:
            continue  # a point label marks a moment, not a span: nothing to learn from
        segments.append(Segment(start, end, _require_label(label_text, classes, where)))
        lines.append(number)
    return segments, lines


def read_audacity(path: Path, classes: Sequence[str] = DEFAULT_CLASSES) -> tuple[list[Segment], list[int]]:
    return parse_audacity(read_text_file(path), source=str(path), classes=classes)


def read_json(path: Path, classes: Sequence[str] = DEFAULT_CLASSES) -> tuple[list[Segment], list[int]]:
    text = read_text_file(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise LabelError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
    items = data.get("segments") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise LabelError(f"{path}: expected a list of segments or {{'segments': [...]}}")
    segments = []
    for i, item in enumerate(items):
        where = f"{path}: segment {i + 1}"
        if not isinstance(item, dict) or not {"label", "start", "end"} <= item.keys():
            raise LabelError(f"{where}: needs 'label', 'start' and 'end'")
        try:
            start, end = float(item["start"]), float(item["end"])
        except (TypeError, ValueError):
            raise LabelError(f"{where}: start and end must be numbers of seconds") from None
        segments.append(Segment(start, end, _require_label(str(item["label"]), classes, where)))
    return segments, []


def read_csv(path: Path, classes: Sequence[str] = DEFAULT_CLASSES) -> tuple[list[Segment], list[int]]:
    rows = list(csv.reader(io.StringIO(read_text_file(path))))
    segments: list[Segment] = []
    lines: list[int] = []
    if not rows:
        return segments, lines
    header = [cell.strip().lower() for cell in rows[0]]
    if not {"label", "start", "end"} <= set(header):
        raise LabelError(f"{path}:1: CSV header must name the columns label,start,end")
    col = {name: header.index(name) for name in ("label", "start", "end")}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}:{number}"
        if len(row) < len(header):
            raise LabelError(f"{where}: expected {len(header)} columns, got {len(row)}")
        start = _parse_number(row[col["start"]], where, "start")
        end = _parse_number(row[col["end"]], where, "end")
        segments.append(Segment(start, end, _require_label(row[col["label"]], classes, where)))
        lines.append(number)
    return segments, lines


def read_segments_txt(path: Path) -> dict[str, tuple[list[Seconds], list[int]]]:
    """``{basename: (boundary seconds, their line numbers)}`` from a reference ``segments.txt``."""
    episodes: dict[str, tuple[list[Seconds], list[int]]] = {}
    current: str | None = None
    for number, line in enumerate(read_text_file(path).splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{path}:{number}"
        if text.startswith("[") and text.endswith("]"):
            current = text[1:-1].strip()
            if not current:
                raise LabelError(f"{where}: empty episode name in '[]'")
            episodes[current] = ([], [])
            continue
        if current is None:
            raise LabelError(f"{where}: boundary before the first '[basename]' line")
        value = _parse_number(text, where, "boundary")
        times, lines = episodes[current]
        if times and value <= times[-1]:
            raise LabelError(f"{where}: boundary {value:g} is not after the previous one ({times[-1]:g})")
        if value < 0:
            raise LabelError(f"{where}: negative time {value:g}")
        times.append(value)
        lines.append(number)
    return episodes


def segments_from_boundaries(
    times: Sequence[Seconds], duration: Seconds, classes: Sequence[str] = DEFAULT_CLASSES
) -> list[Segment]:
    """Alternating segments between boundary ``times``, first class first; the last runs to ``duration``."""
    edges = list(times) + [duration]
    return [
        Segment(start, end, classes[i % 2])
        for i, (start, end) in enumerate(zip(edges, edges[1:]))
        if end > start
    ]


_READERS = {".txt": read_audacity, ".lab": read_audacity, ".json": read_json, ".csv": read_csv}
LABEL_SUFFIXES = tuple(_READERS)


def read_labels(
    path: Path,
    *,
    duration: Seconds | None = None,
    classes: Sequence[str] = DEFAULT_CLASSES,
    background: str | None = DEFAULT_BACKGROUND,
) -> list[Segment]:
    """Read and validate a label file (format by suffix); with ``duration`` and ``background``, tile it."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise LabelError(f"{path}: unknown label format (use one of {', '.join(LABEL_SUFFIXES)})")
    segments, lines = reader(path, classes)
    validate_segments(segments, duration=duration, classes=classes, source=str(path), lines=lines or None)
    if duration is not None and background is not None:
        return fill_background(segments, duration, background)
    return segments


# --------------------------------------------------------------------------- writers


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never a half-written file."""
    from adcut.errors import OutputError

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({error.strerror or error})") from None


def format_audacity(segments: Iterable[Segment], only: Sequence[str] | None = None) -> str:
    """Audacity label-track text; ``only`` restricts it to some classes (e.g. just the ads)."""
    return "".join(
        f"{seg.start:.6f}\t{seg.end:.6f}\t{seg.label}\n"
        for seg in segments
        if only is None or seg.label in only
    )


def format_json(segments: Iterable[Segment], **extra) -> str:
    return json.dumps({"segments": [s.to_dict() for s in segments], **extra}, indent=2) + "\n"


def format_csv(segments: Iterable[Segment]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label", "start", "end"])
    for seg in segments:
        writer.writerow([seg.label, f"{seg.start:.3f}", f"{seg.end:.3f}"])
    return out.getvalue()


def write_labels(path: Path, segments: Sequence[Segment]) -> None:
    """Write segments in the format given by ``path``'s suffix, atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".txt", ".lab"):
        text = format_audacity(segments)
    elif suffix == ".json":
        text = format_json(segments)
    elif suffix == ".csv":
        text = format_csv(segments)
    else:
        raise LabelError(f"{path}: unknown label format (use one of {', '.join(LABEL_SUFFIXES)})")
    atomic_write_text(path, text)
