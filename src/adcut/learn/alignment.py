"""Where in its window a model's decision points, measured on held-out episodes after training.

A classifier sees a whole window but need not judge all of it equally: an LSTM that decides at its
last time step mostly reflects the window's last seconds. ``segment.detect`` places each window's
probability at ``start + anchor * window length``; a wrong anchor shifts every boundary. So the
anchor is measured per model on its validation episodes (the one that makes the probability curve
agree best with the true labels) and stored in the checkpoint as ``metrics["window_anchor"]``.

One anchor moves both edges of an ad the same way, but a window classifier also widens ads: any
window holding a few seconds of ad music tends to say "ad", so ads come out seconds too early at
their start and too late at their end (measured on generated episodes: starts 0.2-2.6 s early,
ends 1-4 s late), and content next to every ad is cut. So the shift of the curve that agrees best
with the truth around ad starts, and the one around ad ends, are measured too and stored as
``metrics["edge_offsets"]`` (``{"start": s, "end": s}``, predicted minus true; a second of content
taken for ad costs ``CONTENT_CUT_WEIGHT`` seconds of ad missed); ``shift_edges``
moves each detected edge back by its offset before refinement.
"""

from __future__ import annotations

import numpy as np

from adcut.core.segments import Segment, fill_background
from adcut.core.units import Seconds
from adcut.detect.edges import EDGE_KINDS
from adcut.features.mfcc import window_starts, windows

ANCHOR_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)


CURVE_STEP_SECONDS = 0.25


MEASURE_HOP_SECONDS = 1.0


# Edge offsets: agreement is counted within this many seconds of each true edge, for curve shifts
# of up to as many seconds either way (half a window: a window can be wrong by at most that much
# about an edge it sees).
EDGE_REACH_SECONDS = 4.0


# A second of content cut counts this many seconds of ad kept when choosing the offsets: the user's
# cost (cutting the show is worse than hearing a second of ad), and it keeps a noisy measurement on
# few validation edges from stopping short. Measured on two benchmark models: weight 1 found ad
# starts 0.0 s early where the test episodes had them ~2 s early (content removed 6.6 s/h); weight
# 1.5-4 found 1.75 s (2.8 s/h); the other model measured the same at every weight.
CONTENT_CUT_WEIGHT = 2.0


def truth_per_step(
    segments: list[Segment], classes: tuple[str, ...], step: float, n_steps: int
) -> np.ndarray:
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


def true_edges(truth: np.ndarray, cls: int) -> dict[str, np.ndarray]:
    """Step indices where class ``cls`` starts and ends (the first step after the change)."""
    inside = truth == cls
    change = np.flatnonzero(inside[1:] != inside[:-1]) + 1
    return {"start": change[inside[change]], "end": change[~inside[change]]}


def edge_cost(
    predicted: np.ndarray,
    truth: np.ndarray,
    edges: np.ndarray,
    reach: int,
    cls: int = 0,
    content_weight: float = CONTENT_CUT_WEIGHT,
) -> np.ndarray:
    """Per shift ``d`` in ``-reach..reach``: the cost of reading ``predicted[k + d]`` for ``truth[k]``
    at the steps within ``reach`` of each edge: ``content_weight`` per step of other audio taken for
    class ``cls`` (content cut), 1 per step of ``cls`` missed (ad kept).

    The cheapest ``d`` is how many steps late the prediction is around these edges.
    """
    n = len(truth)
    costs = np.zeros(2 * reach + 1)
    for edge in edges:
        k = np.arange(max(0, edge - reach), min(n, edge + reach))
        is_cls = truth[k] == cls
        for i, d in enumerate(range(-reach, reach + 1)):
            says_cls = predicted[np.clip(k + d, 0, n - 1)] == cls
            costs[i] += content_weight * np.sum(says_cls & ~is_cls) + np.sum(~says_cls & is_cls)
    return costs


def best_shift(costs: np.ndarray, step: Seconds) -> Seconds:
    """The cheapest shift (seconds); ties go to the smallest shift."""
    reach = (len(costs) - 1) // 2
    shifts = np.arange(-reach, reach + 1)
    candidates = shifts[costs == costs.min()]
    return float(candidates[np.argmin(np.abs(candidates))] * step)


def _validation_episodes(model, dataset, device: str, batch_size: int):
    """Per validation episode with more than one class: ``(probs, starts, truth steps, duration)``."""
    from adcut.learn.sources import VALIDATION
    from adcut.models.inference import predict_windows

    fcfg = dataset.feature_config
    hop_frames = max(1, round(MEASURE_HOP_SECONDS / fcfg.frame_seconds))
    for number, episode in enumerate(dataset.episodes):
        if episode.get("split") != VALIDATION:
            continue
        duration = float(episode["duration"])
        segments = fill_background(
            [Segment.from_dict(s) for s in episode["segments"]],
            duration,
            dataset.config.background,
        )
        if len({s.label for s in segments}) < 2:
            continue  # one class throughout: every anchor agrees equally
        n_frames = int(episode["n_frames"])
        offset = int(dataset.offsets[number])
        features = dataset.frames[offset : offset + max(n_frames, fcfg.window_frames)]
        starts = window_starts(n_frames, fcfg.window_frames, hop_frames)
        probs = predict_windows(
            model, windows(features, starts, fcfg.window_frames), batch_size=batch_size, device=device
        )
        n_steps = max(1, int(np.ceil(duration / CURVE_STEP_SECONDS - 1e-9)))
        yield probs, starts, truth_per_step(segments, dataset.classes, CURVE_STEP_SECONDS, n_steps), duration


def measure_alignment(model, dataset, *, device: str = "cpu", batch_size: int = 256) -> dict | None:
    """``{"window_anchor": a, "edge_offsets": {"start": s, "end": s}}`` measured on ``dataset``'s
    validation episodes, or None when they have no class change.

    The anchor first (frame agreement over whole episodes); then, at that anchor, how late the
    argmax curve is around true ad starts and around true ad ends (``edge_cost``).
    """
    from adcut.detect.windows import window_curve

    fcfg = dataset.feature_config
    episodes = list(_validation_episodes(model, dataset, device, batch_size))
    if not episodes:
        return None

    def predicted(probs, starts, duration, anchor):
        curve = window_curve(
            probs, starts, fcfg.window_frames, fcfg.frame_seconds, float(anchor), CURVE_STEP_SECONDS, duration
        )
        return curve.argmax(axis=1)

    agreement = np.zeros(len(ANCHOR_GRID))
    for probs, starts, truth, duration in episodes:
        for i, anchor in enumerate(ANCHOR_GRID):
            agreement[i] += int((predicted(probs, starts, duration, anchor) == truth).sum())
    anchor = best_anchor(agreement)
    reach = int(round(EDGE_REACH_SECONDS / CURVE_STEP_SECONDS))
    costs = {kind: np.zeros(2 * reach + 1) for kind in EDGE_KINDS}
    found = {kind: False for kind in EDGE_KINDS}
    for probs, starts, truth, duration in episodes:
        guess = predicted(probs, starts, duration, anchor)
        for kind, edges in true_edges(truth, 0).items():
            costs[kind] += edge_cost(guess, truth, edges, reach)
            found[kind] |= len(edges) > 0
    offsets = {kind: best_shift(costs[kind], CURVE_STEP_SECONDS) for kind in EDGE_KINDS if found[kind]}
    return {"window_anchor": anchor, "edge_offsets": offsets}


def measure_window_anchor(model, dataset, *, device: str = "cpu", batch_size: int = 256) -> float | None:
    """The best anchor on ``dataset``'s validation episodes, or None when they have no class change."""
    measured = measure_alignment(model, dataset, device=device, batch_size=batch_size)
    return None if measured is None else measured["window_anchor"]
