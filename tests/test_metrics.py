"""Episode metrics on hand-made cases whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adcut.core.segments import Segment
from adcut.evaluate.metrics import (
    active_cells,
    boundary_errors,
    format_table,
    match_events,
    pool,
    score_episode,
    short_segments,
)


def tiling(*edges_and_labels) -> list[Segment]:
    """tiling(0, 'content', 30, 'ad', 60, 'content', 100) -> three segments."""
    out = []
    for i in range(0, len(edges_and_labels) - 1, 2):
        out.append(
            Segment(float(edges_and_labels[i]), float(edges_and_labels[i + 2]), edges_and_labels[i + 1])
        )
    return out


TRUTH = tiling(0, "content", 30, "ad", 60, "content", 100)


def test_perfect_prediction():
    s = score_episode(TRUTH, TRUTH, 100.0)
    assert s.frame_accuracy == 1.0
    assert (s.segment_precision, s.segment_recall, s.segment_f1) == (1.0, 1.0, 1.0)
    assert s.event_f05 == 1.0
    assert s.boundary_median == 0.0 and s.boundary_p90 == 0.0
    assert s.boundary_within(1.0) == 1.0
    assert s.content_removed == 0.0 and s.ad_kept == 0.0


def test_prediction_shifted_by_two_seconds():
    pred = tiling(0, "content", 32, "ad", 62, "content", 100)
    s = score_episode(TRUTH, pred, 100.0)
    assert np.allclose(s.boundary_errors, [2.0, 2.0])
    assert s.boundary_median == 2.0 and s.boundary_p90 == 2.0
    assert s.boundary_within(1.0) == 0.0 and s.boundary_within(3.0) == 1.0
    assert s.frame_accuracy == pytest.approx(96 / 100)
    # cells: truth 30..60 (30 cells), pred 32..62 -> TP 28, FP 2, FN 2
    assert (s.cell_tp, s.cell_fp, s.cell_fn) == (28, 2, 2)
    assert s.segment_f1 == pytest.approx(2 * 28 / (2 * 28 + 4))
    # IoU = 28 / 32 >= 0.5: one matched event
    assert (s.event_tp, s.event_fp, s.event_fn) == (1, 0, 0)
    assert s.content_removed == pytest.approx(2.0) and s.ad_kept == pytest.approx(2.0)
    assert s.content_removed_per_hour == pytest.approx(2.0 * 36)


def test_segment_cells_count_partial_overlap_as_active():
    # ad from 30.5 to 31.2 touches cells 30 and 31 only
    cells = active_cells([(30.5, 31.2)], 40.0)
    assert np.flatnonzero(cells).tolist() == [30, 31]
    # touching a cell edge exactly is not activity
    assert np.flatnonzero(active_cells([(30.0, 31.0)], 40.0)).tolist() == [30]
    # last partial cell exists
    assert len(active_cells([], 40.5)) == 41


def test_event_matching_is_one_to_one_at_iou_half():
    truth = [(10.0, 30.0), (50.0, 60.0)]
    pred = [(10.0, 20.0), (12.0, 31.0), (52.0, 54.0)]
    # (10,20): IoU 0.5 with truth 0; (12,31): 18/21; (52,54): 0.2 -> truth 0 gets the better one only
    assert match_events(truth, pred) == [(0, 1)]
    s = score_episode(
        tiling(0, "content", 10, "ad", 30, "content", 50, "ad", 60, "content", 80),
        tiling(0, "content", 12, "ad", 31, "content", 52, "ad", 54, "content", 80),
        80.0,
    )
    assert (s.event_tp, s.event_fp, s.event_fn) == (1, 1, 1)
    p, r = 0.5, 0.5
    assert s.event_f05 == pytest.approx(1.25 * p * r / (0.25 * p + r))


def test_event_f05_weighs_precision_more():
    truth = tiling(0, "content", 10, "ad", 30, "content", 50, "ad", 70, "content", 100)
    only_one = tiling(0, "content", 10, "ad", 30, "content", 100)  # P=1, R=0.5
    s = score_episode(truth, only_one, 100.0)
    assert s.event_f05 == pytest.approx(1.25 * 0.5 / (0.25 + 0.5))  # 0.833 > F1 of 0.667


def test_boundary_error_is_distance_to_nearest_predicted_boundary():
    pred = tiling(0, "content", 29, "ad", 40, "content", 45, "ad", 70, "content", 100)
    assert boundary_errors(TRUTH, pred).tolist() == [1.0, 10.0]
    # nothing predicted: infinitely far, never "within"
    s = score_episode(TRUTH, [Segment(0.0, 100.0, "content")], 100.0)
    assert np.isinf(s.boundary_errors).all() and s.boundary_within(3.0) == 0.0
    assert s.boundary_p90 == math.inf
    assert s.ad_kept == 30.0 and s.content_removed == 0.0
    assert s.segment_f1 == 0.0 and s.event_f05 == 0.0


def test_review_segments_count_as_kept_not_removed():
    pred = tiling(0, "content", 30, "review", 60, "content", 100)
    s = score_episode(TRUTH, pred, 100.0)
    assert s.ad_kept == 30.0 and s.content_removed == 0.0


def test_pooling_adds_counts_before_ratios():
    a = score_episode(TRUTH, tiling(0, "content", 32, "ad", 62, "content", 100), 100.0)
    b = score_episode(TRUTH, TRUTH, 100.0)
    both = pool([a, b])
    assert both.episodes == 2 and both.duration == 200.0
    assert both.frame_accuracy == pytest.approx(196 / 200)
    assert sorted(both.boundary_errors.tolist()) == [0.0, 0.0, 2.0, 2.0]
    assert both.boundary_median == 1.0
    assert both.content_removed_per_hour == pytest.approx(2.0 * 3600 / 200)


def test_short_segments_are_counted_by_class_minimum():
    pred = tiling(0, "content", 30, "ad", 35, "content", 45, "ad", 60, "content", 100)
    assert short_segments(pred, {"ad": 10.0, "content": 20.0}) == 2  # the 5 s ad and the 10 s content


def test_table_has_a_row_per_episode_and_marks_missing_values():
    s = score_episode([Segment(0.0, 50.0, "content")], [Segment(0.0, 50.0, "content")], 50.0)
    text = format_table([("ep1", s), ("overall", pool([s]))])
    lines = text.splitlines()
    assert lines[0].split()[0] == "episode" and len(lines) == 3
    assert lines[1].startswith("ep1") and " - " in lines[1]  # no ads, no boundaries: undefined F and errors
