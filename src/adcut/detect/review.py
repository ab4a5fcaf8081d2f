"""Calibrated confidence per segment, and marking low-confidence segments for review instead of cutting."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from adcut.core.segments import Segment, extend_tiling
from adcut.core.units import Seconds
from adcut.errors import AdcutError

REVIEW_LABEL = "review"
_PROB_FLOOR = 1e-7


def calibrate_probs(probs: np.ndarray, temperature: float | None) -> np.ndarray:
    """Temperature-scaled probabilities: ``softmax(log(p) / T)`` per row (``T`` from ``checkpoint.metrics``).

    ``log p`` equals the logits up to a per-row constant, which softmax ignores, so this is exactly
    temperature scaling of the model's logits. ``None`` or 1 returns the input unchanged.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if temperature is None or temperature == 1.0:
        return probs
    if not (np.isfinite(temperature) and temperature > 0):
        raise AdcutError(f"calibration temperature must be > 0, not {temperature!r}")
    logits = np.log(np.clip(probs, _PROB_FLOOR, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def segment_confidences(
    segments: Sequence[Segment], probs: np.ndarray, step_seconds: Seconds, classes: Sequence[str]
) -> list[float]:
    """Mean probability of each segment's own class over the curve steps whose centre lies inside it.

    A segment shorter than one step uses the step it falls in. Classes not in ``classes`` get NaN.
    """
    probs = np.asarray(probs, dtype=np.float64)
    n = len(probs)
    centres = (np.arange(n) + 0.5) * step_seconds
    confidences = []
    for seg in segments:
        if seg.label not in classes or n == 0:
            confidences.append(float("nan"))
            continue
        column = probs[:, list(classes).index(seg.label)]
        lo, hi = np.searchsorted(centres, [seg.start, seg.end])
        if hi <= lo:
            lo = min(int(seg.start // step_seconds), n - 1)
            hi = lo + 1
        confidences.append(float(column[lo:hi].mean()))
    return confidences


def mark_review(
    segments: Sequence[Segment],
    confidences: Sequence[float],
    review_below: float | None,
    review_label: str = REVIEW_LABEL,
    only: Sequence[str] | None = None,
) -> list[Segment]:
    """Segments whose confidence is below ``review_below`` relabelled ``review_label`` (not cut).

    ``only`` limits the marking to those classes (e.g. ``("ad",)`` to review uncertain ads only);
    by default every class can be marked. Neighbouring review segments merge; the tiling is kept.
    """
    if len(confidences) != len(segments):
        raise AdcutError(f"{len(confidences)} confidences for {len(segments)} segments")
    if review_below is None:
        return list(segments)
    if not 0.0 <= review_below <= 1.0:
        raise AdcutError(f"--review-below must be a probability between 0 and 1, not {review_below:g}")
    marked: list[Segment] = []
    for seg, confidence in zip(segments, confidences):
        eligible = only is None or seg.label in only
        label = review_label if eligible and confidence < review_below else seg.label
        extend_tiling(marked, seg.start, seg.end, label)
    return marked
