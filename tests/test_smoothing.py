"""Smoothing: HMM with minimum durations, the reference rules, argmax; the tiling invariant."""

from __future__ import annotations

import numpy as np
import pytest

from adcut.core.segments import Segment
from adcut.detect.smoothing import (
    SmoothingConfig,
    path_to_segments,
    reference_rules,
    smooth,
    viterbi_min_duration,
)
from adcut.errors import AdcutError

CLASSES = ("ad", "content")


def curve(pattern: str, confident: float = 0.9) -> np.ndarray:
    """Probabilities (ad, content) from a string: 'a' = ad-ish step, 'c' = content-ish step."""
    p_ad = np.array([confident if ch == "a" else 1 - confident for ch in pattern])
    return np.stack([p_ad, 1 - p_ad], axis=1)


def assert_tiles(segments: list[Segment], duration: float) -> None:
    assert segments[0].start == 0.0
    assert segments[-1].end == pytest.approx(duration, abs=1e-12)
    for a, b in zip(segments, segments[1:]):
        assert a.end == b.start
        assert a.label != b.label
    assert all(s.end > s.start for s in segments)


# --------------------------------------------------------------------------- HMM


def _brute_force_best(e: np.ndarray, d, penalty: float, short_edges: bool) -> float:
    """Best path score by plain Viterbi over the explicit expanded state chain."""
    n, k = e.shape
    states = [(c, j) for c in range(k) for j in range(d[c])]
    index = {s: i for i, s in enumerate(states)}
    score = np.full(len(states), -np.inf)
    for c in range(k):
        for j in range(d[c] if short_edges else 1):
            score[index[(c, j)]] = e[0, c]
    for t in range(1, n):
        new = np.full(len(states), -np.inf)
        for (c, j), i in index.items():
            options = []
            if j > 0:
                options.append(score[index[(c, j - 1)]])
            if j == d[c] - 1:
                options.append(score[i])
            if j == 0:
                options += [score[index[(o, d[o] - 1)]] - penalty for o in range(k) if o != c]
            new[i] = max(options) + e[t, c]
        score = new
    return max(score[i] for (c, j), i in index.items() if short_edges or j == d[c] - 1)


def test_viterbi_matches_explicit_state_chain_and_respects_minimums():
    rng = np.random.default_rng(1)
    for _ in range(120):
        n = int(rng.integers(1, 25))
        k = int(rng.integers(2, 4))
        d = np.minimum(rng.integers(1, 6, size=k), n)
        e = np.log(rng.dirichlet(np.ones(k), size=n))
        penalty = float(rng.uniform(0, 3))
        short_edges = bool(rng.integers(2))
        path = viterbi_min_duration(e, d, penalty, short_edges=short_edges)
        score = e[np.arange(n), path].sum() - penalty * np.count_nonzero(np.diff(path))
        assert score == pytest.approx(_brute_force_best(e, d, penalty, short_edges), abs=1e-9)
        runs = np.split(path, np.flatnonzero(np.diff(path)) + 1)
        for i, run in enumerate(runs):
            if not short_edges or 0 < i < len(runs) - 1:
                assert len(run) >= d[run[0]]


def test_hmm_known_sequence_removes_short_flips_and_keeps_real_ad():
    # 1 s steps: 30 s content with a 3 s ad-ish blip inside, a 15 s ad, 25 s content
    pattern = "c" * 12 + "aaa" + "c" * 15 + "a" * 15 + "c" * 25
    probs = curve(pattern)
    segs = smooth(
        probs, 1.0, len(pattern), CLASSES, SmoothingConfig(min_ad_seconds=10, min_content_seconds=20)
    )
    assert segs == [Segment(0.0, 30.0, "content"), Segment(30.0, 45.0, "ad"), Segment(45.0, 70.0, "content")]


def test_hmm_no_segment_shorter_than_minimums_on_noisy_curve():
    rng = np.random.default_rng(0)
    truth = np.repeat([1, 0, 1, 0, 1], [300, 150, 400, 120, 330])  # 0 = ad, at 0.1 s steps
    p_ad = np.clip(np.where(truth == 0, 0.7, 0.3) + rng.normal(0, 0.3, len(truth)), 0.01, 0.99)
    probs = np.stack([p_ad, 1 - p_ad], axis=1)
    duration = len(truth) * 0.1
    # a curve symmetric about 0.5: both mistakes cost the same here
    config = SmoothingConfig(min_ad_seconds=10, min_content_seconds=20, content_cost=1.0)
    segs = smooth(probs, 0.1, duration, CLASSES, config)
    assert_tiles(segs, duration)
    for seg in segs:
        minimum = 10 if seg.label == "ad" else 20
        assert seg.duration >= minimum - 1e-9
    # and the real structure is found within a second or two
    assert [s.label for s in segs] == ["content", "ad", "content", "ad", "content"]
    assert np.allclose([s.start for s in segs[1:]], [30, 45, 85, 97], atol=2.0)


def test_hmm_minimum_applies_at_edges_unless_short_edges():
    pattern = "aaa" + "c" * 40  # a 3 s ad at the very start
    probs = curve(pattern, 0.99)
    strict = smooth(probs, 1.0, 43.0, CLASSES, SmoothingConfig(min_ad_seconds=10))
    assert [s.label for s in strict] == ["content"]
    loose = smooth(probs, 1.0, 43.0, CLASSES, SmoothingConfig(min_ad_seconds=10, short_edges=True))
    assert loose == [Segment(0.0, 3.0, "ad"), Segment(3.0, 43.0, "content")]


def test_episode_shorter_than_minimum_is_one_segment():
    segs = smooth(curve("aaaaa"), 1.0, 5.0, CLASSES, SmoothingConfig(min_ad_seconds=10))
    assert segs == [Segment(0.0, 5.0, "ad")]


def test_switch_penalty_suppresses_weak_evidence():
    # 30 s of barely-ad evidence inside content: taken with no penalty, refused with a large one
    pattern = "c" * 30 + "a" * 30 + "c" * 30
    probs = curve(pattern, 0.55)
    cheap = smooth(probs, 1.0, 90.0, CLASSES, SmoothingConfig(switch_penalty=0.0, content_cost=1.0))
    dear = smooth(probs, 1.0, 90.0, CLASSES, SmoothingConfig(switch_penalty=20.0, content_cost=1.0))
    assert [s.label for s in cheap] == ["content", "ad", "content"]
    assert [s.label for s in dear] == ["content"]


@pytest.mark.parametrize("method", ["hmm", "none"])
def test_content_cost_is_the_odds_an_ad_must_beat(method):
    # 30 s at ad odds 0.58 / 0.42 = 1.38 inside content: an ad when both mistakes cost the same,
    # content when a second of content cut weighs 1.5 s of ad kept (the default)
    probs = curve("c" * 30 + "a" * 30 + "c" * 30, 0.58)
    even = smooth(probs, 1.0, 90.0, CLASSES, SmoothingConfig(method=method, content_cost=1.0))
    default = smooth(probs, 1.0, 90.0, CLASSES, SmoothingConfig(method=method))
    assert [s.label for s in even] == ["content", "ad", "content"]
    assert even[1] == Segment(30.0, 60.0, "ad")
    assert [s.label for s in default] == ["content"]
    # ... and the other way round: even odds are an ad once keeping ad audio costs more
    p_ad = np.repeat([0.1, 0.5, 0.1], 30)
    weak = np.stack([p_ad, 1 - p_ad], axis=1)
    assert [s.label for s in smooth(weak, 1.0, 90.0, CLASSES, SmoothingConfig(method=method))] == ["content"]
    eager = smooth(weak, 1.0, 90.0, CLASSES, SmoothingConfig(method=method, content_cost=1 / 1.5))
    assert [s.label for s in eager] == ["content", "ad", "content"]


@pytest.mark.parametrize("method", ["hmm", "reference", "none"])
@pytest.mark.parametrize("duration", [95.0, 95.37, 94.2])
def test_every_method_tiles_the_duration(method, duration):
    rng = np.random.default_rng(3)
    p_ad = rng.uniform(size=190)
    probs = np.stack([p_ad, 1 - p_ad], axis=1)
    segs = smooth(probs, 0.5, duration, CLASSES, SmoothingConfig(method=method))
    assert_tiles(segs, duration)


def test_none_is_argmax_per_step():
    segs = smooth(curve("ccaacc"), 2.0, 12.0, CLASSES, SmoothingConfig(method="none"))
    assert segs == [Segment(0.0, 4.0, "content"), Segment(4.0, 8.0, "ad"), Segment(8.0, 12.0, "content")]


def test_path_to_segments_clips_steps_past_duration():
    assert path_to_segments(np.array([1, 1, 0, 0]), 1.0, 2.5, CLASSES) == [
        Segment(0.0, 2.0, "content"),
        Segment(2.0, 2.5, "ad"),
    ]


def test_bad_settings_are_one_line_errors():
    with pytest.raises(AdcutError, match="unknown smoothing method 'bogus'"):
        SmoothingConfig(method="bogus")
    with pytest.raises(AdcutError, match="min-ad-seconds must be a number >= 0"):
        SmoothingConfig(min_ad_seconds=-1)
    with pytest.raises(AdcutError, match="content cost must be a number > 0"):
        SmoothingConfig(content_cost=0.0)
    with pytest.raises(AdcutError, match=r"expected \(steps, 2\)"):
        smooth(np.ones((4, 3)) / 3, 1.0, 4.0, CLASSES)


# --------------------------------------------------------------------------- reference rules


def rules(text: str) -> str:
    return "".join(reference_rules(list(text), ("A", "B")))


@pytest.mark.parametrize(
    "before, after",
    [
        ("AAAABAAAA", "AAAAAAAAA"),  # rule 1: single outlier
        ("BBBBABBBB", "BBBBBBBBB"),
        ("AAAAABABAABBBBBB", "AAAAAAAAAABBBBBB"),  # rule 2: alternating stretch -> majority (A: 4 of 6)
        ("AAAABBABBAAAA", "AAAABBBBBAAAA"),  # rule 1 first fills the single A, giving one B run
        ("AAAAAABBBAAAAAA", "AAAAAAAAAAAAAAA"),  # rule 3: run of 3 between runs twice as long
        ("AAAABBBBBAAAA", "AAAABBBBBAAAA"),  # 5 Bs between 4 As: neighbours not twice as long, kept
        ("AAAAAAAAAAAABBBBBBAAAAAAAAAAAAA", "AAAAAAAAAAAABBBBBBAAAAAAAAAAAAA"),  # 6 > max_run: real break
        ("BAAAAAAA", "AAAAAAAA"),  # rule 4: edge stub
        ("AAAAAAAB", "AAAAAAAA"),
        ("BBAA", "BBAA"),  # stub not dwarfed by its neighbour: kept
        ("", ""),
    ],
)
def test_reference_rules_on_hand_made_sequences(before, after):
    assert rules(before) == after


def test_reference_rules_alternation_tie_goes_to_longer_border():
    # stretch AABBAABB (4 A, 4 B) bordered by 3 Bs on the left and 6 As on the right -> A
    assert rules("BBB" + "AABBAABB" + "AAAAAA") == "BBB" + "A" * 14


def test_reference_rules_reject_unknown_class():
    with pytest.raises(AdcutError, match="unknown class 'X'"):
        reference_rules(["A", "X"], ("A", "B"))


def test_reference_method_works_on_window_blocks():
    # 0.5 s steps; a 4 s ad-ish blip (1 block) inside content is an outlier; a 40 s ad is kept
    pattern = "c" * 80 + "a" * 8 + "c" * 80 + "a" * 80 + "c" * 80
    segs = smooth(
        curve(pattern),
        0.5,
        len(pattern) * 0.5,
        CLASSES,
        SmoothingConfig(method="reference", reference_hop_seconds=4.0),
    )
    assert [s.label for s in segs] == ["content", "ad", "content"]
    assert segs[1].start == 84.0 and segs[1].end == 124.0
