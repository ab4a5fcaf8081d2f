"""Episode -> probability curve -> segments: tiling, anchor placement, hop, review marking."""

from __future__ import annotations

import numpy as np
import pytest

from adcut.core.segments import boundaries
from adcut.demo.synth import EpisodeSpec
from adcut.detect import windows as segment
from adcut.detect.config import SegmentationConfig
from adcut.detect.pipeline import detect
from adcut.detect.smoothing import SmoothingConfig
from adcut.detect.windows import window_curve
from adcut.errors import AdcutError
from adcut.models.checkpoint import load_checkpoint


def assert_tiles(segments, duration):
    assert segments[0].start == 0.0
    assert segments[-1].end == pytest.approx(duration, abs=1e-9)
    for a, b in zip(segments, segments[1:]):
        assert a.end == b.start
        assert a.label != b.label or a.label == "review"
        assert b.end > b.start


def fake_predictions(monkeypatch, truth, *, anchor=0.5, confident=0.95):
    """Replace the model: a window says 'ad' with ``confident`` when its anchor point lies in a true ad."""
    ads = [(s.start, s.end) for s in truth if s.label == "ad"]

    def predict(model, features, starts, window_frames, *, batch_size, device):
        times = (starts + anchor * window_frames) * (256 / 4096)
        is_ad = np.array([any(a <= t < b for a, b in ads) for t in times])
        p_ad = np.where(is_ad, confident, 1 - confident)
        return np.stack([p_ad, 1 - p_ad], axis=1).astype(np.float32)

    monkeypatch.setattr(segment, "predict_episode", predict)


def test_window_curve_places_each_window_at_its_anchor():
    frame, window = 256 / 4096, 131
    starts = np.arange(0, 2000, 16)
    switch = 800  # windows starting at or after this frame say "ad"
    probs = np.where((starts >= switch)[:, None], [[1.0, 0.0]], [[0.0, 1.0]])
    duration = 2200 * frame
    for anchor in (0.0, 0.5, 1.0):
        curve = window_curve(probs, starts, window, frame, anchor, 0.25, duration)
        crossing = np.flatnonzero(curve[:, 0] >= 0.5)[0] * 0.25
        expected = (switch + anchor * window) * frame
        assert abs(crossing - expected) <= 1.0 + 0.25, (anchor, crossing, expected)
    # rows stay probability distributions and cover the whole episode
    assert curve.shape == (int(np.ceil(duration / 0.25)), 2)
    np.testing.assert_allclose(curve.sum(axis=1), 1.0, atol=1e-6)


def test_window_curve_averages_windows_sharing_a_step():
    starts = np.array([0, 1, 2, 3])
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    curve = window_curve(probs, starts, 131, 256 / 4096, 0.5, 5.0, 20.0)
    np.testing.assert_allclose(curve[0], [0.5, 0.5])


def test_detect_tiles_the_episode_and_finds_the_true_boundaries(make_episode, random_checkpoint, monkeypatch):
    spec = EpisodeSpec(150.0, ((40.0, 75.0), (110.0, 130.0)))
    path, truth = make_episode("ep", spec)
    fake_predictions(monkeypatch, truth)
    ckpt = load_checkpoint(random_checkpoint(hidden_size=8, num_layers=1))
    for config in (
        SegmentationConfig(anchor=0.5, refine=None),
        SegmentationConfig(anchor=0.5, smoothing=SmoothingConfig("none")),
        SegmentationConfig(anchor=0.5, smoothing=SmoothingConfig("reference"), hop_seconds=4.096),
    ):
        detection = detect(path, ckpt, config)
        assert_tiles(detection.segments, detection.duration)
        assert detection.duration == pytest.approx(150.0, abs=0.01)
        found = boundaries(detection.segments)
        assert len(found) == 4, (config, detection.segments)
        tolerance = 1.0 if config.hop_seconds <= 1 else 4.5
        assert np.max(np.abs(np.array(found) - [40, 75, 110, 130])) <= tolerance
        assert len(detection.confidences) == len(detection.segments)
        assert all(c > 0.8 for c in detection.confidences)


def test_the_coarse_to_fine_scan_reads_fewer_windows_and_finds_the_same_segments(
    make_episode, random_checkpoint, monkeypatch
):
    spec = EpisodeSpec(240.0, ((60.0, 95.0), (170.0, 190.0)))
    path, truth = make_episode("ep", spec)
    fake_predictions(monkeypatch, truth)
    ckpt = load_checkpoint(random_checkpoint(hidden_size=8, num_layers=1))
    every = detect(path, ckpt, SegmentationConfig(scan_stride=1))
    coarse = detect(path, ckpt, SegmentationConfig())
    assert every.settings["windows_read"] == every.settings["windows"] == 233  # 240 s at a 1 s hop
    assert coarse.settings["windows_read"] < 0.4 * coarse.settings["windows"]
    assert coarse.segments == every.segments
    np.testing.assert_allclose(coarse.probabilities, every.probabilities, atol=1e-6)


def test_detect_with_a_real_model_gives_a_consistent_curve(make_episode, random_checkpoint):
    path, _ = make_episode("ep", EpisodeSpec(33.3, ((10.0, 20.0),)))
    ckpt = load_checkpoint(random_checkpoint(hidden_size=8, num_layers=1))
    for hop in (1.0, 4.096):
        detection = detect(path, ckpt, SegmentationConfig(hop_seconds=hop, step_seconds=0.5))
        assert_tiles(detection.segments, detection.duration)
        assert detection.probabilities.shape == (int(np.ceil(detection.duration / 0.5)), 2)
        np.testing.assert_allclose(detection.probabilities.sum(axis=1), 1.0, atol=1e-5)
        assert detection.per_second().shape == (34, 2)
        assert detection.model_id.startswith("rand.pt@")
        assert detection.settings["hop_seconds"] == hop


def test_an_episode_shorter_than_a_window_is_one_window(make_episode, random_checkpoint):
    path, _ = make_episode("short", EpisodeSpec(3.0, ()))
    detection = detect(
        path, load_checkpoint(random_checkpoint(hidden_size=8, num_layers=1)), SegmentationConfig()
    )
    assert_tiles(detection.segments, detection.duration)
    assert detection.settings["windows"] == 1


def test_uncertain_ads_are_marked_for_review_not_cut(make_episode, random_checkpoint, monkeypatch):
    spec = EpisodeSpec(100.0, ((40.0, 70.0),))
    path, truth = make_episode("ep", spec)
    fake_predictions(monkeypatch, truth, confident=0.7)
    ckpt = load_checkpoint(random_checkpoint(hidden_size=8, num_layers=1))
    detection = detect(path, ckpt, SegmentationConfig(anchor=0.5, refine=None, review_below=0.8))
    labels = [s.label for s in detection.segments]
    assert labels == ["content", "review", "content"]
    assert_tiles(detection.segments, detection.duration)
    confident = detect(path, ckpt, SegmentationConfig(anchor=0.5, refine=None, review_below=0.6))
    assert [s.label for s in confident.segments] == ["content", "ad", "content"]


def test_bad_settings_are_one_clear_error():
    with pytest.raises(AdcutError, match="--hop must be between"):
        SegmentationConfig(hop_seconds=20.0).validate(8.1875, 0.0625)
    with pytest.raises(AdcutError, match="unknown smoothing method 'magic'"):
        SegmentationConfig(smoothing=SmoothingConfig("magic"))
    with pytest.raises(AdcutError, match="--review-below must be"):
        SegmentationConfig(review_below=2.0)
    with pytest.raises(AdcutError, match="--scan-stride must be at least 1, not 0"):
        SegmentationConfig(scan_stride=0)


def test_streamed_features_and_probabilities_equal_the_one_pass_ones(make_episode, random_checkpoint):
    """Decoding, features and the model overlap in detect; the numbers must not change."""
    from adcut.detect.windows import predict_episode, stream_window_probs
    from adcut.features.episode import episode_features
    from adcut.features.mfcc import window_starts

    ckpt = load_checkpoint(random_checkpoint(hidden_size=8, num_layers=1))
    model = ckpt.build_model()
    for name, seconds, suffix in (("long", 45.3, ".mp3"), ("tiny", 0.2, ".wav"), ("one-window", 8.0, ".wav")):
        path, _ = make_episode(name, EpisodeSpec(seconds, ()), suffix=suffix, labels=False)
        features, starts, probs, duration = stream_window_probs(
            path, ckpt.feature_config, model, 16, batch_size=8, device="cpu"
        )
        expected, expected_duration = episode_features(path, ckpt.feature_config)
        assert np.array_equal(features, expected), name
        assert duration == expected_duration
        assert np.array_equal(starts, window_starts(len(expected), 131, 16))
        one_pass = predict_episode(model, expected, starts, 131, batch_size=8, device="cpu")
        np.testing.assert_allclose(probs, one_pass, atol=1e-5)
