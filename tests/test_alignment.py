from types import SimpleNamespace

import numpy as np
import pytest
import torch

from adcut.alignment import best_anchor, measure_window_anchor, ANCHOR_GRID
from adcut.features import FeatureConfig


class LooksAt(torch.nn.Module):
    """A stand-in model whose decision is the class marked at one fixed frame of its window."""

    def __init__(self, fraction: float):
        super().__init__()
        self.fraction = fraction

    def forward(self, x):  # (B, T, F) -> (B, 2); feature 0 is 1 inside ads
        frame = min(x.shape[1] - 1, int(self.fraction * x.shape[1]))
        p_ad = x[:, frame, 0].clamp(0.02, 0.98)
        return torch.log(torch.stack([p_ad, 1 - p_ad], dim=1))


def fake_dataset(ads, duration=200.0):
    cfg = FeatureConfig()
    n_frames = int(duration / cfg.frame_seconds)
    frames = np.zeros((n_frames, cfg.n_features), np.float32)
    times = np.arange(n_frames) * cfg.frame_seconds
    for start, end in ads:
        frames[(times >= start) & (times < end), 0] = 1.0
    episode = {"split": "validation", "duration": duration, "n_frames": n_frames,
               "segments": [{"label": "ad", "start": s, "end": e} for s, e in ads]}
    return SimpleNamespace(feature_config=cfg, episodes=[episode], offsets=np.array([0]), frames=frames,
                           classes=("ad", "content"), config=SimpleNamespace(background="content"))


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_measured_anchor_is_where_the_model_looks(fraction):
    dataset = fake_dataset([(40.0, 70.0), (120.0, 150.0)])
    assert measure_window_anchor(LooksAt(fraction), dataset) == pytest.approx(fraction, abs=0.051)  # one grid step


def test_no_class_change_means_no_measurement():
    dataset = fake_dataset([])
    assert measure_window_anchor(LooksAt(0.5), dataset) is None


def test_ties_go_to_the_centre():
    agreement = np.zeros(len(ANCHOR_GRID))
    agreement[[2, 12, 19]] = 5
    assert best_anchor(agreement) == ANCHOR_GRID[12]
