"""Decoding one file in several processes gives the features of one pass (parallel_decode)."""

import numpy as np
import pytest

from adcut.demo.synth import EpisodeSpec, render_episode
from adcut.errors import AudioError
from adcut.features import episode as parallel_decode
from adcut.features.episode import EpisodeMfcc, episode_features, grid_frames, plan_ranges
from adcut.features.mfcc import FeatureConfig
from adcut.media.encode import write_audio

CFG = FeatureConfig()
SECONDS = 40.0


@pytest.fixture(autouse=True)
def short_files_split(monkeypatch):
    """Split files of a few seconds (the real threshold is minutes), so tests stay fast."""
    monkeypatch.setattr(parallel_decode, "MIN_SPLIT_SECONDS", 5.0)
    monkeypatch.delenv(parallel_decode.WORKERS_ENV, raising=False)


def _episode(tmp_path, suffix, rate, channels, bit_rate=None):
    mono = render_episode(EpisodeSpec(SECONDS, ((12.0, 25.0),)), 16000, seed=3)
    import soxr

    signal = soxr.resample(mono, 16000, rate).astype(np.float32)
    samples = np.stack([signal, 0.5 * np.roll(signal, 37)][:channels])
    path = tmp_path / f"episode-{rate}-{channels}{suffix}"
    write_audio(path, samples, rate, bit_rate=bit_rate)
    return path


def _mfcc(path, workers, **options):
    source = EpisodeMfcc(path, CFG, workers, **({"prefetch": False} | options))
    mfcc = np.concatenate(list(source))
    return mfcc, source.n_samples, source.split_used


@pytest.mark.parametrize(
    "suffix, rate, channels",
    [
        (".mp3", 44100, 2),
        (".mp3", 22050, 1),
        (".wav", 44100, 2),
        (".wav", 16000, 1),
        (".flac", 48000, 1),
        (".flac", 32000, 2),
        (".ogg", 44100, 2),
    ],
)
def test_split_features_equal_one_pass(tmp_path, suffix, rate, channels):
    path = _episode(tmp_path, suffix, rate, channels, bit_rate=96000)
    one, n_one, split_one = _mfcc(path, 1)
    for workers in (2, 3):
        joined, n_joined, split = _mfcc(path, workers)
        assert split and not split_one
        assert n_joined == n_one and joined.shape == one.shape
        # rounding of a resampler started elsewhere only: ~1e-6 of the values' scale
        assert np.abs(joined - one).max() < 1e-5 * np.abs(one).max()
    # detection's way: the first, smaller range decoded here in a background thread
    joined, n_joined, split = _mfcc(path, 2, prefetch=True, local_first=True, first_size=0.6)
    assert split and n_joined == n_one and np.abs(joined - one).max() < 1e-5 * np.abs(one).max()
    feats, duration = episode_features(path, CFG, workers=2)
    expected, expected_duration = episode_features(path, CFG, workers=1)
    assert duration == expected_duration and feats.shape == expected.shape
    assert np.abs(feats - expected).max() < 1e-5 * np.abs(expected).max()


def test_a_smaller_first_range_starts_the_second_where_it_should():
    from adcut.media.decode import AudioInfo

    episode = AudioInfo("x.mp3", "mp3", "mp3", 44100, 2, 128000, 3600.0)
    equal = plan_ranges(episode, CFG, 2)
    smaller = plan_ranges(episode, CFG, 2, first_share=0.6 / 1.6)
    frames = 3600 * CFG.sample_rate / CFG.hop_length
    assert abs(equal[1] - frames / 2) <= grid_frames(44100, CFG)
    assert abs(smaller[1] - frames * 0.375) <= grid_frames(44100, CFG)


def test_split_points_are_exact_in_both_rates():
    for rate in (44100, 48000, 22050, 32000, 11025, 8000, 44101):
        grid = grid_frames(rate, CFG)
        assert (grid * CFG.hop_length * rate) % CFG.sample_rate == 0
        assert all((g * CFG.hop_length * rate) % CFG.sample_rate for g in range(1, grid))  # the smallest


def test_short_files_and_unseekable_codecs_use_one_pass(tmp_path):
    from adcut.media.decode import probe

    path = _episode(tmp_path, ".m4a", 48000, 2, bit_rate=96000)  # AAC timestamps after a seek are not exact
    assert plan_ranges(probe(path), CFG, 2) is None
    joined, _, split = _mfcc(path, 2)
    assert not split and np.array_equal(joined, _mfcc(path, 1)[0])
    wav = _episode(tmp_path, ".wav", 16000, 1)
    assert plan_ranges(probe(wav), CFG, 2) is not None
    parallel_decode.MIN_SPLIT_SECONDS = SECONDS + 1
    assert plan_ranges(probe(wav), CFG, 2) is None


def test_ranges_that_do_not_meet_fall_back_to_one_pass(tmp_path, monkeypatch):
    """A split whose shared samples differ (misplaced by a seek) is detected; the result stays exact."""
    path = _episode(tmp_path, ".wav", 16000, 1)
    one, n_one, _ = _mfcc(path, 1)
    original = parallel_decode.range_messages

    calls = []

    def misplaced(path, config, first, stop, tap_rate=None):
        calls.append(first)
        for message in original(path, config, first, stop, tap_rate):
            if message[0] == "check" and message[1] == "tail":
                message = (*message[:2], message[2] + 1e-3)
            yield message

    monkeypatch.setattr(parallel_decode, "range_messages", misplaced)  # the first range runs in this process
    tap = Collected()
    joined, n_joined, split = _mfcc(path, 2, tap=tap)
    assert calls == [0] and not split and n_joined == n_one and joined.shape == one.shape
    # the one pass that took over gave the tap the whole file again
    from adcut.media.decode import iter_blocks, pcm16

    assert np.array_equal(tap.audio(), pcm16(np.concatenate(list(iter_blocks(path, 16000)))))
    # the same frames to float32 rounding: the first range was computed in blocks of other sizes, which
    # BLAS may sum in another order (a misplaced split would differ by whole frames, far beyond this)
    np.testing.assert_allclose(joined, one, rtol=1e-5, atol=1e-4)


class Collected:
    """A tap: the samples written at each offset, checked for overlaps and gaps at the end."""

    sample_rate = 16000

    def __init__(self):
        self.pieces: list[tuple[int, np.ndarray]] = []

    def write(self, offset, pcm):
        assert pcm.dtype == np.int16
        self.pieces.append((offset, pcm.copy()))

    def audio(self) -> np.ndarray:
        out = np.zeros(max(o + len(p) for o, p in self.pieces), np.int16)
        covered = np.zeros(len(out), bool)
        for offset, pcm in self.pieces:
            out[offset : offset + len(pcm)] = pcm
            covered[offset : offset + len(pcm)] = True
        assert covered.all()
        return out


@pytest.mark.parametrize(
    "suffix, rate, channels", [(".mp3", 44100, 2), (".flac", 48000, 1), (".wav", 16000, 1)]
)
def test_the_tap_gets_the_whole_file_at_its_rate_from_the_same_decode(tmp_path, suffix, rate, channels):
    """What speech recognition reads instead of decoding the file again: equal to a decode at 16 kHz,
    whether one pass or several processes made it, and the features stay what they were."""
    from adcut.media.decode import iter_blocks, pcm16

    path = _episode(tmp_path, suffix, rate, channels, bit_rate=96000)
    expected = pcm16(np.concatenate(list(iter_blocks(path, 16000))))
    for workers in (1, 2, 3):
        tap = Collected()
        mfcc, _, split = _mfcc(path, workers, tap=tap)
        assert split == (workers > 1) and np.array_equal(mfcc, _mfcc(path, workers)[0])
        got = tap.audio()
        assert len(got) == len(expected)
        # each range's resampler starts elsewhere: at most a unit of rounding apart
        assert np.abs(got.astype(np.int32) - expected).max() <= 1
        if workers > 1:  # each range gave only its own part, so no sample came twice
            assert sum(len(p) for _, p in tap.pieces) == len(expected)


def test_truncated_file_reports_the_one_pass_error(tmp_path):
    path = _episode(tmp_path, ".wav", 16000, 1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # header still declares the full length
    with pytest.raises(AudioError) as split_error:
        episode_features(path, CFG, workers=2)
    with pytest.raises(AudioError) as one_error:
        episode_features(path, CFG, workers=1)
    assert str(split_error.value) == str(one_error.value) and "truncated" in str(one_error.value)


def test_worker_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, runpy; sys.argv = ['x']; import adcut.features.episode; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_detect_streaming_with_split_equals_one_pass(tmp_path, random_checkpoint):
    """detect's streamed features and window probabilities with a split file match one pass's."""
    from adcut.detect.windows import predict_episode, stream_window_probs
    from adcut.features.mfcc import window_starts
    from adcut.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(random_checkpoint(hidden_size=8, num_layers=1))
    model = ckpt.build_model()
    path = _episode(tmp_path, ".mp3", 44100, 2, bit_rate=96000)
    features, starts, probs, duration = stream_window_probs(
        path, CFG, model, 16, batch_size=8, device="cpu", decode_workers=2
    )
    expected, expected_duration = episode_features(path, CFG, workers=1)
    assert duration == expected_duration and features.shape == expected.shape
    assert np.abs(features - expected).max() < 1e-5 * np.abs(expected).max()
    assert np.array_equal(starts, window_starts(len(expected), CFG.window_frames, 16))
    one_pass = predict_episode(model, expected, starts, CFG.window_frames, batch_size=8, device="cpu")
    np.testing.assert_allclose(probs, one_pass, atol=1e-4)


@pytest.mark.parametrize("suffix, channels", [(".mp3", 2), (".ogg", 2), (".mp3", 1), (".wav", 2)])
def test_blocks_average_the_channels_exactly(tmp_path, suffix, channels):
    """The planar-float path (sums straight from the frames' planes) equals ``mean`` over the channels."""
    from adcut.media.decode import decode_original, iter_blocks

    path = _episode(tmp_path, suffix, 22050, channels, bit_rate=64000)
    info, original = decode_original(path)
    blocks = list(
        iter_blocks(path, info.sample_rate, block_seconds=1.3)
    )  # no resampling: the mono signal itself
    assert len(blocks) > 10
    expected = original.mean(axis=0, dtype=np.float32) if channels > 1 else original[0]
    assert np.array_equal(np.concatenate(blocks), expected)
