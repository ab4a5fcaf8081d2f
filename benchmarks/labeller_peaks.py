"""How long the labeller takes to draw a long episode's waveform: peaks of a long stereo MP3.

Writes a synthetic stereo 44.1 kHz MP3 (one encoded minute repeated) of ``--minutes`` length,
then times, in the same run: decoding alone (``audio.iter_frames``, the floor), the labeller's peaks
(``compute_peaks``), and the obvious alternative (``audio.decode`` at 4096 Hz, then min/max).
Prints seconds and each figure as a ratio to the decode-only baseline.

    .venv/bin/python benchmarks/labeller_peaks.py --minutes 180
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from adcut.demo.synth import EpisodeSpec, render_episode
from adcut.labeller.peaks import BackgroundPeaks, PeaksConfig, compute_peaks
from adcut.media.decode import decode, iter_frames
from adcut.media.encode import write_audio


def write_long_mp3(path: Path, minutes: float, sample_rate: int = 44100) -> None:
    """One encoded minute repeated: MP3 frames stand alone, so the bytes concatenate into one stream."""
    minute = render_episode(EpisodeSpec(60.0, ((20.0, 40.0),)), sample_rate, seed=1)
    one = path.with_name("minute.mp3")
    write_audio(one, np.stack([minute, 0.8 * minute]), sample_rate, bit_rate=128_000)
    data = one.read_bytes()
    one.unlink()
    frames = data
    if data[:3] == b"ID3":  # the tag may only open the file: later copies go without it
        size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F)
        frames = data[10 + size :]
    with open(path, "wb") as handle:
        handle.write(data)
        for _ in range(int(np.ceil(minutes)) - 1):
            handle.write(frames)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.mp3"
        write_long_mp3(path, args.minutes)
        print(f"episode: {args.minutes:g} min stereo 44.1 kHz MP3, {path.stat().st_size / 1e6:.0f} MB")

        baseline = timed(lambda: sum(1 for _ in iter_frames(path)))
        peaks = None

        def run_peaks():
            nonlocal peaks
            peaks = compute_peaks(path, PeaksConfig())

        ours = timed(run_peaks)

        def resample_then_minmax():
            samples = decode(path, 4096)
            spb = 41
            whole = samples[: samples.size // spb * spb].reshape(-1, spb)
            return whole.min(axis=1), whole.max(axis=1)

        alternative = timed(resample_then_minmax)
        print(f"decode only (iter_frames):        {baseline:6.2f} s   1.00x")
        print(f"labeller peaks (compute_peaks):   {ours:6.2f} s   {ours / baseline:.2f}x of decode only")
        print(
            f"decode at 4096 Hz, then min/max:  {alternative:6.2f} s   {alternative / baseline:.2f}x of decode only"
        )
        # What the page sees: the first partial waveform, then the whole one.
        start = time.perf_counter()
        background = BackgroundPeaks(path)
        while background.progress()[0] < 60 and not background.progress()[1]:
            time.sleep(0.01)
        first_minute = time.perf_counter() - start
        first = background.snapshot()
        json_seconds = timed(first.to_json)
        background.wait()
        whole = time.perf_counter() - start
        print(
            f"page: first minute of waveform after {first_minute:.2f} s (its JSON {json_seconds * 1000:.0f} ms), "
            f"whole waveform after {whole:.2f} s"
        )
        print(
            f"levels: {[lvl.shape[0] for lvl in peaks.levels]}, "
            f"JSON size {len(str(peaks.to_json())) / 1e6:.1f} MB, audio {peaks.duration:.0f} s"
        )


if __name__ == "__main__":
    main()
