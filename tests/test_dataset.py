"""Dataset building: episode split, window labels, augmentation, imports, cache reuse and errors."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from adcut.cli import main
from adcut.core.segments import Segment
from adcut.demo.synth import EpisodeSpec, render_episode
from adcut.errors import DatasetError, ModelError
from adcut.features.episode import episode_features
from adcut.features.mfcc import FeatureConfig, window_starts
from adcut.learn.dataset import MANIFEST_NAME, DatasetConfig, build_dataset, load_dataset
from adcut.learn.sources import TRAIN, VALIDATION, find_episodes
from adcut.media.encode import write_audio

RATE = 8000  # episodes are written at 8 kHz: plenty for 4096 Hz features, quick to encode and decode
SPECS = [
    EpisodeSpec(70.0, ((20.0, 41.0),)),
    EpisodeSpec(60.0, ((0.0, 15.0), (40.0, 52.5))),
    EpisodeSpec(65.0, ((30.0, 50.0),)),
    EpisodeSpec(55.0, ((10.0, 25.0),)),
    EpisodeSpec(50.0, ((35.0, 50.0),)),
]


@pytest.fixture(scope="module")
def episode_store(tmp_path_factory):
    from adcut.demo.synth import episode_segments, write_episode
    from adcut.formats.labels import format_audacity

    folder = tmp_path_factory.mktemp("episodes")
    for i, spec in enumerate(SPECS):
        write_episode(folder / f"ep{i}.wav", spec, sample_rate=RATE, seed=i)
        (folder / f"ep{i}.txt").write_text(format_audacity(episode_segments(spec), only=("ad",)))
    return folder


@pytest.fixture
def episodes(episode_store, tmp_path):
    """A fresh copy per test (tests edit label files), written once per module."""
    return Path(shutil.copytree(episode_store, tmp_path / "episodes"))


class CountingCompute:
    def __init__(self):
        self.calls = []

    def __call__(self, path, cfg):
        self.calls.append(path.name)
        return episode_features(path, cfg)


def window_spans(ds, mask):
    fs = ds.feature_config.frame_seconds
    starts = ds.window_start[mask] * fs
    return starts, starts + ds.feature_config.window_frames * fs


def test_split_is_by_episode_and_deterministic(episodes, tmp_path):
    config = DatasetConfig(validation_fraction=0.4, seed=7)
    ds = build_dataset(find_episodes([episodes]), tmp_path / "a", config=config, progress=False)
    val_eps = set(ds.window_episode[ds.window_validation])
    train_eps = set(ds.window_episode[~ds.window_validation])
    assert len(val_eps) == 2 and len(train_eps) == 3 and not val_eps & train_eps
    assert [e["split"] for e in ds.episodes].count(VALIDATION) == 2
    again = build_dataset(find_episodes([episodes]), tmp_path / "b", config=config, progress=False)
    assert [e["split"] for e in again.episodes] == [e["split"] for e in ds.episodes]
    assert again.dataset_id == ds.dataset_id


def test_named_validation_episode(episodes, tmp_path):
    ds = build_dataset(
        find_episodes([episodes]),
        tmp_path / "d",
        config=DatasetConfig(validation_episodes=("ep3.wav",)),
        progress=False,
    )
    assert {e["id"]: e["split"] for e in ds.episodes} == {
        "ep0": TRAIN,
        "ep1": TRAIN,
        "ep2": TRAIN,
        "ep3": VALIDATION,
        "ep4": TRAIN,
    }
    with pytest.raises(DatasetError, match="--validation nope: no such episode"):
        build_dataset(
            find_episodes([episodes]),
            tmp_path / "e",
            config=DatasetConfig(validation_episodes=("nope",)),
            progress=False,
        )


def test_windows_labelled_by_covering_class_and_straddlers_left_out(episodes, tmp_path):
    ds = build_dataset(
        find_episodes([episodes]), tmp_path / "d", config=DatasetConfig(keep_straddling=False), progress=False
    )
    fs = ds.feature_config.frame_seconds
    left_out = 0
    for number, (episode, spec) in enumerate(zip(ds.episodes, SPECS)):
        mask = ds.window_episode == number
        t0, t1 = window_spans(ds, mask)
        for a, b, label in zip(t0, t1, ds.window_label[mask]):
            name = ds.classes[label]
            inside = any(a >= s - fs and min(b, spec.duration) <= e + fs for s, e in spec.ads)
            assert inside == (name == "ad"), (episode["id"], a, b, name)
        all_starts = window_starts(episode["n_frames"], 131, 64)
        left_out += len(all_starts) - mask.sum()
        assert episode["straddling_left_out"] == len(all_starts) - mask.sum()
    assert left_out > 0  # every episode has boundaries, so some windows must straddle them

    kept = build_dataset(find_episodes([episodes]), tmp_path / "k", progress=False)  # the default keeps them
    assert len(kept.window_label) == len(ds.window_label) + left_out
    # A kept straddler takes its majority class (ep0: ad 20-41 s).
    starts = kept.window_start[kept.window_episode == 0] * fs
    labels = kept.window_label[kept.window_episode == 0]
    for a, label in zip(starts, labels):
        ad_time = max(0.0, min(a + 131 * fs, 41.0) - max(a, 20.0))
        if 0 < ad_time < 131 * fs and abs(ad_time - 131 * fs / 2) > 0.5:
            assert kept.classes[label] == ("ad" if ad_time > 131 * fs / 2 else "content")


def test_counts_per_class_in_manifest_and_report(episodes, tmp_path, capsys):
    assert (
        main(["-q", "dataset", "build", str(episodes), "-o", str(tmp_path / "d"), "--validation", "ep1"]) == 0
    )
    out = capsys.readouterr().out
    ds = load_dataset(tmp_path / "d")
    for split in (TRAIN, VALIDATION):
        counts = ds.class_counts(split)
        manifest_counts = [
            sum(e["windows"][c] for e in ds.episodes if e["split"] == split) for c in ds.classes
        ]
        assert counts.tolist() == manifest_counts
        row = next(line for line in out.splitlines() if line.startswith(split))
        assert row.split()[2:4] == [str(n) for n in counts]
    assert ds.dataset_id in out


def test_half_swap_windows_join_halves_of_two_same_class_windows(episodes, tmp_path):
    ds = build_dataset(
        find_episodes([episodes]),
        tmp_path / "d",
        config=DatasetConfig(augment_half_swap=True),
        progress=False,
    )
    plain = ds.samples(TRAIN)
    samples = ds.training_samples()
    counts = np.bincount(samples.label)
    assert counts[0] == counts[1] == np.bincount(plain.label).max()  # minority topped up
    extra = samples.take(np.arange(len(plain), len(samples)))
    assert len(extra) > 0
    plain_windows = ds.gather(plain)
    new_windows = ds.gather(extra)
    half = 131 // 2
    first_halves = {w[:half].tobytes(): label for w, label in zip(plain_windows, plain.label)}
    second_halves = {w[half:].tobytes(): label for w, label in zip(plain_windows, plain.label)}
    for window, label in zip(new_windows, extra.label):
        head, tail = window[: 131 - half], window[131 - half :]
        assert second_halves.get(head.tobytes()) == label  # second half of a window of this class
        assert first_halves.get(tail.tobytes()) == label  # first half of another one


def test_reference_layout_import(tmp_path, capsys):
    root = tmp_path / "ref"
    chunks = {("train", "A"): 3, ("train", "B"): 2, ("val", "A"): 1, ("val", "B"): 1}
    seed = 0
    for (split, cls), n in chunks.items():
        (root / split / cls).mkdir(parents=True)
        for i in range(n):
            spec = EpisodeSpec(10.0, ((0.0, 10.0),) if cls == "A" else ())
            seconds = 5.0 if i == 0 else 10.0  # a chunk shorter than one window too
            audio = render_episode(spec, RATE, seed=seed)[: int(seconds * RATE)]
            write_audio(root / split / cls / f"chunk{i}.wav", audio, RATE)
            seed += 1
    assert main(["-q", "dataset", "import-reference", str(root), "-o", str(tmp_path / "d")]) == 0
    ds = load_dataset(tmp_path / "d")
    by_id = {e["id"]: e for e in ds.episodes}
    assert by_id["train-A-chunk1"]["segments"] == [{"label": "ad", "start": 0.0, "end": 10.0}]
    assert by_id["val-B-chunk0"]["split"] == VALIDATION and by_id["train-B-chunk1"]["split"] == TRAIN
    # 10 s chunks hold 2 windows (0 and the one ending at the last frame), 5 s chunks one padded window.
    assert ds.class_counts(TRAIN).tolist() == [1 + 2 * 2, 1 + 2]
    assert ds.class_counts(VALIDATION).tolist() == [1, 1]
    short = ds.samples(VALIDATION).take(np.array([0]))
    assert ds.gather(short).shape == (1, 131, 30)


def test_segments_txt_import(tmp_path, make_episode):
    folder = tmp_path / "eps"
    make_episode("one", EpisodeSpec(60.0, ((10.0, 30.0),)), folder=folder, labels=False, sample_rate=RATE)
    make_episode("two", EpisodeSpec(50.0, ()), folder=folder, labels=False, sample_rate=RATE, seed=1)
    # Boundaries alternate ad, content, ad, ...; time before the first one is background.
    (folder / "segments.txt").write_text("[one]\n10\n30\n[two.wav]\n0\n20\n")
    ds = build_dataset(find_episodes([folder]), tmp_path / "d", progress=False)
    segs = {e["id"]: [Segment(s["start"], s["end"], s["label"]) for s in e["segments"]] for e in ds.episodes}
    assert segs["one"] == [
        Segment(0.0, 10.0, "content"),
        Segment(10.0, 30.0, "ad"),
        Segment(30.0, 60.0, "content"),
    ]
    assert segs["two"] == [Segment(0.0, 20.0, "ad"), Segment(20.0, 50.0, "content")]


def test_rebuild_reuses_unchanged_features(episodes, tmp_path):
    out = tmp_path / "d"
    first = CountingCompute()
    build_dataset(find_episodes([episodes]), out, compute=first, progress=False)
    assert len(first.calls) == len(SPECS)
    # Labels change, audio does not: features are reused, window labels follow the new labels.
    (episodes / "ep0.txt").write_text("0\t30\tad\n")
    again = CountingCompute()
    ds = build_dataset(find_episodes([episodes]), out, compute=again, progress=False)
    assert again.calls == []
    assert ds.episodes[0]["segments"][0] == {"label": "ad", "start": 0.0, "end": 30.0}
    # Touched audio is recomputed, only it; the old feature file is removed.
    stat = (episodes / "ep2.wav").stat()
    os.utime(episodes / "ep2.wav", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    third = CountingCompute()
    build_dataset(find_episodes([episodes]), out, compute=third, progress=False)
    assert third.calls == ["ep2.wav"]
    assert len(list((out / "features").glob("*.npy"))) == len(SPECS)
    # Other feature settings: everything recomputed.
    fourth = CountingCompute()
    ds = build_dataset(
        find_episodes([episodes]), out, FeatureConfig(n_mfcc=8), compute=fourth, progress=False
    )
    assert len(fourth.calls) == len(SPECS) and ds.frames.shape[1] == 24


def test_features_options_on_build(episodes, tmp_path):
    assert (
        main(
            [
                "-q",
                "dataset",
                "build",
                str(episodes / "ep0.wav"),
                str(episodes / "ep1.wav"),
                "-o",
                str(tmp_path / "d"),
                "--sample-rate",
                "2048",
                "--n-fft",
                "256",
                "--hop-length",
                "128",
                "--n-mfcc",
                "6",
                "--window-frames",
                "64",
                "--window-hop-frames",
                "32",
            ]
        )
        == 0
    )
    ds = load_dataset(tmp_path / "d")
    assert ds.feature_config == FeatureConfig(
        sample_rate=2048, n_fft=256, hop_length=128, n_mfcc=6, window_frames=64, window_hop_frames=32
    )
    assert ds.gather(ds.samples(TRAIN)).shape[1:] == (64, 18)


def test_single_episode_builds_without_validation(episodes, tmp_path, caplog):
    ds = build_dataset(find_episodes([episodes / "ep0.wav"]), tmp_path / "d", progress=False)
    assert not ds.has_validation
    assert "only one episode: no validation split is possible" in caplog.text


# --------------------------------------------------------------------------- errors


def run_cli(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_audio_without_labels_is_an_error(episodes, tmp_path, capsys):
    (episodes / "ep4.txt").unlink()
    out = tmp_path / "d"
    code, err = run_cli(["-q", "dataset", "build", str(episodes / "ep4.wav"), "-o", str(out)], capsys)
    assert code == 1 and len(err) == 1
    assert err[0] == (
        f"adcut: error: {episodes / 'ep4.wav'}: no labels found "
        f"(expected ep4.txt/.json/.csv beside it, or a [ep4] entry in segments.txt)"
    )
    assert not out.exists()


def test_labels_beyond_audio_end_is_an_error(episodes, tmp_path, capsys):
    (episodes / "ep1.txt").write_text("10\t20\tad\n50\t75\tad\n")  # ep1 is 60 s long
    out = tmp_path / "d"
    code, err = run_cli(["-q", "dataset", "build", str(episodes), "-o", str(out)], capsys)
    assert code == 1 and len(err) == 1
    assert (
        err[0] == f"adcut: error: {episodes / 'ep1.txt'}:2: ends at 75 s, beyond the audio's end (60.000 s)"
    )
    assert not out.exists()


def test_failed_rebuild_keeps_the_old_dataset(episodes, tmp_path, capsys):
    out = tmp_path / "d"
    build_dataset(find_episodes([episodes]), out, progress=False)
    before = (out / MANIFEST_NAME).read_text()
    files = sorted(p.name for p in (out / "features").iterdir())
    (episodes / "ep3.txt").write_text("10\t20\tmusic\n")
    code, err = run_cli(["-q", "dataset", "build", str(episodes), "-o", str(out)], capsys)
    assert code == 1 and "unknown class 'music'" in err[0]
    assert (out / MANIFEST_NAME).read_text() == before
    assert sorted(p.name for p in (out / "features").iterdir()) == files


def test_mismatched_feature_config_is_refused(episodes, tmp_path):
    build_dataset(find_episodes([episodes / "ep0.wav"]), tmp_path / "d", progress=False)
    with pytest.raises(ModelError, match="n_mfcc 13 vs 10"):
        load_dataset(tmp_path / "d", FeatureConfig(n_mfcc=13))


def test_broken_dataset_folders(episodes, tmp_path, capsys):
    code, err = run_cli(["dataset", "info", str(tmp_path / "none")], capsys)
    assert code == 1 and err == [
        f"adcut: error: {tmp_path / 'none'}: no such dataset folder (make one with 'adcut dataset build')"
    ]
    out = tmp_path / "d"
    build_dataset(find_episodes([episodes / "ep0.wav", episodes / "ep1.wav"]), out, progress=False)
    for feature_file in (out / "features").glob("*.npy"):
        feature_file.write_bytes(b"junk")
        break
    with pytest.raises(DatasetError, match="damaged feature file"):
        load_dataset(out)
    (out / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(DatasetError, match="manifest.json: damaged"):
        load_dataset(out)
    manifest_less = tmp_path / "other"
    manifest_less.mkdir()
    (manifest_less / "notes.txt").write_text("mine")
    code, err = run_cli(
        ["-q", "dataset", "build", str(episodes / "ep0.wav"), "-o", str(manifest_less)], capsys
    )
    assert code == 1 and err == [
        f"adcut: error: {manifest_less}: folder exists and is not an adcut dataset; choose an empty or new folder"
    ]
    assert sorted(p.name for p in manifest_less.iterdir()) == ["notes.txt"]


def test_manifest_records_what_others_need(episodes, tmp_path):
    ds = build_dataset(find_episodes([episodes]), tmp_path / "d", progress=False)
    manifest = json.loads((tmp_path / "d" / MANIFEST_NAME).read_text())
    assert manifest["feature_config"] == FeatureConfig().to_dict()
    assert manifest["classes"] == ["ad", "content"] and manifest["background"] == "content"
    first = manifest["episodes"][0]
    assert first["source"] == str((episodes / "ep0.wav").resolve())
    assert first["duration"] == pytest.approx(70.0, abs=0.01)
    assert [s["label"] for s in first["segments"]] == ["content", "ad", "content"]
    assert ds.dataset_id == manifest["dataset_id"]


def test_corrupt_audio_stops_the_build_with_one_line(episodes, tmp_path, capsys):
    data = (episodes / "ep2.wav").read_bytes()
    (episodes / "ep2.wav").write_bytes(data[: len(data) // 3])
    out = tmp_path / "d"
    code, err = run_cli(["-q", "dataset", "build", str(episodes), "-o", str(out), "--jobs", "2"], capsys)
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"adcut: error: {episodes / 'ep2.wav'}: truncated or corrupt")
    assert not out.exists()


def test_drop_straddling_flag_leaves_boundary_windows_out(episodes, tmp_path):
    assert main(["-q", "dataset", "build", str(episodes), "-o", str(tmp_path / "kept")]) == 0
    assert (
        main(["-q", "dataset", "build", str(episodes), "-o", str(tmp_path / "dropped"), "--drop-straddling"])
        == 0
    )
    kept, dropped = load_dataset(tmp_path / "kept"), load_dataset(tmp_path / "dropped")
    assert kept.config.keep_straddling and not dropped.config.keep_straddling
    left_out = sum(e["straddling_left_out"] for e in dropped.episodes)
    assert left_out > 0 and len(kept.window_label) == len(dropped.window_label) + left_out
