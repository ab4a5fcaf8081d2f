"""``adcut process`` end to end: outputs, printing, skip/force, dry run, folders, and bad input."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from adcut.cli import main
from adcut.demo.synth import EpisodeSpec
from adcut.detect import windows as segment
from adcut.detect.config import WINDOW_ANCHORS
from adcut.formats.labels import read_labels
from adcut.media.decode import decode_original, probe

SPEC = EpisodeSpec(100.0, ((30.0, 55.0),))


@pytest.fixture
def fake_model(monkeypatch):
    """The model's windows answer 'ad' (p=0.95) when their anchor point lies in a true ad of SPEC."""

    def predict(model, features, starts, window_frames, *, batch_size, device):
        anchor = WINDOW_ANCHORS["lstm"]
        times = (starts + anchor * window_frames) * (256 / 4096)
        is_ad = np.array([any(a <= t < b for a, b in SPEC.ads) for t in times])
        p_ad = np.where(is_ad, 0.95, 0.05)
        return np.stack([p_ad, 1 - p_ad], axis=1).astype(np.float32)

    monkeypatch.setattr(segment, "predict_episode", predict)


@pytest.fixture
def small_model(random_checkpoint):
    return random_checkpoint(hidden_size=8, num_layers=1)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir())


def test_process_writes_labels_json_and_cut_audio(make_episode, small_model, fake_model, tmp_path, capsys):
    path, truth = make_episode("show", SPEC, suffix=".mp3", bit_rate=64000)
    assert main(["-q", "process", str(path), "--model", str(small_model)]) == 0
    out = capsys.readouterr().out.splitlines()
    # Boundary seconds first (where the class changes), then the table.
    boundaries = [float(line) for line in out[: out.index("")]]
    assert np.allclose(boundaries, [30.0, 55.0], atol=1.0)
    header = out[out.index("") + 1].split()
    assert header == ["class", "start", "end", "duration", "mean", "p"]
    rows = [line.split() for line in out[out.index("") + 2 :]]
    assert [r[0] for r in rows] == ["content", "ad", "content"]
    assert rows[1][3] == "0:00:25"
    assert listing(tmp_path) == sorted(
        ["show.mp3", "show.txt", "show.adcut.txt", "show.adcut.json", "show.adcut.mp3", "rand.pt"]
    )
    found = read_labels(tmp_path / "show.adcut.txt", duration=100.0)
    assert [s.label for s in found] == ["content", "ad", "content"]
    data = json.loads((tmp_path / "show.adcut.json").read_text())
    assert data["model"].startswith("rand.pt@") and len(data["probabilities"]["ad"]) == 100
    cut = tmp_path / "show.adcut.mp3"
    kept = 100.0 - found[1].duration
    assert probe(cut).codec == probe(path).codec
    # Each cut edge is rounded outward to a whole MP3 frame (576 samples at 16 kHz): no ad audio is kept,
    # at most one frame of content goes per edge.
    rate = probe(cut).sample_rate
    decoded = decode_original(cut)[1].shape[1] / rate
    assert kept - 2 * 576 / rate - 1e-6 <= decoded <= kept + 1e-6


def test_rerun_skips_until_forced_or_the_model_changes(
    make_episode, small_model, fake_model, tmp_path, capsys
):
    path, _ = make_episode("show", SPEC)
    args = ["process", str(path), "--model", str(small_model), "--no-cut", "--format", "audacity,cue"]
    assert main(args) == 0
    outputs = [tmp_path / "show.adcut.txt", tmp_path / "show.cue"]
    stamps = [p.stat().st_mtime_ns for p in outputs]
    capsys.readouterr()
    assert main(args) == 0
    assert "skipped (outputs up to date" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in outputs] == stamps
    time.sleep(0.01)
    assert main(args + ["--force"]) == 0
    assert all(p.stat().st_mtime_ns > s for p, s in zip(outputs, stamps))
    stamps = [p.stat().st_mtime_ns for p in outputs]
    later = time.time() + 5
    os.utime(small_model, (later, later))  # a newer model makes the outputs stale
    assert main(args) == 0
    assert all(p.stat().st_mtime_ns > s for p, s in zip(outputs, stamps))


def test_dry_run_writes_nothing(make_episode, small_model, tmp_path, capsys):
    path, _ = make_episode("show", SPEC)
    before = listing(tmp_path)
    outdir = tmp_path / "out"
    assert (
        main(
            [
                "process",
                str(path),
                "--model",
                str(small_model),
                "--dry-run",
                "-o",
                str(outdir),
                "--format",
                "podcast",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        f"would write: {outdir / 'show.chapters.json'}",
        f"would write: {outdir / 'show.adcut.wav'}",
    ]
    assert listing(tmp_path) == before


def test_outdir_gets_every_format(make_episode, small_model, fake_model, tmp_path):
    path, _ = make_episode("show", SPEC)
    outdir = tmp_path / "results"
    assert (
        main(
            [
                "-q",
                "process",
                str(path),
                "--model",
                str(small_model),
                "-o",
                str(outdir),
                "--format",
                "audacity,json,podcast,ffmetadata,cue",
                "--smoothing",
                "reference",
            ]
        )
        == 0
    )
    assert listing(outdir) == sorted(
        [
            "show.adcut.txt",
            "show.adcut.json",
            "show.chapters.json",
            "show.ffmeta.txt",
            "show.cue",
            "show.adcut.wav",
        ]
    )


def test_folder_with_a_corrupt_file_processes_the_rest(make_episode, small_model, tmp_path, capsys):
    folder = tmp_path / "eps"
    for name in ("a", "b"):
        make_episode(name, EpisodeSpec(20.0, ()), folder=folder, labels=False)
    (folder / "broken.mp3").write_bytes(b"ID3" + bytes(range(256)) * 40)
    (folder / "notes.txt").write_text("not audio")
    code = main(
        [
            "-q",
            "process",
            str(folder),
            "--model",
            str(small_model),
            "--no-cut",
            "--jobs",
            "2",
            "--format",
            "audacity",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert (folder / "a.adcut.txt").is_file() and (folder / "b.adcut.txt").is_file()
    assert not (folder / "broken.adcut.txt").exists()
    assert "2 processed, 0 skipped, 1 failed" in captured.out
    assert "1 of 3 episodes failed:" in captured.err
    failure = [line for line in captured.err.splitlines() if "broken.mp3" in line]
    assert len(failure) == 1 and "Traceback" not in captured.err
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left
    # a second run skips the finished ones and still reports the broken one
    assert (
        main(
            [
                "-q",
                "process",
                str(folder),
                "--model",
                str(small_model),
                "--no-cut",
                "--jobs",
                "1",
                "--format",
                "audacity",
            ]
        )
        == 1
    )
    assert "0 processed, 2 skipped, 1 failed" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_flags_work_before_or_after_the_command(where, make_episode, small_model, tmp_path, capsys):
    import logging

    folder = tmp_path / "eps"
    for name in ("a", "b"):
        make_episode(name, EpisodeSpec(12.0, ()), folder=folder, labels=False)
    command = [
        "process",
        str(folder),
        "--model",
        str(small_model),
        "--no-cut",
        "--format",
        "audacity",
        "--jobs",
        "1",
    ]
    loud = main(["-vv", *command] if where == "before" else [*command, "-v", "-v"])
    assert loud == 0 and logging.getLogger().level == logging.DEBUG
    assert "processing:" in capsys.readouterr().err  # the progress bar over the folder
    quiet = main(["-q", *command, "--force"] if where == "before" else [*command, "--force", "-q"])
    assert quiet == 0 and logging.getLogger().level == logging.WARNING
    captured = capsys.readouterr()
    assert captured.err == "" and "2 processed" in captured.out


def test_cut_outputs_are_not_taken_as_episodes(make_episode, small_model, tmp_path, capsys):
    folder = tmp_path / "eps"
    make_episode("a", EpisodeSpec(12.0, ()), folder=folder, labels=False)
    (folder / "a.adcut.wav").write_bytes((folder / "a.wav").read_bytes())
    assert main(["-q", "process", str(folder), "--model", str(small_model), "--dry-run", "--no-cut"]) == 0
    assert "a.adcut.adcut" not in capsys.readouterr().out


def _bad_features_model(tmp_path):
    import torch

    from adcut.features.mfcc import FeatureConfig
    from adcut.models.checkpoint import Checkpoint, save_checkpoint
    from adcut.models.registry import build_model, config_dict

    model = build_model("lstm", {"n_features": 39, "hidden_size": 8, "num_layers": 1})
    path = tmp_path / "other.pt"
    torch.manual_seed(0)
    save_checkpoint(
        path,
        Checkpoint(
            "lstm", config_dict(model), FeatureConfig(n_mfcc=10), ("ad", "content"), model.state_dict()
        ),
    )
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "missing.wav: file not found"),
        ("empty", "empty.mp3: file is empty"),
        ("corrupt", "corrupt.mp3: "),
        ("text-model", "fake.pt: not an adcut checkpoint or damaged"),
        (
            "other-features",
            "other.pt: the model reads 39 features per frame but its feature settings give 30",
        ),
        ("unknown-class", "--remove music: not a class of this model (ad, content)"),
        ("bad-hop", "--hop must be between"),
        ("bad-scan-stride", "--scan-stride must be at least 1, not 0"),
        ("bad-format", "unknown output format 'mp4'"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(
    case, message, make_episode, small_model, tmp_path, capsys
):
    episode, _ = make_episode("ok", EpisodeSpec(12.0, ()), labels=False)
    model = small_model
    extra: list[str] = []
    if case == "missing":
        episode = tmp_path / "missing.wav"
    elif case == "empty":
        episode = tmp_path / "empty.mp3"
        episode.write_bytes(b"")
    elif case == "corrupt":
        episode = tmp_path / "corrupt.mp3"
        episode.write_bytes(os.urandom(5000))
    elif case == "text-model":
        model = tmp_path / "fake.pt"
        model.write_text("not a model")
    elif case == "other-features":
        model = _bad_features_model(tmp_path)
    elif case == "unknown-class":
        extra = ["--remove", "music"]
    elif case == "bad-hop":
        extra = ["--hop", "30"]
    elif case == "bad-scan-stride":
        extra = ["--scan-stride", "0"]
    elif case == "bad-format":
        extra = ["--format", "json,mp4"]
    before = listing(tmp_path)
    code = main(["process", str(episode), "--model", str(model), *extra])
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("adcut: error: "), captured.err
    assert message in lines[0]
    assert captured.out == ""
    assert listing(tmp_path) == before


def test_smooth_command_applies_the_reference_rules(tmp_path, capsys):
    predictions = tmp_path / "p.txt"
    predictions.write_text("A\nA\nA\nB\nA\nA\nA\n\nB\nB\nB\nB\nB\nA\nB\nB\nB\n")
    assert main(["smooth", str(predictions)]) == 0
    assert capsys.readouterr().out.split() == ["A"] * 7 + ["B"] * 9
    predictions.write_text("ad\nad\nad\ncontent\nad\nad\n")
    assert main(["smooth", str(predictions)]) == 0
    assert capsys.readouterr().out.split() == ["ad"] * 6
    predictions.write_text("A\nC\n")
    assert main(["smooth", str(predictions)]) == 1
    assert (
        capsys.readouterr().err.strip()
        == f"adcut: error: {predictions}:2: unknown class 'C' (use A/B or ad, content)"
    )
    for content, message in (
        (None, "predictions file not found"),
        (b"\xff\xfeA\x00\xd8", "not a text predictions file (not UTF-8)"),
        (b"# nothing\n", "no predictions in the file"),
    ):
        bad = tmp_path / "bad.txt"
        bad.unlink(missing_ok=True)
        if content is not None:
            bad.write_bytes(content)
        assert main(["smooth", str(bad)]) == 1
        assert capsys.readouterr().err.strip() == f"adcut: error: {bad}: {message}"


def test_full_disk_is_one_clear_line_and_leaves_no_partial_file(
    make_episode, small_model, tmp_path, monkeypatch, capsys
):
    import errno

    import adcut.core.files

    episode, _ = make_episode("ok", EpisodeSpec(12.0, ()), labels=False)
    before = listing(tmp_path)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(adcut.core.files.os, "fsync", no_space)
    code = main(["-q", "process", str(episode), "--model", str(small_model), "--no-cut"])
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("adcut: error: ") and "No space left on device" in lines[0]
    ), captured.err
    assert listing(tmp_path) == before  # neither the outputs nor their temporary files


def test_a_list_file_names_episodes_one_a_line(make_episode, tmp_path):
    from adcut.errors import AdcutError
    from adcut.process.batch import collect_episodes

    first, _ = make_episode("one", SPEC)
    second, _ = make_episode("two", SPEC)
    (tmp_path / "list.txt").write_text(f"# the archive\n{second}\n\n  {first}  \n")
    assert collect_episodes([f"@{tmp_path / 'list.txt'}", first]) == [second, first]
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    with pytest.raises(AdcutError, match=r"empty\.txt: the episode list names no files"):
        collect_episodes([f"@{tmp_path / 'empty.txt'}"])
    with pytest.raises(AdcutError, match=r"missing\.txt: episode list not found"):
        collect_episodes([f"@{tmp_path / 'missing.txt'}"])
