"""Move each segment boundary to the nearby point where the audio really changes (feature jump, then pause).

A boundary found from window probabilities is uncertain by a second or more. Within
``max_shift_seconds`` of it (and never past the neighbouring boundaries) we look for

1. the frame where the mean feature vector of the ``context_seconds`` before differs most from
   that of the ``context_seconds`` after (MFCCs standardised over the episode) -- where one kind
   of audio gives way to another; then
2. the real pause (``min_dip_db`` below the surrounding level; MFCC c0 is log energy) nearest to
   that frame within ``snap_seconds``: cuts belong in pauses, and the middle of the pause is the
   safest place for a cut.

Boundaries with no clear jump nearby (below ``min_jump_ratio`` x the episode's median) or an empty
search region keep their place. The result tiles the same span.

Removing an ad must not cost content, so the search is asymmetric around segments of the cut class
(``shrink_label``, the ad): it reaches only ``grow_fraction`` of the limit outwards (growing the
ad), and when the jump is still rising at the inward limit it follows it up to ``shrink_factor`` x
the limit into the ad. Window probabilities smear an ad outwards, so its true edges lie inside.
Detection first moves ad edges back by the model's measured edge offsets (learn/alignment.py), so
by default the ad may grow by the whole limit (``grow_fraction`` 1) and only the inward follow-up
stays asymmetric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from adcut.core.segments import Segment
from adcut.core.units import Seconds


@dataclass(frozen=True)
class RefineConfig:
    max_shift_seconds: Seconds = 3.0  # how far a boundary may move (detection's limit; see refine_boundaries)
    context_seconds: Seconds = 2.0  # audio compared on each side of a candidate point
    snap_seconds: Seconds = 0.75  # how far from the feature jump a pause may be
    min_dip_db: float = 6.0  # a pause is this much quieter than its surroundings
    min_gap_seconds: Seconds = 1.0  # a moved boundary stays this far from its neighbours
    # A jump counts only if this many times the episode's median jump (real breaks in generated
    # episodes measure 4-6x; 2x is exceeded by only ~10% of ordinary frames).
    min_jump_ratio: float = 2.0
    # A segment of the cut class (``shrink_label``) may shrink by up to this many times the shift limit
    # (but grow by the limit only) when the feature jump is still rising at the limit: cutting ads
    # must not cost content, and window probabilities spread ads outwards (measured on generated
    # episodes before refinement: ad ends found 1-4 s late, starts 0.5-2.6 s early).
    shrink_factor: float = 2.0
    # ... and may grow by this fraction of the limit. Before detection moved ad edges back by their
    # measured offsets (learn/alignment.py), 0.5 helped (content removed 6.7 -> 6.1 and 7.4 -> 6.6 s/h);
    # after it, 0.5 left ads too short where the model ends them early (two benchmark models,
    # content removed / ad kept s/h: 0.5: 2.8 / 3.5 and 2.8 / 32.4; 1.0: 2.8 / 3.5 and 2.8 / 9.5).
    grow_fraction: float = 1.0


def _moving_mean(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along axis 0 (edges use the available frames)."""
    width = max(1, width)
    csum = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(values, axis=0)])
    n = len(values)
    lo = np.clip(np.arange(n) - width // 2, 0, n)
    hi = np.clip(np.arange(n) - width // 2 + width, 0, n)
    return (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1).reshape((-1,) + (1,) * (values.ndim - 1))


# Frames per block of change_curve: whole-episode float64 temporaries would cost ~30 MB per hour.
_CHANGE_BLOCK = 8192


def change_curve(features: np.ndarray, n_mfcc: int, context_frames: int) -> np.ndarray:
    """Per frame ``f``: distance between the mean standardised MFCCs of ``[f-W, f)`` and ``[f, f+W)``.

    Computed block by block (each block reads ``W`` frames beyond its ends), so memory stays small
    for multi-hour episodes.
    """
    n = len(features)
    mfcc = features[:, :n_mfcc]
    total = np.zeros(mfcc.shape[1])
    squares = np.zeros(mfcc.shape[1])
    for a in range(0, n, _CHANGE_BLOCK):
        block = mfcc[a : a + _CHANGE_BLOCK].astype(np.float64)
        total += block.sum(axis=0)
        squares += (block * block).sum(axis=0)
    mean = total / max(n, 1)
    std = np.sqrt(np.maximum(squares / max(n, 1) - mean * mean, 0.0))
    jump = np.zeros(n)
    for a in range(0, n, _CHANGE_BLOCK):
        b = min(n, a + _CHANGE_BLOCK)
        lo_read, hi_read = max(0, a - context_frames), min(n, b + context_frames)
        z = (mfcc[lo_read:hi_read].astype(np.float64) - mean) / (std + 1e-9)
        csum = np.concatenate([np.zeros((1, z.shape[1])), np.cumsum(z, axis=0)])
        f = np.arange(a, b)
        lo = np.maximum(f - context_frames, 0)
        hi = np.minimum(f + context_frames, n)
        before = (csum[f - lo_read] - csum[lo - lo_read]) / np.maximum(f - lo, 1)[:, None]
        after = (csum[hi - lo_read] - csum[f - lo_read]) / np.maximum(hi - f, 1)[:, None]
        jump[a:b] = np.linalg.norm(after - before, axis=1)
        jump[a:b][(f - lo < context_frames // 2) | (hi - f < context_frames // 2)] = 0.0  # too little audio on one side
    return jump


def energy_db(features: np.ndarray, n_mels: int) -> np.ndarray:
    """Mean mel log-power in dB per frame, from MFCC c0 (orthonormal DCT: c0 = sqrt(n_mels) * mean dB)."""
    return features[:, 0].astype(np.float64) / np.sqrt(n_mels)


def refine_boundaries(
    segments: Sequence[Segment],
    features: np.ndarray,
    feature_config,
    max_shift_seconds: Seconds = 3.0,
    config: RefineConfig = RefineConfig(),
    min_seconds: Mapping[str, Seconds] | None = None,
    shrink_label: str | None = None,
) -> list[Segment]:
    """``segments`` (a tiling) with each class change moved to the best nearby change point.

    With ``min_seconds`` (class -> shortest allowed segment, as the smoother used), no move makes
    a segment shorter than its class minimum (or than it already was, if it was shorter).
    Boundaries of ``shrink_label`` segments (the class that is cut) may move into that segment by
    up to ``config.shrink_factor`` x ``max_shift_seconds`` and out of it by ``max_shift_seconds``.
    """
    min_seconds = min_seconds or {}
    segments = list(segments)
    if len(segments) < 2 or max_shift_seconds <= 0 or len(features) == 0:
        return segments
    frame = feature_config.frame_seconds
    n = len(features)
    context = max(2, int(round(config.context_seconds / frame)))
    jump = change_curve(features, feature_config.n_mfcc, context)
    threshold = config.min_jump_ratio * float(np.median(jump[jump > 0])) if (jump > 0).any() else np.inf
    level = _moving_mean(energy_db(features, feature_config.n_mels), max(1, int(round(0.25 / frame))))
    surround = _moving_mean(level, 2 * context)

    times = [s.start for s in segments[1:]]
    moved = list(times)
    start, end = segments[0].start, segments[-1].end
    for i, t in enumerate(times):
        if segments[i].label == segments[i + 1].label:
            continue
        before = moved[i - 1] if i else start
        after = times[i + 1] if i + 1 < len(times) else end
        keep_left = max(config.min_gap_seconds, min(min_seconds.get(segments[i].label, 0.0), t - before))
        keep_right = max(config.min_gap_seconds, min(min_seconds.get(segments[i + 1].label, 0.0), after - t))
        grow = max_shift_seconds * min(1.0, config.grow_fraction)  # an ad may grow by this much only
        left = max(t - (grow if segments[i + 1].label == shrink_label else max_shift_seconds), before + keep_left)
        right = min(t + (grow if segments[i].label == shrink_label else max_shift_seconds), after - keep_right)
        # Frame f's time is f * frame (features are centred frames).
        lo, hi = int(np.ceil(left / frame)), int(np.floor(right / frame))
        lo, hi = max(lo, 0), min(hi, n - 1)
        if hi < lo:
            continue
        best = lo + int(jump[lo : hi + 1].argmax())
        # Into a segment of the cut class, follow a jump that is still rising at the limit.
        inward = max_shift_seconds * max(1.0, config.shrink_factor)
        if segments[i].label == shrink_label and best == lo:
            left = max(t - inward, before + keep_left)
            lo = max(0, min(lo, int(np.ceil(left / frame))))
            while best > lo and jump[best - 1] >= jump[best]:
                best -= 1
        elif segments[i + 1].label == shrink_label and best == hi:
            right = min(t + inward, after - keep_right)
            hi = min(n - 1, max(hi, int(np.floor(right / frame))))
            while best < hi and jump[best + 1] >= jump[best]:
                best += 1
        if jump[best] < threshold:
            continue
        best = _snap_to_pause(best, lo, hi, level, surround, int(round(config.snap_seconds / frame)), config.min_dip_db)
        moved[i] = float(min(max(best * frame, left), right))

    out = []
    edges = [start] + moved + [end]
    for seg, a, b in zip(segments, edges, edges[1:]):
        out.append(Segment(a, b, seg.label))
    return out


def _snap_to_pause(best: int, lo: int, hi: int, level: np.ndarray, surround: np.ndarray, snap: int, min_dip_db: float) -> int:
    """The middle of the real pause nearest to frame ``best`` within ``snap`` frames (and ``[lo, hi]``), else ``best``.

    The nearest pause, not the quietest: the pause that marks a break sits at the feature jump,
    while the speech on either side has pauses of its own that are often deeper (measured on
    generated episodes: taking the quietest pulled ad ends ~0.5-1 s into the content after).
    """
    a, b = max(lo, best - snap), min(hi, best + snap)
    if b < a:
        return best
    is_pause = surround[a : b + 1] - level[a : b + 1] >= min_dip_db
    if not is_pause.any():
        return best
    candidates = np.flatnonzero(is_pause)
    nearest = int(candidates[np.abs(candidates - (best - a)).argmin()])
    run_lo = run_hi = nearest
    while run_lo > 0 and is_pause[run_lo - 1]:
        run_lo -= 1
    while run_hi < len(is_pause) - 1 and is_pause[run_hi + 1]:
        run_hi += 1
    return a + (run_lo + run_hi) // 2
