"""Whole episode -> per-step class probability curve -> segments that tile the episode."""

from __future__ import annotations

import hashlib
import logging
import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adcut.core.segments import Segment, make_tiling
from adcut.core.units import Seconds
from adcut.detect.config import SegmentationConfig, anchor_for, edge_offsets_for, resolve_minimums
from adcut.detect.windows import resample_curve, stream_window_probs, window_curve
from adcut.errors import AdcutError

if TYPE_CHECKING:
    from adcut.features.mfcc import FeatureConfig
    from adcut.models.checkpoint import Checkpoint


log = logging.getLogger(__name__)


@dataclass
class Detection:
    """What ``detect`` found in one episode."""

    path: Path
    duration: Seconds
    classes: tuple[str, ...]
    segments: list[Segment]  # tiles [0, duration]
    confidences: list[float]  # mean probability of each segment's own class
    step_seconds: Seconds
    probabilities: np.ndarray  # (n_steps, n_classes); step k covers [k*step, (k+1)*step)
    model_id: str
    settings: dict = field(default_factory=dict)

    @property
    def boundaries(self) -> list[Seconds]:
        return [b.start for a, b in zip(self.segments, self.segments[1:]) if a.label != b.label]

    def per_second(self) -> np.ndarray:
        """The probability curve averaged onto a 1 s grid, ``(ceil(duration), n_classes)``."""
        return resample_curve(self.probabilities, self.step_seconds, 1.0, self.duration)


def smooth_curve(
    curve: np.ndarray,
    step_seconds: Seconds,
    duration: Seconds,
    classes: tuple[str, ...],
    config: SegmentationConfig,
) -> list[Segment]:
    from adcut.detect.smoothing import smooth

    return smooth(curve, step_seconds, duration, classes, config.smoothing)


def align_edges(
    segments: list[Segment], checkpoint: Checkpoint, config: SegmentationConfig, classes: tuple[str, ...]
) -> list[Segment]:
    """Smoothed segments with each ad edge moved back by its measured offset (within the minimum durations)."""
    from adcut.detect.edges import shift_edges

    offsets = edge_offsets_for(checkpoint, config)
    if not offsets or not classes:
        return segments
    return shift_edges(segments, classes[0], offsets, config.smoothing.minimums(classes))


def refine(
    segments: list[Segment],
    features: np.ndarray,
    feature_config: FeatureConfig,
    config: SegmentationConfig,
    classes: tuple[str, ...] = (),
) -> list[Segment]:
    if config.refine is None or len(segments) < 2:
        return segments
    from adcut.detect.refine import refine_boundaries

    # Refinement must not undo the smoother's minimum durations (first class: ad minimum, others: content);
    # ad edges may move further into the ad than out of it (cutting ads must not cost content).
    return refine_boundaries(
        segments,
        features,
        feature_config,
        config.refine.max_shift_seconds,
        config.refine,
        min_seconds=config.smoothing.minimums(classes),
        shrink_label=classes[0] if classes else None,
    )


def _best_class_confidence(segment: Segment, curve: np.ndarray, step_seconds: Seconds) -> float:
    centres = (np.arange(len(curve)) + 0.5) * step_seconds
    inside = (centres >= segment.start) & (centres < segment.end)
    if not inside.any():
        inside[min(int(segment.start // step_seconds), len(curve) - 1)] = True
    return float(curve[inside].mean(axis=0).max())


def model_id(checkpoint) -> str:
    """``name@sha12`` of the checkpoint file (or its type when it was never saved)."""
    if checkpoint.path is None:
        return checkpoint.name
    digest = hashlib.sha256()
    with open(checkpoint.path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{checkpoint.path.name}@{digest.hexdigest()[:12]}"


def detect(
    path,
    checkpoint,
    config: SegmentationConfig | None = None,
    device: str = "cpu",
    model=None,
    threads: int | None = None,
) -> Detection:
    """Decode ``path``, run ``checkpoint``'s model over it and return its tiling segments.

    ``model`` may be passed to reuse an already built predictor (folder mode builds it once).
    """
    from adcut.models.inference import build_predictor, set_torch_threads, uses_torch

    config = config or SegmentationConfig()
    fcfg = checkpoint.feature_config
    config.validate(fcfg.window_seconds, fcfg.frame_seconds)
    config = resolve_minimums(checkpoint, config)
    if threads is None:  # decoding has a core of its own while the model runs (see stream_window_probs)
        threads = max(1, (os.cpu_count() or 1) - 1) if not os.environ.get("ADCUT_THREADS") else None
    if model is None:
        model = build_predictor(checkpoint, device)  # an LSTM on a CPU runs in numpy: no torch import
    if uses_torch(model):
        set_torch_threads(threads)
    hop_frames = max(1, int(round(config.hop_seconds / fcfg.frame_seconds)))
    temperature = (checkpoint.metrics or {}).get("temperature")
    listen = False
    if config.words is not None:
        from adcut.detect.words import words_enabled

        listen = words_enabled(checkpoint, config.words)
    with ExitStack() as cleanup:
        speech = None
        if listen:  # recognition reads the 16 kHz audio that the feature decode makes on the way
            from adcut.words.recognise import Tapped

            speech = cleanup.enter_context(Tapped())
        return _detect(path, checkpoint, config, device, model, hop_frames, temperature, speech)


def _detect(path, checkpoint, config, device, model, hop_frames, temperature, speech) -> Detection:
    """``detect`` once its settings are resolved; ``speech``: the 16 kHz audio for ``--words``, or None."""
    from adcut.detect.review import REVIEW_LABEL, calibrate_probs, mark_review, segment_confidences
    from adcut.features.mfcc import window_starts

    fcfg = checkpoint.feature_config
    features, starts, probs, duration = stream_window_probs(
        path,
        fcfg,
        model,
        hop_frames,
        batch_size=config.batch_size,
        device=device,
        stride=config.scan_stride,
        calibrate=lambda p: calibrate_probs(p, temperature),
        tap=speech,
    )
    if duration <= 0:
        raise AdcutError(f"{path}: contains no audio samples")
    probs = calibrate_probs(probs, temperature)
    anchor = anchor_for(checkpoint, config)
    curve = window_curve(
        probs, starts, fcfg.window_frames, fcfg.frame_seconds, anchor, config.step_seconds, duration
    )
    classes = tuple(checkpoint.class_names)
    segments = make_tiling(smooth_curve(curve, config.step_seconds, duration, classes, config), duration)
    words_record = None
    if speech is not None:
        from adcut.detect.words import hear_words

        curve, words_record = hear_words(
            path,
            curve,
            config.step_seconds,
            duration,
            segments,
            classes,
            checkpoint,
            config.words,
            background=getattr(checkpoint, "background", None),
            speech=speech,
        )
    segments = make_tiling(align_edges(segments, checkpoint, config, classes), duration)
    segments = make_tiling(refine(segments, features, fcfg, config, classes), duration)
    if words_record is not None and words_record["word_ads"]:
        from adcut.detect.words import overlay

        # After the edge alignment and refinement, which are for the sound model's boundaries: a word
        # ad's edges are already the sentence breaks around its phrases, and there is no sound change to find.
        segments = overlay(segments, words_record["word_ads"], classes[0], duration)
    confidences = segment_confidences(segments, curve, config.step_seconds, classes)
    if config.review_below is not None:
        segments = mark_review(segments, confidences, config.review_below, only=config.review_classes)
        confidences = segment_confidences(segments, curve, config.step_seconds, classes)
        # a review segment's confidence is that of the class it was unsure about
        confidences = [
            _best_class_confidence(s, curve, config.step_seconds) if s.label == REVIEW_LABEL else c
            for s, c in zip(segments, confidences)
        ]
    settings = {
        **config.settings(),
        "anchor": anchor,
        "measured_edge_offsets": edge_offsets_for(checkpoint, config),
        "windows": len(window_starts(len(features), fcfg.window_frames, hop_frames)),
        "windows_read": int(len(starts)),
        "window_seconds": fcfg.window_seconds,
    }
    if words_record is not None:
        settings["words_heard"] = words_record
    elif config.words is not None:
        settings["words"] = "off"  # auto found no pocketsphinx or no phrases
    return Detection(
        path=Path(path),
        duration=float(duration),
        classes=classes,
        segments=segments,
        confidences=confidences,
        step_seconds=config.step_seconds,
        probabilities=curve,
        model_id=model_id(checkpoint),
        settings=settings,
    )
