"""Speed of the learning path: decoding and features of a 60-minute MP3, and training throughput from the cache.

Generates a synthetic 60-minute episode (44.1 kHz stereo, 128 kbps MP3 by default: what podcasts
ship) in a temporary folder, then prints:

- decode time (PyAV + soxr to mono 4096 Hz), as x realtime
- decode + features (``features.episode_features``, one streaming pass), and features alone
- training throughput of the reference LSTM (hidden 128, batch 32) over 4,000 cached windows,
  windows/s and seconds per epoch, with 1 and 2 torch threads, fp32 and bf16 autocast

Wall and CPU seconds are both printed: on a shared machine the CPU seconds show the cost of the
work itself.

Targets (issue 2): decode + features < 5 s; one epoch over 4,000 windows < 10 s.

    .venv/bin/python benchmarks/learn_speed.py [--minutes 60] [--sample-rate 44100] [--channels 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as adcut/__init__.py does; numpy is imported first here

import numpy as np  # noqa: E402

from adcut.demo import synth
from adcut.demo.synth import EpisodeSpec, random_spec
from adcut.features.episode import episode_features
from adcut.features.mfcc import FeatureConfig, compute_features, window_starts
from adcut.learn.dataset import Dataset, DatasetConfig
from adcut.media.decode import iter_blocks


def write_long_mp3(path: Path, minutes: float, sample_rate: int, channels: int, bit_rate: int) -> EpisodeSpec:
    """A long synthetic episode with random ad breaks (its labels are returned for the training part)."""
    spec = random_spec(minutes * 60.0, np.random.default_rng(0))
    synth.write_long_mp3(path, spec, sample_rate=sample_rate, channels=channels, bit_rate=bit_rate)
    return spec


def timed(fn, repeats: int = 2):
    """Best wall time of ``repeats`` runs, the CPU seconds of that run, and the result."""
    best, cpu, result = float("inf"), 0.0, None
    for _ in range(repeats):
        began, began_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall = time.perf_counter() - began
        if wall < best:
            best, cpu = wall, time.process_time() - began_cpu
    return best, cpu, result


def dataset_of_windows(feats: np.ndarray, spec: EpisodeSpec, n_windows: int, cfg: FeatureConfig) -> Dataset:
    """An in-memory dataset of ``n_windows`` training windows cut from ``feats`` (repeated as needed)."""
    starts = window_starts(len(feats), cfg.window_frames, cfg.window_hop_frames)
    centre = (starts + cfg.window_frames / 2) * cfg.frame_seconds
    is_ad = np.zeros(len(starts), bool)
    for a, b in spec.ads:
        is_ad |= (centre >= a) & (centre < b)
    labels = np.where(is_ad, 0, 1)
    repeats = int(np.ceil(n_windows / len(starts)))
    start = np.tile(starts, repeats)[:n_windows]
    return Dataset(
        path=Path("<memory>"),
        manifest={"dataset_id": "benchmark"},
        feature_config=cfg,
        config=DatasetConfig(),
        classes=("ad", "content"),
        frames=feats,
        offsets=np.zeros(1, np.int64),
        window_episode=np.zeros(n_windows, np.int64),
        window_start=start,
        window_label=np.tile(labels, repeats)[:n_windows],
        window_validation=np.zeros(n_windows, bool),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--channels", type=int, default=2, choices=(1, 2))
    parser.add_argument("--windows", type=int, default=4000)
    parser.add_argument("--batch-sizes", default="32", help="comma-separated batch sizes to time")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument(
        "--mp3", type=Path, default=None, help="keep the generated MP3 here and reuse it next time"
    )
    parser.add_argument("--no-train", action="store_true", help="time decoding and features only")
    parser.add_argument(
        "--precisions", default="fp32,bf16", help="comma-separated training precisions to time"
    )
    args = parser.parse_args()

    cfg = FeatureConfig()
    print(
        f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} (wall times suffer when it exceeds the cores)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = args.mp3 or Path(tmp) / "episode.mp3"
        began = time.perf_counter()
        if path.is_file():
            spec = random_spec(args.minutes * 60.0, np.random.default_rng(0))  # the spec it was made with
        else:
            spec = write_long_mp3(path, args.minutes, args.sample_rate, args.channels, 128_000)
        seconds = spec.duration
        print(
            f"{'reused' if args.mp3 and time.perf_counter() - began < 1 else 'generated'} {args.minutes:g} min {args.sample_rate} Hz {'stereo' if args.channels == 2 else 'mono'} "
            f"128 kbps MP3 ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - began:.1f} s"
        )

        def decode_only():
            return np.concatenate(list(iter_blocks(path, cfg.sample_rate)))

        t_decode, c_decode, samples = timed(decode_only)
        print(
            f"decode to mono {cfg.sample_rate} Hz:   {t_decode:6.2f} s wall, {c_decode:6.2f} s CPU  ({seconds / t_decode:6.0f}x realtime)"
        )
        t_both, c_both, (feats, _) = timed(lambda: episode_features(path, cfg))
        print(
            f"decode + features:          {t_both:6.2f} s wall, {c_both:6.2f} s CPU  ({seconds / t_both:6.0f}x realtime)  "
            f"target < 5 s: {'met' if t_both < 5 else 'MISSED'}"
        )
        t_feat, c_feat, _ = timed(lambda: compute_features(samples, cfg))
        print(
            f"features alone (in memory): {t_feat:6.2f} s wall, {c_feat:6.2f} s CPU  ({seconds / t_feat:6.0f}x realtime)"
        )

    if args.no_train:
        return
    from adcut.learn.train import TrainConfig, train

    dataset = dataset_of_windows(feats, spec, args.windows, cfg)
    print(f"training: LSTM hidden {args.hidden}, 2 layers, one epoch over {args.windows} cached windows")
    with tempfile.TemporaryDirectory() as tmp:
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            for precision in args.precisions.split(","):
                for threads in (1, 2):
                    config = TrainConfig(
                        model_config={"hidden_size": args.hidden},
                        batch_size=batch_size,
                        epochs=1,
                        early_stopping_patience=None,
                        threads=threads,
                        device="cpu",
                        precision=precision,
                    )
                    train(dataset, config, Path(tmp) / "warm.pt", progress=False)  # warm-up
                    t_epoch, c_epoch, _ = timed(
                        lambda config=config: train(dataset, config, Path(tmp) / "m.pt", progress=False),
                        repeats=1,
                    )
                    print(
                        f"  batch {batch_size:4d} {precision}, {threads} thread{'s' if threads > 1 else ' '}: {t_epoch:6.2f} s/epoch "
                        f"({c_epoch:6.2f} s CPU), {args.windows / t_epoch:6.0f} windows/s  target < 10 s: "
                        f"{'met' if t_epoch < 10 else 'MISSED'}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
