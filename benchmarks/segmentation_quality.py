"""Boundary precision of each smoother on held-out generated episodes, and the LSTM's window anchor.

Generates labelled training episodes and unseen test episodes (``synth.random_spec``), builds a
dataset, trains an LSTM briefly, then on the test episodes:

1. runs the model once over every window (hop ``--hop`` s) and, for anchor fractions 0..1,
   places each window's probability at ``start + anchor * window`` and scores ``none`` and
   ``hmm`` smoothing; the anchor with the lowest median boundary error is the measured one;
2. at that anchor, at the anchor the training measured (what detection uses) and at the window
   centre (0.5), reports, for ``none``,
   ``reference``, ``hmm`` and ``hmm+refine``: median / p90 boundary error, share within 1 s / 3 s,
   content wrongly removed and ad kept (s per hour), 1 s segment F1, event F0.5 and the number of
   segments shorter than the minimum durations (learned from the training labels, as detection does);
   every row moves ad edges back by the offsets measured at training (alignment.py), as detection
   does, and ``hmm+refine, no edge offsets`` shows what that correction brings;
3. runs ``segment.detect`` with its defaults on the test episodes: the acceptance figures; and again
   reading every window (``scan_stride`` 1), to show what the coarse-to-fine scan changes.

Acceptance (issue 4, default smoother + refinement): median <= 1 s, p90 <= 2 s, content removed
<= 5 s/h, no short segments. Not a test: run it and read the figures.

    .venv/bin/python benchmarks/segmentation_quality.py [--train 8] [--test 6] [--epochs 12]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def make_episodes(folder: Path, count: int, duration: float, seed: int) -> list[tuple[Path, list]]:
    from adcut.demo.synth import random_spec, write_labelled_episode

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        spec = random_spec(duration, rng)
        path = folder / f"ep{i:02d}.wav"
        out.append((path, write_labelled_episode(path, spec, sample_rate=8000, seed=seed * 1000 + i)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=8, help="training episodes (default 8)")
    parser.add_argument("--test", type=int, default=6, help="held-out test episodes (default 6)")
    parser.add_argument("--train-seconds", type=float, default=420.0)
    parser.add_argument("--test-seconds", type=float, default=900.0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=128, help="LSTM hidden size (reference: 128)")
    parser.add_argument("--hop", type=float, default=1.0, help="window hop in seconds for detection")
    parser.add_argument("--step", type=float, default=0.5, help="probability curve step in seconds")
    parser.add_argument("--straddling", choices=("majority", "drop"), default="majority",
                        help="windows crossing a label boundary: train on them with their majority label (default), or drop them")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep generated files here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from adcut.learn.dataset import DatasetConfig, build_dataset, find_episodes
    from adcut.features.episode import episode_features
    from adcut.features.mfcc import window_starts
    from adcut.evaluate.metrics import format_table, pool, score_episode
    from adcut.detect.review import calibrate_probs
    from adcut.detect.config import SegmentationConfig, anchor_for, edge_offsets_for, resolve_minimums
    from adcut.detect.pipeline import align_edges, detect, refine, smooth_curve
    from adcut.detect.windows import predict_episode, window_curve
    from adcut.learn.train import TrainConfig, train

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        began = time.perf_counter()
        make_episodes(work / "train", args.train, args.train_seconds, args.seed + 1)
        test = make_episodes(work / "test", args.test, args.test_seconds, args.seed + 2)
        dataset = build_dataset(find_episodes([work / "train"]), work / "dataset",
                                config=DatasetConfig(validation_fraction=0.25, seed=args.seed,
                                                     keep_straddling=args.straddling == "majority"), progress=False)
        config = TrainConfig(model_config={"hidden_size": args.hidden}, lr=args.lr, epochs=args.epochs,
                             early_stopping_patience=None, seed=args.seed, device="cpu", threads=2)
        checkpoint = train(dataset, config, work / "model.pt", progress=False)
        print(f"generated + trained in {time.perf_counter() - began:.0f} s: {args.train} x {args.train_seconds:.0f} s "
              f"train episodes ({args.straddling} straddling windows), LSTM hidden {args.hidden}, {checkpoint.metrics.get('epochs_run')} epochs, "
              f"val accuracy {checkpoint.metrics.get('val_accuracy')}, temperature {checkpoint.metrics.get('temperature')}")

        fcfg = checkpoint.feature_config
        model = checkpoint.build_model("cpu")
        hop_frames = max(1, int(round(args.hop / fcfg.frame_seconds)))
        episodes = []
        for path, truth in test:
            feats, duration = episode_features(path, fcfg)
            starts = window_starts(len(feats), fcfg.window_frames, hop_frames)
            probs = predict_episode(model, feats, starts, fcfg.window_frames, batch_size=256, device="cpu")
            episodes.append((path, truth, feats, duration, starts, probs))
        classes = tuple(checkpoint.class_names)
        # The same steps as segment.detect: calibrated probabilities, minimum durations learned from
        # the training labels, the smoother, then refinement (ad edges searched further inward).
        base = resolve_minimums(checkpoint, SegmentationConfig(hop_seconds=args.hop, step_seconds=args.step))
        minimums = base.smoothing.minimums(classes)
        temperature = (checkpoint.metrics or {}).get("temperature")
        print(f"minimum durations (learned from the training labels {checkpoint.training.get('label_durations')}): {minimums}")

        def scores_at(anchor: float, method: str, refined: bool = False, aligned: bool = True):
            out = []
            config = replace(base, smoothing=replace(base.smoothing, method=method),
                             refine=base.refine if refined else None, edge_offsets=aligned)
            for _path, truth, feats, duration, starts, probs in episodes:
                curve = window_curve(calibrate_probs(probs, temperature), starts, fcfg.window_frames, fcfg.frame_seconds,
                                     anchor, args.step, duration)
                segs = smooth_curve(curve, args.step, duration, classes, config)
                segs = align_edges(segs, checkpoint, config, classes)
                segs = refine(segs, feats, fcfg, config, classes)
                out.append(score_episode(truth, segs, duration, classes[0], min_seconds=minimums))
            return pool(out)

        print(f"\nanchor scan on {len(episodes)} x {args.test_seconds:.0f} s unseen episodes "
              f"(hop {args.hop:g} s, step {args.step:g} s): median / p90 boundary error in s")
        print("anchor   none med  none p90   hmm med   hmm p90")
        results = {}
        for anchor in np.round(np.arange(0.0, 1.0001, 0.05), 2):
            none, hmm = scores_at(anchor, "none", aligned=False), scores_at(anchor, "hmm", aligned=False)
            results[anchor] = (hmm.boundary_median + none.boundary_median, hmm.boundary_p90)
            print(f"{anchor:6.2f} {none.boundary_median:10.2f} {none.boundary_p90:9.2f} {hmm.boundary_median:9.2f} {hmm.boundary_p90:9.2f}")
        best = min(results, key=lambda a: results[a])
        print(f"measured anchor: {best:.2f} of the window ({best * fcfg.window_seconds:.2f} s after its start; "
              f"centre would be 0.50)")

        measured = anchor_for(checkpoint, base)
        print(f"anchor measured at training on the validation episodes (what detection uses): {measured:.2f}")
        print(f"ad edge offsets measured at training (predicted - true, s; detection moves edges back by these, "
              f"rows below apply them except 'no edge offsets'): {edge_offsets_for(checkpoint, base) or 'none'}")
        for anchor in sorted({0.5, best, measured}):
            rows = [(name, scores_at(anchor, method, refined, aligned)) for name, method, refined, aligned in (
                ("none", "none", False, True), ("reference", "reference", False, True), ("hmm", "hmm", False, True),
                ("hmm+refine", "hmm", True, True), ("hmm+refine, no edge offsets", "hmm", True, False))]
            print(f"\nanchor {anchor:.2f}: all test episodes pooled ({sum(e[3] for e in episodes) / 3600:.2f} h)")
            print(format_table(rows))
        # The whole detection path with its defaults (what `adcut process` and `adcut evaluate` run),
        # and the same reading every window instead of coarse to fine (scan.py).
        runs = {}
        for name, config in (("detect", SegmentationConfig()), ("detect, every window", SegmentationConfig(scan_stride=1))):
            runs[name] = [detect(path, checkpoint, config, model=model, threads=2) for path, *_ in episodes]
        scored = {name: pool([score_episode(truth, d.segments, duration, classes[0], min_seconds=minimums)
                              for d, (_p, truth, _f, duration, _s, _pr) in zip(found, episodes)])
                  for name, found in runs.items()}
        final = scored["detect"]
        read = sum(d.settings["windows_read"] for d in runs["detect"]) / sum(d.settings["windows"] for d in runs["detect"])
        moved = [abs(a.start - b.start) for x, y in zip(runs["detect"], runs["detect, every window"])
                 for a, b in zip(x.segments, y.segments)]
        same_count = all(len(x.segments) == len(y.segments) for x, y in zip(runs["detect"], runs["detect, every window"]))
        print(f"\nsegment.detect with default settings (anchor {measured:.2f}, hop 1 s, step 0.5 s, hmm + refine), "
              f"and reading every window (--scan-stride 1)")
        print(format_table(list(scored.items())))
        print(f"coarse-to-fine scan read {read:.0%} of the windows; segments "
              + (f"the same in number, starts at most {max(moved, default=0.0):.2f} s apart" if same_count
                 else "DIFFER in number from reading every window"))
        ok = (final.boundary_median <= 1.0 and final.boundary_p90 <= 2.0
              and final.content_removed_per_hour <= 5.0 and final.short_segments == 0)
        print(f"\nacceptance (detect defaults): median {final.boundary_median:.2f} s (<= 1), "
              f"p90 {final.boundary_p90:.2f} s (<= 2), content removed {final.content_removed_per_hour:.1f} s/h (<= 5), "
              f"short segments {final.short_segments} (0): {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
