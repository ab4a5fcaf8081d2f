"""Scoring detection on labelled episodes: per-episode results, leave-one-episode-out folds, the timeline plot.

Episodes are given like the dataset builder takes them: audio files with a label file of the same
stem beside them (or folders of such). ``cli/evaluate.py`` turns flags into the settings taken here
and prints the results.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adcut.core.files import atomic_write
from adcut.core.segments import Segment
from adcut.errors import DatasetError, OutputError

if TYPE_CHECKING:
    from adcut.detect.config import SegmentationConfig
    from adcut.detect.pipeline import Detection
    from adcut.evaluate.metrics import EpisodeScores
    from adcut.learn.dataset import Dataset
    from adcut.learn.train import TrainConfig
    from adcut.models.checkpoint import Checkpoint

log = logging.getLogger(__name__)


@dataclass
class EpisodeResult:
    name: str
    truth: list[Segment]
    detection: Detection
    scores: EpisodeScores


def minimum_durations(config: SegmentationConfig, checkpoint: Checkpoint) -> dict[str, float]:
    """Class -> minimum duration that detection used (explicit, else learned from training labels, else default)."""
    from adcut.detect.config import resolve_minimums

    return resolve_minimums(checkpoint, config).smoothing.minimums(tuple(checkpoint.class_names))


def _fixed(truth: list[Segment], duration: float) -> list[Segment]:
    """The truth of an episode whose labels are known whatever its decoded duration."""
    return truth


def evaluate_episode(
    name: str,
    audio: Path,
    truth_of: Callable[[float], list[Segment]],
    checkpoint: Checkpoint,
    config: SegmentationConfig,
    device: str,
    model: object = None,
) -> EpisodeResult:
    """Detect segments in ``audio`` and score them against ``truth_of(duration)``."""
    from adcut.detect import pipeline
    from adcut.evaluate.metrics import score_episode

    detection = pipeline.detect(audio, checkpoint, config, device=device, model=model)
    truth = truth_of(detection.duration)
    classes = tuple(checkpoint.class_names)
    scores = score_episode(
        truth,
        detection.segments,
        detection.duration,
        classes[0],
        min_seconds=minimum_durations(config, checkpoint),
    )
    return EpisodeResult(name, truth, detection, scores)


def check_plot_path(path: Path) -> None:
    """Fail before any work when the plot could not be written."""
    if path.suffix.lower() != ".png":
        raise OutputError(f"{path}: --plot writes a PNG; give a name ending in .png")
    if not path.parent.resolve().is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist")


def format_results(results: Sequence[EpisodeResult], title: str = "overall") -> str:
    """The metrics table: one row per episode, and the pooled figures under ``title`` when there are several."""
    from adcut.evaluate.metrics import format_table, pool

    rows = [(r.name, r.scores) for r in results]
    if len(results) > 1:
        rows.append((title, pool(r.scores for r in results)))
    return format_table(rows)


def evaluate_episodes(
    paths: Sequence[Path], checkpoint: Checkpoint, config: SegmentationConfig, device: str
) -> list[EpisodeResult]:
    """Detect and score every labelled episode found in ``paths`` (files or folders)."""
    from adcut.learn.sources import find_episodes
    from adcut.models.inference import build_predictor

    # find_episodes warns about each unlabelled file before failing on a folder without labels;
    # here the failure alone is the one line the user needs (labelled episodes are required).
    dataset_log = logging.getLogger("adcut.learn.sources")
    previous = dataset_log.level
    dataset_log.setLevel(logging.ERROR)
    try:
        sources = find_episodes(paths)
    finally:
        dataset_log.setLevel(previous)
    classes = tuple(checkpoint.class_names)
    config.validate(checkpoint.feature_config.window_seconds, checkpoint.feature_config.frame_seconds)
    model = build_predictor(checkpoint, device)  # an LSTM on a CPU runs in numpy: no torch import
    return [
        evaluate_episode(
            source.audio.name,
            source.audio,
            partial(source.segments, classes=classes, background=checkpoint.background),
            checkpoint,
            config,
            device,
            model,
        )
        for source in sources
    ]


# --------------------------------------------------------------------------- cross-validation

# With two episodes there is no third to validate on: the training episode's last fifth validates.
INNER_VALIDATION_FRACTION = 0.2


def fold_dataset(dataset: Dataset, test: int) -> Dataset:
    """``dataset`` without episode ``test``'s windows, with an inner validation split for early stopping.

    With 3+ episodes the next episode validates; with 2, the last fifth of the one training episode
    does (windows reaching across that point are dropped, so no frame is in both splits).
    """
    n = len(dataset.episodes)
    episode, start, label = dataset.window_episode, dataset.window_start, dataset.window_label
    keep = episode != test
    if n >= 3:
        validation = episode == (test + 1) % n
    else:
        train_episode = 1 - test
        mine = episode == train_episode
        cut = int(np.quantile(start[mine], 1.0 - INNER_VALIDATION_FRACTION)) if mine.any() else 0
        validation = mine & (start >= cut)
        keep &= ~(mine & (start < cut) & (start + dataset.feature_config.window_frames > cut))
    return replace(
        dataset,
        window_episode=episode[keep],
        window_start=start[keep],
        window_label=label[keep],
        window_validation=validation[keep],
    )


FoldMapper = Callable[[Callable[[int], "EpisodeResult"], list[int]], Iterable["EpisodeResult"]]


def run_fold(
    dataset_dir: Path,
    k: int,
    config: SegmentationConfig,
    train_config: TrainConfig,
    device: str,
    progress: bool = False,
) -> EpisodeResult:
    """Fold ``k``: train as ``adcut train`` does without episode ``k``, then score that episode.

    Self-contained (it reads the dataset from ``dataset_dir``), so that a fold can run in another process
    or on another machine that mounts the same storage.
    """
    from adcut.learn.dataset import load_dataset
    from adcut.learn.train import train

    dataset = load_dataset(dataset_dir)
    episode = dataset.episodes[k]
    with tempfile.TemporaryDirectory(prefix="adcut-cv-") as tmp:
        checkpoint = train(
            fold_dataset(dataset, k), train_config, Path(tmp) / f"fold{k}.safetensors", progress=progress
        )
        truth = [Segment.from_dict(s) for s in episode["segments"]]
        return evaluate_episode(
            episode["id"], Path(episode["source"]), partial(_fixed, truth), checkpoint, config, device
        )


def cross_validate(
    dataset_dir: Path,
    config: SegmentationConfig,
    train_config: TrainConfig,
    device: str,
    progress: bool = True,
    on_fold: Callable[[int, int, str], None] | None = None,
    map_folds: FoldMapper | None = None,
) -> list[EpisodeResult]:
    """Leave one episode out: train as ``adcut train`` does on the others, score the held-out one.

    ``on_fold(k, n, episode_id)`` is called before fold ``k`` (from 0) of ``n`` trains, or, with
    ``map_folds``, as each fold finishes. ``map_folds(fold, ks)`` runs ``fold(k)`` for every ``k`` and
    yields the results in any order (e.g. as Ray tasks); by default the folds run here, one after another.
    Results come back in the dataset's episode order either way.
    """
    from adcut.learn.dataset import load_dataset

    dataset = load_dataset(dataset_dir)
    episodes = dataset.episodes
    if len(episodes) < 2:
        raise DatasetError(
            f"{dataset_dir}: cross-validation needs at least 2 episodes, the dataset has {len(episodes)}"
        )
    for episode in episodes:
        if not Path(episode["source"]).is_file():
            raise DatasetError(
                f"{episode['source']}: audio of episode {episode['id']} not found (cross-validation decodes each held-out episode)"
            )
    config.validate(dataset.feature_config.window_seconds, dataset.feature_config.frame_seconds)
    n = len(episodes)
    if map_folds is None:
        results = []
        for k, episode in enumerate(episodes):
            if on_fold is not None:
                on_fold(k, n, episode["id"])
            results.append(run_fold(dataset_dir, k, config, train_config, device, progress))
        return results
    fold = partial(
        run_fold, Path(dataset_dir).resolve(), config=config, train_config=train_config, device=device
    )
    by_id = {}
    for done, result in enumerate(map_folds(fold, list(range(n)))):
        by_id[result.name] = result
        if on_fold is not None:
            on_fold(done, n, result.name)
    return [by_id[episode["id"]] for episode in episodes]


SPREAD_KEYS = (
    ("accuracy", "frame accuracy"),
    ("seg_f1", "segment F1"),
    ("event_f05", "event F0.5"),
    ("boundary_median_s", "boundary median s"),
    ("boundary_p90_s", "boundary p90 s"),
    ("content_removed_s_per_h", "content removed s/h"),
    ("ad_kept_s_per_h", "ad kept s/h"),
)


def format_spread(scores: Sequence[EpisodeScores]) -> str:
    """Mean, standard deviation and range of the main figures across folds (undefined folds skipped)."""
    lines = ["spread across folds:        mean      std      min      max"]
    for key, title in SPREAD_KEYS:
        values = np.array([s.summary()[key] for s in scores], dtype=float)
        values = values[np.isfinite(values)]
        if not len(values):
            lines.append(f"  {title:<22} {'-':>8}")
            continue
        lines.append(
            f"  {title:<22} {values.mean():8.3f} {values.std():8.3f} {values.min():8.3f} {values.max():8.3f}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- plot


def plot_timelines(results: list[EpisodeResult], path: Path) -> None:
    """One panel per episode: truth and prediction bars, the first class's probability, boundaries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.artist import Artist
    from matplotlib.lines import Line2D
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
        ax.set_title(
            f"{result.name}: boundary median {summary['boundary_median_s']:.2f} s, "
            f"segment F1 {summary['seg_f1']:.3f}",
            fontsize=9,
        )
        ax.set_xlabel("seconds")
    handles: list[Artist] = [Patch(color=colour, label=name) for name, colour in colours.items()]
    handles += [
        Line2D([], [], color="green", linestyle="--", label="true boundary"),
        Line2D([], [], color="magenta", linestyle=":", label="predicted boundary"),
    ]
    figure.legend(handles=handles, loc="upper right", fontsize=8, ncol=len(handles))
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    try:
        with atomic_write(path, "the plot") as tmp:
            figure.savefig(tmp, dpi=80, format="png")
    finally:
        plt.close(figure)
