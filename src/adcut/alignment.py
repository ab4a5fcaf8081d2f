"""Where in its window a model's decision points, measured on held-out episodes after training.

A classifier sees a whole window but need not judge all of it equally: an LSTM that decides at its
last time step mostly reflects the window's last seconds. ``segment.detect`` places each window's
probability at ``start + anchor * window length``; a wrong anchor shifts every boundary. So the
anchor is measured per model on its validation episodes (the one that makes the probability curve
agree best with the true labels) and stored in the checkpoint as ``metrics["window_anchor"]``.
"""

from __future__ import annotations

import numpy as np

from adcut.features import window_starts, windows
from adcut.labels import Segment, fill_background

ANCHOR_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)
CURVE_STEP_SECONDS = 0.25
MEASURE_HOP_SECONDS = 1.0


def truth_per_step(segments: list[Segment], classes: tuple[str, ...], step: float, n_steps: int) -> np.ndarray:
    """Class index at the centre of each step."""
    centres = (np.arange(n_steps) + 0.5) * step
    truth = np.zeros(n_steps, dtype=np.int64)
    for seg in segments:
        truth[(centres >= seg.start) & (centres < seg.end)] = classes.index(seg.label)
    return truth


def best_anchor(agreement: np.ndarray) -> float:
    """The anchor with the most agreeing steps; ties go to the one nearest the window's centre."""
    best = agreement.max()
    candidates = ANCHOR_GRID[agreement == best]
    return float(candidates[np.argmin(np.abs(candidates - 0.5))])


def measure_window_anchor(model, dataset, *, device: str = "cpu", batch_size: int = 256) -> float | None:
    """The best anchor on ``dataset``'s validation episodes, or None when they have no class change."""
    from adcut.dataset import VALIDATION
    from adcut.inference import predict_windows
    from adcut.segment import window_curve

    fcfg = dataset.feature_config
    hop_frames = max(1, round(MEASURE_HOP_SECONDS / fcfg.frame_seconds))
    agreement = np.zeros(len(ANCHOR_GRID))
    informative = False
    for number, episode in enumerate(dataset.episodes):
        if episode.get("split") != VALIDATION:
            continue
        duration = float(episode["duration"])
        segments = fill_background(
            [Segment(float(s["start"]), float(s["end"]), str(s["label"])) for s in episode["segments"]],
            duration, dataset.config.background,
        )
        if len({s.label for s in segments}) < 2:
            continue  # one class throughout: every anchor agrees equally
        informative = True
        n_frames = int(episode["n_frames"])
        offset = int(dataset.offsets[number])
        features = dataset.frames[offset : offset + max(n_frames, fcfg.window_frames)]
        starts = window_starts(n_frames, fcfg.window_frames, hop_frames)
        probs = predict_windows(model, windows(features, starts, fcfg.window_frames), batch_size=batch_size, device=device)
        n_steps = max(1, int(np.ceil(duration / CURVE_STEP_SECONDS - 1e-9)))
        truth = truth_per_step(segments, dataset.classes, CURVE_STEP_SECONDS, n_steps)
        for i, anchor in enumerate(ANCHOR_GRID):
            curve = window_curve(probs, starts, fcfg.window_frames, fcfg.frame_seconds, float(anchor), CURVE_STEP_SECONDS, duration)
            agreement[i] += int((curve.argmax(axis=1) == truth).sum())
    return best_anchor(agreement) if informative else None
