"""``adcut evaluate EPISODES...``: detect segments in labelled episodes and score them (table, plot, cross-validation).

Episodes are given like the dataset builder takes them: audio files with a label file of the same
stem beside them (or folders of such). ``cli/evaluate.py`` owns the parser and the shared
``--model`` / ``--device`` options and dispatches here when the paths are not a folder of clips.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from adcut.errors import AdcutError, DatasetError, OutputError
from adcut.core.segments import Segment

log = logging.getLogger(__name__)

CV_DEFAULT_EPOCHS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Episode-evaluation options (``--model``/``--device`` are the command's own)."""
    group = parser.add_argument_group("episode evaluation (labelled episodes)")
    group.add_argument("--smoothing", choices=("hmm", "reference", "none"), default=None,
                       help="how window probabilities become segments (default hmm)")
    group.add_argument("--hop", type=float, default=None, metavar="S", help="seconds between windows (default 1)")
    group.add_argument("--scan-stride", type=int, default=None, metavar="N",
                       help="read every Nth window first and the rest only near changes (default 4; 1: every window)")
    group.add_argument("--step", type=float, default=None, metavar="S", help="probability curve resolution (default 0.5)")
    group.add_argument("--anchor", type=float, default=None, metavar="F",
                       help="where in its window a decision points, 0..1 (default: the model's measured value)")
    group.add_argument("--min-ad", "--min-ad-seconds", dest="min_ad_seconds", type=float, default=None, metavar="S",
                       help="shortest ad (default: half the shortest ad in the model's training labels, at most 10)")
    group.add_argument("--min-content", "--min-content-seconds", dest="min_content_seconds", type=float, default=None,
                       metavar="S", help="shortest content between ads (default: learned likewise, at most 20)")
    group.add_argument("--no-refine", action="store_true", help="keep boundaries where the smoother put them")
    group.add_argument("--max-shift", type=float, default=None, metavar="S",
                       help="how far refinement may move a boundary (default 3)")
    group.add_argument("--review-below", type=float, default=None, metavar="P",
                       help="ads less confident than P count as review (kept, not cut)")
    group.add_argument("--plot", type=Path, default=None, metavar="OUT.png",
                       help="write a timeline per episode: truth, prediction, probability, boundaries")
    group.add_argument("--cross-validate", type=Path, default=None, metavar="DATASET_DIR",
                       help="leave-one-episode-out: train on all but one episode of the dataset, score that one; "
                            "prints the spread across folds (EPISODES are then not needed)")
    group.add_argument("--cv-epochs", type=int, default=None, metavar="N",
                       help=f"training epochs per fold (default {CV_DEFAULT_EPOCHS})")
    group.add_argument("--cv-lr", type=float, default=None, metavar="LR", help="learning rate per fold (default: train's)")


# --------------------------------------------------------------------------- detection settings


def segmentation_config(args):
    from adcut.detect.config import SegmentationConfig

    overrides = {
        "smoothing": getattr(args, "smoothing", None),
        "hop_seconds": getattr(args, "hop", None),
        "step_seconds": getattr(args, "step", None),
        "scan_stride": getattr(args, "scan_stride", None),
        "anchor": getattr(args, "anchor", None),
        "min_ad_seconds": getattr(args, "min_ad_seconds", None),
        "min_content_seconds": getattr(args, "min_content_seconds", None),
        "refine_max_shift": getattr(args, "max_shift", None),
        "review_below": getattr(args, "review_below", None),
    }
    config = replace(SegmentationConfig(), **{k: v for k, v in overrides.items() if v is not None})
    if getattr(args, "no_refine", False):
        config = replace(config, refine=False)
    return config


def minimum_durations(config, checkpoint) -> dict[str, float]:
    """Class -> minimum duration that detection used (explicit, else learned from training labels, else default)."""
    from adcut.detect.config import resolve_minimums

    config = resolve_minimums(checkpoint, config)
    classes = tuple(checkpoint.class_names)
    return {classes[0]: config.min_ad_seconds, **{c: config.min_content_seconds for c in classes[1:]}}


# --------------------------------------------------------------------------- one episode


@dataclass
class EpisodeResult:
    name: str
    truth: list[Segment]
    detection: object  # segment.Detection
    scores: object  # metrics.EpisodeScores


def evaluate_episode(name: str, audio: Path, truth_of, checkpoint, config, device: str, model=None) -> EpisodeResult:
    """Detect segments in ``audio`` and score them against ``truth_of(duration)``."""
    from adcut.evaluate.metrics import score_episode
    from adcut.detect.pipeline import detect

    detection = detect(audio, checkpoint, config, device=device, model=model)
    truth = truth_of(detection.duration)
    classes = tuple(checkpoint.class_names)
    scores = score_episode(truth, detection.segments, detection.duration, classes[0],
                           min_seconds=minimum_durations(config, checkpoint))
    return EpisodeResult(name, truth, detection, scores)


def _check_plot_path(path: Path | None) -> None:
    if path is None:
        return
    if path.suffix.lower() != ".png":
        raise OutputError(f"{path}: --plot writes a PNG; give a name ending in .png")
    if not path.parent.resolve().is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise OutputError("--plot needs matplotlib, which is not installed (pip install matplotlib)") from None


def print_results(results: list[EpisodeResult], title: str = "overall") -> None:
    from adcut.evaluate.metrics import format_table, pool

    rows = [(r.name, r.scores) for r in results]
    if len(results) > 1:
        rows.append((title, pool(r.scores for r in results)))
    print(format_table(rows))


# --------------------------------------------------------------------------- command


def run_episodes(args) -> int:
    from adcut.models.inference import choose_device

    config = segmentation_config(args)
    plot = getattr(args, "plot", None)
    _check_plot_path(plot)
    device = choose_device(getattr(args, "device", None) or "auto")  # detect sets torch's threads where torch runs
    if getattr(args, "cross_validate", None) is not None:
        results = cross_validate(args, config, device)
    else:
        results = evaluate_paths(args, config, device)
    if plot is not None:
        plot_timelines(results, plot)
        print(f"plot: {plot}")
    return 0


def evaluate_paths(args, config, device: str) -> list[EpisodeResult]:
    from adcut.models.checkpoint import resolve_model
    from adcut.learn.dataset import DatasetConfig, find_episodes

    checkpoint = resolve_model(getattr(args, "model", None))
    # find_episodes warns about each unlabelled file before failing on a folder without labels;
    # here the failure alone is the one line the user needs (labelled episodes are required).
    dataset_log = logging.getLogger("adcut.learn.dataset")
    previous = dataset_log.level
    dataset_log.setLevel(logging.ERROR)
    try:
        sources = find_episodes(args.paths)
    finally:
        dataset_log.setLevel(previous)
    classes = tuple(checkpoint.class_names)
    dataset_config = DatasetConfig(classes=classes, background=classes[-1])
    config.validate(checkpoint.feature_config.window_seconds, checkpoint.feature_config.frame_seconds)
    from adcut.models.inference import build_predictor

    model = build_predictor(checkpoint, device)  # an LSTM on a CPU runs in numpy: no torch import
    print(f"model: {checkpoint.path}")
    results = []
    for source in sources:
        results.append(evaluate_episode(source.audio.name, source.audio,
                                        lambda d, s=source: s.segments(d, dataset_config), checkpoint, config, device, model))
    print_results(results)
    return results


# --------------------------------------------------------------------------- cross-validation


def _fold_dataset(dataset, test: int):
    """``dataset`` without episode ``test``'s windows; the next episode (when there are 3+) validates."""
    n = len(dataset.episodes)
    keep = dataset.window_episode != test
    validation_episode = (test + 1) % n if n >= 3 else -1
    return replace(
        dataset,
        window_episode=dataset.window_episode[keep],
        window_start=dataset.window_start[keep],
        window_label=dataset.window_label[keep],
        window_validation=dataset.window_episode[keep] == validation_episode,
    )


def cross_validate(args, config, device: str) -> list[EpisodeResult]:
    import tempfile

    from adcut.learn.dataset import load_dataset
    from adcut.evaluate.metrics import pool
    from adcut.learn.train import TrainConfig, train

    dataset = load_dataset(args.cross_validate)
    episodes = dataset.episodes
    if len(episodes) < 2:
        raise DatasetError(f"{args.cross_validate}: cross-validation needs at least 2 episodes, the dataset has {len(episodes)}")
    epochs = args.cv_epochs if getattr(args, "cv_epochs", None) is not None else CV_DEFAULT_EPOCHS
    if epochs < 1:
        raise AdcutError(f"--cv-epochs must be at least 1, not {epochs}")
    for episode in episodes:
        if not Path(episode["source"]).is_file():
            raise DatasetError(f"{episode['source']}: audio of episode {episode['id']} not found (cross-validation decodes each held-out episode)")
    train_config = TrainConfig(epochs=epochs, device=device, **({"lr": args.cv_lr} if getattr(args, "cv_lr", None) else {}))
    config.validate(dataset.feature_config.window_seconds, dataset.feature_config.frame_seconds)
    results = []
    with tempfile.TemporaryDirectory(prefix="adcut-cv-") as tmp:
        for k, episode in enumerate(episodes):
            print(f"fold {k + 1}/{len(episodes)}: training without {episode['id']} ({epochs} epochs)", flush=True)
            checkpoint = train(_fold_dataset(dataset, k), train_config, Path(tmp) / f"fold{k}.pt",
                               progress=not getattr(args, "quiet", False))
            truth = [Segment(float(s["start"]), float(s["end"]), str(s["label"])) for s in episode["segments"]]
            results.append(evaluate_episode(episode["id"], Path(episode["source"]), lambda d, t=truth: t,
                                            checkpoint, config, device))
    print(f"leave-one-episode-out on {args.cross_validate} ({len(episodes)} folds)")
    print_results(results, "pooled")
    print(format_spread([r.scores for r in results]))
    _ = pool
    return results


SPREAD_KEYS = (("accuracy", "frame accuracy"), ("seg_f1", "segment F1"), ("event_f05", "event F0.5"),
               ("boundary_median_s", "boundary median s"), ("boundary_p90_s", "boundary p90 s"),
               ("content_removed_s_per_h", "content removed s/h"), ("ad_kept_s_per_h", "ad kept s/h"))


def format_spread(scores) -> str:
    """Mean, standard deviation and range of the main figures across folds (undefined folds skipped)."""
    lines = ["spread across folds:        mean      std      min      max"]
    for key, title in SPREAD_KEYS:
        values = np.array([s.summary()[key] for s in scores], dtype=float)
        values = values[np.isfinite(values)]
        if not len(values):
            lines.append(f"  {title:<22} {'-':>8}")
            continue
        lines.append(f"  {title:<22} {values.mean():8.3f} {values.std():8.3f} {values.min():8.3f} {values.max():8.3f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- plot


def plot_timelines(results: list[EpisodeResult], path: Path) -> None:
    """One panel per episode: truth and prediction bars, the first class's probability, boundaries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = {"ad": "#d62728", "content": "#1f77b4", "review": "#ff7f0e"}
    palette = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    figure, axes = plt.subplots(len(results), 1, figsize=(12, 2.4 * len(results)), squeeze=False)
    for ax, result in zip(axes[:, 0], results):
        detection = result.detection
        classes = tuple(detection.classes)

        def colour(label: str) -> str:
            if label not in colours:
                colours[label] = palette[len(colours) % len(palette)]
            return colours[label]

        for row, segments in ((1.6, result.truth), (1.15, detection.segments)):
            for seg in segments:
                ax.broken_barh([(seg.start, seg.duration)], (row, 0.35), color=colour(seg.label))
        curve = np.asarray(detection.probabilities)[:, 0]
        times = (np.arange(len(curve)) + 0.5) * detection.step_seconds
        ax.plot(times, curve, color="black", linewidth=0.8)
        for t in [b.start for a, b in zip(result.truth, result.truth[1:]) if a.label != b.label]:
            ax.axvline(t, color="green", linewidth=1.0, linestyle="--")
        for t in detection.boundaries:
            ax.axvline(t, color="magenta", linewidth=0.8, linestyle=":")
        ax.set_xlim(0, detection.duration)
        ax.set_ylim(0, 2.05)
        ax.set_yticks([0, 0.5, 1.0, 1.325, 1.775])
        ax.set_yticklabels(["0", f"P({classes[0]})", "1", "predicted", "truth"])
        summary = result.scores.summary()
        ax.set_title(f"{result.name}: boundary median {summary['boundary_median_s']:.2f} s, "
                     f"segment F1 {summary['seg_f1']:.3f}", fontsize=9)
        ax.set_xlabel("seconds")
    handles = [Patch(color=colour, label=name) for name, colour in colours.items()]
    handles += [plt.Line2D([], [], color="green", linestyle="--", label="true boundary"),
                plt.Line2D([], [], color="magenta", linestyle=":", label="predicted boundary")]
    figure.legend(handles=handles, loc="upper right", fontsize=8, ncol=len(handles))
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        figure.savefig(tmp, dpi=80)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write the plot ({error.strerror})") from None
    finally:
        plt.close(figure)
