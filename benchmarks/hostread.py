"""Host-read ads (issue 15): unseen episodes where half the spots are read by the host, words off vs on.

Generates labelled training episodes (``demo.hostread``, draw ``train``: its voices, brands and ad
wording) with about half of their spots host-read (no bed, the host's voice) and the rest produced
(another voice over a music bed), builds a dataset (``--learn-phrases`` unless ``--no-learn``),
trains an LSTM, and runs ``detect`` on unseen episodes of the ``test`` draw (other voices, brands
and wording; ``--draw holdout``: also wording the built-in phrases were not chosen on) with
``--words off`` and ``--words on``. Reports event F0.5, ad kept and content cut
(s per hour), the phrases learned, and the cost: detection time per setting as × realtime and as a
ratio to the bare decode of the same files, measured in the same run, with how much audio
recognition read. Not a test: run it and read the figures.

    nice .venv/bin/python benchmarks/hostread.py [--train 6] [--test 16] [--epochs 8] [--draw holdout]
    # the holdout draw with the model and dataset of an earlier run:
    nice .venv/bin/python benchmarks/hostread.py --work DIR --reuse --draw holdout
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def bare_decode_seconds(path: Path) -> float:
    from adcut.media.decode import iter_frames

    began = time.perf_counter()
    for _ in iter_frames(path):
        pass
    return time.perf_counter() - began


def make(folder: Path, count: int, seed: int, draw: str, ads: int) -> list:
    from adcut.demo.hostread import write_hostread_episode

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        path = folder / f"{draw}{i:02d}.wav"
        episode = write_hostread_episode(path, seed * 1000 + i, draw=draw, ads=ads, host_share=0.5)
        out.append((path, episode))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=6)
    parser.add_argument(
        "--test",
        type=int,
        default=16,
        help="unseen test episodes (default 16: 32 read ads; a few are too few to measure recall by)",
    )
    parser.add_argument(
        "--draw",
        choices=("test", "holdout"),
        default="test",
        help="the unseen episodes' draw: test (other voices, brands and wording than train), or holdout "
        "(also wording the built-in phrases were not chosen on)",
    )
    parser.add_argument(
        "--train-draw",
        choices=("train", "test", "holdout"),
        default="train",
        help="the training episodes' draw (default train: other wording than the unseen episodes); the "
        "unseen draw's own: one show, whose sponsors and wording recur from the labelled episodes to new ones",
    )
    parser.add_argument("--ads", type=int, default=4, help="ad breaks per episode (half host-read)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-learn", action="store_true", help="build the dataset without --learn-phrases")
    parser.add_argument("--work", type=Path, default=None, help="keep the generated files here")
    parser.add_argument(
        "--reuse", action="store_true", help="with --work: reuse its episodes, dataset and model"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import torch

    from adcut.detect.config import SegmentationConfig, resolve_minimums
    from adcut.detect.pipeline import detect
    from adcut.detect.words import WordsConfig
    from adcut.evaluate.metrics import format_table, pool, score_episode
    from adcut.learn.dataset import DatasetConfig, build_dataset
    from adcut.learn.sources import find_episodes
    from adcut.learn.train import TrainConfig, train

    torch.set_num_threads(2)
    work = args.work or Path(tempfile.mkdtemp(prefix="adcut-hostread-"))
    began = time.perf_counter()
    draw = args.draw
    # --reuse: the dataset and model of an earlier run in --work (to measure detection settings again)
    reuse = args.work is not None and (work / "model.safetensors").exists() and args.reuse
    if args.reuse and (work / draw).is_dir():
        from adcut.demo.hostread import hostread_episode

        training = []
        test = [
            (
                work / draw / f"{draw}{i:02d}.wav",
                hostread_episode((args.seed + 2) * 1000 + i, draw=draw, ads=args.ads, host_share=0.5),
            )
            for i in range(args.test)
        ]
    else:
        training = [] if reuse else make(work / "train", args.train, args.seed + 1, args.train_draw, ads=3)
        test = make(work / draw, args.test, args.seed + 2, draw, ads=args.ads)
    audio_s = sum(e.duration for _, e in test)
    host_ads = sum(k == "host" for _, e in test for k in e.kinds)
    print(
        f"generated {args.train} training episodes ({sum(e.duration for _, e in training) / 60:.1f} min) and "
        f"{args.test} unseen {draw} episodes ({audio_s / 60:.1f} min, {host_ads} of "
        f"{sum(len(e.kinds) for _, e in test)} spots host-read) in {time.perf_counter() - began:.0f} s"
    )

    if reuse:
        from adcut.learn.dataset import load_dataset
        from adcut.models.checkpoint import load_checkpoint

        dataset, checkpoint = load_dataset(work / "dataset"), load_checkpoint(work / "model.safetensors")
        learned = dataset.manifest.get("phrases") or []
        print(f"reusing {work / 'model.safetensors'}; {len(learned)} learned phrases")
    else:
        began = time.perf_counter()
        dataset = build_dataset(
            find_episodes([work / "train"]),
            work / "dataset",
            config=DatasetConfig(validation_fraction=0.2, seed=args.seed, learn_phrases=not args.no_learn),
            progress=False,
        )
        learned = dataset.manifest.get("phrases") or []
        print(
            f"dataset built in {time.perf_counter() - began:.0f} s; learned {len(learned)} phrases: "
            + ", ".join(f"{p['text']} ({p['weight']})" for p in learned[:25])
        )
        began = time.perf_counter()
        checkpoint = train(
            dataset,
            TrainConfig(
                model_config={"hidden_size": args.hidden},
                lr=args.lr,
                epochs=args.epochs,
                early_stopping_patience=None,
                seed=args.seed,
                device="cpu",
                threads=2,
            ),
            work / "model.safetensors",
            progress=False,
        )
        m = checkpoint.metrics
        print(
            f"trained in {time.perf_counter() - began:.0f} s: epoch {m.get('epoch')} kept, val accuracy "
            f"{m.get('val_accuracy')}, balanced {m.get('val_balanced_accuracy')}, recall {m.get('val_recall')}"
        )
    model = checkpoint.build_model("cpu")
    classes = tuple(checkpoint.class_names)
    decode_s = sum(min(bare_decode_seconds(p) for _ in range(2)) for p, _ in test)
    rows, timing = [], {}
    settings = [
        ("--words off", SegmentationConfig(words=WordsConfig(mode="off"))),
        ("--words on, built-in phrases", SegmentationConfig(words=WordsConfig(mode="on", learned=False))),
        (
            "--words on --words-full, built-in",
            SegmentationConfig(words=WordsConfig(mode="on", learned=False, scan=False)),
        ),
    ]
    if learned:
        settings.append(("--words on, + learned", SegmentationConfig(words=WordsConfig(mode="on"))))
    for name, config in settings:
        minimums = resolve_minimums(checkpoint, config).smoothing.minimums(classes)
        began = time.perf_counter()
        found = [detect(path, checkpoint, config, model=model, threads=2) for path, _ in test]
        timing[name] = time.perf_counter() - began
        scores = [
            score_episode(e.segments, d.segments, d.duration, classes[0], min_seconds=minimums)
            for d, (_p, e) in zip(found, test)
        ]
        rows.append((name, pool(scores)))
        # Host-read and produced spots apart: how many of each were found (IoU match) with this setting.
        for kind in ("host", "produced"):
            sub = []
            for d, (_p, e) in zip(found, test):
                ads = [s for s in e.segments if s.label == "ad"]
                keep = [a for a, k in zip(ads, e.kinds) if k == kind]
                truth = [
                    s if s.label != "ad" or s in keep else replace(s, label="content") for s in e.segments
                ]
                sub.append(score_episode(truth, d.segments, d.duration, classes[0], min_seconds=minimums))
            p = pool(sub)
            print(f"{name}: {kind} spots found {p.event_tp} of {p.event_tp + p.event_fn}")
        if name.startswith("--words on"):
            for key in ("scanned_seconds", "searched_seconds"):
                timing[f"{name} {key}"] = sum(d.settings.get("words_heard", {}).get(key, 0.0) for d in found)
            for d in found:
                heard = d.settings.get("words_heard", {})
                print(
                    f"  {d.path.name}: word ads {[(a['start'], a['end'], a['phrases']) for a in heard.get('word_ads', [])]}"
                )
    print(format_table(rows))
    off = timing["--words off"]
    print(f"cost on {audio_s / 60:.1f} min of unseen audio (16 kHz WAV; bare decode {decode_s:.2f} s):")
    print(f"  --words off: {off:.1f} s, {audio_s / off:.0f}x realtime, {off / decode_s:.1f}x the bare decode")
    for name, _ in settings[1:]:
        on, scanned, searched = (
            timing[name],
            timing[f"{name} scanned_seconds"],
            timing[f"{name} searched_seconds"],
        )
        print(
            f"  {name}: {on:.1f} s, {audio_s / on:.0f}x realtime, {on / decode_s:.1f}x the bare decode, "
            f"{on / off:.1f}x --words off; recognition scanned {scanned / audio_s:.0%} of the audio and "
            f"searched {searched / audio_s:.0%} closely"
        )


if __name__ == "__main__":
    main()
