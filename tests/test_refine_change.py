"""Boundaries where no pause marks them (issue 13): the change-point refinement, --refine and --prefer."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from adcut.cli.segmentation import add_segmentation_arguments, segmentation_config
from adcut.core.segments import Segment
from adcut.demo.synth import EpisodeSpec, HardParts, Music, Piece, Voice, render_episode
from adcut.detect.refine import RefineConfig, bic_change_scores, refine_boundaries
from adcut.errors import AdcutError
from adcut.features.mfcc import FeatureConfig, compute_features

CFG = FeatureConfig()
FRAME = CFG.frame_seconds  # 62.5 ms
HOST = Voice((520.0, 1400.0, 2600.0), pitch=120.0, rate=4.5, pause_fraction=0.2)
AD_VOICE = Voice((650.0, 1750.0, 2400.0), pitch=190.0, rate=5.5, pause_fraction=0.03)
THEME = Music(130.8, (1.0, 1.25, 1.5), (1.0, 0.5, 0.2), beat_hz=2.0, beat_depth=0.4, note_seconds=0.3)
BED = Music(110.0, (1.0, 1.5, 2.0), (0.8, 0.4, 0.2), beat_hz=2.5, beat_depth=0.5, note_seconds=0.0)
MINIMUMS = {"ad": 10.0, "content": 10.0}


@pytest.fixture(scope="module")
def pauseless():
    """Talk, then an ad (a voice over a bed) running straight into the show's theme, then talk: no pauses."""
    pieces = (
        Piece(0.0, 30.0, "talk", voice=0),
        Piece(30.0, 60.0, "ad", voice=1, music=1),
        Piece(60.0, 75.0, "theme", music=0),
        Piece(75.0, 100.0, "talk", voice=0),
    )
    spec = EpisodeSpec(100.0, ((30.0, 60.0),), HardParts((HOST, AD_VOICE), (THEME, BED), pieces, (0.08,) * 4))
    return compute_features(render_episode(spec, CFG.sample_rate, seed=3), CFG)


def tiling(*times, end=100.0):
    edges = [0.0, *times, end]
    return [Segment(a, b, ("content", "ad")[i % 2]) for i, (a, b) in enumerate(zip(edges, edges[1:]))]


def refined(features, segments, **config):
    return refine_boundaries(
        segments, features, CFG, 3.0, RefineConfig(**config), min_seconds=MINIMUMS, shrink_label="ad"
    )


def test_change_point_finds_the_end_of_an_ad_running_into_theme_music_where_the_pause_method_cannot(
    pauseless,
):
    # the smoother ended the ad 4.5 s late, inside the theme (cutting content), and started it 1 s early
    found = tiling(29.0, 64.5)
    change = refined(pauseless, found, method="change")
    assert abs(change[2].start - 60.0) <= 3 * FRAME
    assert abs(change[1].start - 30.0) <= 3 * FRAME
    pause = refined(pauseless, found, method="pause")
    assert abs(pause[2].start - 60.0) > 1.0  # no pause to find: it stays in the theme
    # change+pause: at most the snap distance off (the theme's beat has dips a pause search may take)
    both = refined(pauseless, found, method="change+pause")
    assert abs(both[2].start - 60.0) <= RefineConfig().change_snap_seconds + 2 * FRAME
    assert (
        change[0].start == 0.0
        and change[-1].end == 100.0
        and [s.label for s in change] == ["content", "ad", "content"]
    )


def test_prefer_moves_the_asymmetry(pauseless):
    # ad end 5 s late (content cut): keep-content reaches 2 x 3 s into the ad and finds it; remove-ads
    # reaches only 3 s in and leaves the ad longer
    late_end = tiling(30.0, 65.0)
    keep = refined(pauseless, late_end, method="change")
    remove = refined(pauseless, late_end, method="change", prefer="remove-ads")
    assert abs(keep[2].start - 60.0) <= 3 * FRAME
    assert remove[2].start >= 61.9
    # ad start 5 s late (ad kept): now remove-ads reaches 2 x 3 s out of the ad, keep-content only 3 s
    late_start = tiling(35.0, 60.0)
    keep = refined(pauseless, late_start, method="change")
    remove = refined(pauseless, late_start, method="change", prefer="remove-ads")
    assert abs(remove[1].start - 30.0) <= 3 * FRAME
    assert keep[1].start >= 31.9


JINGLE = Music(164.8, (1.0, 1.25, 1.5), (0.9, 0.5, 0.3), beat_hz=3.0, beat_depth=0.5, note_seconds=0.2)


def opened_by(kind: str, length: float):
    """Talk, then ``kind`` (a jingle: the ad's; the theme: the show's) for ``length`` s running straight
    into an ad (a voice over a bed), then talk: no pauses. The ad's voice starts at 40 + ``length``."""
    voice_at = 40.0 + length
    pieces = (
        Piece(0.0, 40.0, "talk", voice=0),
        Piece(40.0, voice_at, kind, music=2 if kind == "jingle" else 0),
        Piece(voice_at, voice_at + 30.0, "ad", voice=1, music=1),
        Piece(voice_at + 30.0, 100.0, "talk", voice=0),
    )
    ad = (40.0 if kind == "jingle" else voice_at, voice_at + 30.0)
    parts = HardParts((HOST, AD_VOICE), (THEME, BED, JINGLE), pieces, (0.08,) * 4)
    return compute_features(render_episode(EpisodeSpec(100.0, (ad,), parts), CFG.sample_rate, seed=5), CFG)


def test_an_ad_found_at_its_voice_takes_in_the_jingle_before_it_but_not_the_shows_theme():
    # The window model and the change point put the start where the ad's voice begins; the jingle
    # before it sounds like nothing in the talk before, so it is the ad's: the start moves back to it.
    jingle = opened_by("jingle", 3.0)
    out = refined(jingle, tiling(44.0, 73.0), method="change+pause")
    assert abs(out[1].start - 40.0) <= 4 * FRAME
    # The show's theme before an ad is as unfamiliar, but longer than any jingle: it stays content.
    theme = opened_by("theme", 10.0)
    out = refined(theme, tiling(51.0, 80.0), method="change+pause")
    assert abs(out[1].start - 50.0) <= 4 * FRAME


def test_bic_gain_peaks_at_a_change_of_statistics_and_is_negative_without_one():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (400, 10))
    x[200:] = x[200:] * 3 + 1  # a change of level and spread at frame 200
    gain = bic_change_scores(x, 24)
    assert abs(int(np.argmax(gain)) - 200) <= 2 and gain.max() > 0
    steady = bic_change_scores(rng.normal(0, 1, (400, 10)), 24)
    assert np.nanmax(steady[np.isfinite(steady)]) < 0
    assert np.isneginf(gain[:5]).all()  # too little audio on one side


def test_a_boundary_with_no_change_in_reach_stays():
    # both sides' interiors and the search range are one stationary sound: no split is clearly better
    rng = np.random.default_rng(1)
    feats = rng.normal(0, 1, (int(60 / FRAME), CFG.n_features)).astype(np.float32)
    feats[int(45 / FRAME) :, 1 : CFG.n_mfcc] += 3.0  # the real change is 15 s away, out of reach
    out = refine_boundaries(
        tiling(30.0, end=60.0)[:2], feats, CFG, 3.0, RefineConfig(method="change"), shrink_label="ad"
    )
    assert out[1].start == pytest.approx(30.0)


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_segmentation_arguments(parser)
    return segmentation_config(parser.parse_args(list(argv)))


def test_refine_and_prefer_flags_reach_the_config_and_are_validated():
    config = parse("--refine", "pause", "--prefer", "remove-ads", "--max-shift", "2")
    assert (config.refine.method, config.refine.prefer, config.refine.max_shift_seconds) == (
        "pause",
        "remove-ads",
        2.0,
    )
    settings = config.settings()
    assert settings["refine_method"] == "pause" and settings["prefer"] == "remove-ads"
    # the preference also moves the smoother's decision: keeping ad audio now costs more than cutting content
    assert config.smoothing.content_cost < 1.0 < parse().smoothing.content_cost
    assert settings["content_cost"] == pytest.approx(config.smoothing.content_cost, abs=1e-4)
    assert parse().settings()["prefer"] == "keep-content"
    assert parse("--no-refine").refine is None
    # without refinement --prefer still means something: the smoother's decision
    unrefined = parse("--no-refine", "--prefer", "remove-ads")
    assert unrefined.refine is None and unrefined.smoothing.content_cost < 1.0
    assert unrefined.settings()["prefer"] == "remove-ads"
    with pytest.raises(AdcutError, match="--no-refine contradicts --refine"):
        parse("--no-refine", "--refine", "change")
    with pytest.raises(SystemExit):
        parse("--prefer", "both")
    with pytest.raises(AdcutError, match="--refine must be one of"):
        RefineConfig(method="jump")
    with pytest.raises(AdcutError, match="--prefer must be one of"):
        RefineConfig(prefer="ads")
    with pytest.raises(AdcutError, match="distance-cost"):
        RefineConfig(distance_cost=-1.0)


def test_prefer_remove_ads_lets_the_pause_method_follow_a_change_out_of_the_ad():
    # hand-made features: the ad (20..40 s) differs in its MFCC means; the smoother found it 4 s too short
    rng = np.random.default_rng(0)
    feats = rng.normal(0, 1, (int(60 / FRAME), CFG.n_features)).astype(np.float32)
    feats[:, 0] += 400.0
    feats[int(20 / FRAME) : int(40 / FRAME), 1 : CFG.n_mfcc] += 3.0
    found = [Segment(0.0, 24.0, "content"), Segment(24.0, 36.0, "ad"), Segment(36.0, 60.0, "content")]
    keep = refine_boundaries(found, feats, CFG, 3.0, RefineConfig(method="pause"), shrink_label="ad")
    remove = refine_boundaries(
        found, feats, CFG, 3.0, RefineConfig(method="pause", prefer="remove-ads"), shrink_label="ad"
    )
    assert keep[1].start == pytest.approx(21.0, abs=1e-6) and keep[2].start == pytest.approx(39.0, abs=1e-6)
    assert remove[1].start == pytest.approx(20.0, abs=0.3) and remove[2].start == pytest.approx(40.0, abs=0.3)


def test_an_ads_own_opening_sound_joins_it_and_a_longer_unfamiliar_stretch_does_not():
    from adcut.detect.refine import OPENING_LOOK_SECONDS, _opening_sound
    from adcut.features.mfcc import FeatureConfig

    config = FeatureConfig()
    frame = config.frame_seconds
    rng = np.random.default_rng(0)
    features = rng.standard_normal((int(60 / frame), 2 * config.n_mfcc + 2)).astype(np.float32)
    start = 50.0  # where the ad's voice was found

    def opening(jingle_seconds: float, odd_frames=()):
        f = features.copy()
        first = int(round((start - jingle_seconds) / frame))
        f[first : int(round(start / frame))] += 6.0  # a sound unlike the content before it
        for i in odd_frames:  # frames inside it that happen to sound like the content
            f[first + i] = features[first + i]
        return _opening_sound(f, config, start, 0.0, 0.0)

    # A 3 s jingle before the voice: the ad starts where it does, within a frame.
    assert opening(3.0) == pytest.approx(start - 3.0, abs=1.5 * frame)
    # One familiar-sounding frame inside it does not split it.
    assert opening(3.0, odd_frames=(20,)) == pytest.approx(start - 3.0, abs=1.5 * frame)
    # Unfamiliar all the way back past the look (the show's theme before a post-roll), or too short
    # to be a sound of its own: the start stays at the voice.
    assert opening(OPENING_LOOK_SECONDS + 2.0) is None
    assert opening(0.5) is None
