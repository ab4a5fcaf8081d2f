"""``adcut evaluate``: score a model on clips named by class, or (when available) on labelled episodes.

One folder of clips named ``*_a`` / ``*_b`` (or ``*_ad`` / ``*_content``) is clip evaluation; any
other paths go to episode evaluation (``adcut.evaluate_episodes``) when that module is installed.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model on clips (*_a.wav / *_b.wav) or on labelled episodes",
        description=(
            "Given one folder of clips named *_a.wav / *_b.wav (the reference convention; *_ad / *_content "
            "too, any audio suffix): per-file result, overall accuracy and a confusion matrix. Given labelled "
            "episodes (audio with a label file of the same name, or folders of them): episode metrics."
        ),
        conflict_handler="resolve",  # episode evaluation may redefine shared options
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a folder of labelled clips, or episodes")
    parser.add_argument("--model", type=Path, default=None, metavar="M.pt", help="checkpoint (default: newest in ./models/)")
    parser.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"), help="default auto")
    try:
        from adcut.evaluate.episodes import add_arguments
    except ImportError:
        pass
    else:
        add_arguments(parser)
    parser.set_defaults(func=run)


def _is_clip_mode(paths) -> bool:
    """One folder holding at least one audio file whose name ends in _a/_b/_ad/_content."""
    from adcut.media.decode import AUDIO_SUFFIXES
    from adcut.evaluate.clips import clip_class

    if len(paths) != 1 or not Path(paths[0]).is_dir():
        return False
    return any(
        p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and clip_class(p, ("ad", "content")) is not None
        for p in Path(paths[0]).iterdir()
    )


def run(args: argparse.Namespace) -> int:
    from adcut.errors import AdcutError

    if _is_clip_mode(args.paths):
        return run_clips(args)
    try:
        from adcut.evaluate.episodes import run_episodes
    except ImportError:
        raise AdcutError(
            f"{args.paths[0]}: not a folder of clips named *_a / *_b (or *_ad / *_content); "
            "episode evaluation is not available in this version"
        ) from None
    return run_episodes(args)


def run_clips(args) -> int:
    from adcut.models.checkpoint import resolve_model
    from adcut.evaluate.clips import ClipClassifier, evaluate_clips
    from adcut.models.inference import choose_device

    checkpoint = resolve_model(args.model)
    classifier = ClipClassifier(checkpoint, choose_device(args.device))
    print(f"model: {checkpoint.path}")

    def show(result) -> None:
        mark = "ok" if result.correct else "WRONG"
        print(f"{result.path.name}\ttrue {result.truth}\tpredicted {result.predicted}\t{result.confidence:.3f}\t{mark}", flush=True)

    evaluation = evaluate_clips(classifier, args.paths[0], on_result=show)
    right = sum(bool(r.correct) for r in evaluation.results)
    print(f"accuracy: {evaluation.accuracy:.3f} ({right}/{len(evaluation.results)} clips)")
    print(evaluation.format_confusion())
    return 0
