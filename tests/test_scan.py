"""Coarse-to-fine window scan: which windows are read, and that skipping the others changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from adcut.detect.scan import FILL_BELOW, CoarseToFineScan, effective_stride, needs_fill
from adcut.detect.windows import window_curve

HOP, WINDOW, FRAME = 16, 131, 256 / 4096


def lookup(table: np.ndarray, calls: list | None = None):
    """A fake model: window i (start i * HOP) has the probabilities ``table[i]``."""

    def predict(features, starts):
        if calls is not None:
            calls.append(starts.copy())
        return table[starts // HOP]

    return predict


def step_table(n: int, change: int, sure: float = 0.97) -> np.ndarray:
    """Content before window ``change``, ad from it on, with probability ``sure``."""
    p_ad = np.where(np.arange(n) >= change, sure, 1 - sure)
    return np.stack([p_ad, 1 - p_ad], axis=1).astype(np.float32)


def scan_all(table, stride, chunk=None, calls=None):
    starts = np.arange(len(table), dtype=np.int64) * HOP
    scan = CoarseToFineScan(lookup(table, calls), stride)
    chunk = chunk or len(table)
    for ready in range(chunk, len(table), chunk):  # prefixes as they become final, then the whole
        scan.advance(None, starts[:ready])
    scan.advance(None, starts, final=True)
    return scan.result()


def test_a_sure_flat_stretch_is_read_every_stride_and_a_change_window_by_window():
    table = step_table(101, change=50)
    index, probs = scan_all(table, stride=4)
    # every 4th window, the last one, and every window of the gap where the class changes (48..52)
    expected = sorted(set(range(0, 101, 4)) | {100} | set(range(49, 52)))
    assert index.tolist() == expected
    np.testing.assert_array_equal(probs, table[index])


def test_the_curve_from_the_read_windows_equals_the_curve_from_every_window():
    table = step_table(300, change=137)
    starts = np.arange(300) * HOP
    duration = (299 * HOP + WINDOW) * FRAME
    index, probs = scan_all(table, stride=4, chunk=37)
    assert len(index) < 0.3 * len(table)
    every = window_curve(table, starts, WINDOW, FRAME, 0.5, 0.5, duration)
    read = window_curve(probs, starts[index], WINDOW, FRAME, 0.5, 0.5, duration)
    np.testing.assert_allclose(read, every, atol=1e-6)


def test_unsure_or_moving_probabilities_are_read_window_by_window():
    unsure = np.tile([[FILL_BELOW - 0.2, 1.2 - FILL_BELOW]], (41, 1)).astype(np.float32)
    assert scan_all(unsure, stride=4)[0].tolist() == list(range(41))
    drifting = np.stack([np.linspace(0.0, 0.05, 41), np.linspace(1.0, 0.95, 41)], axis=1)
    drifting[20:] = [0.0, 1.0]  # a jump of 0.05 at 20, within the tolerance: not read window by window
    drifting[32] = [0.4, 0.6]  # the same class, but moving by 0.4 and unsure: the gaps on both sides are read
    index = scan_all(drifting, stride=4)[0].tolist()
    assert set(range(29, 32)) | set(range(33, 36)) <= set(index)
    assert not (set(range(1, 4)) | set(range(17, 20))) & set(index)  # the sure stretches stay coarse


def test_streaming_in_pieces_reads_the_same_windows_as_one_call():
    rng = np.random.default_rng(0)
    p = np.clip(np.repeat(rng.random(20), 9)[:173], 0, 1)  # runs of 9 equal windows
    table = np.stack([p, 1 - p], axis=1)
    whole = scan_all(table, stride=4)
    for chunk in (1, 5, 64):
        pieces = scan_all(table, stride=4, chunk=chunk)
        np.testing.assert_array_equal(pieces[0], whole[0])
        np.testing.assert_array_equal(pieces[1], whole[1])


def test_no_window_is_read_twice_and_stride_one_reads_every_window():
    calls: list = []
    table = step_table(57, change=20)
    index, _ = scan_all(table, stride=4, chunk=10, calls=calls)
    read = np.concatenate(calls)
    assert len(read) == len(set(read.tolist())) == len(index)
    assert scan_all(table, stride=1)[0].tolist() == list(range(57))


@pytest.mark.parametrize("n", [1, 2, 5])
def test_short_episodes_read_their_last_window(n):
    index, _ = scan_all(step_table(n, change=n), stride=4)
    assert index[0] == 0 and index[-1] == n - 1


def test_read_windows_stay_at_most_half_a_window_apart():
    assert effective_stride(4, 16, 131) == 4  # 1 s hop: 4 s apart
    assert effective_stride(4, 32, 131) == 2  # 2 s hop: 4 s apart
    assert effective_stride(4, 64, 131) == 1  # 4 s hop: every window
    assert effective_stride(8, 4, 131) == 8


def test_needs_fill_compares_class_confidence_and_change():
    sure_content = np.array([[0.02, 0.98]])
    assert not needs_fill(sure_content, sure_content)[0]
    assert needs_fill(sure_content, np.array([[0.98, 0.02]]))[0]  # the class changes
    assert needs_fill(sure_content, np.array([[0.5, 0.5]]))[0]  # unsure


def test_three_classes_are_judged_alike():
    table = np.tile(np.array([[0.02, 0.03, 0.95]], np.float32), (41, 1))
    table[22:] = [0.03, 0.95, 0.02]  # the most probable class changes at window 22
    index = scan_all(table, stride=4)[0].tolist()
    assert set(range(21, 24)) <= set(index)
    assert not set(range(1, 4)) & set(index)


def test_the_fill_rule_judges_calibrated_probabilities():
    # 0.85 is unsure before calibration; sharpened (temperature 0.5) it reads 0.97: sure
    raw = np.tile(np.array([[0.15, 0.85]], np.float32), (21, 1))
    starts = np.arange(21, dtype=np.int64) * HOP

    def sharpen(p):
        logits = np.log(p) / 0.5
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    for calibrate, expected in ((None, 21), (sharpen, 6)):
        scan = CoarseToFineScan(lookup(raw), 4, calibrate)
        scan.advance(None, starts, final=True)
        index, probs = scan.result()
        assert len(index) == expected
        np.testing.assert_array_equal(probs, raw[index])  # handed back uncalibrated
