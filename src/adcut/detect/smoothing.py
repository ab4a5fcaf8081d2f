"""Turn a per-step class-probability curve into segments that tile the episode (HMM, reference rules, none).

Step ``i`` of a curve covers ``[i * step_seconds, (i + 1) * step_seconds)``; the last segment is
stretched or clipped so that it ends exactly at the episode's duration.

Methods:
- ``hmm`` (default): an HMM with one state chain per class decoded by Viterbi. Class ``c`` gets
  ``D_c = ceil(min_seconds_c / step)`` chained sub-states, so once entered a class must last at
  least its minimum; leaving a class costs ``switch_penalty``. Emissions are the step's log
  probabilities weighted by ``step_seconds``, so the penalty is in "log-probability x seconds" and
  means the same whatever the step: with p = 0.9 vs 0.1 (log ratio 2.2) a switch needs about
  ``switch_penalty / 2.2`` seconds of evidence. A second of content cut costs ``content_cost``
  seconds of ad left in: every class but the first (the ad) gains ``log(content_cost)`` a second,
  so a step counts as ad only where the ad's odds exceed ``content_cost`` (the Bayes decision
  under that cost). Minimum durations also hold at the episode's start
  and end unless ``short_edges`` is set (then the first and last segment may be shorter). An episode
  shorter than a minimum may be a single segment of that class.
- ``reference``: the reference project's per-window argmax cleaned by the four "forgiving" rules of
  :func:`reference_rules`, on the curve averaged into ``reference_hop_seconds`` blocks (its window hop).
- ``none``: argmax per step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adcut.core.segments import DEFAULT_CLASSES, Segment, extend_tiling
from adcut.core.units import Seconds
from adcut.errors import AdcutError

METHODS = ("hmm", "reference", "none")
# Probabilities are clipped away from 0 so that one confident step cannot veto a whole path.
_PROB_FLOOR = 1e-4


# Minimum durations when neither the user nor the model's training labels say otherwise.
DEFAULT_MIN_AD_SECONDS: Seconds = 10.0
DEFAULT_MIN_CONTENT_SECONDS: Seconds = 20.0
# ``--prefer keep-content`` (the default): a second of content cut weighs 1.5 s of ad left in;
# ``remove-ads`` turns it round (detect.config.PREFERENCE_CONTENT_COST).
KEEP_CONTENT_COST = 1.5


@dataclass(frozen=True)
class SmoothingConfig:
    """How window probabilities become segments (see the module docstring)."""

    method: str = "hmm"
    # Minimum length of the first class (``ad``) and of every other class. None: the defaults above;
    # detection first fills in what the model's training labels taught (detect.config.resolve_minimums).
    min_ad_seconds: Seconds | None = None
    min_content_seconds: Seconds | None = None
    switch_penalty: float = 4.0  # log-probability x seconds of evidence a class change must overcome
    # Seconds of ad left in that weigh as much as one second of content cut (``--prefer`` sets it;
    # see PREFERENCE_CONTENT_COST). Measured on the hard generated set (benchmarks/segmentation_quality.py,
    # four models: two training seeds x 15 and 30 epochs): 1.5 lowered 2 x content cut + ad kept for
    # every model (by 9-29%), 2.0 too but left up to 2.4x more ad in where a model's ads sit near
    # p = 0.8; the models' probabilities are not calibrated well enough there to take the 2:1 of the
    # issue's targets at face value.
    content_cost: float = KEEP_CONTENT_COST
    short_edges: bool = False  # let the first / last segment be shorter than its class minimum
    reference_hop_seconds: Seconds = 4.096  # block length the reference rules run on
    reference_max_run: int = 5  # longest outlier run (in blocks) the reference rules flip

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise AdcutError(f"unknown smoothing method {self.method!r} (choose from {', '.join(METHODS)})")
        if not (math.isfinite(self.content_cost) and self.content_cost > 0):
            raise AdcutError(f"content cost must be a number > 0, not {self.content_cost!r}")
        for name in ("min_ad_seconds", "min_content_seconds", "switch_penalty"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise AdcutError(f"{name.replace('_', '-')} must be a number >= 0, not {value!r}")
        if not (self.reference_hop_seconds > 0):
            raise AdcutError("reference-hop-seconds must be > 0")

    @property
    def min_ad(self) -> Seconds:
        return DEFAULT_MIN_AD_SECONDS if self.min_ad_seconds is None else self.min_ad_seconds

    @property
    def min_content(self) -> Seconds:
        return DEFAULT_MIN_CONTENT_SECONDS if self.min_content_seconds is None else self.min_content_seconds

    def min_seconds(self, class_index: int) -> Seconds:
        return self.min_ad if class_index == 0 else self.min_content

    def minimums(self, classes: Sequence[str]) -> dict[str, Seconds]:
        """Class name -> minimum duration (the first class is the ad)."""
        return {c: self.min_seconds(i) for i, c in enumerate(classes)}

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


# --------------------------------------------------------------------------- entry point


def smooth(
    probs: np.ndarray,
    step_seconds: Seconds,
    duration: Seconds,
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    config: SmoothingConfig = SmoothingConfig(),
) -> list[Segment]:
    """Segments tiling ``[0, duration]`` from ``probs`` ``(n_steps, n_classes)`` one ``step_seconds`` apart."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise AdcutError(f"probabilities have shape {probs.shape}, expected (steps, {len(classes)})")
    if not step_seconds > 0:
        raise AdcutError("step_seconds must be > 0")
    if duration <= 0 or len(probs) == 0:
        return [Segment(0.0, max(duration, 0.0), classes[-1])] if duration > 0 else []
    if config.method == "reference":  # the reference project's rules, as they were
        return _reference_segments(probs, step_seconds, duration, classes, config)
    log_probs = np.log(np.clip(probs, _PROB_FLOOR, 1.0))
    if len(classes) > 1:
        log_probs[:, 1:] += math.log(config.content_cost)
    if config.method == "none":
        path = log_probs.argmax(axis=1)
    else:
        mins = [max(1, math.ceil(config.min_seconds(c) / step_seconds - 1e-9)) for c in range(len(classes))]
        path = viterbi_min_duration(
            log_probs * step_seconds,
            mins,
            config.switch_penalty,
            short_edges=config.short_edges,
        )
    return path_to_segments(path, step_seconds, duration, classes)


def path_to_segments(
    path: np.ndarray, step_seconds: Seconds, duration: Seconds, classes: Sequence[str]
) -> list[Segment]:
    """Runs of equal class indices in ``path`` as segments tiling ``[0, duration]``."""
    path = np.asarray(path)
    change = np.flatnonzero(np.diff(path)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(path)]])
    segments: list[Segment] = []
    for s, e in zip(starts, ends):
        start = 0.0 if s == 0 else float(min(s * step_seconds, duration))
        end = float(duration) if e == len(path) else float(min(e * step_seconds, duration))
        label = classes[int(path[s])]
        extend_tiling(segments, start, end, label)
    if segments and segments[-1].end < duration:
        segments[-1] = Segment(segments[-1].start, duration, segments[-1].label)
    return segments


# --------------------------------------------------------------------------- HMM


def viterbi_min_duration(
    log_emissions: np.ndarray, min_steps: Sequence[int], switch_penalty: float, *, short_edges: bool = False
) -> np.ndarray:
    """Most likely class per step when class ``c`` lasts at least ``min_steps[c]`` steps once entered.

    Equivalent to Viterbi over an expanded chain of ``min_steps[c]`` sub-states per class (the last
    one self-looping; leaving it costs ``switch_penalty``), but computed without materialising the
    chain: with ``C`` the cumulative emission sums, the score of being in class ``c``'s last
    sub-state at ``t`` minus ``C_c(t)`` is a running maximum of "entry scores" ``F_c(s)`` taken at
    ``s = t - D_c + 1``. Because every ``D_c >= L = min(D)``, blocks of ``L`` steps only need entry
    scores from before the block, so each block is one vectorised ``maximum.accumulate``.
    Memory is O(steps x classes); no (steps x sub-states) back-pointer table.
    """
    e = np.asarray(log_emissions, dtype=np.float64)
    n, k = e.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    d = np.minimum(np.maximum(np.asarray(min_steps, dtype=np.int64), 1), n)
    cum = np.cumsum(e, axis=0)  # C_c(t)
    neg = -np.inf
    # F[s, c]: best score of entering class c at step s, minus C_c(s) (so run scores are differences of C).
    entry = np.full((n, k), neg)
    entry_from = np.full((n, k), -1, dtype=np.int64)  # class left when entering c at s
    entry[0] = 0.0  # starting in class c at step 0: score C_c(0), i.e. F = 0
    mature = np.empty((n, k))  # M'_c(t): best score in c's last sub-state at t, minus C_c(t)
    from_entry = np.zeros((n, k), dtype=bool)  # M' at t came from a fresh entry (not the self-loop)
    before = np.full(k, 0.0 if short_edges else neg)  # M'_c(-1): short_edges starts "already mature"
    block = int(d.min())
    not_self = ~np.eye(k, dtype=bool)
    t0 = 0
    while t0 < n:
        t1 = min(t0 + block, n)
        times = np.arange(t0, t1)
        for c in range(k):
            idx = times - d[c] + 1
            cand = np.where(idx >= 0, entry[np.maximum(idx, 0), c], neg)
            run = np.maximum.accumulate(np.concatenate([[before[c]], cand]))
            mature[t0:t1, c] = run[1:]
            from_entry[t0:t1, c] = (cand >= run[:-1]) & (cand > neg)
        before = mature[t1 - 1].copy()
        # Entry scores for s in [t0 + 1, t1] need M at s - 1, all known now.
        s = np.arange(t0 + 1, min(t1 + 1, n))
        if len(s):
            m_prev = mature[s - 1] + cum[s - 1]  # (len(s), k) real scores at s - 1
            cand = np.where(not_self[None, :, :], m_prev[:, :, None], neg)  # [s, from, to]
            best_from = cand.argmax(axis=1)  # (len(s), k)
            best = np.take_along_axis(cand, best_from[:, None, :], axis=1)[:, 0, :]
            entry[s] = best - switch_penalty - cum[s - 1]
            entry_from[s] = best_from
        t0 = t1

    # Where each class's latest fresh entry into its last sub-state happened, for back-tracking.
    last_entry = np.maximum.accumulate(np.where(from_entry, np.arange(n)[:, None], -1), axis=0)

    final = mature[n - 1] + cum[n - 1]
    run_start = np.full(k, -1, dtype=np.int64)  # start step of the last run when it ends short
    if short_edges:
        # The last run may end inside its chain: any entry s gives score F_c(s) + C_c(n - 1).
        best_s = entry.argmax(axis=0)
        short = entry[best_s, np.arange(k)] + cum[n - 1]
        better = short > final
        final = np.where(better, short, final)
        run_start = np.where(better, best_s, -1)
    c = int(final.argmax())
    if not np.isfinite(final[c]):
        raise AdcutError("smoothing found no path (probabilities contain NaN?)")

    path = np.empty(n, dtype=np.int64)
    t = n - 1
    start = int(run_start[c])
    while True:
        if start < 0:  # the run ends in c's last sub-state at t
            entered = int(last_entry[t, c])
            start = entered - int(d[c]) + 1 if entered >= 0 else 0
        path[start : t + 1] = c
        if start <= 0:
            break
        c, t, start = int(entry_from[start, c]), start - 1, -1
    return path


# --------------------------------------------------------------------------- reference rules


def _runs(labels: Sequence[str]) -> list[list]:
    """Run-length encoding: ``[[label, length], ...]``."""
    runs: list[list] = []
    for label in labels:
        if runs and runs[-1][0] == label:
            runs[-1][1] += 1
        else:
            runs.append([label, 1])
    return runs


def _merge(runs: list[list]) -> list[list]:
    merged: list[list] = []
    for label, length in runs:
        if merged and merged[-1][0] == label:
            merged[-1][1] += length
        else:
            merged.append([label, length])
    return merged


def reference_rules(
    labels: Sequence[str], classes: Sequence[str] = DEFAULT_CLASSES, max_run: int = 5
) -> list[str]:
    """The four "forgiving" pattern rules on a per-window class sequence, applied until nothing changes.

    Runs are maximal stretches of one class. In order, each pass applies the first rule that changes
    something, then starts again:

    1. Single outlier: a run of one window between two runs of the same class (``AABAA`` ->
       ``AAAAA``; also ``ABA``) takes their class.
    2. Alternation: a stretch of 3 or more consecutive runs that are each at most 2 windows long
       (``AABABB``'s middle, ``ABABA``) becomes the class holding most of its windows; on a tie,
       the class of the longer run bordering the stretch (the first class if none borders it).
    3. Short outlier: a run of 2..``max_run`` windows (default 5) between two runs of the same class,
       each at least twice as long as it, takes their class (``AAAAABBAAAA`` -> all A).
    4. Edge stub: a first or last run of at most 2 windows next to a run at least 3 times as long
       takes that run's class (``BAAAAAAA`` -> all A).

    ``classes`` only checks the labels; any number of classes works.
    """
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise AdcutError(f"unknown class {unknown[0]!r} in the sequence (known: {', '.join(classes)})")
    runs = _runs(labels)
    for _ in range(len(labels) + 1):
        changed = (
            _rule_single_outlier(runs)
            or _rule_alternation(runs, classes)
            or _rule_short_outlier(runs, max_run)
            or _rule_edge_stub(runs)
        )
        if not changed:
            break
        runs[:] = _merge(runs)
    return [label for label, length in runs for _ in range(length)]


def _rule_single_outlier(runs: list[list]) -> bool:
    for i in range(1, len(runs) - 1):
        if runs[i][1] == 1 and runs[i - 1][0] == runs[i + 1][0]:
            runs[i][0] = runs[i - 1][0]
            return True
    return False


def _rule_alternation(runs: list[list], classes: Sequence[str]) -> bool:
    i = 0
    while i < len(runs):
        j = i
        while j < len(runs) and runs[j][1] <= 2:
            j += 1
        if j - i >= 3:  # runs[i:j] is an alternating stretch
            counts: dict[str, int] = {}
            for label, length in runs[i:j]:
                counts[label] = counts.get(label, 0) + length
            top = max(counts.values())
            winners = [label for label in counts if counts[label] == top]
            if len(winners) > 1:
                borders = [runs[x] for x in (i - 1, j) if 0 <= x < len(runs)]
                borders = [b for b in borders if b[0] in winners]
                if borders:
                    winner = max(borders, key=lambda b: b[1])[0]
                else:
                    winner = min(winners, key=lambda w: classes.index(w) if w in classes else len(classes))
            else:
                winner = winners[0]
            if any(label != winner for label, _ in runs[i:j]):
                for run in runs[i:j]:
                    run[0] = winner
                return True
        i = max(j, i + 1)
    return False


def _rule_short_outlier(runs: list[list], max_run: int) -> bool:
    for i in range(1, len(runs) - 1):
        length = runs[i][1]
        left, right = runs[i - 1], runs[i + 1]
        if 2 <= length <= max_run and left[0] == right[0] and min(left[1], right[1]) >= 2 * length:
            runs[i][0] = left[0]
            return True
    return False


def _rule_edge_stub(runs: list[list]) -> bool:
    if len(runs) < 2:
        return False
    for stub, neighbour in ((runs[0], runs[1]), (runs[-1], runs[-2])):
        if stub[1] <= 2 and neighbour[1] >= 3 * stub[1]:
            stub[0] = neighbour[0]
            return True
    return False


def _reference_segments(
    probs: np.ndarray,
    step_seconds: Seconds,
    duration: Seconds,
    classes: Sequence[str],
    config: SmoothingConfig,
) -> list[Segment]:
    """Average the curve into reference-hop blocks, argmax, apply the rules, expand back."""
    per_block = max(1, round(config.reference_hop_seconds / step_seconds))
    n = len(probs)
    n_blocks = math.ceil(n / per_block)
    padded = np.concatenate([probs, np.repeat(probs[-1:], n_blocks * per_block - n, axis=0)])
    block_probs = padded.reshape(n_blocks, per_block, -1).mean(axis=1)
    labels = [classes[i] for i in block_probs.argmax(axis=1)]
    cleaned = reference_rules(labels, classes, config.reference_max_run)
    index = {name: i for i, name in enumerate(classes)}
    path = np.repeat(np.array([index[x] for x in cleaned]), per_block)[:n]
    return path_to_segments(path, step_seconds, duration, classes)
