"""A teacher's outputs for a student's training windows, even when the two use different features.

A student may be trained on cheaper features than its teacher (a lower sample rate, fewer MFCCs,
shorter windows). The dataset caches the student's features only, so the teacher's inputs are
computed from each episode's source audio with the teacher's own feature config, and each
teacher window is taken around the same moment as the student window it stands for: centred on
the student window's centre, in the teacher's own window length (clamped to the episode).
A half-swapped training window (second half of window A + first half of window B) gets the
teacher's half-swap of the teacher windows for A and B. When the configs are equal, the teacher
simply reads the dataset's cached windows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from adcut.errors import DatasetError, ModelError
from adcut.features.episode import episode_features
from adcut.features.mfcc import FeatureConfig
from adcut.learn.dataset import Dataset
from adcut.learn.windows import WindowSamples, gather_windows
from adcut.models.checkpoint import Checkpoint

log = logging.getLogger(__name__)

TEACHER_BATCH = 256


def check_teacher_classes(teacher: Checkpoint, dataset: Dataset) -> None:
    if tuple(teacher.class_names) != tuple(dataset.classes):
        raise ModelError(
            f"teacher {teacher.name} has classes {', '.join(teacher.class_names)}, the dataset {', '.join(dataset.classes)}"
        )


def teacher_episode_features(dataset: Dataset, config: FeatureConfig) -> list[np.ndarray]:
    """Each episode's features under ``config``, computed from its source audio (checked unchanged)."""
    out = []
    for episode in dataset.episodes:
        source = Path(episode["source"])
        if not source.is_file():
            raise DatasetError(
                f"the teacher uses other features than dataset {dataset.path}, so they are computed from the audio, "
                f"but {source} is gone (rebuild the dataset, or build one with the teacher's features)"
            )
        stat = source.stat()
        if (stat.st_size, stat.st_mtime_ns) != (episode.get("size"), episode.get("mtime_ns")):
            raise DatasetError(
                f"the teacher uses other features than dataset {dataset.path}, so they are computed from the audio, "
                f"but {source} changed since the dataset was built (rebuild it)"
            )
        feats, _ = episode_features(source, config)
        if len(feats) < config.window_frames:  # short clip: edge-pad, as the dataset does
            feats = np.concatenate([feats, np.repeat(feats[-1:], config.window_frames - len(feats), 0)])
        out.append(feats)
    return out


def map_to_teacher(
    samples: WindowSamples, dataset: Dataset, teacher_config: FeatureConfig, teacher_frames: list[int]
) -> tuple[WindowSamples, np.ndarray]:
    """Teacher window samples (global positions in the concatenated teacher features) for ``samples``.

    Returns the samples and the teacher-side offsets of each episode.
    """
    student = dataset.feature_config
    w_s, w_t = student.window_frames, teacher_config.window_frames
    offsets_t = np.concatenate([[0], np.cumsum(teacher_frames)[:-1]]).astype(np.int64)
    lengths_t = np.asarray(teacher_frames, np.int64)

    def teacher_start(global_student_start: np.ndarray) -> np.ndarray:
        episode = np.searchsorted(dataset.offsets, global_student_start, side="right") - 1
        local = global_student_start - dataset.offsets[episode]
        centre_seconds = (local + w_s / 2) * student.frame_seconds
        start = np.rint(centre_seconds / teacher_config.frame_seconds - w_t / 2).astype(np.int64)
        start = np.clip(start, 0, np.maximum(lengths_t[episode] - w_t, 0))
        return offsets_t[episode] + start

    swapped = samples.cut != w_s
    a_start = samples.first - (w_s - samples.cut)  # window A, whose tail opens the sample
    ta, tb = teacher_start(a_start), teacher_start(samples.second)
    half_t = w_t // 2
    first = np.where(swapped, ta + half_t, ta)
    second = np.where(swapped, tb, ta)
    cut = np.where(swapped, w_t - half_t, w_t).astype(np.int64)
    return WindowSamples(first, second, cut, samples.label), offsets_t


def teacher_logits(
    teacher: Checkpoint,
    dataset: Dataset,
    samples: WindowSamples,
    device: str = "cpu",
    batch_size: int = TEACHER_BATCH,
):
    """``(len(samples), n_classes)`` float tensor of the teacher's logits for the student's windows."""
    import torch

    check_teacher_classes(teacher, dataset)
    tcfg = teacher.feature_config
    if tcfg == dataset.feature_config:
        frames, mapped = dataset.frames, samples
    else:
        log.info(
            "teacher %s uses other features (%s); computing them from the audio",
            teacher.name,
            _differences(tcfg, dataset.feature_config),
        )
        per_episode = teacher_episode_features(dataset, tcfg)
        mapped, _ = map_to_teacher(samples, dataset, tcfg, [len(f) for f in per_episode])
        frames = np.concatenate(per_episode)
    teacher.check_feature_count(frames.shape[1], f"teacher {teacher.name}")
    model = teacher.build_model(device)
    out = []
    with torch.inference_mode():
        for start in range(0, len(samples), batch_size):
            part = mapped.take(np.arange(start, min(start + batch_size, len(samples))))
            batch = torch.from_numpy(
                np.ascontiguousarray(gather_windows(frames, part, tcfg.window_frames))
            ).to(device)
            out.append(model(batch).float().cpu())
    return torch.cat(out) if out else torch.zeros((0, len(dataset.classes)))


def _differences(a: FeatureConfig, b: FeatureConfig) -> str:
    from dataclasses import fields

    return ", ".join(
        f"{f.name} {getattr(a, f.name)} vs {getattr(b, f.name)}"
        for f in fields(FeatureConfig)
        if getattr(a, f.name) != getattr(b, f.name)
    )
