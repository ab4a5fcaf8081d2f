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
from collections.abc import Iterable, Sequence
from pathlib import Path

from adcut.core.files import atomic_write_text, read_text_file
from adcut.core.segments import (
    DEFAULT_BACKGROUND,
    DEFAULT_CLASSES,
    Segment,
    _require_label,
    fill_background,
    validate_segments,
)
from adcut.core.units import Seconds, parse_time
from adcut.errors import LabelError


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
