"""Side-by-side figures for several checkpoints: size, window accuracy / F1, and inference speed.

Each model is scored on labelled windows cut with its *own* feature settings, so models that use
cheaper features than others (a distilled student, say) are compared on the same audio and the
same time spans' labels. Labelled windows come from a dataset's validation episodes or from
episodes given directly (audio files with a label file beside them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adcut.core.segments import Segment
from adcut.core.units import Seconds
from adcut.errors import DatasetError, ModelError
from adcut.features.episode import episode_features
from adcut.features.mfcc import FeatureConfig, window_starts, windows

if TYPE_CHECKING:
    from adcut.learn.sources import EpisodeSource
    from adcut.models.checkpoint import Checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeedConfig:
    """How inference speed is measured: a fixed batch, warm-up first, then timed rounds.

    The best round counts: other work on the machine only ever slows a round down, so the
    fastest one is the closest to what the model itself costs.
    """

    batch_size: int = 256
    warmup_batches: int = 2
    rounds: int = 3
    min_batches: int = 2  # per round
    min_seconds: Seconds = 1.0  # in all rounds together


@dataclass
class LabelledEpisode:
    """An episode's audio and its labels: given ``segments``, or read through ``source`` (a label file)."""

    audio: Path
    segments: list[Segment]
    source: EpisodeSource | None = None


@dataclass
class LabelledWindows:
    windows: np.ndarray  # (n, frames, features)
    labels: np.ndarray  # (n,) class index, -1 where the label is not one of the model's classes


@dataclass
class ModelReport:
    name: str
    model_type: str
    parameters: int
    file_bytes: int
    feature_config: FeatureConfig
    class_names: tuple[str, ...]
    teacher: str | None
    n_windows: int = 0
    accuracy: float | None = None
    f1: float | None = None  # of the positive class (``ad`` where present)
    windows_per_second: float | None = None
    episode_accuracy: float | None = (
        None  # after segmentation (adcut.detect.pipeline.detect): share of time right
    )
    segment_f1: float | None = None  # 1 s cells of the positive class (adcut.metrics)
    event_f05: float | None = None  # whole ad breaks matched at IoU >= 0.5
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "model_type": self.model_type,
            "parameters": self.parameters,
            "file_bytes": self.file_bytes,
            "feature_config": self.feature_config.to_dict(),
            "class_names": list(self.class_names),
            "teacher": self.teacher,
            "windows": self.n_windows,
            "accuracy": self.accuracy,
            "f1": self.f1,
            "windows_per_second": self.windows_per_second,
            "episode_accuracy": self.episode_accuracy,
            "segment_f1": self.segment_f1,
            "event_f05": self.event_f05,
            **self.extra,
        }


# --------------------------------------------------------------------------- models


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def positive_class(class_names: Sequence[str]) -> int:
    """Index of the class F1 is reported for: ``ad`` when the model has it, else the first class."""
    return list(class_names).index("ad") if "ad" in class_names else 0


# --------------------------------------------------------------------------- labelled episodes


def find_episodes(sources: Sequence[Path]) -> list[LabelledEpisode]:
    """Labelled episodes from audio files and folders, found as ``adcut dataset build`` finds them."""
    from adcut.learn.sources import find_episodes as find_sources

    return [LabelledEpisode(source.audio, [], source) for source in find_sources(sources)]


class EpisodeWindows:
    """Labelled windows of a fixed set of episodes, with features computed once per feature config.

    A window's label is the class covering it (give or take a frame); windows across a label
    boundary are left out unless ``keep_straddling``, as in a dataset's validation windows.
    """

    def __init__(
        self,
        episodes: Sequence[LabelledEpisode],
        *,
        keep_straddling: bool = False,
        cached: dict[FeatureConfig, list[tuple[np.ndarray, float]]] | None = None,
    ):
        self._episodes = list(episodes)
        self._keep_straddling = keep_straddling
        self._cache: dict[FeatureConfig, list[tuple[np.ndarray, float]]] = dict(cached or {})

    def _features(self, config: FeatureConfig) -> list[tuple[np.ndarray, float]]:
        if config not in self._cache:
            for episode in self._episodes:
                if not episode.audio.is_file():
                    raise DatasetError(
                        f"{episode.audio}: audio is gone, so features for another feature config cannot be computed"
                    )
            self._cache[config] = [episode_features(e.audio, config) for e in self._episodes]
        return self._cache[config]

    @property
    def episodes(self) -> list[LabelledEpisode]:
        return list(self._episodes)

    def truth(
        self, episode: LabelledEpisode, duration: Seconds, class_names: Sequence[str], background: str
    ) -> list[Segment]:
        """The episode's labels tiling ``[0, duration]`` (unlabelled time is the model's ``background``)."""
        from adcut.core.segments import fill_background

        if episode.segments:
            unknown = {s.label for s in episode.segments} - set(class_names)
            if unknown:
                raise ModelError(
                    f"{episode.audio}: labelled {', '.join(sorted(unknown))}, which the model does not "
                    f"know (its classes: {', '.join(class_names)})"
                )
            inside = [
                Segment(s.start, min(s.end, duration), s.label)
                for s in episode.segments
                if s.start < duration
            ]
            return fill_background(inside, duration, background)
        assert episode.source is not None  # an episode has labels or a dataset source
        return episode.source.segments(duration, class_names, background)

    def get(self, config: FeatureConfig, class_names: Sequence[str], background: str) -> LabelledWindows:
        from adcut.learn.windows import window_labels

        all_windows, all_labels = [], []
        for episode, (feats, duration) in zip(self._episodes, self._features(config)):
            segments = self.truth(episode, duration, class_names, background)
            starts = window_starts(len(feats), config.window_frames, config.window_hop_frames)
            labels = window_labels(
                segments, starts, len(feats), duration, config, tuple(class_names), self._keep_straddling
            )
            all_windows.append(windows(feats, starts, config.window_frames))
            all_labels.append(labels)
        return LabelledWindows(np.concatenate(all_windows), np.concatenate(all_labels))


# --------------------------------------------------------------------------- scores


def accuracy_and_f1(
    predicted: np.ndarray, labels: np.ndarray, positive: int
) -> tuple[float | None, float | None]:
    """Window accuracy, and F1 of class ``positive``; windows labelled -1 are left out."""
    keep = labels >= 0
    predicted, labels = predicted[keep], labels[keep]
    if len(labels) == 0:
        return None, None
    accuracy = float(np.mean(predicted == labels))
    tp = int(np.sum((predicted == positive) & (labels == positive)))
    fp = int(np.sum((predicted == positive) & (labels != positive)))
    fn = int(np.sum((predicted != positive) & (labels == positive)))
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0  # nothing to find, nothing found
    return accuracy, float(f1)


def windows_per_second(
    model,
    window_frames: int,
    n_features: int,
    *,
    device: str = "cpu",
    speed: SpeedConfig = SpeedConfig(),
    sample: np.ndarray | None = None,
) -> float:
    """Inference throughput on one fixed batch (real windows when given, else noise of that shape)."""
    import torch

    if sample is not None and len(sample):
        reps = -(-speed.batch_size // len(sample))
        batch_np = np.concatenate([sample] * reps)[: speed.batch_size]
    else:
        batch_np = np.random.default_rng(0).standard_normal((speed.batch_size, window_frames, n_features))
    batch = torch.from_numpy(np.ascontiguousarray(batch_np, dtype=np.float32)).to(device)
    model.eval()
    with torch.inference_mode():
        for _ in range(speed.warmup_batches):
            model(batch)
        _sync(device)
        best = 0.0
        for _ in range(max(1, speed.rounds)):
            runs, started = 0, time.perf_counter()
            while runs < speed.min_batches or time.perf_counter() - started < speed.min_seconds / max(
                1, speed.rounds
            ):
                model(batch)
                runs += 1
            _sync(device)
            best = max(best, runs * speed.batch_size / (time.perf_counter() - started))
    return best


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# --------------------------------------------------------------------------- the comparison


def episode_scores(ckpt, model, data: EpisodeWindows, device: str = "cpu"):
    """Pooled ``adcut.evaluate.metrics`` scores of the full segmentation (``adcut.detect.pipeline.detect``) over ``data``'s episodes."""
    import torch

    from adcut.detect.pipeline import detect
    from adcut.evaluate.metrics import pool, score_episode

    positive = ckpt.class_names[positive_class(ckpt.class_names)]
    scores = []
    for episode in data.episodes:
        if not episode.audio.is_file():
            raise DatasetError(
                f"{episode.audio}: audio is gone, so the episode cannot be segmented (use --no-episodes)"
            )
        found = detect(episode.audio, ckpt, device=device, model=model, threads=torch.get_num_threads())
        truth = data.truth(episode, found.duration, ckpt.class_names, ckpt.background)
        scores.append(score_episode(truth, found.segments, found.duration, positive=positive))
    return pool(scores)


def compare_models(
    model_paths: Sequence[Path],
    data,
    *,
    device: str = "cpu",
    speed: SpeedConfig | None = SpeedConfig(),
    batch_size: int = 256,
    episodes: bool = False,
) -> list[ModelReport]:
    """A report per checkpoint; ``data`` is an ``EpisodeWindows`` or None.

    With ``episodes``, each episode is also segmented as ``adcut process`` would (smoothing and
    boundary refinement included) and scored as a whole.
    """
    from adcut.models.checkpoint import load_checkpoint
    from adcut.models.inference import predict_windows

    reports = []
    for path in map(Path, model_paths):
        ckpt = load_checkpoint(path)
        model = ckpt.build_model(device)
        report = ModelReport(
            name=path.name,
            model_type=ckpt.model_type,
            parameters=count_parameters(model),
            file_bytes=path.stat().st_size,
            feature_config=ckpt.feature_config,
            class_names=tuple(ckpt.class_names),
            teacher=ckpt.teacher,
        )
        sample = None
        if data is not None:
            labelled = data.get(ckpt.feature_config, ckpt.class_names, ckpt.background)
            check_window_shape(labelled.windows, ckpt, path)
            probs = predict_windows(model, labelled.windows, batch_size=batch_size, device=device)
            report.n_windows = int(np.sum(labelled.labels >= 0))
            report.accuracy, report.f1 = accuracy_and_f1(
                probs.argmax(axis=1), labelled.labels, positive_class(ckpt.class_names)
            )
            sample = labelled.windows[: (speed or SpeedConfig()).batch_size]
            if episodes:
                pooled = episode_scores(ckpt, model, data, device)
                report.episode_accuracy, report.segment_f1, report.event_f05 = (
                    pooled.frame_accuracy,
                    pooled.segment_f1,
                    pooled.event_f05,
                )
        if speed is not None:
            cfg = ckpt.feature_config
            report.windows_per_second = windows_per_second(
                model, cfg.window_frames, cfg.n_features, device=device, speed=speed, sample=sample
            )
        log.info("%s: %s", path.name, report.to_dict())
        reports.append(report)
    return reports


def check_window_shape(batch: np.ndarray, ckpt: Checkpoint, path: Path) -> None:
    ckpt.check_feature_count(batch.shape[-1], str(path))


def _size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return str(n_bytes)


def describe_features(config: FeatureConfig) -> str:
    """Short form, e.g. ``4096Hz 10mfcc 131fr``."""
    return f"{config.sample_rate}Hz {config.n_mfcc}mfcc {config.window_frames}fr"


def format_table(reports: Sequence[ModelReport]) -> str:
    def number(value):
        return f"{value:.3f}" if value is not None else "-"

    with_episodes = any(r.segment_f1 is not None for r in reports)
    headers = ["model", "type", "params", "size", "features", "teacher", "windows", "accuracy", "F1"]
    headers += ["ep.accuracy", "seg.F1", "event.F0.5"] if with_episodes else []
    headers += ["windows/s"]
    rows = []
    for r in reports:
        row = [
            r.name,
            r.model_type,
            f"{r.parameters:,}",
            _size(r.file_bytes),
            describe_features(r.feature_config),
            (r.teacher or "-").split(" ")[0],
            str(r.n_windows) if r.accuracy is not None else "-",
            number(r.accuracy),
            number(r.f1),
        ]
        row += (
            [number(r.episode_accuracy), number(r.segment_f1), number(r.event_f05)] if with_episodes else []
        )
        row += [f"{r.windows_per_second:,.0f}" if r.windows_per_second is not None else "-"]
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    left = {0, 1, 4, 5}

    def line(cells):
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


# --------------------------------------------------------------------------- datasets


def is_dataset(path: Path) -> bool:
    from adcut.learn.dataset import MANIFEST_NAME

    return Path(path).is_dir() and (Path(path) / MANIFEST_NAME).is_file()


def dataset_windows(path: Path, *, validation_only: bool = True) -> EpisodeWindows:
    """The (validation) episodes of a dataset: its cached features for its own feature config, and
    the source audio for any other config (for models that use other features)."""
    from adcut.learn.dataset import load_dataset
    from adcut.learn.sources import VALIDATION

    dataset = load_dataset(path)
    chosen = [i for i, e in enumerate(dataset.episodes) if e["split"] == VALIDATION or not validation_only]
    if not chosen:
        raise DatasetError(
            f"{path}: dataset has no validation episodes (use --all-episodes to score on all of them)"
        )
    episodes, cached = [], []
    for i in chosen:
        record = dataset.episodes[i]
        segments = [Segment.from_dict(s) for s in record["segments"]]
        episodes.append(LabelledEpisode(Path(record["source"]), segments))
        n_frames = int(record["n_frames"])
        start = int(dataset.offsets[i])
        cached.append((dataset.frames[start : start + n_frames], float(record["duration"])))
    return EpisodeWindows(
        episodes, keep_straddling=dataset.config.keep_straddling, cached={dataset.feature_config: cached}
    )
