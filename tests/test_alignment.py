from types import SimpleNamespace

import numpy as np
import pytest
import torch

from adcut.core.segments import Segment
from adcut.detect.config import SegmentationConfig
from adcut.detect.edges import shift_edges
from adcut.detect.pipeline import align_edges
from adcut.detect.smoothing import SmoothingConfig
from adcut.features.mfcc import FeatureConfig
from adcut.learn.alignment import (
    ANCHOR_GRID,
    best_anchor,
    best_shift,
    edge_cost,
    measure_alignment,
    measure_window_anchor,
    true_edges,
)


class LooksAt(torch.nn.Module):
    """A stand-in model whose decision is the class marked at one fixed frame of its window."""

    def __init__(self, fraction: float):
        super().__init__()
        self.fraction = fraction

    def forward(self, x):  # (B, T, F) -> (B, 2); feature 0 is 1 inside ads
        frame = min(x.shape[1] - 1, int(self.fraction * x.shape[1]))
        p_ad = x[:, frame, 0].clamp(0.02, 0.98)
        return torch.log(torch.stack([p_ad, 1 - p_ad], dim=1))


class Widens(torch.nn.Module):
    """A stand-in model that says "ad" when any frame within ``spread`` seconds of its window's centre
    is ad: its ads come out ``spread`` seconds too wide on each side, as a window classifier's do."""

    def __init__(self, spread: float):
        super().__init__()
        self.spread_frames = int(round(spread / FeatureConfig().frame_seconds))

    def forward(self, x):
        centre = x.shape[1] // 2
        near = x[:, centre - self.spread_frames : centre + self.spread_frames + 1, 0]
        p_ad = near.max(dim=1).values.clamp(0.02, 0.98)
        return torch.log(torch.stack([p_ad, 1 - p_ad], dim=1))


def fake_dataset(ads, duration=200.0):
    cfg = FeatureConfig()
    n_frames = int(duration / cfg.frame_seconds)
    frames = np.zeros((n_frames, cfg.n_features), np.float32)
    times = np.arange(n_frames) * cfg.frame_seconds
    for start, end in ads:
        frames[(times >= start) & (times < end), 0] = 1.0
    episode = {
        "split": "validation",
        "duration": duration,
        "n_frames": n_frames,
        "segments": [{"label": "ad", "start": s, "end": e} for s, e in ads],
    }
    return SimpleNamespace(
        feature_config=cfg,
        episodes=[episode],
        offsets=np.array([0]),
        frames=frames,
        classes=("ad", "content"),
        config=SimpleNamespace(background="content"),
    )


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_measured_anchor_is_where_the_model_looks(fraction):
    dataset = fake_dataset([(40.0, 70.0), (120.0, 150.0)])
    assert measure_window_anchor(LooksAt(fraction), dataset) == pytest.approx(
        fraction, abs=0.051
    )  # one grid step


def test_no_class_change_means_no_measurement():
    dataset = fake_dataset([])
    assert measure_window_anchor(LooksAt(0.5), dataset) is None


def test_ties_go_to_the_centre():
    agreement = np.zeros(len(ANCHOR_GRID))
    agreement[[2, 12, 19]] = 5
    assert best_anchor(agreement) == ANCHOR_GRID[12]


def test_a_model_that_finds_centred_edges_needs_no_offsets():
    measured = measure_alignment(LooksAt(0.5), fake_dataset([(40.0, 70.0), (120.0, 150.0)]))
    assert measured["window_anchor"] == pytest.approx(0.5, abs=0.051)
    assert measured["edge_offsets"]["start"] == pytest.approx(0.0, abs=0.5)
    assert measured["edge_offsets"]["end"] == pytest.approx(0.0, abs=0.5)


def test_ads_found_two_seconds_wide_on_each_side_are_measured():
    measured = measure_alignment(Widens(2.0), fake_dataset([(40.0, 70.0), (120.0, 150.0)]))
    assert measured["window_anchor"] == pytest.approx(0.5, abs=0.051)  # symmetric widening: no shift
    assert measured["edge_offsets"]["start"] == pytest.approx(-2.0, abs=0.5)  # starts 2 s early
    assert measured["edge_offsets"]["end"] == pytest.approx(2.0, abs=0.5)  # ends 2 s late


def tiling(*spans):
    return [Segment(a, b, label) for a, b, label in spans]


def test_measured_offsets_move_wide_ads_back_to_their_true_edges():
    wide = tiling(
        (0, 38, "content"), (38, 72, "ad"), (72, 118, "content"), (118, 152, "ad"), (152, 200, "content")
    )
    fixed = shift_edges(wide, "ad", {"start": -2.0, "end": 2.0})
    assert [(s.start, s.end) for s in fixed if s.label == "ad"] == [(40, 70), (120, 150)]
    assert (
        fixed[0].start == 0 and fixed[-1].end == 200 and [s.label for s in fixed] == [s.label for s in wide]
    )


def test_shifting_never_makes_a_segment_shorter_than_its_minimum():
    short = tiling((0, 40, "content"), (40, 52, "ad"), (52, 100, "content"))
    fixed = shift_edges(short, "ad", {"start": -2.0, "end": 2.0}, {"ad": 10.0, "content": 20.0})
    assert (fixed[1].start, fixed[1].end) == (41, 51)  # both moves halved: the ad keeps its 10 s
    shorter = tiling((0, 40, "content"), (40, 48, "ad"), (48, 100, "content"))
    assert shift_edges(shorter, "ad", {"start": -2.0, "end": 2.0}, {"ad": 10.0}) == shorter  # already short


def test_detection_applies_the_checkpoints_offsets_unless_turned_off():
    wide = tiling((0, 38, "content"), (38, 72, "ad"), (72, 200, "content"))
    checkpoint = SimpleNamespace(metrics={"edge_offsets": {"start": -2.0, "end": 2.0}})
    config = SegmentationConfig(smoothing=SmoothingConfig(min_ad_seconds=10.0, min_content_seconds=20.0))
    assert align_edges(wide, checkpoint, config, ("ad", "content"))[1] == Segment(40, 70, "ad")
    off = SegmentationConfig(
        smoothing=SmoothingConfig(min_ad_seconds=10.0, min_content_seconds=20.0), edge_offsets=False
    )
    assert align_edges(wide, checkpoint, off, ("ad", "content")) == wide
    assert (
        align_edges(wide, SimpleNamespace(metrics={}), config, ("ad", "content")) == wide
    )  # older checkpoints


def test_content_taken_for_ad_costs_more_than_ad_missed():
    truth = np.array([1] * 20 + [0] * 20 + [1] * 20)  # ad (class 0) from step 20 to 40
    early = np.array([1] * 18 + [0] * 22 + [1] * 20)  # ad starts 2 steps early
    late = np.array([1] * 22 + [0] * 18 + [1] * 20)  # ad starts 2 steps late
    starts = true_edges(truth, 0)["start"]
    assert list(starts) == [20]
    reach = 4
    assert edge_cost(early, truth, starts, reach, content_weight=3.0)[reach] == 6.0  # 2 steps of content cut
    assert edge_cost(late, truth, starts, reach, content_weight=3.0)[reach] == 2.0  # 2 steps of ad kept
    assert best_shift(edge_cost(early, truth, starts, reach), 0.25) == -0.5  # 2 steps early
