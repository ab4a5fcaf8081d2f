"""``adcut evaluate EPISODES...``: per-episode and overall metrics, --plot, --cross-validate, bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from adcut.cli import main
from adcut.core.segments import Segment
from adcut.demo.synth import EpisodeSpec

SPECS = (EpisodeSpec(60.0, ((20.0, 40.0),)), EpisodeSpec(70.0, ((25.0, 45.0),)))


def shifted_detector(shift: float):
    """A stand-in for segment.detect: the true labels (read back from the file) moved by ``shift`` s."""
    from adcut.detect.pipeline import Detection
    from adcut.formats.labels import read_labels
    from adcut.media.decode import probe

    def detect(path, checkpoint, config=None, device="cpu", model=None, threads=None):
        path = Path(path)
        duration = probe(path).duration
        truth = read_labels(path.with_suffix(".txt"), duration=duration)
        edges = [0.0] + [s.start + shift for s in truth[1:]] + [duration]
        segments = [Segment(a, b, s.label) for s, a, b in zip(truth, edges, edges[1:])]
        steps = int(np.ceil(duration / 0.5))
        probs = np.full((steps, 2), 0.5, dtype=np.float32)
        return Detection(
            path, duration, ("ad", "content"), segments, [0.9] * len(segments), 0.5, probs, "stub"
        )

    return detect


@pytest.fixture
def episodes(make_episode, tmp_path):
    folder = tmp_path / "eps"
    return [
        make_episode(f"ep{i}", spec, sample_rate=8000, folder=folder, seed=i)[0]
        for i, spec in enumerate(SPECS)
    ]


def table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] in ("ep0.wav", "ep1.wav", "overall", "pooled"):
            rows[parts[0]] = parts[1:]
    return rows


def test_metrics_per_episode_and_overall(episodes, random_checkpoint, monkeypatch, capsys):
    monkeypatch.setattr("adcut.detect.pipeline.detect", shifted_detector(2.0))
    model = random_checkpoint(hidden_size=16, num_layers=1)
    assert main(["-q", "evaluate", *map(str, episodes), "--model", str(model)]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert set(rows) == {"ep0.wav", "ep1.wav", "overall"}
    header = [line for line in out.splitlines() if line.startswith("episode")][0].split()
    median = header.index("med") - 2  # "bnd med" is two words in the header; rows start after the name
    for name in rows:
        assert rows[name][median] == "2.00"  # every boundary shifted by exactly 2 s
        assert rows[name][header.index("<=1s") - 3] == "0%"
        assert rows[name][header.index("<=3s") - 3] == "100%"
    # 2 s of content removed per ad, 2 ads in 130 s of audio
    assert rows["overall"][header.index("cut") - 3] == f"{4.0 * 3600 / 130:.1f}"


def test_real_detection_runs_on_episodes(episodes, random_checkpoint, capsys):
    model = random_checkpoint(hidden_size=16, num_layers=1)
    assert (
        main(
            [
                "-q",
                "evaluate",
                str(episodes[0].parent),
                "--model",
                str(model),
                "--smoothing",
                "none",
                "--no-refine",
            ]
        )
        == 0
    )
    rows = table_rows(capsys.readouterr().out)
    assert set(rows) == {"ep0.wav", "ep1.wav", "overall"}
    accuracy = float(rows["overall"][0])
    assert 0.0 <= accuracy <= 1.0


def test_plot_is_a_png_and_nothing_else_is_left(episodes, random_checkpoint, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("adcut.detect.pipeline.detect", shifted_detector(1.0))
    out = tmp_path / "plots"
    out.mkdir()
    target = out / "timeline.png"
    model = random_checkpoint(hidden_size=16, num_layers=1)
    assert main(["-q", "evaluate", *map(str, episodes), "--model", str(model), "--plot", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.iterdir()] == ["timeline.png"]


def test_plot_into_missing_folder_is_one_line_error(episodes, random_checkpoint, tmp_path, capsys):
    model = random_checkpoint(hidden_size=16, num_layers=1)
    target = tmp_path / "nope" / "t.png"
    assert main(["-q", "evaluate", str(episodes[0]), "--model", str(model), "--plot", str(target)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"adcut: error: {target}: folder {target.parent} does not exist"
    assert not target.parent.exists()


def test_episode_without_labels_is_one_line_error(make_episode, random_checkpoint, tmp_path, capsys):
    path, _ = make_episode("bare", SPECS[0], labels=False, sample_rate=8000)
    model = random_checkpoint(hidden_size=16, num_layers=1)
    assert main(["-q", "evaluate", str(path), "--model", str(model)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"adcut: error: {path}: no labels found")


def test_cross_validation_trains_one_fold_per_episode(episodes, tmp_path, capsys):
    from adcut.learn.dataset import DatasetConfig, build_dataset
    from adcut.learn.sources import find_episodes

    dataset = tmp_path / "ds"
    build_dataset(
        find_episodes([episodes[0].parent]),
        dataset,
        config=DatasetConfig(keep_straddling=True),
        progress=False,
    )
    assert (
        main(["-q", "evaluate", "--cross-validate", str(dataset), "--cv-epochs", "1", "--smoothing", "none"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("fold ") == 2
    rows = table_rows(out.replace("ep0 ", "ep0.wav ").replace("ep1 ", "ep1.wav "))
    assert {"ep0.wav", "ep1.wav", "pooled"} <= set(rows)
    assert "spread across folds" in out and "frame accuracy" in out


def test_cross_validation_needs_two_episodes(episodes, tmp_path, capsys):
    from adcut.learn.dataset import build_dataset
    from adcut.learn.sources import find_episodes

    dataset = tmp_path / "one"
    build_dataset(find_episodes([episodes[0]]), dataset, progress=False)
    capsys.readouterr()  # the dataset builder's warning about a single episode
    assert main(["-q", "evaluate", "--cross-validate", str(dataset)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"adcut: error: {dataset}: cross-validation needs at least 2 episodes, the dataset has 1"
    )


def test_cross_validation_takes_no_path_and_needs_something_to_evaluate(episodes, tmp_path, capsys):
    assert main(["-q", "evaluate", "--cross-validate", str(tmp_path / "ds"), str(episodes[0])]) == 1
    assert capsys.readouterr().err.strip() == (
        "adcut: error: --cross-validate takes its episodes from the dataset; give no PATH with it"
    )
    assert main(["-q", "evaluate"]) == 1
    assert capsys.readouterr().err.strip().startswith("adcut: error: give a folder of labelled clips")


def test_folds_train_as_train_does(episodes, tmp_path, monkeypatch):
    """Each fold trains with train's own settings, and stops early on windows of neither the held-out episode
    nor the fold's training windows."""
    import adcut.learn.train as training
    from adcut.detect.config import SegmentationConfig
    from adcut.detect.smoothing import SmoothingConfig
    from adcut.evaluate.episodes import cross_validate
    from adcut.learn.dataset import DatasetConfig, build_dataset
    from adcut.learn.sources import VALIDATION, find_episodes
    from adcut.learn.train import TrainConfig

    dataset_dir = tmp_path / "ds"
    build_dataset(
        find_episodes([episodes[0].parent]),
        dataset_dir,
        config=DatasetConfig(keep_straddling=True),
        progress=False,
    )
    seen = []
    real_train = training.train

    def recording_train(dataset, config, output_path, teacher=None, progress=True):
        seen.append((dataset, config))
        return real_train(dataset, replace(config, epochs=1), output_path, teacher, progress)

    monkeypatch.setattr(training, "train", recording_train)
    results = cross_validate(
        dataset_dir,
        SegmentationConfig(smoothing=SmoothingConfig("none")),
        TrainConfig(device="cpu"),
        "cpu",
        progress=False,
    )
    assert [r.name for r in results] == ["ep0", "ep1"]
    window = seen[0][0].feature_config.window_frames
    for held_out, (fold, config) in enumerate(seen):
        assert config == TrainConfig(device="cpu")  # train's defaults: 30 epochs, early stopping after 8
        assert held_out not in set(fold.window_episode.tolist())
        validation = fold.samples(VALIDATION)
        training_windows = fold.samples("train")
        assert len(validation) and len(training_windows)
        # no frame is in both splits: every validation window starts after every training window has ended
        assert training_windows.first.max() + window <= validation.first.min()


def test_min_duration_flags_and_learned_minimums_reach_the_scores():
    import argparse
    from types import SimpleNamespace

    from adcut.cli.segmentation import add_segmentation_arguments, segmentation_config
    from adcut.evaluate.episodes import minimum_durations

    parser = argparse.ArgumentParser()
    add_segmentation_arguments(parser)
    config = segmentation_config(parser.parse_args(["--min-ad", "7", "--min-content-seconds", "25"]))
    assert (config.smoothing.min_ad_seconds, config.smoothing.min_content_seconds) == (7.0, 25.0)
    # unset: short segments are counted against the minimums detection learned from the training labels
    learned = SimpleNamespace(
        class_names=("ad", "content"),
        training={"label_durations": {"ad": {"count": 3, "min": 12.0}, "content": {"count": 2, "min": 50.0}}},
    )
    assert minimum_durations(segmentation_config(parser.parse_args([])), learned) == {
        "ad": 6.0,
        "content": 20.0,
    }
