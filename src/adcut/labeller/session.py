"""What the labeller opens: an episode's duration, classes and the segments pre-filled from a model or a file."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from adcut.errors import AdcutError, LabelError

if TYPE_CHECKING:
    from adcut.detect.config import SegmentationConfig
    from adcut.labeller.server import LabelSession, PrefilledSegment

log = logging.getLogger(__name__)


def read_prefill(
    path: Path, classes: tuple[str, ...], duration: float | None
) -> tuple[tuple[str, ...], list[PrefilledSegment]]:
    """``(classes, [PrefilledSegment])`` from a label file; a .json may carry ``confidence`` and ``classes``."""
    from adcut.core.segments import validate_segments
    from adcut.formats.labels import read_json, read_labels
    from adcut.labeller.server import PrefilledSegment

    if path.suffix.lower() != ".json":
        segments = read_labels(path, classes=classes, background=None)
        validate_segments(segments, duration=duration, classes=classes, source=str(path))
        return classes, [PrefilledSegment(s) for s in segments]
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raw = None  # read_json below gives the precise message
    if isinstance(raw, dict) and isinstance(raw.get("classes"), list) and len(raw["classes"]) >= 2:
        classes = tuple(str(c) for c in raw["classes"])
    segments, _ = read_json(path, classes)
    validate_segments(segments, duration=duration, classes=classes, source=str(path))
    items = raw.get("segments") if isinstance(raw, dict) else raw
    assert isinstance(items, list)  # read_json accepted it
    prefill = []
    for i, seg in enumerate(segments):
        confidence = items[i].get("confidence")
        if confidence is not None and (
            isinstance(confidence, bool)
            or not isinstance(confidence, (int, float))
            or not 0.0 <= confidence <= 1.0
        ):
            raise LabelError(f"{path}: segment {i + 1}: confidence must be a number from 0 to 1")
        prefill.append(PrefilledSegment(seg, confidence))
    return classes, prefill


def build_session(
    episode: Path,
    labels: Path | None = None,
    *,
    prefill_model: bool = False,
    model: Path | None = None,
    segmentation: SegmentationConfig | None = None,
) -> LabelSession:
    """The LabelSession for ``episode`` (all input errors are AdcutErrors).

    ``labels``: the label file to start from (and, when Audacity text, to save to). ``prefill_model``:
    pre-fill with the segments that ``model`` (default: the newest in ./models/) finds with ``segmentation``.
    """
    from adcut.core.segments import DEFAULT_CLASSES, default_background
    from adcut.formats.labels import LABEL_SUFFIXES
    from adcut.labeller.server import LabelSession, PrefilledSegment
    from adcut.media.decode import probe

    episode = Path(episode)
    info = probe(episode)  # AudioError for missing, empty or non-audio files
    duration = info.duration
    labels_arg = Path(labels) if labels else None
    if labels_arg is not None:
        if labels_arg.suffix.lower() not in LABEL_SUFFIXES:
            raise LabelError(f"{labels_arg}: unknown label format (use one of {', '.join(LABEL_SUFFIXES)})")
        if labels_arg.resolve() == episode.resolve():
            raise LabelError(f"{labels_arg}: is the episode itself, not a label file")
        if labels_arg.is_dir():
            raise LabelError(f"{labels_arg}: is a folder, not a label file")
    audacity = labels_arg is not None and labels_arg.suffix.lower() in (".txt", ".lab")
    labels_path = labels_arg if labels_arg is not None and audacity else episode.with_suffix(".txt")
    if labels_path.resolve() == episode.resolve():
        raise LabelError(f"{episode}: cannot save labels beside an episode named .txt; pass --labels FILE")

    classes: tuple[str, ...] = DEFAULT_CLASSES
    prefill: list[PrefilledSegment] = []
    source = ""
    background: str | None = None
    if prefill_model:
        from adcut.detect.config import SegmentationConfig
        from adcut.detect.pipeline import detect
        from adcut.models.checkpoint import resolve_model

        checkpoint = resolve_model(model)
        classes, background = tuple(checkpoint.class_names), checkpoint.background
        log.info("finding %s segments in %s with %s ...", "/".join(classes), episode.name, checkpoint.name)
        detection = detect(episode, checkpoint, segmentation or SegmentationConfig())
        prefill = [PrefilledSegment(s, c) for s, c in zip(detection.segments, detection.confidences)]
        duration = detection.duration
        source = f"model {checkpoint.name}"
    elif labels_arg is not None and (labels_arg.exists() or not audacity):
        if not labels_arg.exists():
            raise LabelError(f"{labels_arg}: label file not found")
        classes, prefill = read_prefill(labels_arg, classes, duration)
        source = f"labels {labels_arg.name}"
    elif labels_path.exists():
        classes, prefill = read_prefill(labels_path, classes, duration)
        source = f"labels {labels_path.name}"
    if len(classes) < 2:
        raise AdcutError("the labeller needs at least two classes")
    return LabelSession(
        episode=episode,
        labels_path=labels_path,
        classes=classes,
        background=background or default_background(classes),
        declared_duration=duration,
        prefill=prefill,
        source=source,
    )
