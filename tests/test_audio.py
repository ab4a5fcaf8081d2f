"""Decoding: every common format, downmix by averaging, resampling, and one clear error for bad files."""

import numpy as np
import pytest
from tests.conftest import tone

from adcut.errors import AudioError
from adcut.media.decode import decode, iter_blocks, probe
from adcut.media.encode import write_audio

FEATURE_RATE = 4096


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / sample_rate)[spectrum.argmax()])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize(
    "suffix,sample_rate,channels",
    [
        (".wav", 16000, 1),
        (".wav", 44100, 2),
        (".flac", 22050, 2),
        (".mp3", 44100, 2),
        (".mp3", 16000, 1),
        (".ogg", 22050, 2),
        (".m4a", 44100, 2),
        (".opus", 48000, 2),
    ],
)
def test_formats_decode_to_mono_at_feature_rate(tmp_path, suffix, sample_rate, channels):
    seconds = 6.0
    signal = tone(440.0, seconds, sample_rate, amplitude=0.3)
    path = tmp_path / f"clip{suffix}"
    write_audio(path, np.tile(signal, (channels, 1)), sample_rate)

    info = probe(path)
    assert info.sample_rate == sample_rate and info.channels == channels
    assert info.duration == pytest.approx(seconds, abs=0.1)
    decoded = decode(path, FEATURE_RATE)
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    # Lossy codecs add a few ms of encoder delay/padding at most.
    assert len(decoded) / FEATURE_RATE == pytest.approx(seconds, abs=0.06)
    middle = decoded[FEATURE_RATE:-FEATURE_RATE]
    assert dominant_frequency(middle, FEATURE_RATE) == pytest.approx(440.0, abs=2.0)
    # Same loudness as one channel (averaged, not summed); lossy codecs lose a little.
    assert rms(middle) == pytest.approx(0.3 / np.sqrt(2), rel=0.06)


def test_opposite_channels_average_to_silence(tmp_path):
    x = tone(300.0, 3.0, FEATURE_RATE, amplitude=0.5)
    path = tmp_path / "opposite.wav"
    write_audio(path, np.stack([x, -x]), FEATURE_RATE)
    assert np.abs(decode(path, FEATURE_RATE)).max() < 1e-4


def test_one_silent_channel_halves_the_other(tmp_path):
    x = tone(300.0, 3.0, FEATURE_RATE, amplitude=0.5)
    path = tmp_path / "left.wav"
    write_audio(path, np.stack([x, np.zeros_like(x)]), FEATURE_RATE)
    decoded = decode(path, FEATURE_RATE)
    assert len(decoded) == len(x)
    np.testing.assert_allclose(decoded, x / 2, atol=1e-4)  # int16 quantisation only


def test_resampling_keeps_frequency_and_length(tmp_path):
    sample_rate = 44100
    x = tone(1000.0, 5.0, sample_rate, amplitude=0.4)
    path = tmp_path / "hi.wav"
    write_audio(path, x, sample_rate)
    decoded = decode(path, FEATURE_RATE)
    assert abs(len(decoded) - round(len(x) * FEATURE_RATE / sample_rate)) <= 1
    assert dominant_frequency(decoded, FEATURE_RATE) == pytest.approx(1000.0, abs=2.0)
    assert rms(decoded[FEATURE_RATE:-FEATURE_RATE]) == pytest.approx(0.4 / np.sqrt(2), rel=0.01)


def test_streamed_blocks_join_to_the_whole(tmp_path):
    sample_rate = 22050
    x = tone(200.0, 9.0, sample_rate) + tone(1200.0, 9.0, sample_rate, amplitude=0.2)
    path = tmp_path / "long.flac"
    write_audio(path, x, sample_rate)
    blocks = list(iter_blocks(path, FEATURE_RATE, block_seconds=1.0))
    assert len(blocks) >= 8  # really streamed
    whole = decode(path, FEATURE_RATE)
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)


def _bad_file(tmp_path, kind: str):
    if kind == "missing":
        return tmp_path / "nothing.mp3", "file not found"
    if kind == "empty":
        path = tmp_path / "empty.mp3"
        path.write_bytes(b"")
        return path, "file is empty"
    if kind == "text":
        path = tmp_path / "notes.wav"
        path.write_text("these are my notes, not audio\n" * 40)
        return path, "not a readable audio file"
    suffix = ".mp3" if kind == "truncated-mp3" else ".wav"
    path = tmp_path / f"cut{suffix}"
    write_audio(path, tone(440.0, 20.0, 16000), 16000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "truncated or corrupt"


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated-mp3", "truncated-wav"])
def test_bad_files_give_one_clear_error_naming_the_file(tmp_path, kind):
    path, message = _bad_file(tmp_path, kind)
    with pytest.raises(AudioError) as info:
        decode(path, FEATURE_RATE)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


@pytest.mark.parametrize("kind", ["empty", "text", "truncated-mp3"])
def test_bad_audio_in_cli_is_one_line_and_exit_1(tmp_path, kind, capsys, random_checkpoint):
    from adcut.cli import main

    path, message = _bad_file(tmp_path, kind)
    model = random_checkpoint(hidden_size=8)
    assert main(["-q", "classify", str(path), "--model", str(model)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"adcut: error: {path}") and message in err[0]
