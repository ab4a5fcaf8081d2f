"""How long the labeller takes to draw a long episode's waveform: peaks of a long stereo MP3.

Writes a synthetic MP3 (a rendered minute repeated) of ``--minutes`` length, then times, in the
same run: decoding alone (``audio.iter_frames``, the floor), the labeller's peaks
(``compute_peaks``), and the obvious alternative (``audio.decode`` at 4096 Hz, then min/max).
Prints seconds and each figure as a ratio to the decode-only baseline.

    .venv/bin/python benchmarks/labeller_peaks.py --minutes 180
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from adcut.audio import decode, iter_frames
from adcut.labeller.peaks import PeaksConfig, compute_peaks
from adcut.synth import EpisodeSpec, render_episode


def write_long_mp3(path: Path, minutes: float, sample_rate: int = 44100) -> None:
    minute = render_episode(EpisodeSpec(60.0, ((20.0, 40.0),)), sample_rate, seed=1)
    stereo = np.stack([minute, 0.8 * minute])
    container = av.open(str(path), mode="w", format="mp3")
    stream = container.add_stream("libmp3lame", rate=sample_rate, layout="stereo")
    stream.bit_rate = 128_000
    stream.codec_context.open()
    block = stream.codec_context.frame_size or 1152
    pts = 0
    for _ in range(int(np.ceil(minutes))):
        for start in range(0, stereo.shape[1] - block + 1, block):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, start : start + block]), format="fltp", layout="stereo")
            frame.sample_rate = sample_rate
            frame.pts = pts
            pts += block
            for packet in stream.encode(frame):
                container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()


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
        print(f"decode at 4096 Hz, then min/max:  {alternative:6.2f} s   {alternative / baseline:.2f}x of decode only")
        print(f"levels: {[lvl.shape[0] for lvl in peaks.levels]}, "
              f"JSON size {len(str(peaks.to_json())) / 1e6:.1f} MB, audio {peaks.duration:.0f} s")


if __name__ == "__main__":
    main()
