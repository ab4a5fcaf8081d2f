"""Features match librosa's MFCC + deltas; streaming equals one pass; windows cut where they should."""

import numpy as np
import pytest

from adcut.demo.synth import EpisodeSpec, render_episode
from adcut.errors import ModelError
from adcut.features.episode import episode_features
from adcut.features.mfcc import (
    FeatureConfig,
    MfccStream,
    check_compatible,
    compute_features,
    finish_features,
    window_starts,
    windows,
)

librosa = pytest.importorskip("librosa")

CFG = FeatureConfig()


def librosa_features(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=y,
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        n_mels=cfg.n_mels,
        pad_mode="constant",
    )
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, amin=cfg.amin, top_db=None), n_mfcc=cfg.n_mfcc)
    d1 = librosa.feature.delta(mfcc, width=cfg.delta_width, order=1)
    d2 = librosa.feature.delta(mfcc, width=cfg.delta_width, order=2)
    return np.concatenate([mfcc, d1, d2]).T


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    # Speech-like and music-like parts: features move a lot, as in a real episode.
    return render_episode(EpisodeSpec(40.0, ((12.0, 25.0),)), CFG.sample_rate, seed=3)


def test_matches_librosa(signal):
    ours = compute_features(signal, CFG)
    ref = librosa_features(signal, CFG)
    assert ours.shape == ref.shape == (CFG.frames_for(len(signal)), 30)
    scale = np.abs(ref).max(axis=0)  # per feature: MFCC in dB, deltas much smaller
    err = np.abs(ours - ref) / scale
    assert err.max() < 1e-3, f"worst relative error {err.max():.2e} in feature {err.max(axis=0).argmax()}"


def test_matches_librosa_with_other_settings(signal):
    cfg = FeatureConfig(sample_rate=4096, n_fft=256, hop_length=128, n_mels=40, n_mfcc=13)
    ours = compute_features(signal, cfg)
    ref = librosa_features(signal, cfg)
    assert ours.shape == ref.shape and ours.shape[1] == 39
    assert (np.abs(ours - ref) / np.abs(ref).max(axis=0)).max() < 1e-3


@pytest.mark.parametrize("block", [1, 255, 256, 1000, 4097])
def test_streaming_blocks_equal_one_pass(signal, block):
    stream = MfccStream(CFG)
    for start in range(0, len(signal), block * 37):  # uneven blocks
        stream.push(signal[start : start + block * 37])
    streamed = finish_features(stream.finish(), CFG)
    np.testing.assert_allclose(streamed, compute_features(signal, CFG), rtol=1e-5, atol=1e-4)


def test_episode_features_from_file_match_in_memory(tmp_path, signal):
    from adcut.media.decode import decode
    from adcut.media.encode import write_audio

    path = tmp_path / "ep.flac"
    write_audio(path, signal, CFG.sample_rate)
    feats, duration = episode_features(path, CFG)
    assert duration == pytest.approx(len(signal) / CFG.sample_rate, abs=1e-3)
    np.testing.assert_allclose(
        feats, compute_features(decode(path, CFG.sample_rate), CFG), rtol=1e-5, atol=1e-4
    )


def test_features_of_a_window_do_not_depend_on_audio_far_away(signal):
    # No top_db clamp relative to the whole input: a loud burst minutes away changes nothing here.
    louder = signal.copy()
    louder[-4096 * 5 :] *= 10
    a, b = compute_features(signal, CFG), compute_features(louder, CFG)
    np.testing.assert_allclose(a[:200], b[:200], rtol=1e-5, atol=1e-4)


def test_window_starts_cover_the_end():
    starts = window_starts(1000, 131, 64)
    assert starts[0] == 0 and np.all(np.diff(starts[:-1]) == 64)
    assert starts[-1] == 1000 - 131  # last window ends at the last frame
    assert window_starts(131, 131, 64).tolist() == [0]
    assert window_starts(50, 131, 64).tolist() == [0]


def test_windows_slice_and_pad():
    feats = np.arange(300 * 3, dtype=np.float32).reshape(300, 3)
    starts = window_starts(300, 131, 64)
    w = windows(feats, starts, 131)
    assert w.shape == (len(starts), 131, 3)
    for i, s in enumerate(starts):
        np.testing.assert_array_equal(w[i], feats[s : s + 131])
    short = windows(feats[:10], np.zeros(1, np.int64), 131)
    np.testing.assert_array_equal(short[0, :10], feats[:10])
    np.testing.assert_array_equal(short[0, 10:], np.repeat(feats[9:10], 121, 0))  # edge-padded


def test_check_compatible_names_the_difference():
    check_compatible(CFG, FeatureConfig(), "x")
    with pytest.raises(ModelError, match="n_mfcc 10 vs 13"):
        check_compatible(CFG, FeatureConfig(n_mfcc=13), "dataset d")
