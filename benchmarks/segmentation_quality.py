"""Boundary precision on unseen generated episodes, easy and hard (issue 13), for two training seeds.

For each set (``--sets easy,hard``) it generates labelled training episodes and unseen test
episodes from separate draws (``synth.random_spec`` for the easy set: every break has a pause;
``synth.hard_spec`` for the hard one: pause-less changes, theme music beside pre- and post-rolls,
jingles, host-read and loudness-matched ads, music under the show, real recordings from
``shared/data`` where present, split between the draws so that no voice or music is in both),
trains an LSTM per training seed (``--seeds``), and runs ``detect`` on the test episodes (written
as MP3) with each boundary method:

- ``hmm`` (no refinement), ``pause`` (the feature jump, then the nearest pause), ``change`` (the
  change point of the short-term feature statistics), ``change+pause`` (a pause near the change
  point, else the change point), and the default with ``--prefer remove-ads``;

reporting event F0.5, median / p90 boundary error, content cut and ad kept (s per hour), and the
detection time as a ratio to the bare decode of the same files. It writes one plot per hard test
episode (truth, prediction, probability, boundaries) to ``--plots`` (default
``benchmarks/out/segmentation``). ``--anchor-scan`` also scores every window anchor 0..1 as the
issue-4 version did.

Acceptance (issue 13, default settings, both seeds): hard set event F0.5 >= 0.98, median <= 0.5 s,
p90 <= 2 s, content cut <= 5 s/h, ad kept <= 10 s/h; easy set median <= 0.06 s and content cut
<= 2.8 s/h; detection <= 1.6x the bare decode. Not a test: run it and read the figures.

    nice .venv/bin/python benchmarks/segmentation_quality.py [--train 8] [--test 6] [--epochs 12]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_episodes(folder: Path, count: int, duration: float, seed: int, kind: str, draw: str,
                  suffix: str = ".wav") -> list[tuple[Path, list]]:
    from adcut.demo.synth import find_shared_data, hard_spec, random_spec, shared_recordings, write_labelled_episode

    rng = np.random.default_rng(seed)
    recordings = shared_recordings(find_shared_data(REPO), draw) if kind == "hard" else None
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        spec = random_spec(duration, rng) if kind == "easy" else hard_spec(duration, rng, recordings=recordings)
        path = folder / f"{kind}{i:02d}{suffix}"
        if suffix == ".mp3":  # as podcasts are published: 44.1 kHz stereo 128 kbps (the decode speed baseline)
            out.append((path, write_published(path, spec, seed * 1000 + i)))
        else:
            out.append((path, write_labelled_episode(path, spec, sample_rate=8000, seed=seed * 1000 + i)))
    return out


def write_published(path: Path, spec, seed: int) -> list:
    """The episode rendered at 8 kHz, resampled to 44.1 kHz stereo MP3 at 128 kbps, with its label file."""
    import soxr

    from adcut.demo.synth import episode_segments, render_episode
    from adcut.formats.labels import format_audacity
    from adcut.media.encode import write_audio

    mono = soxr.resample(render_episode(spec, 8000, seed), 8000, 44100).astype(np.float32)
    write_audio(path, np.tile(mono, (2, 1)), 44100, bit_rate=128_000)
    truth = episode_segments(spec)
    path.with_suffix(".txt").write_text(format_audacity(truth, only=("ad",)))
    return truth


def bare_decode_seconds(path: Path) -> float:
    from adcut.media.decode import iter_frames

    began = time.perf_counter()
    for _ in iter_frames(path):
        pass
    return time.perf_counter() - began


def method_rows():
    """(name, SegmentationConfig) per boundary method compared; the first refined one is the default."""
    from adcut.detect.config import SegmentationConfig
    from adcut.detect.refine import REFINE_METHODS

    default = SegmentationConfig()
    assert default.refine is not None
    rows = [(f"default (--refine {default.refine.method})", default), ("hmm, no refinement", replace(default, refine=None))]
    for method in REFINE_METHODS:
        if method != default.refine.method:
            rows.append((f"--refine {method}", replace(default, refine=replace(default.refine, method=method))))
    rows.append(("default, --prefer remove-ads", replace(default, refine=replace(default.refine, prefer="remove-ads"))))
    return rows


def anchor_scan(checkpoint, test, args) -> None:
    """The issue-4 anchor scan: every window's probability placed at start + anchor x window, hmm/none smoothing."""
    from adcut.detect.config import SegmentationConfig, resolve_minimums
    from adcut.detect.pipeline import smooth_curve
    from adcut.detect.review import calibrate_probs
    from adcut.detect.windows import predict_episode, window_curve
    from adcut.evaluate.metrics import pool, score_episode
    from adcut.features.episode import episode_features
    from adcut.features.mfcc import window_starts

    fcfg = checkpoint.feature_config
    model = checkpoint.build_model("cpu")
    hop_frames = max(1, int(round(args.hop / fcfg.frame_seconds)))
    base = resolve_minimums(checkpoint, SegmentationConfig(hop_seconds=args.hop, step_seconds=args.step))
    classes = tuple(checkpoint.class_names)
    minimums = base.smoothing.minimums(classes)
    temperature = (checkpoint.metrics or {}).get("temperature")
    episodes = []
    for path, truth in test:
        feats, duration = episode_features(path, fcfg)
        starts = window_starts(len(feats), fcfg.window_frames, hop_frames)
        probs = calibrate_probs(predict_episode(model, feats, starts, fcfg.window_frames, batch_size=256, device="cpu"),
                                temperature)
        episodes.append((truth, duration, starts, probs))
    print("anchor   none med  none p90   hmm med   hmm p90")
    for anchor in np.round(np.arange(0.0, 1.0001, 0.05), 2):
        cells = []
        for method in ("none", "hmm"):
            config = replace(base, smoothing=replace(base.smoothing, method=method))
            scores = []
            for truth, duration, starts, probs in episodes:
                curve = window_curve(probs, starts, fcfg.window_frames, fcfg.frame_seconds, anchor, args.step, duration)
                segs = smooth_curve(curve, args.step, duration, classes, config)
                scores.append(score_episode(truth, segs, duration, classes[0], min_seconds=minimums))
            pooled = pool(scores)
            cells += [pooled.boundary_median, pooled.boundary_p90]
        print(f"{anchor:6.2f} " + " ".join(f"{c:9.2f}" for c in cells))


def run_set(kind: str, args, work: Path, plots: Path | None) -> dict:
    import torch

    from adcut.detect.config import resolve_minimums
    from adcut.detect.pipeline import detect
    from adcut.evaluate.episodes import EpisodeResult, plot_timelines
    from adcut.evaluate.metrics import format_table, pool, score_episode
    from adcut.learn.dataset import DatasetConfig, build_dataset, find_episodes
    from adcut.learn.train import TrainConfig, train

    torch.set_num_threads(2)
    offset = 0 if kind == "easy" else 100  # the sets' draws never share a seed
    began = time.perf_counter()
    make_episodes(work / kind / "train", args.train, args.train_seconds, args.seed + 1 + offset, kind, "train")
    test = make_episodes(work / kind / "test", args.test, args.test_seconds, args.seed + 2 + offset, kind, "test",
                         suffix=".mp3")
    hours = args.test * args.test_seconds / 3600
    decode_s = sum(min(bare_decode_seconds(p) for _ in range(2)) for p, _ in test)
    print(f"\n=== {kind} set: {args.train} x {args.train_seconds:.0f} s training episodes, {args.test} x "
          f"{args.test_seconds:.0f} s unseen test episodes ({hours:.2f} h, MP3), generated in "
          f"{time.perf_counter() - began:.0f} s; bare decode of the test files {decode_s:.2f} s")
    results = {}
    for seed in args.seeds:
        began = time.perf_counter()
        dataset = build_dataset(find_episodes([work / kind / "train"]), work / kind / f"dataset{seed}",
                                config=DatasetConfig(validation_fraction=0.25, seed=seed), progress=False)
        config = TrainConfig(model_config={"hidden_size": args.hidden}, lr=args.lr, epochs=args.epochs,
                             early_stopping_patience=None, seed=seed, device="cpu", threads=2)
        checkpoint = train(dataset, config, work / kind / f"model{seed}.safetensors", progress=False)
        model = checkpoint.build_model("cpu")
        classes = tuple(checkpoint.class_names)
        print(f"\n{kind}, training seed {seed}: trained in {time.perf_counter() - began:.0f} s, "
              f"{checkpoint.metrics.get('epochs_run')} epochs, val accuracy {checkpoint.metrics.get('val_accuracy')}, "
              f"edge offsets {checkpoint.metrics.get('edge_offsets')}")
        if args.anchor_scan:
            anchor_scan(checkpoint, test, args)
        rows = []
        for name, seg_config in method_rows():
            minimums = resolve_minimums(checkpoint, seg_config).smoothing.minimums(classes)
            began = time.perf_counter()
            found = [detect(path, checkpoint, seg_config, model=model, threads=2) for path, _ in test]
            seconds = time.perf_counter() - began
            per_episode = [score_episode(truth, d.segments, d.duration, classes[0], min_seconds=minimums)
                           for d, (_p, truth) in zip(found, test)]
            scores = pool(per_episode)
            rows.append((name, scores))
            results[(seed, name)] = (scores, seconds / decode_s)
            if plots is not None and kind == "hard" and name == method_rows()[0][0]:
                plots.mkdir(parents=True, exist_ok=True)
                for (path, truth), d, s in zip(test, found, per_episode):
                    plot_timelines([EpisodeResult(f"{path.stem} (seed {seed})", truth, d, s)],
                                   plots / f"{path.stem}-seed{seed}.png")
        print(format_table(rows))
        print("detection time / bare decode: " + ", ".join(
            f"{name} {results[(seed, name)][1]:.2f}x" for name, _ in method_rows()))
    return results


def acceptance(kind: str, results: dict, seeds) -> None:
    name = method_rows()[0][0]
    for seed in seeds:
        s, ratio = results[(seed, name)]
        if kind == "hard":
            checks = [("F0.5", s.event_f05, ">=", 0.98), ("median", s.boundary_median, "<=", 0.5),
                      ("p90", s.boundary_p90, "<=", 2.0), ("content cut s/h", s.content_removed_per_hour, "<=", 5.0),
                      ("ad kept s/h", s.ad_kept_per_hour, "<=", 10.0)]
        else:
            checks = [("median", s.boundary_median, "<=", 0.06), ("content cut s/h", s.content_removed_per_hour, "<=", 2.8)]
        checks.append(("x bare decode", ratio, "<=", 1.6))
        ok = all((v >= lim) if op == ">=" else (v <= lim + 1e-9) for _, v, op, lim in checks)
        print(f"acceptance, {kind} set, seed {seed}: " + ", ".join(f"{n} {v:.3g} ({op} {lim:g})" for n, v, op, lim in checks)
              + f": {'MET' if ok else 'NOT MET'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="easy,hard", help="easy, hard or both (default easy,hard)")
    parser.add_argument("--train", type=int, default=8, help="training episodes per set (default 8)")
    parser.add_argument("--test", type=int, default=6, help="held-out test episodes per set (default 6)")
    parser.add_argument("--train-seconds", type=float, default=420.0)
    parser.add_argument("--test-seconds", type=float, default=900.0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=128, help="LSTM hidden size (reference: 128)")
    parser.add_argument("--hop", type=float, default=1.0, help="window hop in seconds (anchor scan)")
    parser.add_argument("--step", type=float, default=0.5, help="probability curve step in seconds (anchor scan)")
    parser.add_argument("--seeds", default="0,1", help="training seeds (default 0,1)")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument("--anchor-scan", action="store_true", help="also score every window anchor (issue 4)")
    parser.add_argument("--plots", type=Path, default=REPO / "benchmarks" / "out" / "segmentation",
                        help="folder for one plot per hard test episode")
    parser.add_argument("--workdir", type=Path, default=None, help="keep generated files here")
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    logging.basicConfig(level=logging.WARNING)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        results = {kind: run_set(kind, args, work, args.plots) for kind in sets}
    print()
    for kind in sets:
        acceptance(kind, results[kind], args.seeds)


if __name__ == "__main__":
    main()
