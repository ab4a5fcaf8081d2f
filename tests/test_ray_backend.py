"""``adcut process --backend ray`` on a real local Ray instance: same outputs as the local pool, failures, restarts, joining a head."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from adcut.cli import main
from adcut.demo.synth import EpisodeSpec, write_episode
from adcut.models.checkpoint import load_checkpoint
from adcut.process.batch import LocalBackend, collect_episodes, process_many
from adcut.process.episode import FAILED, PROCESSED, SKIPPED, ProcessOptions
from adcut.process.ray_backend import RayBackend

try:
    import ray
except ImportError:  # the plain install: only the test of the install hint runs
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="ray is not installed (pip install 'adcut[ray]')")

SHORT = EpisodeSpec(20.0, ((6.0, 12.0),))
LONG = EpisodeSpec(600.0, ((100.0, 160.0),))  # seconds of work, so that a worker can be killed in the middle


@pytest.fixture(scope="module")
def ray_instance():
    """One Ray instance for the module (starting one costs ~5 s): 2 CPUs, a small object store, no dashboard."""
    if ray is None:
        pytest.skip("ray is not installed (pip install 'adcut[ray]')")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 1024 * 1024,
        log_to_driver=False,
        logging_level="ERROR",
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """An untrained small LSTM: its outputs are arbitrary but deterministic, which is what is compared here."""
    import torch

    from adcut.features.mfcc import FeatureConfig
    from adcut.models.checkpoint import Checkpoint, save_checkpoint
    from adcut.models.registry import build_model, config_dict

    torch.manual_seed(0)
    features = FeatureConfig()
    lstm = build_model("lstm", {"n_features": features.n_features, "hidden_size": 8, "num_layers": 1})
    path = tmp_path_factory.mktemp("model") / "small.pt"
    save_checkpoint(
        path, Checkpoint("lstm", config_dict(lstm), features, ("ad", "content"), lstm.state_dict())
    )
    return path


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Four short generated episodes (read-only for the tests: each copies what it writes beside)."""
    folder = tmp_path_factory.mktemp("archive")
    for i in range(4):
        write_episode(folder / f"ep{i}.wav", SHORT, seed=i)
    return folder


def copy_of(archive: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "episodes"
    shutil.copytree(archive, folder)
    return folder


def outputs_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if ".adcut." in p.name}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_outputs_are_byte_identical_to_the_local_backend(ray_instance, archive, model, tmp_path):
    checkpoint = load_checkpoint(model)
    episodes = collect_episodes([archive])
    # The untrained model calls every second an ad: cutting out "content" keeps it all, so the cut audio is
    # written (and compared) too.
    options = ProcessOptions(remove=("content",))
    local = process_many(
        episodes,
        checkpoint,
        replace(options, outdir=tmp_path / "local"),
        progress=False,
        backend=LocalBackend(2),
    )
    assert local.count(PROCESSED) == 4
    backend = RayBackend()
    distributed = process_many(
        episodes, checkpoint, replace(options, outdir=tmp_path / "ray"), progress=False, backend=backend
    )
    assert [r.status for r in distributed.results] == [PROCESSED] * 4
    assert [r.path for r in distributed.results] == episodes  # reported under the names given, in order
    written = outputs_of(tmp_path / "ray")
    # label track, JSON and cut audio of each of the four episodes
    assert len(written) == 12 and written == outputs_of(tmp_path / "local")
    assert distributed.audio_seconds == pytest.approx(4 * SHORT.duration, abs=0.1)
    assert sum(distributed.per_node().values()) == 4 and set(distributed.per_node()) == {socket.gethostname()}
    assert backend.actors == []  # the run's actors are gone, their CPUs free for the next run


def test_a_corrupt_episode_is_reported_once_and_the_rest_finish(ray_instance, archive, model, tmp_path):
    folder = copy_of(archive, tmp_path)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + os.urandom(2000))
    backend = RayBackend()
    summary = process_many(
        collect_episodes([folder]),
        load_checkpoint(model),
        ProcessOptions(cut=False),
        progress=False,
        backend=backend,
    )
    failed = {r.path.name: r.error for r in summary.results if r.status == FAILED}
    assert list(failed) == ["broken.wav"]
    assert failed["broken.wav"].startswith(str(folder / "broken.wav")) and "\n" not in failed["broken.wav"]
    assert summary.count(PROCESSED) == 4
    assert backend.attempts[folder / "broken.wav"] == 1  # an error of the episode itself is not retried
    assert not (folder / "broken.adcut.txt").exists() and leftovers(folder) == []


def test_a_killed_worker_has_its_episode_redone_and_every_output_written_once(
    ray_instance, archive, model, tmp_path
):
    folder = copy_of(archive, tmp_path)
    write_episode(folder / "a_long.wav", LONG, seed=9)  # first in the list: the first actor takes it
    episodes = collect_episodes([folder])
    assert episodes[0].name == "a_long.wav"
    reference = process_many(
        episodes,
        load_checkpoint(model),
        ProcessOptions(outdir=tmp_path / "reference", cut=False),
        progress=False,
        backend=LocalBackend(1),
    )
    assert reference.count(PROCESSED) == 5
    backend = RayBackend()
    killed = []

    def kill_the_long_episodes_worker(result, write):
        # The first short episode is done while the long one is seconds from done on the first actor.
        if not killed:
            killed.append(result.path)
            ray.kill(backend.actors[0], no_restart=False)

    summary = process_many(
        episodes,
        load_checkpoint(model),
        ProcessOptions(outdir=tmp_path / "out", cut=False),
        progress=False,
        on_result=kill_the_long_episodes_worker,
        backend=backend,
    )
    assert killed and killed[0].name != "a_long.wav"
    assert [r.status for r in summary.results] == [PROCESSED] * 5
    # Sent twice (its first worker died), every other episode once; all outputs there, whole, and no temporaries.
    assert backend.attempts == {e: (2 if e.name == "a_long.wav" else 1) for e in episodes}
    assert outputs_of(tmp_path / "out") == outputs_of(tmp_path / "reference")
    assert leftovers(tmp_path / "out") == []


def test_a_second_run_does_no_work(ray_instance, archive, model, tmp_path, capsys):
    folder = copy_of(archive, tmp_path)
    args = [
        "-q",
        "process",
        str(folder),
        "--model",
        str(model),
        "--backend",
        "ray",
        "--format",
        "audacity",
        "--no-cut",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 processed, 0 skipped, 0 failed" in out
    assert f"episodes per node: {socket.gethostname()} 4" in out
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0 processed, 4 skipped, 0 failed" in out and "episodes per node" not in out
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps


def test_the_backend_skips_before_sending_anything(ray_instance, archive, model, tmp_path):
    folder = copy_of(archive, tmp_path)
    checkpoint, options = load_checkpoint(model), ProcessOptions(cut=False)
    process_many(collect_episodes([folder]), checkpoint, options, progress=False, backend=RayBackend())
    backend = RayBackend()
    summary = process_many(collect_episodes([folder]), checkpoint, options, progress=False, backend=backend)
    assert summary.count(SKIPPED) == 4 and not backend.attempts


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@needs_ray
def test_joins_a_head_started_as_a_separate_process(archive, model, tmp_path):
    """As on a cluster: `ray start --head`, then adcut (a process of its own, as a user runs it) joins it."""
    ray_cli = Path(sys.executable).with_name("ray")
    port = free_port()
    # A short temporary folder of its own: Ray's socket paths must stay under the 107-byte limit, and the
    # head must not become the default cluster of this machine's other Ray users.
    temp_dir = tempfile.mkdtemp(prefix="adcut-ray-")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    # --block: stopping this one process stops the head. (`ray stop` would stop every Ray instance on the
    # machine, this module's own included.)
    head = subprocess.Popen(
        [
            str(ray_cli),
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--object-store-memory=80000000",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
            "--block",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        folder = copy_of(archive, tmp_path)
        (folder / "list.txt").write_text(f"{folder / 'ep0.wav'}\n# a comment\n\n{folder / 'ep2.wav'}\n")
        command = [
            sys.executable,
            "-m",
            "adcut",
            "-q",
            "process",
            f"@{folder / 'list.txt'}",
            str(folder / "ep3.wav"),
            "--model",
            str(model),
            "--no-cut",
            "--backend",
            "ray",
            "--address",
            f"127.0.0.1:{port}",
        ]
        deadline = time.monotonic() + 60
        while True:  # the head takes a few seconds to listen
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
            if done.returncode == 0 or time.monotonic() > deadline or head.poll() is not None:
                break
            time.sleep(2)
        assert done.returncode == 0, done.stderr
        assert "3 processed, 0 skipped, 0 failed" in done.stdout
        assert sorted(p.name for p in folder.glob("*.adcut.txt")) == [
            "ep0.adcut.txt",
            "ep2.adcut.txt",
            "ep3.adcut.txt",
        ]
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


@needs_ray
def test_joining_an_address_where_no_cluster_runs_is_one_error_line(model, archive, tmp_path):
    port = free_port()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "adcut",
            "-q",
            "process",
            str(archive / "ep0.wav"),
            "--model",
            str(model),
            "--no-cut",
            "-o",
            str(tmp_path),
            "--backend",
            "ray",
            "--address",
            f"127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"),
        timeout=120,
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"adcut: error: cannot start or join the Ray cluster at 127.0.0.1:{port}")
    )
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []


def test_address_without_the_ray_backend_is_refused(model, archive, capsys):
    assert main(["process", str(archive / "ep0.wav"), "--model", str(model), "--address", "auto"]) == 1
    assert "--address joins a Ray cluster: use it with --backend ray" in capsys.readouterr().err


def test_without_ray_the_ray_backend_says_how_to_install_it(model, archive, tmp_path):
    hide_ray = (
        "import sys; sys.modules['ray'] = None; from adcut.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            hide_ray,
            "process",
            str(archive / "ep0.wav"),
            "--model",
            str(model),
            "-o",
            str(tmp_path),
            "--backend",
            "ray",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "adcut: error: --backend ray needs Ray: pip install 'adcut[ray]'"
    assert list(tmp_path.iterdir()) == []


def test_cross_validation_folds_run_as_ray_tasks(ray_instance, tmp_path, capsys):
    """``evaluate --cross-validate --backend ray``: the same folds, scored on the same episodes, in the dataset's
    order whatever order the tasks finish in; a fold that fails is one error line."""
    from functools import partial

    from adcut.demo.synth import write_labelled_episode
    from adcut.detect.config import SegmentationConfig
    from adcut.errors import AdcutError
    from adcut.evaluate.episodes import cross_validate, run_fold
    from adcut.learn.dataset import DatasetConfig, build_dataset
    from adcut.learn.sources import find_episodes
    from adcut.learn.train import TrainConfig

    folder = tmp_path / "eps"
    folder.mkdir()
    truths = [
        write_labelled_episode(folder / f"ep{i}.wav", EpisodeSpec(45.0, ads), sample_rate=8000, seed=i)
        for i, ads in enumerate((((5.0, 15.0),), ((20.0, 32.0),), ((8.0, 14.0), (30.0, 36.0))))
    ]
    dataset = tmp_path / "ds"
    build_dataset(
        find_episodes([folder]), dataset, config=DatasetConfig(keep_straddling=True), progress=False
    )
    config, train_config = SegmentationConfig(), TrainConfig(epochs=1, device="cpu")

    assert (
        main(
            [
                "-q",
                "evaluate",
                "--cross-validate",
                str(dataset),
                "--cv-epochs",
                "1",
                "--device",
                "cpu",
                "--backend",
                "ray",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("done: ") == 3 and "(3 folds)" in out
    on_ray = cross_validate(
        dataset, config, train_config, "cpu", progress=False, map_folds=RayBackend().map_tasks
    )
    assert [r.name for r in on_ray] == ["ep0", "ep1", "ep2"]
    for result, truth in zip(on_ray, truths):
        assert result.truth == truth  # each fold scored its own held-out episode
        assert result.detection.segments[-1].end == pytest.approx(45.0, abs=0.1)

    # a node that cannot read the dataset: the fold's own error, once, and no retries of it
    missing = partial(
        run_fold, tmp_path / "not-mounted", config=config, train_config=train_config, device="cpu"
    )
    with pytest.raises(AdcutError, match=r"not-mounted"):
        list(RayBackend().map_tasks(missing, [0, 1]))
