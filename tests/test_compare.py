"""``adcut models compare`` / ``models info`` and the scoring behind them."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from adcut.cli import main
from adcut.demo.synth import EpisodeSpec
from adcut.evaluate.compare import accuracy_and_f1
from adcut.features.mfcc import FeatureConfig
from adcut.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from adcut.models.registry import build_model, config_dict

CHEAP = FeatureConfig(
    sample_rate=2048, n_fft=256, hop_length=128, n_mfcc=4, window_frames=32, window_hop_frames=16
)
FAST = ["--min-seconds", "0", "--batch-size", "8"]


def constant_checkpoint(path, model_type, class_index, feature_config=FeatureConfig(), **config):
    """A model that always answers ``class_index``: its scores are known without running anything else."""
    torch.manual_seed(0)
    model = build_model(model_type, {"n_features": feature_config.n_features, **config})
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([5.0, -5.0] if class_index == 0 else [-5.0, 5.0]))
    save_checkpoint(
        path,
        Checkpoint(model_type, config_dict(model), feature_config, ("ad", "content"), model.state_dict()),
    )
    return path


def table_rows(text: str) -> dict[str, dict[str, str]]:
    """The printed table as {model: {column: cell}} (columns are two or more spaces apart)."""
    lines = text.strip().splitlines()
    headers = re.split(r"\s{2,}", lines[0].strip())
    assert headers[:3] == ["model", "type", "params"]
    rows = [dict(zip(headers, re.split(r"\s{2,}", line.strip()))) for line in lines[2:]]
    return {row["model"]: row for row in rows}


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_table_lists_every_model_with_its_true_parameter_count(random_checkpoint, make_episode, capsys):
    episode, _ = make_episode("ep", EpisodeSpec(30.0, ((8.0, 20.0),)))
    paths = [
        random_checkpoint("big_lstm.pt", "lstm", hidden_size=24),
        random_checkpoint("tiny_tf.pt", "transformer", d_model=16, n_heads=2, dim_feedforward=32),
        random_checkpoint(
            "cheap_tf.pt", "transformer", feature_config=CHEAP, d_model=8, n_heads=2, dim_feedforward=16
        ),
    ]
    assert (
        main(["-q", "models", "compare", *map(str, paths), "--data", str(episode), "--no-episodes", *FAST])
        == 0
    )
    rows = table_rows(capsys.readouterr().out)
    assert set(rows) == {p.name for p in paths}
    for path in paths:
        ckpt = load_checkpoint(path)
        model = ckpt.build_model()
        row = rows[path.name]
        assert number(row["params"]) == sum(p.numel() for p in model.parameters())
        assert row["type"] == ckpt.model_type
        assert (
            row["features"]
            == f"{ckpt.feature_config.sample_rate}Hz {ckpt.feature_config.n_mfcc}mfcc {ckpt.feature_config.window_frames}fr"
        )
        assert number(row["windows/s"]) > 0
        assert 0.0 <= number(row["accuracy"]) <= 1.0
        assert "seg.F1" not in row
    # Each model is scored on windows of its own feature settings: the cheap model sees more, shorter windows.
    assert number(rows["cheap_tf.pt"]["windows"]) > number(rows["tiny_tf.pt"]["windows"])


def test_scores_of_models_with_known_answers(tmp_path, make_episode, capsys):
    episode, _ = make_episode("ep", EpisodeSpec(40.0, ((12.0, 30.0),)))
    always_ad = constant_checkpoint(tmp_path / "ad.pt", "transformer", 0, d_model=16, n_heads=2)
    always_content = constant_checkpoint(tmp_path / "content.pt", "lstm", 1, hidden_size=8)
    assert (
        main(
            [
                "-q",
                "models",
                "compare",
                str(always_ad),
                str(always_content),
                "--data",
                str(episode),
                "--no-speed",
                "--json",
                "--no-episodes",
            ]
        )
        == 0
    )
    reports = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    ad, content = reports["ad.pt"], reports["content.pt"]
    assert 0 < ad["accuracy"] < 1
    assert ad["accuracy"] + content["accuracy"] == pytest.approx(1.0)
    assert content["f1"] == 0.0  # never finds an ad
    precision = ad["accuracy"]  # says "ad" everywhere: precision is the share of ad windows, recall 1
    assert ad["f1"] == pytest.approx(2 * precision / (precision + 1))
    assert ad["windows_per_second"] is None


def test_folder_of_episodes_and_all_ads(tmp_path, make_episode, capsys):
    folder = tmp_path / "eps"
    make_episode("a", EpisodeSpec(20.0, ((0.0, 20.0),)), folder=folder)
    make_episode("b", EpisodeSpec(20.0, ((0.0, 20.0),)), folder=folder, seed=1)
    always_ad = constant_checkpoint(tmp_path / "ad.pt", "lstm", 0, hidden_size=8)
    always_content = constant_checkpoint(tmp_path / "content.pt", "lstm", 1, hidden_size=8)
    assert (
        main(
            [
                "-q",
                "models",
                "compare",
                str(always_ad),
                str(always_content),
                "--data",
                str(folder),
                "--no-speed",
                "--json",
            ]
        )
        == 0
    )
    ad, content = json.loads(capsys.readouterr().out)
    assert (ad["accuracy"], ad["f1"]) == (1.0, 1.0)
    assert (
        ad["windows"] == 2 * 4
    )  # 20 s = 321 frames: windows start at 0, 64, 128 and 190 (the last moved back)
    # Whole episodes, segmented: all ad found, and nothing found by the model that never says "ad".
    assert (ad["episode_accuracy"], ad["segment_f1"], ad["event_f05"]) == (pytest.approx(1.0), 1.0, 1.0)
    assert (content["episode_accuracy"], content["segment_f1"], content["event_f05"]) == (
        pytest.approx(0.0),
        0.0,
        0.0,
    )


def test_episode_columns_in_the_table(tmp_path, make_episode, capsys):
    episode, _ = make_episode("ep", EpisodeSpec(30.0, ((10.0, 20.0),)))
    always_content = constant_checkpoint(tmp_path / "content.pt", "transformer", 1, d_model=8, n_heads=2)
    assert main(["-q", "models", "compare", str(always_content), "--data", str(episode), "--no-speed"]) == 0
    row = table_rows(capsys.readouterr().out)["content.pt"]
    assert number(row["ep.accuracy"]) == pytest.approx(20 / 30, abs=1e-3)  # right wherever there is no ad
    assert (row["seg.F1"], row["event.F0.5"], row["windows/s"]) == ("0.000", "0.000", "-")


def test_without_data_only_size_and_speed(random_checkpoint, capsys):
    path = random_checkpoint("m.pt", "transformer", d_model=16, n_heads=2)
    assert main(["-q", "models", "compare", str(path), *FAST]) == 0
    row = table_rows(capsys.readouterr().out)["m.pt"]
    assert (row["accuracy"], row["F1"], row["windows"]) == ("-", "-", "-")
    assert number(row["windows/s"]) > 0


def test_info_describes_a_distilled_student(tmp_path, capsys):
    model = build_model("transformer", {"n_features": CHEAP.n_features, "d_model": 16, "n_heads": 2})
    path = tmp_path / "student.pt"
    save_checkpoint(
        path,
        Checkpoint(
            "transformer",
            config_dict(model),
            CHEAP,
            ("ad", "content"),
            model.state_dict(),
            metrics={"val_accuracy": 0.875},
            teacher="models/teacher.pt",
        ),
    )
    assert main(["models", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "teacher:      models/teacher.pt" in out
    assert f"{sum(p.numel() for p in model.parameters()):,} parameters" in out
    assert "4 MFCC + deltas at 2048 Hz, window 32 frames" in out
    assert "val_accuracy=0.875" in out


@pytest.mark.parametrize(
    "make_args,message",
    [
        (lambda d: ["models", "compare", str(d / "missing.pt")], "{d}/missing.pt: model file not found"),
        (
            lambda d: ["models", "compare", str(d / "m.pt"), "--data", str(d / "nowhere")],
            "{d}/nowhere: no such file or folder",
        ),
        (
            lambda d: ["models", "compare", str(d / "m.pt"), "--data", str(d / "unlabelled.wav")],
            "{d}/unlabelled.wav: no labels found (expected unlabelled.txt/.json/.csv beside it",
        ),
        (
            lambda d: ["models", "compare", str(d / "m.pt"), "--batch-size", "0"],
            "--batch-size must be at least 1",
        ),
        (lambda d: ["models", "info", str(d / "junk.pt")], "{d}/junk.pt: not an adcut checkpoint or damaged"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, make_episode, random_checkpoint, capsys, make_args, message):
    random_checkpoint("m.pt")
    make_episode("unlabelled", EpisodeSpec(10.0, ()), labels=False)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(make_args(tmp_path)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("adcut: error: " + message.format(d=tmp_path))


def test_accuracy_and_f1_on_known_predictions():
    labels = np.array([0, 0, 1, 1, 1, -1])
    predicted = np.array([0, 1, 1, 1, 0, 0])
    accuracy, f1 = accuracy_and_f1(predicted, labels, positive=0)
    assert accuracy == pytest.approx(3 / 5)  # the unlabelled window is left out
    assert f1 == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))


def test_dataset_validation_scores_match_training_and_other_features_come_from_audio(
    tmp_path, make_episode, capsys
):
    from adcut.learn.dataset import DatasetConfig, build_dataset
    from adcut.learn.sources import find_episodes
    from adcut.learn.train import TrainConfig, train

    folder = tmp_path / "eps"
    for i, ads in enumerate([((10.0, 30.0),), ((5.0, 20.0), (35.0, 45.0)), ((20.0, 40.0),)]):
        make_episode(f"ep{i}", EpisodeSpec(50.0, ads), folder=folder, seed=i, sample_rate=8000)
    dataset = build_dataset(
        find_episodes([folder]),
        tmp_path / "ds",
        FeatureConfig(),
        DatasetConfig(validation_episodes=("ep1",)),
        progress=False,
    )
    trained = train(
        dataset,
        TrainConfig(model_config={"hidden_size": 8}, lr=3e-3, epochs=2, device="cpu"),
        tmp_path / "lstm.pt",
        progress=False,
    )
    cheap = constant_checkpoint(tmp_path / "cheap.pt", "transformer", 0, CHEAP, d_model=8, n_heads=2)
    assert (
        main(
            [
                "-q",
                "models",
                "compare",
                str(tmp_path / "lstm.pt"),
                str(cheap),
                "--data",
                str(tmp_path / "ds"),
                "--no-speed",
                "--json",
                "--no-episodes",
            ]
        )
        == 0
    )
    reports = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert reports["lstm.pt"]["accuracy"] == pytest.approx(trained.metrics["val_accuracy"], abs=1e-6)
    assert reports["lstm.pt"]["windows"] == trained.training["validation_windows"]
    # The cheap model's windows are cut from ep1's audio with its own settings: 2 s windows, 1 s apart.
    assert reports["cheap.pt"]["windows"] > 2 * reports["lstm.pt"]["windows"]
    assert 0 < reports["cheap.pt"]["accuracy"] < 1
