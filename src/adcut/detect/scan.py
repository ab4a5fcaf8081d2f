"""Which windows the model reads: every ``stride``-th window of the fine hop first, then every window
between two read ones that disagree or are unsure (coarse to fine).

Why: the reference LSTM costs 0.6-0.8 ms of CPU per window (numpy, one core), and at the 1 s hop an
hour is 3,600 windows: about as much CPU as decoding the MP3. Away from class changes neighbouring windows agree, so the
probability curve is flat there: reading every fourth window and interpolating between them
(``segment.window_curve`` does) leaves the segments as they were. Near a change, or wherever the model
is unsure, every window of the fine hop is read. ``benchmarks/segmentation_quality.py`` compares
the segments of both ways; ``stride`` 1 reads every window.

Read windows are at most half a window apart (``effective_stride``), so every stretch of audio lies
inside at least two read windows: a change the model reacts to shows in the read windows around it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Read every window between two coarse ones when either's most probable class is below this...
FILL_BELOW = 0.9
# ...or when any class's probability differs by more than this between them, or their classes differ.
FILL_CHANGE = 0.1


def effective_stride(stride: int, hop_frames: int, window_frames: int) -> int:
    """``stride`` limited so that read windows overlap by at least half a window."""
    return max(1, min(int(stride), (window_frames // 2) // max(1, hop_frames)))


def needs_fill(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """For rows of probabilities ``(n, classes)``: whether the windows between each pair must be read."""
    differ = left.argmax(axis=1) != right.argmax(axis=1)
    unsure = np.minimum(left.max(axis=1), right.max(axis=1)) < FILL_BELOW
    moved = np.abs(left - right).max(axis=1) > FILL_CHANGE
    return differ | unsure | moved


class CoarseToFineScan:
    """Reads windows as their features become final; ``result`` gives the read ones in time order.

    ``predict(features, starts) -> probabilities``; ``calibrate(probabilities)``: what the smoother
    will read (temperature scaling, ``review.calibrate_probs``), which the fill rule judges.
    ``advance`` is called with the starts of the fine windows that are final so far (a growing
    prefix of the episode's ``window_starts``), the last time with all of them and ``final=True``
    (the episode's last window is always read). Calls must not overlap
    (``segment.stream_window_probs`` runs them one after another on its model thread).
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
        stride: int,
        calibrate: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self.predict = predict
        self.calibrate = calibrate or (lambda probs: probs)
        self.stride = max(1, int(stride))
        self.considered = 0  # fine windows already looked at
        self.last: tuple[int, np.ndarray] | None = (
            None  # the latest read coarse window: (index, calibrated probabilities)
        )
        self.read_index: list[np.ndarray] = []
        self.read_probs: list[np.ndarray] = []

    def coarse_count(self, lo: int, hi: int) -> int:
        """Coarse windows among fine windows ``[lo, hi)``."""
        s = self.stride
        return max(0, (hi + s - 1) // s - (lo + s - 1) // s)

    def advance(self, features: np.ndarray, starts: np.ndarray, final: bool = False) -> None:
        n = len(starts)
        first = -(-self.considered // self.stride) * self.stride
        coarse = np.arange(first, n, self.stride, dtype=np.int64)
        if final and n and (coarse[-1] if len(coarse) else (self.last or (-1,))[0]) != n - 1:
            coarse = np.append(coarse, n - 1)
        self.considered = n
        if not len(coarse):
            return
        probs = np.asarray(self.predict(features, starts[coarse]))
        self._keep(coarse, probs)
        # Pairs of neighbouring coarse windows (the previous call's last one included) and their gaps.
        index, rows = coarse, self.calibrate(probs)
        if self.last is not None:
            index = np.r_[self.last[0], coarse]
            rows = np.concatenate([self.last[1][None], rows])
        self.last = (int(coarse[-1]), rows[-1])
        gaps = (np.diff(index) > 1) & needs_fill(rows[:-1], rows[1:])
        if gaps.any():
            fill = np.concatenate([np.arange(a + 1, b) for a, b in zip(index[:-1][gaps], index[1:][gaps])])
            self._keep(fill, np.asarray(self.predict(features, starts[fill])))

    def _keep(self, index: np.ndarray, probs: np.ndarray) -> None:
        self.read_index.append(index)
        self.read_probs.append(probs)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(indices into the fine starts, probabilities)`` of every read window, in time order."""
        if not self.read_index:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        index = np.concatenate(self.read_index)
        order = np.argsort(index, kind="stable")
        return index[order], np.concatenate(self.read_probs)[order]
