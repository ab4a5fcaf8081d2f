"""The built-in example: synthesise labelled episodes, build a dataset, train briefly, process an unseen episode."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adcut.core.segments import Segment, boundaries
from adcut.core.units import Seconds, format_time

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    train_episodes: int = 6
    episode_seconds: Seconds = 240.0
    unseen_seconds: Seconds = 300.0
    sample_rate: int = 16000
    hidden_size: int = 32  # a small LSTM: trains in seconds, plenty for the generated audio
    epochs: int = 12
    lr: float = 3e-3
    keep_straddling: bool = True  # windows across an ad edge teach the model where edges are


@dataclass
class DemoResult:
    truth: list[Segment]
    found: list[Segment]
    errors: list[float]  # per true boundary, seconds to the nearest detected one
    seconds: float
    folder: Path


def make_episodes(folder: Path, config: DemoConfig) -> tuple[Path, list[Segment]]:
    """Labelled training episodes in ``folder/train`` and an unseen MP3 in ``folder/unseen``."""
    from adcut.demo.synth import episode_segments, random_spec, write_episode, write_labelled_episode

    rng = np.random.default_rng(config.seed)
    train_dir, unseen_dir = folder / "train", folder / "unseen"
    train_dir.mkdir(parents=True, exist_ok=True)
    unseen_dir.mkdir(parents=True, exist_ok=True)
    for i in range(config.train_episodes):
        spec = random_spec(config.episode_seconds, rng, ad_range=(15.0, 45.0), content_range=(30.0, 90.0))
        write_labelled_episode(
            train_dir / f"episode{i + 1}.wav",
            spec,
            sample_rate=config.sample_rate,
            seed=config.seed * 1000 + i,
        )
    spec = random_spec(config.unseen_seconds, rng, ad_range=(15.0, 45.0), content_range=(40.0, 90.0))
    unseen = unseen_dir / "unseen.mp3"
    write_episode(unseen, spec, sample_rate=config.sample_rate, seed=config.seed * 1000 + 999, bit_rate=64000)
    return unseen, episode_segments(spec)


def run_demo(
    folder: Path, config: DemoConfig = DemoConfig(), *, progress: bool = True, say=print
) -> DemoResult:
    """Every step of the adcut flow on generated audio; ``say`` receives the lines to show."""
    import torch

    from adcut.evaluate.metrics import boundary_errors
    from adcut.features.mfcc import FeatureConfig
    from adcut.learn.dataset import DatasetConfig, build_dataset
    from adcut.learn.sources import find_episodes
    from adcut.learn.train import TrainConfig, train
    from adcut.process.episode import ProcessOptions, process_file

    started = time.perf_counter()
    folder = Path(folder)
    torch.manual_seed(config.seed)
    say(
        f"1/4 synthesising {config.train_episodes} labelled episodes of {config.episode_seconds:.0f} s and an unseen one in {folder}/"
    )
    unseen, truth = make_episodes(folder, config)
    say("2/4 building the dataset (features of every episode, windows labelled from the label files)")
    dataset = build_dataset(
        find_episodes([folder / "train"]),
        folder / "dataset",
        FeatureConfig(),
        DatasetConfig(seed=config.seed, keep_straddling=config.keep_straddling),
        progress=progress,
    )
    say(f"3/4 training a small LSTM (hidden {config.hidden_size}) for up to {config.epochs} epochs")
    model_path = folder / "models" / "demo.safetensors"
    checkpoint = train(
        dataset,
        TrainConfig(
            model_config={"hidden_size": config.hidden_size, "num_layers": 1},
            lr=config.lr,
            epochs=config.epochs,
            seed=config.seed,
            device="cpu",
            early_stopping_patience=None,
        ),
        model_path,
        progress=progress,
    )
    accuracy = checkpoint.metrics.get("val_accuracy")
    if isinstance(accuracy, (int, float)):
        say(f"    validation window accuracy {accuracy:.1%}")
    say(f"4/4 processing the unseen episode {unseen.name} (labels, JSON, and the cut MP3)")
    result = process_file(unseen, checkpoint, ProcessOptions(force=True))
    assert result.detection is not None, result.error  # process_file raises rather than fail here
    found = result.detection.segments
    errors = [float(e) for e in boundary_errors(truth, found)]
    return DemoResult(truth, found, errors, time.perf_counter() - started, folder)


def comparison_table(result: DemoResult) -> str:
    """Detected segments beside the true ones, and each true boundary's error."""
    lines = ["true segments                      detected segments"]
    rows = max(len(result.truth), len(result.found))
    for i in range(rows):
        left = _seg(result.truth[i]) if i < len(result.truth) else ""
        right = _seg(result.found[i]) if i < len(result.found) else ""
        lines.append(f"{left:<35}{right}")
    lines.append("")
    lines.append("true boundary   nearest detected   error")
    found_b = boundaries(result.found)
    for t, err in zip(boundaries(result.truth), result.errors):
        nearest = min(found_b, key=lambda b: abs(b - t)) if found_b else float("nan")
        lines.append(f"{t:>10.2f} s   {nearest:>13.2f} s   {err:5.2f} s")
    finite = [e for e in result.errors if np.isfinite(e)]
    if finite:
        lines.append(f"median boundary error {np.median(finite):.2f} s, largest {max(finite):.2f} s")
    return "\n".join(lines)


def _seg(seg: Segment) -> str:
    return f"{seg.label:<8} {format_time(seg.start, 1)} - {format_time(seg.end, 1)}"
