"""Minimum durations learned from training labels: stored by training, used by detection, overridden by flags."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from adcut.detect.config import SegmentationConfig, resolve_minimums
from adcut.detect.smoothing import SmoothingConfig
from adcut.learn.train import label_durations


def seg(start, end, label):
    return {"start": start, "end": end, "label": label}


def test_label_durations_count_inner_segments_and_merge_touching_ones():
    manifest = {
        "episodes": [
            # content 0-30 (edge, ignored), ad 30-42 + ad 42-50 (one 20 s ad), content 50-110, ad 110-126, content (edge)
            {
                "segments": [
                    seg(0, 30, "content"),
                    seg(30, 42, "ad"),
                    seg(42, 50, "ad"),
                    seg(50, 110, "content"),
                    seg(110, 126, "ad"),
                    seg(126, 200, "content"),
                ]
            },
            {"segments": [seg(0, 100, "content")]},  # one edge segment: nothing to learn
            {"segments": [seg(0, 10, "ad"), seg(10, 50, "content"), seg(50, 65, "ad")]},
        ]
    }
    stats = label_durations(manifest)
    assert stats["ad"]["count"] == 2 and stats["ad"]["min"] == pytest.approx(16.0)
    assert stats["ad"]["median"] == pytest.approx(18.0)
    assert stats["content"]["count"] == 2 and stats["content"]["min"] == pytest.approx(40.0)
    assert stats["content"]["p10"] == pytest.approx(42.0)
    assert label_durations({"episodes": []}) == {}


def checkpoint(stats=None, classes=("ad", "content")):
    training = {} if stats is None else {"label_durations": stats}
    return SimpleNamespace(training=training, class_names=classes)


def test_minimums_default_without_stats_and_learned_with_them():
    plain = resolve_minimums(checkpoint(), SegmentationConfig())
    assert (plain.smoothing.min_ad_seconds, plain.smoothing.min_content_seconds) == (10.0, 20.0)
    # half the shortest seen: 7 s ads, 15 s content
    learned = resolve_minimums(
        checkpoint({"ad": {"count": 5, "min": 14.0}, "content": {"count": 4, "min": 30.0}}),
        SegmentationConfig(),
    )
    assert (learned.smoothing.min_ad_seconds, learned.smoothing.min_content_seconds) == (7.0, 15.0)
    # long labels never raise a minimum above the default; tiny ones never drop it below 3 s
    clamped = resolve_minimums(
        checkpoint({"ad": {"count": 5, "min": 60.0}, "content": {"count": 4, "min": 1.0}}),
        SegmentationConfig(),
    )
    assert (clamped.smoothing.min_ad_seconds, clamped.smoothing.min_content_seconds) == (10.0, 3.0)


def test_explicit_minimums_win_over_learned_ones():
    stats = {"ad": {"count": 5, "min": 14.0}, "content": {"count": 4, "min": 30.0}}
    config = resolve_minimums(
        checkpoint(stats), SegmentationConfig(smoothing=SmoothingConfig(min_ad_seconds=12.0))
    )
    assert (config.smoothing.min_ad_seconds, config.smoothing.min_content_seconds) == (12.0, 15.0)


def test_trained_checkpoint_stores_label_durations(tmp_path, make_episode):
    from adcut.demo.synth import EpisodeSpec
    from adcut.learn.dataset import build_dataset
    from adcut.learn.sources import find_episodes
    from adcut.learn.train import TrainConfig, train
    from adcut.models.checkpoint import load_checkpoint

    folder = tmp_path / "eps"
    make_episode("a", EpisodeSpec(60.0, ((20.0, 34.0),)), folder=folder, sample_rate=8000)
    make_episode("b", EpisodeSpec(60.0, ((10.0, 28.0), (40.0, 52.0))), folder=folder, sample_rate=8000)
    dataset = build_dataset(find_episodes([folder]), tmp_path / "ds", progress=False)
    train(
        dataset,
        TrainConfig(model_config={"hidden_size": 8}, epochs=1, batches_per_epoch=1, device="cpu"),
        tmp_path / "m.pt",
        progress=False,
    )
    stats = load_checkpoint(tmp_path / "m.pt").training["label_durations"]
    assert stats["ad"]["count"] == 3 and stats["ad"]["min"] == pytest.approx(12.0, abs=0.01)
    assert stats["content"]["count"] == 1 and stats["content"]["min"] == pytest.approx(12.0, abs=0.01)
