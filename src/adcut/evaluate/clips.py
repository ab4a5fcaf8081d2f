"""Classifying short clips (one class per file) and scoring a folder of clips named by their class.

A clip's probability is the mean over its windows; a clip shorter than one window is edge-padded
to one window. Evaluation reads the true class from the name: ``*_a.wav`` / ``*_b.wav`` (the
reference convention: a = first class, b = second) or ``*_ad`` / ``*_content`` (class names).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adcut.core.segments import canonical_label
from adcut.errors import AdcutError
from adcut.features.episode import episode_features
from adcut.features.mfcc import window_starts, windows
from adcut.media.decode import AUDIO_SUFFIXES
from adcut.models.checkpoint import Checkpoint

_CLASS_SUFFIX = re.compile(r"_([A-Za-z]+)$")


@dataclass(frozen=True)
class ClipResult:
    path: Path
    probabilities: np.ndarray  # (n_classes,) mean over the clip's windows
    predicted: str
    truth: str | None = None

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max())

    @property
    def correct(self) -> bool | None:
        return None if self.truth is None else self.predicted == self.truth


class ClipClassifier:
    """A loaded checkpoint ready to classify clips on ``device``."""

    def __init__(self, checkpoint: Checkpoint, device: str = "cpu", batch_size: int = 256):
        self.checkpoint = checkpoint
        from adcut.models.inference import build_predictor, set_torch_threads, uses_torch

        self.model = build_predictor(checkpoint, device)  # an LSTM on a CPU runs in numpy: no torch import
        if uses_torch(self.model):
            set_torch_threads()
        self.device = device
        self.batch_size = batch_size

    def probabilities(self, path: Path) -> np.ndarray:
        from adcut.models.inference import predict_windows

        fcfg = self.checkpoint.feature_config
        feats, _ = episode_features(path, fcfg)
        starts = window_starts(len(feats), fcfg.window_frames, fcfg.window_hop_frames)
        probs = predict_windows(
            self.model,
            windows(feats, starts, fcfg.window_frames),
            batch_size=self.batch_size,
            device=self.device,
        )
        return probs.mean(axis=0)

    def classify(self, path: Path, truth: str | None = None) -> ClipResult:
        probs = self.probabilities(path)
        return ClipResult(Path(path), probs, self.checkpoint.class_names[int(probs.argmax())], truth)


def clip_class(path: Path, classes: Sequence[str]) -> str | None:
    """The class a clip's name declares (``x_a.wav``, ``x_B.mp3``, ``x_ad.wav``), or None."""
    match = _CLASS_SUFFIX.search(Path(path).stem)
    return canonical_label(match.group(1), classes) if match else None


def labelled_clips(folder: Path, classes: Sequence[str]) -> list[tuple[Path, str]]:
    """Audio files in ``folder`` whose names declare a class, sorted by name."""
    folder = Path(folder)
    found = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
            truth = clip_class(path, classes)
            if truth is not None:
                found.append((path, truth))
    return found


def is_clip_folder(folder: Path, classes: Sequence[str]) -> bool:
    folder = Path(folder)
    return folder.is_dir() and bool(labelled_clips(folder, classes))


@dataclass(frozen=True)
class ClipEvaluation:
    classes: tuple[str, ...]
    results: list[ClipResult]

    @property
    def accuracy(self) -> float:
        return float(np.mean([r.correct for r in self.results])) if self.results else 0.0

    def confusion(self) -> np.ndarray:
        """``[true, predicted]`` counts in class order."""
        matrix = np.zeros((len(self.classes), len(self.classes)), np.int64)
        for r in self.results:
            matrix[self.classes.index(r.truth), self.classes.index(r.predicted)] += 1
        return matrix

    def format_confusion(self) -> str:
        width = max(9, *(len(c) + 2 for c in self.classes))
        lines = ["true \\ predicted".ljust(18) + "".join(c.rjust(width) for c in self.classes)]
        for name, row in zip(self.classes, self.confusion()):
            lines.append(name.ljust(18) + "".join(str(n).rjust(width) for n in row))
        return "\n".join(lines)


def evaluate_clips(classifier: ClipClassifier, folder: Path, on_result=None) -> ClipEvaluation:
    """Classify every labelled clip in ``folder``; ``on_result(result)`` is called as each finishes."""
    classes = tuple(classifier.checkpoint.class_names)
    clips = labelled_clips(folder, classes)
    if not clips:
        raise AdcutError(
            f"{folder}: no clips named *_a / *_b (or *_{classes[0]} / *_{classes[-1]}) with an audio suffix"
        )
    results = []
    for path, truth in clips:
        result = classifier.classify(path, truth)
        results.append(result)
        if on_result:
            on_result(result)
    return ClipEvaluation(classes, results)
