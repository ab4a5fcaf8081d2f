"""Finding labelled episodes: audio files and folders, each episode's label file (or its entry in a
``segments.txt``), and the reference layout of one-class chunks (``train/A``, ``val/B``, ...)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from adcut.core.segments import DEFAULT_CLASSES, Segment, fill_background, validate_segments
from adcut.core.units import Seconds
from adcut.errors import DatasetError, LabelError
from adcut.formats.labels import LABEL_SUFFIXES, read_labels, read_segments_txt, segments_from_boundaries
from adcut.media.decode import AUDIO_SUFFIXES

log = logging.getLogger(__name__)

TRAIN, VALIDATION = "train", "validation"
SEGMENTS_TXT = "segments.txt"
# Reference layout folder names -> class position (A = first class, B = second).
REFERENCE_CLASS_FOLDERS = {"A": 0, "B": 1}
REFERENCE_SPLIT_FOLDERS = {"train": TRAIN, "val": VALIDATION, "validation": VALIDATION}


@dataclass(frozen=True)
class EpisodeSource:
    """One episode to build: its audio and where its labels come from."""

    id: str
    audio: Path
    labels: Path | None = None  # label file (Audacity/JSON/CSV) of this episode
    boundaries: tuple[Seconds, ...] | None = None  # from a segments.txt (with ``boundary_lines``)
    boundary_lines: tuple[int, ...] = ()
    whole_label: str | None = None  # the whole file is one class (reference chunks)
    split: str | None = None  # fixed split (reference layout); None = chosen by the config

    def segments(self, duration: Seconds, classes: Sequence[str], background: str) -> list[Segment]:
        """Labels tiling ``[0, duration]``; LabelError when they do not fit the audio."""
        if self.whole_label is not None:
            return [Segment(0.0, duration, self.whole_label)]
        if self.boundaries is not None:
            source = self.labels or self.audio.parent / SEGMENTS_TXT
            for time, line in zip(self.boundaries, self.boundary_lines or [None] * len(self.boundaries)):
                if time > duration + 0.05:
                    where = f"{source}:{line}" if line else str(source)
                    raise LabelError(
                        f"{where}: boundary {time:g} s is beyond the end of {self.audio.name} ({duration:.3f} s)"
                    )
            segments = segments_from_boundaries(self.boundaries, duration, classes)
            validate_segments(segments, duration=duration, classes=classes, source=str(source))
            return fill_background(segments, duration, background)
        assert self.labels is not None
        return read_labels(self.labels, duration=duration, classes=tuple(classes), background=background)


# --------------------------------------------------------------------------- finding episodes


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "episode"


def _label_file_for(audio: Path) -> Path | None:
    for suffix in LABEL_SUFFIXES:
        candidate = audio.with_suffix(suffix)
        if candidate.is_file() and candidate.name != SEGMENTS_TXT:
            return candidate
    return None


def _segments_txt_entry(audio: Path, cache: dict) -> tuple[Path, tuple, tuple] | None:
    table_path = audio.parent / SEGMENTS_TXT
    if not table_path.is_file():
        return None
    if table_path not in cache:
        cache[table_path] = read_segments_txt(table_path)
    table = cache[table_path]
    for key in (audio.stem, audio.name):
        if key in table:
            times, lines = table[key]
            return table_path, tuple(times), tuple(lines)
    return None


def _source_for(audio: Path, cache: dict) -> EpisodeSource | None:
    labels = _label_file_for(audio)
    if labels is not None:
        return EpisodeSource(id=audio.stem, audio=audio, labels=labels)
    entry = _segments_txt_entry(audio, cache)
    if entry is not None:
        table_path, times, lines = entry
        return EpisodeSource(
            id=audio.stem, audio=audio, labels=table_path, boundaries=times, boundary_lines=lines
        )
    return None


def find_episodes(paths: Sequence[Path]) -> list[EpisodeSource]:
    """Episodes from audio files and folders; ids are made unique.

    A named audio file must have labels (DatasetError otherwise); in a folder, audio without
    labels is skipped with a warning, and a folder without any labelled audio is an error.
    """
    cache: dict = {}
    sources: list[EpisodeSource] = []
    for path in map(Path, paths):
        if path.is_dir():
            audio_files = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
            )
            found = 0
            for audio in audio_files:
                source = _source_for(audio, cache)
                if source is None:
                    log.warning(
                        "%s: no label file beside it (%s) and not in %s; skipped",
                        audio,
                        "/".join(LABEL_SUFFIXES),
                        SEGMENTS_TXT,
                    )
                    continue
                sources.append(source)
                found += 1
            if not found:
                raise DatasetError(
                    f"{path}: no audio file with labels in this folder (labels: same name with {', '.join(LABEL_SUFFIXES)}, or {SEGMENTS_TXT})"
                )
        elif path.is_file():
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                raise DatasetError(
                    f"{path}: not an audio file name (expected one of {', '.join(AUDIO_SUFFIXES)})"
                )
            source = _source_for(path, cache)
            if source is None:
                raise DatasetError(
                    f"{path}: no labels found (expected {path.stem}.txt/.json/.csv beside it, or a [{path.stem}] entry in {SEGMENTS_TXT})"
                )
            sources.append(source)
        else:
            raise DatasetError(f"{path}: no such file or folder")
    if not sources:
        raise DatasetError("no episodes given")
    seen_audio = set()
    unique: list[EpisodeSource] = []
    used_ids: set[str] = set()
    for source in sources:
        key = source.audio.resolve()
        if key in seen_audio:
            continue
        seen_audio.add(key)
        unique.append(_with_unique_id(source, used_ids))
    return unique


def _with_unique_id(source: EpisodeSource, used: set[str]) -> EpisodeSource:
    base = _safe_id(source.id)
    ident, n = base, 1
    while ident in used:
        n += 1
        ident = f"{base}-{n}"
    used.add(ident)
    return EpisodeSource(**{**source.__dict__, "id": ident})


def find_reference_chunks(root: Path, classes: Sequence[str] = DEFAULT_CLASSES) -> list[EpisodeSource]:
    """Chunks of the reference layout ``train/A``, ``train/B``, ``val/A``, ``val/B`` as one-class episodes."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    sources: list[EpisodeSource] = []
    used: set[str] = set()
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        split = REFERENCE_SPLIT_FOLDERS.get(split_dir.name.lower())
        if split is None:
            continue
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            position = REFERENCE_CLASS_FOLDERS.get(class_dir.name.upper())
            if position is None:
                log.warning("%s: not A or B; skipped", class_dir)
                continue
            label = classes[position]
            for audio in sorted(
                p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
            ):
                ident = f"{split_dir.name}-{class_dir.name}-{audio.stem}"
                sources.append(
                    _with_unique_id(
                        EpisodeSource(id=ident, audio=audio, whole_label=label, split=split), used
                    )
                )
    if not sources:
        raise DatasetError(f"{root}: no audio chunks found in train/A, train/B, val/A or val/B")
    return sources
