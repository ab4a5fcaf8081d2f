"""``adcut cut EPISODE --labels FILE``: the ad-free file from a label file, with process's outputs and rules."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from adcut.cli import main
from adcut.demo.synth import EpisodeSpec
from adcut.media.decode import decode_original, probe

SPEC = EpisodeSpec(duration=24.0, ads=((8.0, 14.0),))


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def episode(make_episode):
    path, segments = make_episode("show", SPEC, suffix=".wav")
    return path, segments


def test_cut_from_audacity_labels_writes_the_cut_wav(episode, capsys):
    path, _ = episode
    labels = path.with_suffix(".txt")  # written by the fixture: the ads only
    assert "ad" in labels.read_text()
    code, out, err = run_cli(capsys, "cut", str(path), "--labels", str(labels), "-q")
    assert code == 0, err
    cut = path.with_name("show.adcut.wav")
    assert cut.exists() and f"wrote {cut}" in out
    info, original = decode_original(path)
    _, samples = decode_original(cut)
    sr = info.sample_rate
    assert abs(samples.shape[1] - (24.0 - 6.0) * sr) <= 2
    # The kept audio after the cut is the original's audio after the ad (away from the fade).
    np.testing.assert_allclose(
        samples[:, int(9 * sr) : int(10 * sr)], original[:, int(15 * sr) : int(16 * sr)], atol=2e-4
    )
    np.testing.assert_allclose(samples[:, : int(7 * sr)], original[:, : int(7 * sr)], atol=2e-4)
    assert not list(path.parent.glob(".*.tmp"))


def test_cut_from_process_json_and_formats_in_outdir(episode, tmp_path, capsys):
    path, _ = episode
    process_json = tmp_path / "show.adcut.json"
    process_json.write_text(
        json.dumps(
            {
                "file": path.name,
                "duration": 24.0,
                "classes": ["ad", "content"],
                "segments": [
                    {"label": "content", "start": 0.0, "end": 8.0, "confidence": 0.91},
                    {"label": "ad", "start": 8.0, "end": 14.0, "confidence": 0.8},
                    {"label": "content", "start": 14.0, "end": 24.0, "confidence": 0.95},
                ],
            }
        )
    )
    outdir = tmp_path / "out"
    code, out, err = run_cli(
        capsys,
        "cut",
        str(path),
        "--labels",
        str(process_json),
        "-o",
        str(outdir),
        "--format",
        "json,podcast",
        "-q",
    )
    assert code == 0, err
    assert (outdir / "show.adcut.wav").exists()
    data = json.loads((outdir / "show.adcut.json").read_text())
    assert [(s["label"], s["start"], s["end"]) for s in data["segments"]] == [
        ("content", 0.0, 8.0),
        ("ad", 8.0, 14.0),
        ("content", 14.0, 24.0),
    ]
    assert [s["confidence"] for s in data["segments"]] == [0.91, 0.8, 0.95]
    assert data["settings"]["labels"] == "show.adcut.json" and data["settings"]["cut_method"] == "copy-wav"
    chapters = json.loads((outdir / "show.chapters.json").read_text())
    assert [c["title"] for c in chapters["chapters"]] == ["Content", "Ad", "Content"]
    assert abs(probe(outdir / "show.adcut.wav").duration - 18.0) < 0.01
    # The input label file was not touched.
    assert json.loads(process_json.read_text())["segments"][0]["confidence"] == 0.91


def test_output_that_would_overwrite_the_label_file_is_refused(episode, capsys):
    path, _ = episode
    label = path.with_name("show.adcut.json")
    label.write_text(json.dumps({"segments": [{"label": "ad", "start": 8.0, "end": 14.0}]}))
    before = label.read_text()
    code, _, err = run_cli(capsys, "cut", str(path), "--labels", str(label), "--format", "json")
    assert code == 1 and "would overwrite the label file" in err
    assert label.read_text() == before and not path.with_name("show.adcut.wav").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ("8\t14\tad\n3\t5\tad\n", "not sorted"),
        ("8\t14\tad\n12\t16\tad\n", "overlaps"),
        ("8\t40\tad\n", "beyond the audio's end"),
        ("8\t14\tjingle\n", "unknown class"),
        ("8\tlater\tad\n", "is not a time"),
    ],
)
def test_bad_label_file_is_one_error_line(episode, tmp_path, capsys, content, message):
    path, _ = episode
    labels = tmp_path / "bad.txt"
    labels.write_text(content)
    code, out, err = run_cli(capsys, "cut", str(path), "--labels", str(labels))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("adcut: error: ") and message in lines[0]
    assert "Traceback" not in err and not path.with_name("show.adcut.wav").exists()


@pytest.mark.parametrize(
    "name, message", [("missing.txt", "not found"), ("labels.xml", "unknown label format")]
)
def test_missing_or_unknown_label_file(episode, tmp_path, capsys, name, message):
    path, _ = episode
    code, _, err = run_cli(capsys, "cut", str(path), "--labels", str(tmp_path / name))
    assert code == 1 and err.count("\n") == 1 and message in err


def test_everything_removed_and_unknown_remove_class(episode, tmp_path, capsys):
    path, _ = episode
    labels = tmp_path / "all.txt"
    labels.write_text("0\t24\tad\n")
    code, _, err = run_cli(capsys, "cut", str(path), "--labels", str(labels))
    assert code == 1 and "no cut file written" in err
    code, _, err = run_cli(
        capsys, "cut", str(path), "--labels", str(path.with_suffix(".txt")), "--remove", "music"
    )
    assert code == 1 and "--remove music" in err


def test_up_to_date_outputs_are_skipped_unless_forced(episode, capsys):
    path, _ = episode
    labels = path.with_suffix(".txt")
    assert run_cli(capsys, "cut", str(path), "--labels", str(labels), "-q")[0] == 0
    cut = path.with_name("show.adcut.wav")
    code, out, _ = run_cli(capsys, "cut", str(path), "--labels", str(labels))
    assert code == 0 and "skipped" in out
    # A newer label file (a later review) makes the cut stale.
    later = cut.stat().st_mtime + 5
    os.utime(labels, (later, later))
    code, out, _ = run_cli(capsys, "cut", str(path), "--labels", str(labels), "-q")
    assert code == 0 and "wrote" in out
    code, out, _ = run_cli(capsys, "cut", str(path), "--labels", str(labels), "--force", "--dry-run")
    assert code == 0 and f"would write: {cut}" in out


def test_help_lists_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "cut" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["cut", "--help"])
    text = capsys.readouterr().out
    assert "--labels" in text and "--reencode" in text


def test_cut_m4a_copies_packets_and_reencode_forces_the_whole_file(make_episode, capsys):
    path, _ = make_episode("show", SPEC, suffix=".m4a", sample_rate=44100, bit_rate=96000)
    labels = path.with_suffix(".txt")
    code, out, err = run_cli(capsys, "cut", str(path), "--labels", str(labels), "--format", "json", "-q")
    assert code == 0, err
    assert "(copy-aac)" in out
    assert json.loads(path.with_name("show.adcut.json").read_text())["settings"]["cut_method"] == "copy-aac"
    assert abs(probe(path.with_name("show.adcut.m4a")).duration - 18.0) < 0.03
    code, out, err = run_cli(capsys, "cut", str(path), "--labels", str(labels), "--reencode", "--force", "-q")
    assert code == 0 and "(reencode)" in out


def test_process_json_whose_decoded_duration_exceeds_the_declared_one(episode, tmp_path, capsys):
    """A process JSON measured the duration by decoding; a little past the container's figure is not an error."""
    path, _ = episode
    label = tmp_path / "decoded.json"
    label.write_text(
        json.dumps(
            {
                "duration": 24.4,
                "classes": ["ad", "content"],
                "segments": [
                    {"label": "content", "start": 0.0, "end": 8.0},
                    {"label": "ad", "start": 8.0, "end": 14.0},
                    {"label": "content", "start": 14.0, "end": 24.4},
                ],
            }
        )
    )
    code, _, err = run_cli(capsys, "cut", str(path), "--labels", str(label), "-q")
    assert code == 0, err
    assert abs(probe(path.with_name("show.adcut.wav")).duration - 18.0) < 0.01
    label.write_text(json.dumps({"duration": 30.0, "segments": [{"label": "ad", "start": 8.0, "end": 30.0}]}))
    code, _, err = run_cli(capsys, "cut", str(path), "--labels", str(label), "--force")
    assert code == 1 and "beyond the audio's end" in err
