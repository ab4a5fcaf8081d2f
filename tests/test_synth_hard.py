"""Harder generated episodes (issue 13): pause-less changes, theme music beside ads, separate draws."""

import numpy as np

from adcut.demo.synth import (
    AD_KINDS,
    HOST_READING,
    draw_show,
    episode_segments,
    hard_spec,
    render_episode,
    shared_recordings,
)


def test_hard_spec_tiles_the_episode_with_pieces_that_match_its_ads():
    spec = hard_spec(600.0, np.random.default_rng(4))
    pieces = spec.hard.pieces
    assert pieces[0].start == 0.0 and pieces[-1].end == 600.0
    assert all(abs(a.end - b.start) < 1e-9 for a, b in zip(pieces, pieces[1:]))
    ads = [(p.start, p.end) for p in pieces if p.kind in AD_KINDS]
    covered = sum(b - a for a, b in spec.ads)
    assert abs(covered - sum(b - a for a, b in ads)) < 1e-6 and spec.ads
    # truth tiles the episode; ad segments are the spec's ads
    truth = episode_segments(spec)
    assert [(s.start, s.end) for s in truth if s.label == "ad"] == [tuple(a) for a in spec.ads]


def test_hard_episodes_have_what_makes_them_hard():
    specs = [hard_spec(900.0, np.random.default_rng(seed)) for seed in range(6)]
    pieces = [p for s in specs for p in s.hard.pieces]
    changes = [
        (a, b)
        for s in specs
        for a, b in zip(s.hard.pieces, s.hard.pieces[1:])
        if (a.kind in AD_KINDS) != (b.kind in AD_KINDS)
    ]
    assert sum(b.pause_before == 0 for _, b in changes) > 0.5 * len(changes)  # most ad edges have no pause
    assert any(a.kind == "ad" and b.kind == "theme" for a, b in changes)  # a pre-roll straight into the theme
    assert any(a.kind == "theme" and b.kind in AD_KINDS for a, b in changes)  # the theme into a post-roll
    assert any(p.kind == "jingle" for p in pieces) and any(p.kind == "talk_music" for p in pieces)
    assert any(b.tail > 0 for _, b in changes)  # a bed running on under the host's first words
    host_read = [p for s in specs for p in s.hard.pieces if p.kind == "ad" and p.voice == HOST_READING]
    assert host_read  # the host's own voice reading an ad
    # loudness-matched ads: some within 1 dB of the show's talk
    ratios = [
        lv / s.hard.levels[0 if s.hard.pieces[0].kind == "talk" else -1]
        for s in specs
        for p, lv in zip(s.hard.pieces, s.hard.levels)
        if p.kind == "ad"
    ]
    assert any(abs(20 * np.log10(r)) < 1.5 for r in ratios)


def test_train_and_test_draws_share_no_voice_music_or_recording(tmp_path):
    train = hard_spec(600.0, np.random.default_rng(1))
    test = hard_spec(600.0, np.random.default_rng(2))
    assert not set(train.hard.voices) & set(test.hard.voices)
    assert not set(train.hard.musics) & set(test.hard.musics)
    for kind in ("speech", "music"):
        (tmp_path / kind).mkdir()
    assert shared_recordings(tmp_path, "train") == {"speech": [], "music": []}  # too short or none: none used
    assert shared_recordings(None, "test") == {"speech": [], "music": []}


def test_episodes_of_one_show_share_its_voices_and_music_but_not_their_ads():
    show = draw_show(np.random.default_rng(7))
    train = hard_spec(600.0, np.random.default_rng(1), show=show)
    test = hard_spec(600.0, np.random.default_rng(2), show=show)

    def played(spec, kinds, what):
        parts = spec.hard.voices if what == "voice" else spec.hard.musics
        return {
            parts[getattr(p, what)] for p in spec.hard.pieces if p.kind in kinds and getattr(p, what) >= 0
        }

    for spec in (train, test):  # the show's host, guest, theme and talk music are what its content plays
        assert played(spec, ("talk", "talk_music"), "voice") <= {show.host, show.guest}
        assert played(spec, ("theme",), "music") == {show.theme}
        assert played(spec, ("talk_music",), "music") <= {show.pad}

    # An ad's own voice (other than the host's, reading) and music are drawn per episode: none heard in
    # training comes back in the test.
    def announcers(spec):
        return {
            spec.hard.voices[p.voice] for p in spec.hard.pieces if p.kind == "ad" and p.voice != HOST_READING
        }

    assert announcers(train) and announcers(test) and not announcers(train) & announcers(test)
    assert not played(train, AD_KINDS, "music") & played(test, AD_KINDS, "music")


def test_real_recordings_are_split_between_the_draws(shared_data):
    train, test = shared_recordings(shared_data, "train"), shared_recordings(shared_data, "test")
    for kind in ("speech", "music"):
        assert train[kind] and test[kind] and not set(train[kind]) & set(test[kind])
    spec = hard_spec(300.0, np.random.default_rng(0), recordings=test)
    audio = render_episode(spec, 8000, seed=0)
    assert len(audio) == 300 * 8000 and np.isfinite(audio).all() and np.abs(audio).max() <= 1.0


def test_a_hard_episode_renders_at_the_level_its_pieces_ask_for():
    spec = hard_spec(240.0, np.random.default_rng(3))
    audio = render_episode(spec, 8000, seed=1)
    assert len(audio) == 240 * 8000
    for piece, level in zip(spec.hard.pieces, spec.hard.levels):
        a, b = int((piece.start + 1.5) * 8000), int((piece.end - 1.5) * 8000)  # away from tails and pauses
        if b - a > 8000:
            rms = float(np.sqrt(np.mean(audio[a:b] ** 2)))
            assert 0.7 * level < rms < 1.3 * level, piece
