"""Calibration of probabilities, per-segment confidence, and review marking."""

from __future__ import annotations

import numpy as np
import pytest

from adcut.core.segments import Segment
from adcut.detect.review import calibrate_probs, mark_review, segment_confidences
from adcut.errors import AdcutError

CLASSES = ("ad", "content")


def test_calibrate_probs_equals_temperature_scaled_logits():
    logits = np.array([[2.0, -1.0], [0.3, 0.1], [-4.0, 1.0]])
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for temperature in (0.5, 2.0, 3.7):
        scaled = np.exp(logits / temperature)
        expected = scaled / scaled.sum(1, keepdims=True)
        assert np.allclose(calibrate_probs(probs, temperature), expected, atol=1e-9)
    assert calibrate_probs(probs, None) is not None and np.allclose(calibrate_probs(probs, None), probs)
    # T > 1 softens, never changes the decision
    soft = calibrate_probs(probs, 2.0)
    assert np.all(np.abs(soft - 0.5) <= np.abs(probs - 0.5) + 1e-12)
    assert np.array_equal(soft.argmax(1), probs.argmax(1))


def test_calibrate_rejects_bad_temperature():
    with pytest.raises(AdcutError, match="temperature must be > 0"):
        calibrate_probs(np.full((2, 2), 0.5), 0.0)


def test_segment_confidence_is_mean_probability_of_own_class():
    p_ad = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.3])
    probs = np.stack([p_ad, 1 - p_ad], 1)
    segs = [Segment(0, 3, "ad"), Segment(3, 6, "content")]
    conf = segment_confidences(segs, probs, 1.0, CLASSES)
    assert conf == pytest.approx([0.8, 0.8])
    # a segment shorter than a step uses the step it falls in
    assert segment_confidences([Segment(3.2, 3.4, "ad")], probs, 1.0, CLASSES) == pytest.approx([0.2])


def test_mark_review_relabels_low_confidence_and_merges():
    segs = [
        Segment(0, 10, "content"),
        Segment(10, 20, "ad"),
        Segment(20, 30, "content"),
        Segment(30, 40, "ad"),
    ]
    marked = mark_review(segs, [0.95, 0.6, 0.55, 0.9], 0.7)
    assert marked == [Segment(0, 10, "content"), Segment(10, 30, "review"), Segment(30, 40, "ad")]
    only_ads = mark_review(segs, [0.95, 0.6, 0.55, 0.9], 0.7, only=("ad",))
    assert [s.label for s in only_ads] == ["content", "review", "content", "ad"]
    assert mark_review(segs, [0.1] * 4, None) == segs


def test_mark_review_rejects_bad_threshold():
    with pytest.raises(AdcutError, match="--review-below must be a probability between 0 and 1, not 1.5"):
        mark_review([Segment(0, 1, "ad")], [0.5], 1.5)
