"""The window index: which class each window is, windows gathered from the features, and the
reference's half-swap augmentation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from adcut.core.segments import Segment
from adcut.core.units import Seconds
from adcut.features.mfcc import FeatureConfig


def window_labels(
    segments: Sequence[Segment],
    starts: np.ndarray,
    n_frames: int,
    duration: Seconds,
    feature_config: FeatureConfig,
    classes: Sequence[str],
    keep_straddling: bool,
) -> np.ndarray:
    """Class index of each window, or -1 for a window that straddles a boundary (when not kept).

    A window is one class when that class covers all of it but at most one frame's time (label
    times are not frame-exact); otherwise it straddles, and ``keep_straddling`` gives it the
    majority class.
    """
    fs = feature_config.frame_seconds
    t0 = starts * fs
    t1 = np.minimum((starts + feature_config.window_frames) * fs, max(duration, fs))
    cover = np.zeros((len(starts), len(classes)))
    for seg in segments:
        c = classes.index(seg.label)
        cover[:, c] += np.clip(np.minimum(t1, seg.end) - np.maximum(t0, seg.start), 0.0, None)
    best = cover.argmax(axis=1)
    pure = cover.max(axis=1) >= (t1 - t0) - fs
    labels = best.astype(np.int64)
    if not keep_straddling:
        labels[~pure] = -1
    return labels


@dataclass(frozen=True)
class WindowSamples:
    """Windows to gather from the concatenated features: frames ``first .. first+cut`` then ``second ..``.

    Plain windows have ``cut == window_frames``; half-swapped ones join the second half of one
    window (``first``) to the first half of another (``second``).
    """

    first: np.ndarray  # global frame positions
    second: np.ndarray
    cut: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def take(self, index: np.ndarray) -> WindowSamples:
        return WindowSamples(self.first[index], self.second[index], self.cut[index], self.label[index])


def gather_windows(frames: np.ndarray, samples: WindowSamples, window_frames: int) -> np.ndarray:
    """``(n, window_frames, features)`` windows of ``samples`` from the concatenated ``frames``."""
    t = np.arange(window_frames, dtype=np.int64)[None, :]
    cut = samples.cut[:, None]
    index = np.where(t < cut, samples.first[:, None] + t, samples.second[:, None] + t - cut)
    return frames[index]


def plain_plus_half_swaps(
    plain: WindowSamples, window_frames: int, n_classes: int, seed: int
) -> WindowSamples:
    """The reference augmentation: new windows = second half of one window + first half of another, same class.

    Each smaller class is topped up to the size of the largest, so sampling can then be uniform.
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(plain.label, minlength=n_classes)
    target = counts.max(initial=0)
    half = window_frames // 2
    parts = [plain]
    for c in range(n_classes):
        members = np.flatnonzero(plain.label == c)
        missing = target - len(members)
        if missing <= 0 or len(members) < 2:
            continue
        a = rng.choice(members, missing)
        b = rng.choice(members, missing)
        same = a == b
        b[same] = members[(np.searchsorted(members, b[same]) + 1) % len(members)]  # two different windows
        first = plain.first[a] + half  # the second half of window a ...
        cut = np.full(missing, window_frames - half, np.int64)  # ... fills the new window up to here
        parts.append(WindowSamples(first, plain.first[b], cut, np.full(missing, c, np.int64)))
    return WindowSamples(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(WindowSamples))
    )
