"""``adcut evaluate``: score a model on clips named by class, on labelled episodes, or leave-one-episode-out.

One folder of clips named ``*_a`` / ``*_b`` (or ``*_ad`` / ``*_content``) is clip evaluation; any
other paths are labelled episodes (``adcut.evaluate.episodes``); ``--cross-validate DATASET`` trains
and scores one fold per episode of a dataset.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from adcut.cli.segmentation import add_segmentation_arguments, add_words_arguments, segmentation_config
from adcut.errors import AdcutError


def register(subparsers) -> None:
    from adcut.learn.train import TrainConfig

    train_defaults = TrainConfig()
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model on clips (*_a.wav / *_b.wav) or on labelled episodes",
        description=(
            "Given one folder of clips named *_a.wav / *_b.wav (the reference convention; *_ad / *_content "
            "too, any audio suffix): per-file result, overall accuracy and a confusion matrix. Given labelled "
            "episodes (audio with a label file of the same name, or folders of them): episode metrics. "
            "Given --cross-validate DATASET_DIR (and no PATH): leave-one-episode-out on that dataset."
        ),
    )
    parser.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH", help="a folder of labelled clips, or episodes"
    )
    parser.add_argument(
        "--model", type=Path, default=None, metavar="MODEL", help="checkpoint (default: newest in ./models/)"
    )
    parser.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"), help="default auto")
    add_segmentation_arguments(parser)
    add_words_arguments(parser)
    group = parser.add_argument_group("episode evaluation (labelled episodes)")
    group.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="OUT.png",
        help="write a timeline per episode: truth, prediction, probability, boundaries",
    )
    group.add_argument(
        "--cross-validate",
        type=Path,
        default=None,
        metavar="DATASET_DIR",
        help="leave-one-episode-out: train on all but one episode of the dataset exactly as 'adcut "
        "train' does, score that one; prints the spread across folds (no PATH is needed)",
    )
    group.add_argument(
        "--cv-epochs",
        type=int,
        default=None,
        metavar="N",
        help=f"most training epochs per fold (default {train_defaults.epochs}, as train; each fold "
        f"stops early on an inner validation split after "
        f"{train_defaults.early_stopping_patience} epochs without improvement)",
    )
    group.add_argument(
        "--cv-lr",
        type=float,
        default=None,
        metavar="LR",
        help=f"learning rate per fold (default {train_defaults.lr:g}, as train)",
    )
    group.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="with --cross-validate: run the folds one after another here (default), or as Ray tasks, one CPU "
        "each, on a local Ray instance or, with --address, a cluster that mounts the dataset and its audio "
        "at the same paths (pip install 'adcut[ray]')",
    )
    group.add_argument(
        "--address", default=None, metavar="ADDR", help="with --backend ray: join the Ray cluster at ADDR"
    )
    parser.set_defaults(func=run)


def _is_clip_mode(paths: list[Path]) -> bool:
    """One folder holding at least one audio file whose name ends in _a/_b/_ad/_content."""
    from adcut.evaluate.clips import clip_class
    from adcut.media.decode import AUDIO_SUFFIXES

    if len(paths) != 1 or not Path(paths[0]).is_dir():
        return False
    return any(
        p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and clip_class(p, ("ad", "content")) is not None
        for p in Path(paths[0]).iterdir()
    )


def run(args: argparse.Namespace) -> int:
    if (args.backend != "local" or args.address is not None) and args.cross_validate is None:
        raise AdcutError("--backend and --address run the folds of --cross-validate; give it a dataset")
    if args.address is not None and args.backend != "ray":
        raise AdcutError("--address joins a Ray cluster: use it with --backend ray")
    if args.cross_validate is not None:
        if args.paths:
            raise AdcutError("--cross-validate takes its episodes from the dataset; give no PATH with it")
        return run_cross_validation(args)
    if not args.paths:
        raise AdcutError(
            "give a folder of labelled clips, labelled episodes, or --cross-validate DATASET_DIR"
        )
    if _is_clip_mode(args.paths):
        return run_clips(args)
    return run_episodes(args)


def run_clips(args: argparse.Namespace) -> int:
    from adcut.evaluate.clips import ClipClassifier, evaluate_clips
    from adcut.models.checkpoint import resolve_model
    from adcut.models.inference import choose_device

    checkpoint = resolve_model(args.model)
    classifier = ClipClassifier(checkpoint, choose_device(args.device))
    print(f"model: {checkpoint.path}")

    def show(result) -> None:
        mark = "ok" if result.correct else "WRONG"
        print(
            f"{result.path.name}\ttrue {result.truth}\tpredicted {result.predicted}\t{result.confidence:.3f}\t{mark}",
            flush=True,
        )

    evaluation = evaluate_clips(classifier, args.paths[0], on_result=show)
    right = sum(bool(r.correct) for r in evaluation.results)
    print(f"accuracy: {evaluation.accuracy:.3f} ({right}/{len(evaluation.results)} clips)")
    print(evaluation.format_confusion())
    return 0


def _plot(results, path: Path | None) -> None:
    from adcut.evaluate.episodes import plot_timelines

    if path is not None:
        plot_timelines(results, path)
        print(f"plot: {path}")


def run_episodes(args: argparse.Namespace) -> int:
    from adcut.evaluate.episodes import check_plot_path, evaluate_episodes, format_results
    from adcut.models.checkpoint import resolve_model
    from adcut.models.inference import choose_device

    config = segmentation_config(args)
    if args.plot is not None:
        check_plot_path(args.plot)
    device = choose_device(args.device or "auto")
    checkpoint = resolve_model(args.model)
    print(f"model: {checkpoint.path}")
    results = evaluate_episodes(args.paths, checkpoint, config, device)
    print(format_results(results))
    _plot(results, args.plot)
    return 0


def run_cross_validation(args: argparse.Namespace) -> int:
    from adcut.evaluate.episodes import check_plot_path, cross_validate, format_results, format_spread
    from adcut.learn.train import TrainConfig
    from adcut.models.inference import choose_device

    config = segmentation_config(args)
    if args.plot is not None:
        check_plot_path(args.plot)
    if args.cv_epochs is not None and args.cv_epochs < 1:
        raise AdcutError(f"--cv-epochs must be at least 1, not {args.cv_epochs}")
    device = choose_device(args.device or "auto")
    overrides = {"epochs": args.cv_epochs, "lr": args.cv_lr}
    train_config = TrainConfig(device=device, **{k: v for k, v in overrides.items() if v is not None})

    def announce(k: int, n: int, episode: str) -> None:
        print(
            f"fold {k + 1}/{n}: training without {episode} (at most {train_config.epochs} epochs)", flush=True
        )

    if args.backend != "ray":
        results = cross_validate(
            args.cross_validate, config, train_config, device, progress=not args.quiet, on_fold=announce
        )
    else:
        from adcut.process.ray_backend import RayBackend, require_ray

        require_ray()
        backend = RayBackend(address=args.address)

        def finished(k: int, n: int, episode: str) -> None:
            print(f"fold {k + 1}/{n} done: {episode} scored", flush=True)

        try:
            results = cross_validate(
                args.cross_validate,
                config,
                train_config,
                device,
                progress=False,
                on_fold=finished,
                map_folds=backend.map_tasks,
            )
        finally:
            backend.close()
    print(f"leave-one-episode-out on {args.cross_validate} ({len(results)} folds)")
    print(format_results(results, "pooled"))
    print(format_spread([r.scores for r in results]))
    _plot(results, args.plot)
    return 0
