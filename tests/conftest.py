"""Shared fixtures: synthetic episodes written to tmp_path, and small checkpoints.

Real recordings from ../shared/data are used only where present (see ``shared_data``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from adcut.demo.synth import EpisodeSpec, episode_segments, write_episode, write_labelled_episode

# Tests run on the CPU with one thread: fast and deterministic on the 2-core CI machine.
os.environ.setdefault("ADCUT_THREADS", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def make_episode(tmp_path):
    """``make_episode(name, spec, suffix='.wav', labels=True, seed=0)`` -> (audio path, true segments).

    Writes the audio and, with ``labels``, an Audacity label file of the ads beside it.
    """

    def factory(
        name: str,
        spec: EpisodeSpec,
        suffix: str = ".wav",
        labels: bool = True,
        seed: int = 0,
        sample_rate: int = 16000,
        folder: Path | None = None,
        bit_rate: int | None = None,
    ):
        folder = Path(folder or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}{suffix}"
        if labels:
            return path, write_labelled_episode(
                path, spec, sample_rate=sample_rate, seed=seed, bit_rate=bit_rate
            )
        write_episode(path, spec, sample_rate=sample_rate, seed=seed, bit_rate=bit_rate)
        return path, episode_segments(spec)

    return factory


@pytest.fixture
def random_checkpoint(tmp_path):
    """``random_checkpoint(name='rand.pt', model_type='lstm', **model_config)``: an untrained model.

    For plumbing tests (formats, errors, shapes), never for accuracy.
    """
    from adcut.features.mfcc import FeatureConfig
    from adcut.models.checkpoint import Checkpoint, save_checkpoint
    from adcut.models.registry import build_model, config_dict

    def factory(
        name: str = "rand.pt", model_type: str = "lstm", feature_config: FeatureConfig | None = None, **config
    ):
        import torch

        torch.manual_seed(0)
        feature_config = feature_config or FeatureConfig()
        config.setdefault("n_features", feature_config.n_features)
        model = build_model(model_type, config)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(
            path,
            Checkpoint(model_type, config_dict(model), feature_config, ("ad", "content"), model.state_dict()),
        )
        return path

    return factory


@pytest.fixture
def shared_data():
    """Path to ../shared/data, or skip the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def tone(freq: float, seconds: float, sample_rate: int = 16000, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
