"""LSTM vs. transformer from labels vs. transformer distilled from that LSTM, on generated episodes.

Every model gets the same training budget (epochs, batches per epoch, batch size, learning rate)
on the same dataset; the transformers are also trained on the reference student's cheaper
features (2048 Hz, 4 MFCC, 32-frame windows), from labels and distilled from the LSTM that reads
the full features. Scores are window accuracy and ad F1 on held-out generated episodes (never
seen in training or validation), and inference speed in windows/s on this machine (batch 256,
after a warm-up), with the speed of the reference LSTM as the baseline ratio in the same run.

    .venv/bin/python benchmarks/model_compare.py [--quick] [--seeds 3] [--epochs 8] [--teacher-epochs N]

Prints a table; takes a few minutes on 2 cores (``--quick``: about a minute, noisier).

Reading it: with two classes a teacher's soft target is one number per window, and on its own
training windows the teacher is nearly always right and confident, so distillation here mostly
acts as label smoothing plus "copy the teacher". The student follows its teacher: it gains
when the teacher generalises better than the student would alone (``--teacher-epochs``), and
loses when it does not. A student on the cheaper features gets the teacher's view of a longer
window around each of its own short ones; near ad boundaries that view disagrees with the short
window's label (the "teacher agrees" lines), which limits what it can pass on.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from adcut.demo.synth import episode_segments, random_spec, render_episode
from adcut.evaluate.compare import (
    EpisodeWindows,
    SpeedConfig,
    compare_models,
    find_episodes,
    windows_per_second,
)
from adcut.features.mfcc import FeatureConfig
from adcut.formats.labels import format_audacity
from adcut.learn.dataset import DatasetConfig, build_dataset
from adcut.learn.distill import teacher_logits
from adcut.learn.sources import find_episodes as dataset_episodes
from adcut.learn.train import TrainConfig, train
from adcut.media.encode import write_audio
from adcut.models.checkpoint import load_checkpoint
from adcut.models.inference import set_torch_threads

SAMPLE_RATE = 8000
CHEAP = FeatureConfig(
    sample_rate=2048, n_fft=256, hop_length=128, n_mfcc=4, window_frames=32, window_hop_frames=16
)


def make_episodes(folder: Path, count: int, minutes: float, seed: int, noise: float) -> None:
    """Generated episodes with extra broadband noise, so the task is not trivially separable."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        spec = random_spec(minutes * 60, rng, ad_range=(20.0, 60.0), content_range=(30.0, 90.0))
        samples = render_episode(spec, SAMPLE_RATE, seed * 1000 + i)
        samples = samples * rng.uniform(0.5, 1.5) + noise * rng.standard_normal(len(samples)).astype(
            np.float32
        )
        write_audio(folder / f"ep{seed}-{i}.wav", np.clip(samples, -1, 1), SAMPLE_RATE)
        (folder / f"ep{seed}-{i}.txt").write_text(format_audacity(episode_segments(spec), only=("ad",)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter episodes and one seed")
    parser.add_argument(
        "--seeds", type=int, default=None, help="training seeds per transformer (default 3; quick 1)"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs for every model (default 8; quick 4)"
    )
    parser.add_argument(
        "--teacher-epochs",
        type=int,
        default=None,
        help="epochs for the LSTM teacher only (default: the same budget as every model)",
    )
    parser.add_argument(
        "--noise", type=float, default=0.1, help="std of added white noise (speech is ~0.08; default 0.1)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the speed test (default 1)")
    parser.add_argument(
        "--keep", type=Path, default=None, help="work in this folder and keep it (default: a temporary one)"
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.ERROR, format="%(message)s"
    )  # "no validation episodes" is intended here

    seeds = args.seeds or (1 if args.quick else 3)
    epochs = args.epochs or (4 if args.quick else 8)
    n_train, n_test, minutes = (4, 3, 2.0) if args.quick else (6, 6, 3.0)
    budget = dict(
        lr=2e-3,
        epochs=epochs,
        batch_size=32,
        batches_per_epoch=15,
        early_stopping_patience=None,
        device="cpu",
    )
    transformer = {"d_model": 32, "n_heads": 4, "num_layers": 2, "dim_feedforward": 128, "dropout": 0.1}

    work = args.keep or Path(tempfile.mkdtemp(prefix="adcut-model-compare-"))
    began = time.perf_counter()
    make_episodes(work / "train", n_train, minutes, seed=1, noise=args.noise)
    make_episodes(work / "test", n_test, minutes, seed=2, noise=args.noise)
    sources = dataset_episodes([work / "train"])
    # No validation split: every model trains on all training episodes for exactly the same budget and
    # keeps its last epoch. (With a held-out episode that every transformer scores 100% on, the "best
    # epoch" is just the first one to reach 100%, and that choice, not the training, decided the result.)
    split = DatasetConfig(validation_fraction=0.0)
    full = build_dataset(sources, work / "ds-full", FeatureConfig(), split, progress=False)
    cheap = build_dataset(sources, work / "ds-cheap", CHEAP, split, progress=False)
    print(
        f"data (noise {args.noise:g}): {n_train} training episodes of {minutes:g} min, {n_test} test episodes; "
        f"{len(full.samples('train'))} training windows (full features), {len(cheap.samples('train'))} (cheap); "
        f"budget per model: {epochs} epochs x {budget['batches_per_epoch']} batches of {budget['batch_size']}, "
        f"Adam lr {budget['lr']}; LSTM teacher {args.teacher_epochs or epochs} epochs; "
        f"{time.perf_counter() - began:.0f} s",
        flush=True,
    )

    models = work / "models"
    runs: list[tuple[str, list[Path]]] = []

    def fit(name, dataset, model_type, model_config, seed_list, teacher=None, epochs=None):
        paths = []
        for seed in seed_list:
            t0 = time.perf_counter()
            path = models / f"{name}-s{seed}.pt"
            config = TrainConfig(
                model_type=model_type,
                model_config=model_config,
                seed=seed,
                **{**budget, "epochs": epochs or budget["epochs"]},
            )
            train(dataset, config, path, teacher=teacher, progress=False)
            print(f"  trained {path.name} in {time.perf_counter() - t0:.1f} s", flush=True)
            paths.append(path)
        runs.append((name, paths))
        return paths

    set_torch_threads(1)
    # The reference LSTM (hidden 128, 2 layers) is the teacher; same budget unless --teacher-epochs.
    (lstm_path,) = fit("lstm", full, "lstm", {}, [0], epochs=args.teacher_epochs)
    teacher = load_checkpoint(lstm_path)
    seed_list = list(range(seeds))
    # How often the teacher's soft targets point at the true label of the windows each student trains on.
    for name, dataset in (("full", full), ("cheap", cheap)):
        samples = dataset.samples("train")
        agree = float((teacher_logits(teacher, dataset, samples).argmax(1).numpy() == samples.label).mean())
        print(
            f"  teacher agrees with the labels of {agree:.1%} of the {name}-feature training windows",
            flush=True,
        )
    fit("transformer", full, "transformer", transformer, seed_list)
    fit("transformer-distilled", full, "transformer", transformer, seed_list, teacher=teacher)
    fit("transformer-cheap", cheap, "transformer", transformer, seed_list)
    fit("transformer-cheap-distilled", cheap, "transformer", transformer, seed_list, teacher=teacher)

    # Speed: one thread (steady on a shared 2-core machine); models take turns for several rounds and
    # each keeps its best round, so a burst of other work on the machine does not favour one model.
    set_torch_threads(args.threads)
    test = EpisodeWindows(find_episodes([work / "test"]))
    scored = {name: compare_models(paths, test, speed=None) for name, paths in runs}
    speeds = {name: 0.0 for name, _ in runs}
    for _ in range(5):
        for name, paths in runs:
            ckpt = load_checkpoint(paths[0])
            cfg = ckpt.feature_config
            rate = windows_per_second(
                ckpt.build_model(),
                cfg.window_frames,
                cfg.n_features,
                speed=SpeedConfig(rounds=1, min_seconds=0.4),
            )
            speeds[name] = max(speeds[name], rate)
    rows = []
    baseline = speeds[runs[0][0]]
    for name, _ in runs:
        reports = scored[name]
        acc = np.array([r.accuracy for r in reports])
        f1 = np.array([r.f1 for r in reports])
        rows.append((name, reports[0], acc, f1, speeds[name]))

    print(
        f"\nheld-out test windows: full features {rows[0][1].n_windows}, cheap {rows[-1][1].n_windows}; "
        f"mean (min-max) over {seeds} seed(s) for transformers; speed: batch 256, {args.threads} thread(s), best of 5 rounds"
    )
    header = f"{'model':<28}{'params':>9}{'features':>22}{'accuracy':>22}{'ad F1':>22}{'windows/s':>11}{'vs LSTM':>9}"
    print(header)
    print("-" * len(header))
    for name, report, acc, f1, speed in rows:
        cfg = report.feature_config
        feats = f"{cfg.sample_rate}Hz {cfg.n_mfcc}mfcc {cfg.window_frames}fr"

        def spread(values):
            return (
                f"{values.mean():.3f} ({values.min():.3f}-{values.max():.3f})"
                if len(values) > 1
                else f"{values[0]:.3f}"
            )

        print(
            f"{name:<28}{report.parameters:>9,}{feats:>22}{spread(acc):>22}{spread(f1):>22}{speed:>11,.0f}{speed / baseline:>8.2f}x"
        )
    print(f"\ntotal {time.perf_counter() - began:.0f} s; work folder {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
