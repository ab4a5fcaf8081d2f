"""Boundary refinement: boundaries move onto nearby pauses / feature jumps, within the limits."""

from __future__ import annotations

import numpy as np
import pytest

from adcut.core.segments import Segment
from adcut.demo.synth import EpisodeSpec, render_episode
from adcut.detect.refine import RefineConfig, refine_boundaries
from adcut.features.mfcc import FeatureConfig, compute_features

CFG = FeatureConfig()
FPS = 1 / CFG.frame_seconds  # 16 frames per second


def hand_features(seconds: float, change_at: float | None, pauses=(), seed=0) -> np.ndarray:
    """Noisy features whose mean shifts at ``change_at`` and whose level (c0) drops in ``pauses``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    feats = rng.normal(0, 1, (n, CFG.n_features)).astype(np.float32)
    feats[:, 0] += 400.0  # c0: a steady level
    if change_at is not None:
        feats[int(change_at * FPS) :, 1 : CFG.n_mfcc] += 3.0
    for a, b in pauses:
        feats[int(a * FPS) : int(b * FPS), 0] -= 20 * np.sqrt(CFG.n_mels)  # 20 dB quieter
    return feats


def tiling(*times, labels=("content", "ad"), end=60.0):
    edges = [0.0, *times, end]
    return [Segment(a, b, labels[i % 2]) for i, (a, b) in enumerate(zip(edges, edges[1:]))]


def test_boundary_near_a_pause_moves_onto_it():
    feats = hand_features(60, change_at=30.0, pauses=[(29.8, 30.2)])
    out = refine_boundaries(tiling(28.4), feats, CFG, max_shift_seconds=3.0)
    assert out[1].start == pytest.approx(30.0, abs=0.15)
    assert out[0].start == 0.0 and out[-1].end == 60.0 and out[0].end == out[1].start


def test_boundary_moves_to_feature_jump_without_a_pause():
    feats = hand_features(60, change_at=32.0)
    out = refine_boundaries(tiling(30.0), feats, CFG, max_shift_seconds=3.0)
    assert out[1].start == pytest.approx(32.0, abs=0.3)


def test_pause_far_from_the_jump_is_ignored():
    # content pauses 2 s away from the real change must not capture the boundary
    feats = hand_features(60, change_at=30.0, pauses=[(27.8, 28.2), (29.9, 30.1)])
    out = refine_boundaries(tiling(29.0), feats, CFG, max_shift_seconds=3.0)
    assert out[1].start == pytest.approx(30.0, abs=0.15)


def test_shift_limit_is_respected():
    feats = hand_features(60, change_at=32.5, pauses=[(32.3, 32.7)])
    out = refine_boundaries(tiling(30.0), feats, CFG, max_shift_seconds=1.5)
    assert out[1].start == pytest.approx(31.5, abs=1e-9)  # as close to the change as allowed
    assert refine_boundaries(tiling(30.0), feats, CFG, max_shift_seconds=0.0) == tiling(30.0)


def test_no_change_nearby_keeps_the_boundary():
    feats = hand_features(60, change_at=36.0, pauses=[(35.8, 36.2)])
    assert refine_boundaries(tiling(30.0), feats, CFG, max_shift_seconds=3.0) == tiling(30.0)


def test_boundary_never_passes_its_neighbours():
    # changes at 20 and 22 s but boundaries placed at 21 and 23: they must stay ordered and apart
    feats = hand_features(60, change_at=20.0)
    feats[int(22 * FPS) :, 1 : CFG.n_mfcc] -= 3.0
    out = refine_boundaries(tiling(21.0, 23.0), feats, CFG, max_shift_seconds=3.0)
    starts = [s.start for s in out]
    assert starts == sorted(starts)
    assert all(b.start - a.start >= 1.0 - 1e-9 for a, b in zip(out, out[1:]))
    assert [s.label for s in out] == ["content", "ad", "content"]


def test_real_synthetic_break_is_found_within_a_fraction_of_a_second():
    spec = EpisodeSpec(90.0, ((40.0, 70.0),))
    audio = render_episode(spec, CFG.sample_rate, seed=2)
    feats = compute_features(audio, CFG)
    out = refine_boundaries(tiling(38.2, 71.9, end=90.0), feats, CFG, max_shift_seconds=3.0)
    assert out[1].start == pytest.approx(40.0, abs=0.3)
    assert out[2].start == pytest.approx(70.0, abs=0.3)
    assert out[-1].end == 90.0


def test_class_minimums_are_kept_when_given():
    # the change is at 25 s but the ad segment (20..31) may not shrink below 10 s: boundary stops at 30
    feats = hand_features(60, change_at=None)
    feats[int(25 * FPS) :, 1 : CFG.n_mfcc] += 3.0
    segs = [Segment(0.0, 20.0, "content"), Segment(20.0, 28.0, "ad"), Segment(28.0, 60.0, "content")]
    free = refine_boundaries(segs, feats, CFG, 3.0)
    assert free[2].start == pytest.approx(25.0, abs=0.3)
    kept = refine_boundaries(segs, feats, CFG, 3.0, min_seconds={"ad": 10.0, "content": 20.0})
    assert kept[2].start == pytest.approx(28.0)  # already below the minimum: may not shrink further
    assert all(isinstance(s.start, float) for s in kept)


def test_nearest_pause_wins_over_a_deeper_one_in_the_speech_beside_it():
    # the break's pause sits at the change; a deeper speech pause 0.6 s later must not take the cut
    feats = hand_features(60, change_at=30.0, pauses=[(29.9, 30.1)])
    feats[int(30.5 * FPS) : int(30.7 * FPS), 0] -= 40 * np.sqrt(CFG.n_mels)
    out = refine_boundaries(tiling(29.0), feats, CFG, max_shift_seconds=3.0)
    assert out[1].start == pytest.approx(30.0, abs=0.1)


def ad_features(found=(20.0, 40.0), true=(24.0, 35.5)):
    feats = hand_features(60, change_at=None)
    feats[int(true[0] * FPS) : int(true[1] * FPS), 1 : CFG.n_mfcc] += 3.0
    segs = [
        Segment(0.0, found[0], "content"),
        Segment(found[0], found[1], "ad"),
        Segment(found[1], 60.0, "content"),
    ]
    return feats, segs


def test_ad_edges_follow_a_change_past_the_limit_inwards_only_for_the_cut_class():
    # the ad was found 4 and 4.5 s too wide (beyond the 3 s limit): it shrinks onto the true edges
    feats, segs = ad_features()
    out = refine_boundaries(segs, feats, CFG, 3.0, shrink_label="ad")
    assert [s.label for s in out] == ["content", "ad", "content"]
    assert out[1].start == pytest.approx(24.0, abs=0.3) and out[2].start == pytest.approx(35.5, abs=0.3)
    # without a cut class both edges stop at the plain limit (the pause method; the change method leaves a
    # boundary whose change lies beyond the limit where it is)
    plain = refine_boundaries(segs, feats, CFG, 3.0, RefineConfig(method="pause"))
    assert plain[1].start == pytest.approx(23.0, abs=1e-6) and plain[2].start == pytest.approx(37.0, abs=1e-6)
    # and no further than shrink_factor x the limit
    wide = RefineConfig(context_seconds=3.0)  # so the change is visible from the plain limit's edge
    capped = refine_boundaries(segs, feats, CFG, 1.8, config=wide, shrink_label="ad")
    assert capped[1].start == pytest.approx(23.6, abs=0.07) and capped[2].start == pytest.approx(
        36.4, abs=0.07
    )


def test_an_ad_grows_by_the_configured_fraction_of_the_limit():
    # the true ad is 2 s wider on each side than the found one
    feats, segs = ad_features(found=(22.0, 38.0), true=(20.0, 40.0))
    half = refine_boundaries(segs, feats, CFG, 3.0, config=RefineConfig(grow_fraction=0.5), shrink_label="ad")
    assert half[1].start == pytest.approx(20.5, abs=1e-6) and half[2].start == pytest.approx(39.5, abs=1e-6)
    # by default (edges already corrected by the measured offsets) it reaches the whole limit
    free = refine_boundaries(segs, feats, CFG, 3.0, shrink_label="ad")
    assert free[1].start == pytest.approx(20.0, abs=0.3) and free[2].start == pytest.approx(40.0, abs=0.3)


def test_change_curve_in_blocks_equals_the_whole_episode_formula(monkeypatch):
    from adcut.detect import refine

    rng = np.random.default_rng(0)
    features = (rng.standard_normal((1000, 30)) * 4 + 2).astype(np.float32)
    features[400:] += 3.0  # a change at frame 400
    width = 32
    z = features[:, :10].astype(np.float64)
    z = (z - z.mean(axis=0)) / (z.std(axis=0) + 1e-9)
    expected = np.zeros(len(z))
    for f in range(len(z)):
        lo, hi = max(0, f - width), min(len(z), f + width)
        if f - lo >= width // 2 and hi - f >= width // 2:
            expected[f] = np.linalg.norm(z[f:hi].mean(axis=0) - z[lo:f].mean(axis=0))
    for block in (7, 64, 333, 5000):  # block edges inside the context, and one block for all
        monkeypatch.setattr(refine, "_CHANGE_BLOCK", block)
        jump = refine.change_curve(features, 10, width)
        np.testing.assert_allclose(jump, expected, atol=1e-9)
        assert abs(int(jump.argmax()) - 400) <= 2
