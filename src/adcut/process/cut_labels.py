"""``adcut cut``: the ad-free episode from a label file (a reviewed Audacity track or a ``process`` JSON).

The same outputs and rules as ``process`` without the model: the cut audio is named and written as
``process`` writes it (``show.adcut.mp3`` beside the episode or in ``outdir``, through a temporary
name), chapters are re-timed, and the label/chapter outputs chosen with ``formats`` are made from the
label file's segments. An episode whose outputs are newer than both it and the label file is skipped
unless ``force``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adcut.core.segments import DEFAULT_CLASSES, Segment, default_background
from adcut.core.units import Seconds
from adcut.errors import AdcutError, LabelError
from adcut.process.episode import DRY_RUN, PROCESSED, SKIPPED, is_up_to_date

if TYPE_CHECKING:
    from adcut.media.timeline import CutResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CutOptions:
    """What ``adcut cut`` does with one episode and its label file."""

    formats: tuple[str, ...] = ()  # label/chapter outputs besides the cut audio (none by default)
    remove: tuple[str, ...] | None = None  # default: the first class (``ad``)
    outdir: Path | None = None
    fade_seconds: Seconds = 0.03
    reencode: bool = False  # force the whole-file re-encode
    force: bool = False
    dry_run: bool = False


@dataclass
class CutRun:
    """What ``cut_from_labels`` did: ``status`` is processed, skipped or dry-run."""

    episode: Path
    status: str
    outputs: list[Path]
    cut: CutResult | None = None  # when processed
    detection: object | None = None  # the labels as a detect.pipeline.Detection
    wall_seconds: Seconds = 0.0


@dataclass(frozen=True)
class LabelledEpisode:
    """An episode's segments as a label file gives them, tiling ``[0, duration]``."""

    classes: tuple[str, ...]
    segments: list[Segment]
    confidences: list[float]


def read_label_file(path: Path, duration: Seconds) -> LabelledEpisode:
    """Segments tiling ``[0, duration]`` from an Audacity/CSV label file or a ``process`` JSON.

    A JSON that names its ``classes`` (as ``process`` writes) is read with them; otherwise the default
    classes. Every problem is one LabelError naming the file (and line, where it has lines).
    """
    from adcut.formats.labels import LABEL_SUFFIXES, read_labels

    path = Path(path)
    if path.suffix.lower() not in LABEL_SUFFIXES:
        raise LabelError(f"{path}: unknown label format (use one of {', '.join(LABEL_SUFFIXES)})")
    if path.is_dir():
        raise LabelError(f"{path}: is a folder, not a label file")
    if not path.exists():
        raise LabelError(f"{path}: label file not found")
    classes: tuple[str, ...] = DEFAULT_CLASSES
    confidences: dict[tuple[float, float, str], float] = {}
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raw = None  # read_labels gives the precise message
        if isinstance(raw, dict) and isinstance(raw.get("classes"), list) and len(raw["classes"]) >= 2:
            classes = tuple(str(c) for c in raw["classes"])
        # A ``process`` JSON measured the duration by decoding; a container's declared duration (e.g. an
        # MP3 without a Xing header) can differ a little: its own last segment is not "beyond the end".
        declared = raw.get("duration") if isinstance(raw, dict) else None
        if isinstance(declared, (int, float)) and not isinstance(declared, bool):
            if declared > duration and declared - duration <= max(1.0, 0.01 * duration):
                duration = float(declared)
        items = raw.get("segments") if isinstance(raw, dict) else raw
        for item in items if isinstance(items, list) else []:
            conf = item.get("confidence") if isinstance(item, dict) else None
            if isinstance(conf, (int, float)) and not isinstance(conf, bool):
                try:
                    confidences[(float(item["start"]), float(item["end"]), str(item["label"]))] = float(conf)
                except (KeyError, TypeError, ValueError):
                    pass
    segments = read_labels(path, duration=duration, classes=classes, background=default_background(classes))
    if not segments:
        raise LabelError(f"{path}: no segments")
    return LabelledEpisode(
        classes, segments, [confidences.get((s.start, s.end, s.label), 1.0) for s in segments]
    )


def labels_detection(
    episode: Path, labels: LabelledEpisode, duration: Seconds, label_path: Path, settings: dict
):
    """A ``Detection`` made from labels (one-hot per-second probabilities), so ``process``'s writers apply."""
    from adcut.detect.pipeline import Detection

    steps = max(1, int(np.ceil(duration)))
    probabilities = np.zeros((steps, len(labels.classes)), np.float32)
    index = {name: i for i, name in enumerate(labels.classes)}
    for seg in labels.segments:
        lo, hi = int(np.floor(seg.start)), int(np.ceil(seg.end))
        probabilities[lo:hi, index[seg.label]] = 1.0
    probabilities /= np.maximum(probabilities.sum(axis=1, keepdims=True), 1.0)
    return Detection(
        path=Path(episode),
        duration=duration,
        classes=labels.classes,
        segments=list(labels.segments),
        confidences=list(labels.confidences),
        step_seconds=1.0,
        probabilities=probabilities,
        model_id=f"labels:{Path(label_path).name}",
        settings=settings,
    )


def planned_cut_outputs(episode: Path, options: CutOptions) -> list[Path]:
    from adcut.formats.export import get_writer
    from adcut.media.cut import cut_path

    return [cut_path(episode, options.outdir)] + [
        get_writer(name).output_path(episode, options.outdir) for name in options.formats
    ]


def cut_from_labels(episode: Path, label_path: Path, options: CutOptions = CutOptions()) -> CutRun:
    """Write the cut episode (and the chosen outputs) from ``label_path``. Raises AdcutError on bad input."""
    from adcut.formats.export import get_writer
    from adcut.media.cut import cut_episode, cut_path
    from adcut.media.decode import probe

    episode, label_path = Path(episode), Path(label_path)
    outputs = planned_cut_outputs(episode, options)
    for out in outputs:
        if out.resolve() == label_path.resolve():
            raise AdcutError(
                f"{out}: would overwrite the label file being read (choose another -o or --format)"
            )
    info = probe(episode)  # AudioError for missing, empty or non-audio files
    if info.duration is None:
        raise AdcutError(
            f"{episode}: the file does not say how long it is; cannot check the labels against it"
        )
    duration = info.duration
    labels = read_label_file(label_path, duration)
    duration = max(
        duration, labels.segments[-1].end
    )  # a process JSON's decoded duration may be a little longer
    remove = options.remove or (labels.classes[0],)
    unknown = [name for name in remove if name not in labels.classes]
    if unknown:
        raise AdcutError(
            f"--remove {','.join(unknown)}: not a class of {label_path.name} ({', '.join(labels.classes)})"
        )
    if not options.force and is_up_to_date(episode, outputs, label_path):
        return CutRun(episode, SKIPPED, outputs)
    if options.dry_run:
        return CutRun(episode, DRY_RUN, outputs)
    started = time.perf_counter()
    if options.outdir is not None:
        Path(options.outdir).mkdir(parents=True, exist_ok=True)
    result = cut_episode(
        episode,
        labels.segments,
        cut_path(episode, options.outdir),
        remove=remove,
        fade_seconds=options.fade_seconds,
        method="reencode" if options.reencode else "auto",
    )
    settings = {
        "source": "labels",
        "labels": label_path.name,
        "remove": list(remove),
        "fade_seconds": options.fade_seconds,
        "cut_method": result.method,
    }
    detection = labels_detection(episode, labels, duration, label_path, settings)
    for name in options.formats:
        writer = get_writer(name)
        writer.write(detection, writer.output_path(episode, options.outdir))
    return CutRun(episode, PROCESSED, outputs, result, detection, time.perf_counter() - started)
