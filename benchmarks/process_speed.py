"""Speed and memory of ``adcut process`` on a generated long MP3, against the bare MP3 decode (the floor).

    .venv/bin/python benchmarks/process_speed.py            # 60 minutes, 44.1 kHz stereo, 128 kbps
    .venv/bin/python benchmarks/process_speed.py --hours 3  # peak memory for a 3-hour episode

Each measurement runs in its own process (``os.wait4`` gives that process's peak RSS). Targets from
the issue: detection (``--no-cut``) at least 1000x realtime on 2 cores, i.e. at most 1.6x the
single-core decode floor; peak RSS at most 300 MB for a 3-hour episode.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DECODE_FLOOR = """
import sys, av
container = av.open(sys.argv[1])
n = 0
for frame in container.decode(audio=0):
    n += frame.samples
print(n)
"""


def train_model(folder: Path, untrained: bool) -> Path:
    """A reference-size LSTM (2 x 128) trained briefly on generated episodes like the benchmark's.

    The coarse-to-fine scan (scan.py) reads fewer windows where the model is sure, so the speed
    depends on the model's decisions: a trained one, as users run. ``untrained``: random weights,
    unsure everywhere, so every window is read (the exhaustive cost)."""
    import torch

    from adcut.demo.synth import random_spec, write_labelled_episode
    from adcut.features.mfcc import FeatureConfig
    from adcut.learn.dataset import DatasetConfig, build_dataset
    from adcut.learn.sources import find_episodes
    from adcut.learn.train import TrainConfig, train
    from adcut.models.checkpoint import Checkpoint, save_checkpoint
    from adcut.models.registry import build_model, config_dict

    model_path = folder / ("untrained-lstm.pt" if untrained else "trained-lstm.pt")
    if model_path.exists():
        return model_path
    if untrained:
        torch.manual_seed(0)
        model = build_model("lstm", {})
        save_checkpoint(
            model_path,
            Checkpoint("lstm", config_dict(model), FeatureConfig(), ("ad", "content"), model.state_dict()),
        )
        return model_path
    rng = np.random.default_rng(0)
    episodes = folder / "train"
    episodes.mkdir(parents=True, exist_ok=True)
    for i in range(6):
        spec = random_spec(240.0, rng, ad_range=(15.0, 45.0), content_range=(30.0, 90.0))
        write_labelled_episode(episodes / f"ep{i}.wav", spec, sample_rate=16000, seed=i)
    dataset = build_dataset(
        find_episodes([episodes]), folder / "dataset", FeatureConfig(), DatasetConfig(seed=0), progress=False
    )
    checkpoint = train(
        dataset,
        TrainConfig(lr=1e-3, epochs=10, seed=0, device="cpu", early_stopping_patience=None),
        model_path,
        progress=False,
    )
    print(
        f"trained the reference LSTM on 6 generated episodes: validation accuracy {checkpoint.metrics.get('val_accuracy')}"
    )
    return model_path


def generate_mp3(path: Path, minutes: int, sample_rate: int, channels: int, bit_rate: int) -> None:
    """Minutes of synthetic episode with an ad break every few minutes."""
    from adcut.demo.synth import EpisodeSpec, write_long_mp3

    ads = tuple((m * 60.0 + 20.0, m * 60.0 + 45.0) for m in range(minutes) if m % 3 == 1)
    write_long_mp3(
        path, EpisodeSpec(minutes * 60.0, ads), sample_rate=sample_rate, channels=channels, bit_rate=bit_rate
    )


# Linux keeps a process's peak RSS across exec, and a child forked from this process (torch imported,
# a model built) would start with this process's peak; a small wrapper process forks the measured one.
MEASURE = """
import os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print("MEASURED", os.waitstatus_to_exitcode(status), time.perf_counter() - started,
      usage.ru_utime + usage.ru_stime, usage.ru_maxrss, file=sys.stderr)
"""


def timed(command: list[str], env: dict | None = None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one child process."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        errors="replace",
    )
    lines = done.stderr.splitlines()
    measured = lines[-1].split() if lines and lines[-1].startswith("MEASURED") else None
    if done.returncode != 0 or measured is None or measured[1] != "0":
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr}")
    wall, cpu, rss_kib = float(measured[2]), float(measured[3]), float(measured[4])
    return wall, cpu, rss_kib / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--channels", type=int, default=2, choices=(1, 2))
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument(
        "--hop", type=float, default=None, help="window hop passed to adcut process (default: its own)"
    )
    parser.add_argument(
        "--untrained",
        action="store_true",
        help="random weights instead of a briefly trained model (unsure everywhere: every window is read)",
    )
    parser.add_argument(
        "--no-cut-only", action="store_true", help="skip the (slow: MP3 encoding) cut measurement"
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat each timing, report the best")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the generated files here (reused when present)"
    )
    parser.add_argument(
        "--words",
        action="store_true",
        help="also --words auto (given --ad-phrases, so recognition runs) against --words off, in this run",
    )
    args = parser.parse_args()

    minutes = int(round(args.hours * 60))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="adcut-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    episode = workdir / f"episode-{minutes}min-{args.sample_rate}-{args.channels}ch.mp3"
    if not episode.exists():
        started = time.perf_counter()
        generate_mp3(episode, minutes, args.sample_rate, args.channels, 128000)
        print(
            f"generated {episode.name} ({episode.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s"
        )
    model_path = train_model(workdir, args.untrained)
    seconds = minutes * 60.0
    cores = os.cpu_count()
    python = sys.executable
    adcut = [
        python,
        "-m",
        "adcut",
        "-q",
        "process",
        str(episode),
        "--model",
        str(model_path),
        "--force",
        "-o",
        str(workdir / "out"),
        "--device",
        "cpu",
    ] + (["--hop", str(args.hop)] if args.hop else [])

    def best(command):
        runs = [timed(command) for _ in range(args.rounds)]
        return min(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs)

    def windows_read() -> str:
        import json

        settings = json.loads((workdir / "out" / f"{episode.stem}.adcut.json").read_text())["settings"]
        return f"{settings['windows_read']} of {settings['windows']} windows read"

    floor, floor_cpu, _ = best([python, "-c", DECODE_FLOOR, str(episode)])
    every, every_cpu, every_rss = best(adcut + ["--no-cut", "--scan-stride", "1"])
    every_read = windows_read()
    detect, detect_cpu, detect_rss = best(adcut + ["--no-cut"])
    detect_read = windows_read()
    print(
        f"episode: {minutes} min, {args.sample_rate} Hz, {args.channels} ch, 128 kbps MP3; {cores} cores; "
        f"hop {args.hop or 'default'}"
    )
    print(
        f"load average before: {os.getloadavg()[0]:.1f} (other work on the machine skews wall times; CPU times less)"
    )
    print(
        f"bare MP3 decode (PyAV, 1 core, the floor): wall {floor:7.2f} s  {seconds / floor:6.0f}x realtime  cpu {floor_cpu:6.2f} s"
    )
    print(
        f"adcut process --no-cut:                    wall {detect:7.2f} s  {seconds / detect:6.0f}x realtime  "
        f"cpu {detect_cpu:6.2f} s  {detect / floor:.2f}x the floor (cpu {detect_cpu / floor_cpu:.2f}x)  peak RSS {detect_rss:.0f} MB"
        f"  ({detect_read})"
    )
    print(
        f"  same, --scan-stride 1 (every window):    wall {every:7.2f} s  {seconds / every:6.0f}x realtime  "
        f"cpu {every_cpu:6.2f} s  {every / floor:.2f}x the floor (cpu {every_cpu / floor_cpu:.2f}x)  peak RSS {every_rss:.0f} MB"
        f"  ({every_read})"
    )
    if args.words:  # issue 15: the word cue's cost on the same file, both settings measured here
        import json

        phrases = workdir / "phrases.txt"
        phrases.write_text(
            "promo code\n"
        )  # a user's phrase file: --words auto then listens (built-in list + this)
        off, off_cpu, _ = best(adcut + ["--no-cut", "--words", "off"])
        auto, auto_cpu, auto_rss = best(adcut + ["--no-cut", "--words", "auto", "--ad-phrases", str(phrases)])
        heard = json.loads((workdir / "out" / f"{episode.stem}.adcut.json").read_text())["settings"].get(
            "words_heard", {}
        )
        scanned, searched = heard.get("scanned_seconds", 0.0), heard.get("searched_seconds", 0.0)
        print(
            f"adcut process --no-cut --words off:        wall {off:7.2f} s  {seconds / off:6.0f}x realtime  cpu {off_cpu:6.2f} s"
        )
        print(
            f"  same, --words auto (+ --ad-phrases):     wall {auto:7.2f} s  {seconds / auto:6.0f}x realtime  "
            f"cpu {auto_cpu:6.2f} s  {auto / off:.1f}x --words off  peak RSS {auto_rss:.0f} MB  (recognition scanned "
            f"{scanned / 60:.1f} min = {scanned / seconds:.0%} of the audio and searched {searched / 60:.1f} min closely, "
            f"in {heard.get('recognition_wall_seconds')} s; "
            f"{len(heard.get('hits', []))} phrases heard, {len(heard.get('word_ads', []))} word ads)"
        )
        print("target (issue 15): --words auto within 3x of --words off")
    if not args.no_cut_only:
        cut, cut_cpu, cut_rss = best(adcut)
        print(
            f"adcut process (with cut):                  wall {cut:7.2f} s  {seconds / cut:6.0f}x realtime  "
            f"cpu {cut_cpu:6.2f} s  {cut / floor:.2f}x the floor  peak RSS {cut_rss:.0f} MB"
        )
    print("targets: --no-cut >= 1000x realtime and <= 1.6x the floor; peak RSS <= 300 MB for 3 h")


if __name__ == "__main__":
    main()
