"""Synthetic "episodes" with known ad breaks, for the demo, the tests and the benchmarks.

Content is speech-like: noise through moving formant filters, chopped into syllables with short
pauses. Ads are speech-like too, but over a music bed (a chord with a steady beat), louder and
brighter, as radio and podcast ads usually are. Every ad break begins and ends with a short
pause, as real ones mostly do, so boundary refinement has something to find.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adcut.core.segments import Segment, fill_background
from adcut.formats.labels import format_audacity
from adcut.core.units import Seconds


@dataclass(frozen=True)
class EpisodeSpec:
    duration: Seconds
    ads: tuple[tuple[Seconds, Seconds], ...]  # (start, end) of each ad break


def speech_like(n: int, sample_rate: int, rng: np.random.Generator, *, brightness: float = 1.0) -> np.ndarray:
    """Noise shaped by a few drifting formants and a 3-6 Hz syllable envelope with pauses."""
    t = np.arange(n) / sample_rate
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    shape = np.zeros_like(freqs)
    for centre, width in ((500, 150), (1500, 250), (2500 * brightness, 400)):
        centre = min(centre * rng.uniform(0.85, 1.15), sample_rate / 2 * 0.9)
        shape += np.exp(-0.5 * ((freqs - centre) / width) ** 2)
    voiced = np.fft.irfft(spectrum * shape, n)
    # A pitch-like buzz makes it more speech than hiss.
    pitch = rng.uniform(100, 180)
    voiced += 0.3 * np.sign(np.sin(2 * np.pi * pitch * t)) * np.std(voiced)
    rate = rng.uniform(3.0, 6.0)
    envelope = np.clip(np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.28)), 0, None) ** 0.5
    # Pauses: ~20% of 0.5 s blocks are silent.
    blocks = rng.random(int(np.ceil(n / (sample_rate * 0.5)))) > 0.2
    gate = np.repeat(blocks, int(sample_rate * 0.5))[:n]
    signal = voiced * envelope * gate
    return (signal / (np.std(signal) + 1e-9)).astype(np.float32)


def music_bed(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A sustained chord with harmonics and a 2 Hz beat: tonal and rhythmic where speech is not."""
    t = np.arange(n) / sample_rate
    root = rng.choice([110.0, 130.8, 146.8, 164.8])
    out = np.zeros(n)
    for ratio in (1.0, 1.25, 1.5, 2.0):
        for harmonic, weight in ((1, 1.0), (2, 0.5), (3, 0.25)):
            freq = root * ratio * harmonic
            if freq < sample_rate / 2:
                out += weight * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.28))
    beat = 0.6 + 0.4 * (np.sin(2 * np.pi * 2.0 * t) > 0.7)
    out *= beat
    return (out / (np.std(out) + 1e-9)).astype(np.float32)


def render_episode(spec: EpisodeSpec, sample_rate: int, seed: int = 0, pause_seconds: Seconds = 0.4) -> np.ndarray:
    """Mono float32 audio for ``spec``: content everywhere, ads over a music bed inside ``spec.ads``."""
    rng = np.random.default_rng(seed)
    n = int(round(spec.duration * sample_rate))
    audio = 0.08 * speech_like(n, sample_rate, rng)
    for start, end in spec.ads:
        a, b = int(start * sample_rate), min(n, int(end * sample_rate))
        length = b - a
        ad = 0.12 * speech_like(length, sample_rate, rng, brightness=1.3) + 0.07 * music_bed(length, sample_rate, rng)
        audio[a:b] = ad
        # A short pause on each side of the break.
        gap = int(pause_seconds * sample_rate)
        audio[max(0, a - gap // 2) : a + gap // 2] *= 0.02
        audio[max(0, b - gap // 2) : b + gap // 2] *= 0.02
    audio += 0.002 * rng.standard_normal(n).astype(np.float32)  # room noise: never digital silence
    return np.clip(audio, -1, 1).astype(np.float32)


def episode_segments(spec: EpisodeSpec, classes: Sequence[str] = ("ad", "content")) -> list[Segment]:
    """The true labels of ``spec``, tiling the episode."""
    ads = [Segment(start, min(end, spec.duration), classes[0]) for start, end in spec.ads]
    return fill_background(ads, spec.duration, classes[1])


def random_spec(duration: Seconds, rng: np.random.Generator, *, ad_range=(15.0, 60.0), content_range=(30.0, 120.0)) -> EpisodeSpec:
    """An episode starting with content, with ad breaks of random length at random gaps."""
    ads = []
    cursor = rng.uniform(*content_range)
    while cursor + ad_range[0] < duration - content_range[0] / 2:
        length = rng.uniform(*ad_range)
        end = min(cursor + length, duration)
        ads.append((round(cursor, 2), round(end, 2)))
        cursor = end + rng.uniform(*content_range)
    return EpisodeSpec(duration, tuple(ads))


def write_episode(path, spec: EpisodeSpec, *, sample_rate: int = 16000, seed: int = 0, bit_rate: int | None = None) -> np.ndarray:
    """Render ``spec`` and encode it to ``path`` (format by suffix); returns the samples."""
    from adcut.media.encode import write_audio

    samples = render_episode(spec, sample_rate, seed)
    write_audio(path, samples, sample_rate, bit_rate=bit_rate)
    return samples


def write_labelled_episode(path, spec: EpisodeSpec, *, sample_rate: int = 16000, seed: int = 0,
                           bit_rate: int | None = None) -> list[Segment]:
    """``write_episode``, plus the ads as an Audacity label file beside it (``path`` with ``.txt``); the true segments."""
    from pathlib import Path

    write_episode(path, spec, sample_rate=sample_rate, seed=seed, bit_rate=bit_rate)
    truth = episode_segments(spec)
    Path(path).with_suffix(".txt").write_text(format_audacity(truth, only=("ad",)))
    return truth


def write_long_mp3(path, spec: EpisodeSpec, *, sample_rate: int = 44100, channels: int = 2,
                   bit_rate: int = 128_000, seed: int = 0) -> None:
    """Encode a long episode (hours) to MP3 minute by minute, so it never sits in memory whole.

    Each minute is rendered at 16 kHz (the synth's FFTs would dominate otherwise) and resampled
    to ``sample_rate``. LAME's fastest mode: benchmarks need the file, not its finest quality.
    """
    import av
    import soxr

    from adcut.media.encode import StreamEncoder, open_audio_stream

    render_rate = 16000
    container = av.open(str(path), mode="w", format="mp3")
    try:
        layout = "mono" if channels == 1 else "stereo"
        stream = open_audio_stream(container, "libmp3lame", sample_rate, layout, bit_rate,
                                   options={"compression_level": "9"})
        encoder = StreamEncoder(container, stream, "fltp", layout, sample_rate)
        for minute in range(int(np.ceil(spec.duration / 60.0))):
            start, end = minute * 60.0, min(minute * 60.0 + 60.0, spec.duration)
            ads = tuple((max(a, start) - start, min(b, end) - start) for a, b in spec.ads if a < end and b > start)
            mono = render_episode(EpisodeSpec(end - start, ads), render_rate, seed=seed + minute)
            if sample_rate != render_rate:
                mono = soxr.resample(mono, render_rate, sample_rate).astype(np.float32)
            encoder.push(np.tile(mono, (channels, 1)))
        encoder.finish()
    finally:
        container.close()
