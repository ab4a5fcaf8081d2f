"""Every writer replaces its file whole or not at all: readers never see part of a file, failures leave the old one."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

import adcut.core.files
from adcut.core.files import atomic_write, atomic_write_text
from adcut.core.segments import Segment
from adcut.errors import OutputError


def others(folder: Path, keep: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p != keep)


def test_the_old_file_stays_whole_until_the_new_one_is_complete(tmp_path):
    target = tmp_path / "labels.txt"
    target.write_text("old\n")
    with atomic_write(target) as tmp, open(tmp, "w") as handle:
        handle.write("new, first half ")
        handle.flush()
        assert target.read_text() == "old\n"  # a reader mid-write sees the old file, not half of the new
        handle.write("and second half\n")
    assert target.read_text() == "new, first half and second half\n"
    assert others(tmp_path, target) == []


def test_a_failure_mid_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "labels.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("the writer fails")
    assert target.read_text() == "old\n"
    assert others(tmp_path, target) == []


def test_a_full_disk_is_one_output_error_naming_the_file(tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(adcut.core.files.os, "fsync", no_space)
    with pytest.raises(OutputError) as error:
        with atomic_write(target, "checkpoint") as tmp:
            tmp.write_bytes(b"new")
    assert str(error.value) == f"{target}: cannot write checkpoint (No space left on device)"
    assert target.read_bytes() == b"old" and others(tmp_path, target) == []


# --------------------------------------------------------------------------- every writer goes through it

SEGMENTS = [Segment(0.0, 10.0, "content"), Segment(10.0, 20.0, "ad"), Segment(20.0, 30.0, "content")]


def write_labels(folder: Path, make_episode) -> Path:
    from adcut.formats.labels import write_labels

    target = folder / "ep.txt"
    write_labels(target, SEGMENTS)
    return target


def write_text(folder: Path, make_episode) -> Path:
    target = folder / "notes.txt"
    atomic_write_text(target, "text\n")
    return target


def write_checkpoint(folder: Path, make_episode) -> Path:
    from adcut.features.mfcc import FeatureConfig
    from adcut.models.checkpoint import Checkpoint, save_checkpoint

    target = folder / "m.safetensors"
    save_checkpoint(
        target, Checkpoint("lstm", {}, FeatureConfig(), ("ad", "content"), {"w": np.zeros(3, np.float32)})
    )
    return target


def write_plot(folder: Path, make_episode) -> Path:
    from adcut.detect.pipeline import Detection
    from adcut.evaluate.episodes import EpisodeResult, plot_timelines
    from adcut.evaluate.metrics import score_episode

    probs = np.full((60, 2), 0.5, np.float32)
    detection = Detection(folder / "ep.wav", 30.0, ("ad", "content"), SEGMENTS, [0.9] * 3, 0.5, probs, "m")
    target = folder / "timeline.png"
    plot_timelines(
        [EpisodeResult("ep", SEGMENTS, detection, score_episode(SEGMENTS, SEGMENTS, 30.0))], target
    )
    return target


def write_labeller_save(folder: Path, make_episode) -> Path:
    from adcut.labeller.server import LabelSession

    target = folder / "ep.txt"
    session = LabelSession(
        episode=folder / "ep.wav",
        labels_path=target,
        classes=("ad", "content"),
        background="content",
        declared_duration=30.0,
        prefill=[],
        source="",
    )
    session.save(SEGMENTS)
    return target


def write_cut(folder: Path, make_episode) -> Path:
    from adcut.demo.synth import EpisodeSpec
    from adcut.media.cut import cut_episode

    episode = folder / "in" / "ep.wav"
    if not episode.exists():
        make_episode(
            "ep", EpisodeSpec(30.0, ((10.0, 20.0),)), folder=episode.parent, labels=False, sample_rate=8000
        )
    target = folder / "ep.adcut.wav"
    cut_episode(episode, SEGMENTS, target)
    return target


def write_dataset(folder: Path, make_episode) -> Path:
    from adcut.demo.synth import EpisodeSpec
    from adcut.learn.dataset import build_dataset
    from adcut.learn.sources import find_episodes

    episode = folder / "in" / "ep.wav"
    if not episode.exists():
        make_episode("ep", EpisodeSpec(30.0, ((10.0, 20.0),)), folder=episode.parent, sample_rate=8000)
    target = folder / "ds"
    build_dataset(find_episodes([episode]), target, progress=False)
    return target / "manifest.json"


WRITERS = [
    write_labels,
    write_text,
    write_checkpoint,
    write_plot,
    write_labeller_save,
    write_cut,
    write_dataset,
]


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__)
def test_every_writer_replaces_its_file_whole_or_not_at_all(
    writer, make_episode, tmp_path, monkeypatch, caplog
):
    """Where the rename fails, the writer fails with one OutputError and leaves what was there before."""
    target = writer(tmp_path, make_episode)  # a first, successful write
    before = target.read_bytes()
    folder_before = sorted(p.name for p in target.parent.iterdir())

    def refuse(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(adcut.core.files.os, "replace", refuse)
    if writer is write_dataset:  # the second build reuses cached features: remove them so they are written
        for cached in (target.parent / "features").iterdir():
            os.remove(cached)
        folder_before = sorted(p.name for p in target.parent.iterdir())
    with pytest.raises(OutputError, match="Input/output error"):
        writer(tmp_path, make_episode)
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == folder_before  # no temporary file left
