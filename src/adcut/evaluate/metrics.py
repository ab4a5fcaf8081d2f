"""Episode-level scores of predicted segments against true ones: accuracy, segment/event F, boundary errors, cost.

All inputs are segment lists tiling ``[0, duration]`` (labels elsewhere are ignored where it matters).
Counts are kept raw in :class:`EpisodeScores` so that episodes can be pooled (``pool``) before the
ratios are taken, as sed_eval does for its overall figures.

Conventions:
- frame accuracy: share of the episode's time where both label the same class (exact interval overlap).
- segment-based P/R/F1 (sed_eval "segment-based"): the episode is cut into 1 s cells (the last may be
  shorter); a cell is active for the positive class if it overlaps any positive segment by more
  than ``_TOUCH`` seconds; cells are counted as TP/FP/FN.
- event-based F0.5: each merged positive segment is an event; a predicted and a true event match when
  their intersection over union is at least 0.5, one-to-one (greedy by IoU, best first).
- boundary error: for each true boundary (class change), the distance to the nearest predicted
  boundary; ``inf`` when nothing was predicted.
- cost: seconds of true non-positive time labelled positive (content wrongly removed) and seconds
  of true positive time not labelled positive (ad kept: ``review`` segments count as kept), per hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from adcut.core.segments import Segment, boundaries
from adcut.core.units import Seconds

_TOUCH = 1e-6  # overlaps shorter than this are rounding, not activity
EVENT_IOU = 0.5
F_BETA = 0.5


# --------------------------------------------------------------------------- building blocks


def overlap_seconds(a: Sequence[Segment], b: Sequence[Segment], same_label: bool = True) -> Seconds:
    """Total time where a segment of ``a`` and one of ``b`` overlap (with equal labels when ``same_label``)."""
    total = 0.0
    i = j = 0
    a, b = sorted(a), sorted(b)
    while i < len(a) and j < len(b):
        lo, hi = max(a[i].start, b[j].start), min(a[i].end, b[j].end)
        if hi > lo and (not same_label or a[i].label == b[j].label):
            total += hi - lo
        if a[i].end <= b[j].end:
            i += 1
        else:
            j += 1
    return total


def class_spans(segments: Iterable[Segment], label: str) -> list[tuple[Seconds, Seconds]]:
    """``(start, end)`` of the segments labelled ``label``, touching ones merged."""
    spans: list[list[float]] = []
    for seg in sorted(segments):
        if seg.label != label or seg.end <= seg.start:
            continue
        if spans and seg.start <= spans[-1][1] + _TOUCH:
            spans[-1][1] = max(spans[-1][1], seg.end)
        else:
            spans.append([seg.start, seg.end])
    return [(s, e) for s, e in spans]


def active_cells(
    spans: Sequence[tuple[Seconds, Seconds]], duration: Seconds, resolution: Seconds = 1.0
) -> np.ndarray:
    """Boolean per ``resolution``-second cell of ``[0, duration]``: does any span overlap it?"""
    n = max(1, int(np.ceil(duration / resolution - 1e-9)))
    active = np.zeros(n, dtype=bool)
    for start, end in spans:
        end = min(end, duration)
        if end - start <= _TOUCH:
            continue
        first = int(np.floor((start + _TOUCH) / resolution))
        last = int(np.ceil((end - _TOUCH) / resolution))  # exclusive
        active[max(first, 0) : min(last, n)] = True
    return active


def iou(a: tuple[Seconds, Seconds], b: tuple[Seconds, Seconds]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def match_events(
    truth: Sequence[tuple[Seconds, Seconds]],
    pred: Sequence[tuple[Seconds, Seconds]],
    min_iou: float = EVENT_IOU,
) -> list[tuple[int, int]]:
    """One-to-one matches ``(true index, predicted index)`` with IoU >= ``min_iou``, greedy by best IoU."""
    pairs = sorted(
        ((iou(t, p), i, j) for i, t in enumerate(truth) for j, p in enumerate(pred) if iou(t, p) >= min_iou),
        reverse=True,
    )
    used_t: set[int] = set()
    used_p: set[int] = set()
    matches = []
    for _, i, j in pairs:
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
            matches.append((i, j))
    return sorted(matches)


def boundary_errors(truth: Sequence[Segment], pred: Sequence[Segment]) -> np.ndarray:
    """For each true class change, seconds to the nearest predicted class change (``inf`` if none)."""
    true_b = np.asarray(boundaries(sorted(truth)), dtype=np.float64)
    pred_b = np.asarray(boundaries(sorted(pred)), dtype=np.float64)
    if len(pred_b) == 0:
        return np.full(len(true_b), np.inf)
    return np.abs(true_b[:, None] - pred_b[None, :]).min(axis=1) if len(true_b) else np.zeros(0)


def short_segments(segments: Sequence[Segment], min_seconds: Mapping[str, Seconds]) -> int:
    """How many segments are shorter than their class's minimum (classes not in the mapping: never)."""
    return sum(1 for s in segments if s.duration < min_seconds.get(s.label, 0.0) - 1e-6)


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else float("nan")


def f_score(precision: float, recall: float, beta: float = 1.0) -> float:
    if np.isnan(precision) or np.isnan(recall):
        return float("nan")
    if precision + recall == 0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * precision * recall / (b2 * precision + recall)


# --------------------------------------------------------------------------- scores


@dataclass
class EpisodeScores:
    """Raw counts for one episode (or several pooled); derived figures are properties."""

    duration: Seconds = 0.0
    agree_seconds: Seconds = 0.0
    cell_tp: int = 0
    cell_fp: int = 0
    cell_fn: int = 0
    event_tp: int = 0
    event_fp: int = 0
    event_fn: int = 0
    boundary_errors: np.ndarray = field(default_factory=lambda: np.zeros(0))
    content_removed: Seconds = 0.0
    ad_kept: Seconds = 0.0
    short_segments: int = 0
    episodes: int = 1

    @property
    def frame_accuracy(self) -> float:
        return _ratio(self.agree_seconds, self.duration)

    @property
    def segment_precision(self) -> float:
        return _ratio(self.cell_tp, self.cell_tp + self.cell_fp)

    @property
    def segment_recall(self) -> float:
        return _ratio(self.cell_tp, self.cell_tp + self.cell_fn)

    @property
    def segment_f1(self) -> float:
        if self.cell_tp + self.cell_fp + self.cell_fn == 0:
            return float("nan")
        return _ratio(2 * self.cell_tp, 2 * self.cell_tp + self.cell_fp + self.cell_fn)

    @property
    def event_precision(self) -> float:
        return _ratio(self.event_tp, self.event_tp + self.event_fp)

    @property
    def event_recall(self) -> float:
        return _ratio(self.event_tp, self.event_tp + self.event_fn)

    @property
    def event_f05(self) -> float:
        if self.event_tp + self.event_fp + self.event_fn == 0:
            return float("nan")
        if self.event_tp == 0:
            return 0.0
        return f_score(self.event_precision, self.event_recall, F_BETA)

    @property
    def boundary_median(self) -> float:
        return float(np.median(self.boundary_errors)) if len(self.boundary_errors) else float("nan")

    @property
    def boundary_p90(self) -> float:
        errors = self.boundary_errors
        if not len(errors):
            return float("nan")
        if np.isinf(errors).any():  # percentile's interpolation breaks on inf; take the order statistic
            return float(np.sort(errors)[min(len(errors) - 1, int(np.ceil(0.9 * len(errors))) - 1)])
        return float(np.percentile(errors, 90))

    def boundary_within(self, seconds: Seconds) -> float:
        errors = self.boundary_errors
        return float(np.mean(errors <= seconds + 1e-9)) if len(errors) else float("nan")

    @property
    def content_removed_per_hour(self) -> float:
        return _ratio(self.content_removed * 3600.0, self.duration)

    @property
    def ad_kept_per_hour(self) -> float:
        return _ratio(self.ad_kept * 3600.0, self.duration)

    def summary(self) -> dict[str, float]:
        """The reported figures by name (the table columns, in order)."""
        return {
            "accuracy": self.frame_accuracy,
            "seg_precision": self.segment_precision,
            "seg_recall": self.segment_recall,
            "seg_f1": self.segment_f1,
            "event_f05": self.event_f05,
            "boundary_median_s": self.boundary_median,
            "boundary_p90_s": self.boundary_p90,
            "within_1s": self.boundary_within(1.0),
            "within_3s": self.boundary_within(3.0),
            "content_removed_s_per_h": self.content_removed_per_hour,
            "ad_kept_s_per_h": self.ad_kept_per_hour,
            "short_segments": float(self.short_segments),
        }


def score_episode(
    truth: Sequence[Segment],
    pred: Sequence[Segment],
    duration: Seconds,
    positive: str = "ad",
    resolution: Seconds = 1.0,
    min_seconds: Mapping[str, Seconds] | None = None,
) -> EpisodeScores:
    """All counts for one episode: ``truth`` and ``pred`` tile ``[0, duration]``; ``positive`` is the removed class."""
    true_spans = class_spans(truth, positive)
    pred_spans = class_spans(pred, positive)
    t_cells = active_cells(true_spans, duration, resolution)
    p_cells = active_cells(pred_spans, duration, resolution)
    matches = match_events(true_spans, pred_spans)
    positive_true = sum(e - s for s, e in true_spans)
    removed = sum(e - s for s, e in pred_spans)
    removed_and_positive = overlap_seconds(
        [Segment(s, e, positive) for s, e in true_spans], [Segment(s, e, positive) for s, e in pred_spans]
    )
    return EpisodeScores(
        duration=duration,
        agree_seconds=overlap_seconds(truth, pred),
        cell_tp=int(np.sum(t_cells & p_cells)),
        cell_fp=int(np.sum(~t_cells & p_cells)),
        cell_fn=int(np.sum(t_cells & ~p_cells)),
        event_tp=len(matches),
        event_fp=len(pred_spans) - len(matches),
        event_fn=len(true_spans) - len(matches),
        boundary_errors=boundary_errors(truth, pred),
        content_removed=removed - removed_and_positive,
        ad_kept=positive_true - removed_and_positive,
        short_segments=short_segments(pred, min_seconds or {}),
    )


def pool(scores: Iterable[EpisodeScores]) -> EpisodeScores:
    """Counts of several episodes added up (overall figures)."""
    total = EpisodeScores(episodes=0)
    errors = [total.boundary_errors]
    for s in scores:
        for name in (
            "duration",
            "agree_seconds",
            "cell_tp",
            "cell_fp",
            "cell_fn",
            "event_tp",
            "event_fp",
            "event_fn",
            "content_removed",
            "ad_kept",
            "short_segments",
            "episodes",
        ):
            setattr(total, name, getattr(total, name) + getattr(s, name))
        errors.append(s.boundary_errors)
    total.boundary_errors = np.concatenate(errors)
    return total


# --------------------------------------------------------------------------- table

COLUMNS = (
    ("accuracy", "acc", "{:.3f}"),
    ("seg_f1", "segF1", "{:.3f}"),
    ("event_f05", "evF0.5", "{:.3f}"),
    ("boundary_median_s", "bnd med", "{:.2f}"),
    ("boundary_p90_s", "bnd p90", "{:.2f}"),
    ("within_1s", "<=1s", "{:.0%}"),
    ("within_3s", "<=3s", "{:.0%}"),
    ("content_removed_s_per_h", "cut s/h", "{:.1f}"),
    ("ad_kept_s_per_h", "kept s/h", "{:.1f}"),
    ("short_segments", "short", "{:.0f}"),
)


def format_table(rows: Sequence[tuple[str, EpisodeScores]]) -> str:
    """A fixed-width table: one row per (name, scores)."""
    header = ["episode"] + [title for _, title, _ in COLUMNS]
    body = []
    for name, scores in rows:
        summary = scores.summary()
        cells = [name]
        for key, _, fmt in COLUMNS:
            value = summary[key]
            cells.append("-" if value != value else ("inf" if value == float("inf") else fmt.format(value)))
        body.append(cells)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in [header] + body
    ]
    return "\n".join(lines)
