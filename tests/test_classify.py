"""``adcut classify`` and clip ``adcut evaluate``: output lines, newest-model default, naming, errors."""

import os
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import tone

from adcut.cli import main
from adcut.evaluate.clips import ClipClassifier, ClipEvaluation, ClipResult, clip_class, labelled_clips
from adcut.features.episode import episode_features
from adcut.features.mfcc import window_starts, windows
from adcut.media.encode import write_audio
from adcut.models.checkpoint import load_checkpoint
from adcut.models.inference import predict_windows

RATE = 8000


@pytest.fixture
def clip_folder(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    write_audio(folder / "one_a.wav", tone(300, 20.0, RATE), RATE)
    write_audio(folder / "two_B.flac", tone(900, 5.0, RATE), RATE)  # shorter than one window
    write_audio(folder / "three_ad.mp3", tone(500, 9.0, RATE), RATE)
    write_audio(folder / "four_content.wav", tone(700, 12.0, RATE), RATE)
    (folder / "notes_a.txt").write_text("not audio")
    write_audio(folder / "unnamed.wav", tone(700, 3.0, RATE), RATE)
    return folder


def test_clip_names_declare_their_class():
    classes = ("ad", "content")
    assert clip_class(Path("x_a.wav"), classes) == "ad"
    assert clip_class(Path("x_B.mp3"), classes) == "content"
    assert clip_class(Path("my_show_ad.ogg"), classes) == "ad"
    assert clip_class(Path("x_content.flac"), classes) == "content"
    assert clip_class(Path("episode.wav"), classes) is None
    assert clip_class(Path("x_music.wav"), classes) is None


def test_labelled_clips_skip_unnamed_and_non_audio(clip_folder):
    found = {p.name: truth for p, truth in labelled_clips(clip_folder, ("ad", "content"))}
    assert found == {
        "one_a.wav": "ad",
        "two_B.flac": "content",
        "three_ad.mp3": "ad",
        "four_content.wav": "content",
    }


def test_clip_probability_is_the_mean_over_its_windows(clip_folder, random_checkpoint):
    checkpoint = load_checkpoint(random_checkpoint(hidden_size=8))
    classifier = ClipClassifier(checkpoint)
    path = clip_folder / "one_a.wav"
    feats, _ = episode_features(path, checkpoint.feature_config)
    starts = window_starts(len(feats), 131, 64)
    assert len(starts) >= 3
    expected = predict_windows(classifier.model, windows(feats, starts, 131)).mean(axis=0)
    result = classifier.classify(path)
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-5)
    assert result.predicted == checkpoint.class_names[int(expected.argmax())]


def test_classify_prints_one_line_per_clip_with_newest_model(
    clip_folder, random_checkpoint, tmp_path, monkeypatch, capsys
):
    models = tmp_path / "models"
    models.mkdir()
    older = random_checkpoint("models/older.pt", hidden_size=8)
    newer = random_checkpoint("models/newer.pt", hidden_size=8)
    os.utime(older, (1_000_000, 1_000_000))
    monkeypatch.chdir(tmp_path)
    clips = [clip_folder / "one_a.wav", clip_folder / "two_B.flac"]
    assert main(["-q", "classify", *map(str, clips)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "model: models/newer.pt"
    assert len(lines) == 3
    classifier = ClipClassifier(load_checkpoint(newer))
    for line, clip in zip(lines[1:], clips):
        name, label, probability = line.split("\t")
        result = classifier.classify(clip)
        assert name == str(clip) and label == result.predicted
        assert float(probability) == pytest.approx(result.confidence, abs=5e-4) and float(probability) >= 0.5


def test_classify_errors(clip_folder, random_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["-q", "classify", str(clip_folder / "one_a.wav")]) == 1
    assert capsys.readouterr().err.strip() == (
        "adcut: error: no model given and none found in models/ (train one with 'adcut train', or pass --model)"
    )
    model = random_checkpoint(hidden_size=8)
    missing = clip_folder / "gone.wav"
    assert main(["-q", "classify", str(missing), str(clip_folder / "one_a.wav"), "--model", str(model)]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == f"adcut: error: {missing}: file not found"
    assert (
        captured.out.strip().splitlines()[1].startswith(f"{clip_folder / 'one_a.wav'}\t")
    )  # the others still run
    (tmp_path / "bad.pt").write_text("not a model")
    assert main(["-q", "classify", str(clip_folder / "one_a.wav"), "--model", str(tmp_path / "bad.pt")]) == 1
    assert capsys.readouterr().err.startswith(f"adcut: error: {tmp_path / 'bad.pt'}: not an adcut checkpoint")


def test_evaluate_clip_folder_reports_files_accuracy_and_confusion(clip_folder, random_checkpoint, capsys):
    model = random_checkpoint(hidden_size=8)
    assert main(["-q", "evaluate", str(clip_folder), "--model", str(model)]) == 0
    out = capsys.readouterr().out.splitlines()
    classifier = ClipClassifier(load_checkpoint(model))
    rows = [line for line in out if "\ttrue " in line]
    assert len(rows) == 4
    truths = {p.name: t for p, t in labelled_clips(clip_folder, ("ad", "content"))}
    predicted = {}
    for row in rows:
        name, truth, pred, _, mark = row.split("\t")
        predicted[name] = pred.removeprefix("predicted ")
        assert truth == f"true {truths[name]}"
        assert predicted[name] == classifier.classify(clip_folder / name).predicted
        assert mark == ("ok" if predicted[name] == truths[name] else "WRONG")
    right = sum(predicted[n] == truths[n] for n in truths)
    assert f"accuracy: {right / 4:.3f} ({right}/4 clips)" in out
    matrix_rows = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in out[-2:]}
    for true_name in ("ad", "content"):
        for j, pred_name in enumerate(("ad", "content")):
            assert matrix_rows[true_name][j] == sum(
                truths[n] == true_name and predicted[n] == pred_name for n in truths
            )


def test_confusion_matrix_counts():
    probs = np.array([0.9, 0.1])
    results = [
        ClipResult(Path("a"), probs, "ad", "ad"),
        ClipResult(Path("b"), probs, "ad", "content"),
        ClipResult(Path("c"), probs, "content", "content"),
        ClipResult(Path("d"), probs, "content", "content"),
    ]
    evaluation = ClipEvaluation(("ad", "content"), results)
    assert evaluation.confusion().tolist() == [[1, 0], [1, 2]]
    assert evaluation.accuracy == 0.75


def test_evaluate_without_clips_is_a_clear_error(tmp_path, random_checkpoint, capsys):
    folder = tmp_path / "plain"
    folder.mkdir()
    write_audio(folder / "episode.wav", tone(300, 2.0, RATE), RATE)
    code = main(["-q", "evaluate", str(folder), "--model", str(random_checkpoint(hidden_size=8))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("adcut: error: ")
