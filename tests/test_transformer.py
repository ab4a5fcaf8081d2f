"""The transformer classifier, checkpoints of every model type, and distillation from a teacher."""

from __future__ import annotations

import pytest
import torch

from adcut.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from adcut.errors import ModelError
from adcut.features import FeatureConfig
from adcut.models import MODEL_TYPES, build_model, config_dict
from adcut.models.transformer import TransformerClassifier, TransformerConfig, sinusoidal_positions

SMALL = {"transformer": {"d_model": 16, "n_heads": 2, "dim_feedforward": 32, "max_frames": 200}, "lstm": {"hidden_size": 16}}


def small_model(model_type: str, **overrides):
    torch.manual_seed(0)
    return build_model(model_type, {**SMALL.get(model_type, {}), **overrides})


@pytest.mark.parametrize("frames", [1, 7, 32, 131, 200])
def test_forward_gives_logits_for_any_window_up_to_max_frames(frames):
    model = small_model("transformer", n_features=12, n_classes=3).eval()
    out = model(torch.randn(4, frames, 12))
    assert out.shape == (4, 3)
    assert torch.isfinite(out).all()


def test_window_longer_than_max_frames_is_a_clear_error():
    model = small_model("transformer", max_frames=50).eval()
    with pytest.raises(ModelError, match="window of 51 frames is longer than this transformer's max_frames 50"):
        model(torch.randn(1, 51, 30))


def test_frame_order_matters():
    # Mean pooling alone is blind to order; positional encodings must make it see it.
    model = small_model("transformer").eval()
    x = torch.randn(2, 40, 30)
    reversed_x = x.flip(1)
    shuffled = x[:, torch.randperm(40)]
    with torch.no_grad():
        base = model(x)
        assert not torch.allclose(base, model(reversed_x), atol=1e-5)
        assert not torch.allclose(base, model(shuffled), atol=1e-5)


def test_positions_are_distinct_and_bounded():
    table = sinusoidal_positions(300, 16)
    assert table.shape == (300, 16)
    assert table.abs().max() <= 1.0
    distances = torch.cdist(table, table) + torch.eye(300) * 10
    assert distances.min() > 1e-3  # no two positions share an encoding


def test_input_normalisation_is_applied():
    model = small_model("transformer").eval()
    x = torch.randn(2, 20, 30)
    mean, std = torch.full((30,), 5.0), torch.full((30,), 3.0)
    with torch.no_grad():
        before = model(x)
        model.norm.set_stats(mean, std)
        assert torch.allclose(model(x * 3.0 + 5.0), before, atol=1e-5)


def test_heads_must_divide_d_model():
    with pytest.raises(ModelError, match="d_model 30 is not divisible by n_heads 4"):
        TransformerClassifier(TransformerConfig(d_model=30, n_heads=4))


def test_reference_defaults():
    config = TransformerConfig()
    assert (config.d_model, config.n_heads, config.num_layers, config.dim_feedforward, config.dropout) == (32, 4, 2, 128, 0.1)


@pytest.mark.parametrize("model_type", sorted(MODEL_TYPES))
def test_checkpoint_round_trip_for_every_model_type(tmp_path, model_type):
    features = FeatureConfig(sample_rate=2048, n_mfcc=4, window_frames=32, window_hop_frames=16)
    model = small_model(model_type, n_features=features.n_features)
    model.norm.set_stats(torch.arange(12.0), torch.full((12,), 2.0))
    path = tmp_path / f"{model_type}.pt"
    saved = Checkpoint(model_type, config_dict(model), features, ("ad", "content"), model.state_dict(),
                       training={"epochs": 1}, metrics={"accuracy": 0.5}, teacher="teacher.pt")
    save_checkpoint(path, saved)
    loaded = load_checkpoint(path)
    assert (loaded.model_type, loaded.model_config, loaded.feature_config) == (model_type, config_dict(model), features)
    assert (loaded.teacher, loaded.metrics, loaded.class_names) == ("teacher.pt", {"accuracy": 0.5}, ("ad", "content"))
    rebuilt = loaded.build_model()
    x = torch.randn(3, features.window_frames, features.n_features)
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), model.eval()(x), atol=1e-6)


def test_weights_of_another_architecture_are_refused(tmp_path):
    model = small_model("transformer")
    other = dict(config_dict(model), d_model=32)
    path = tmp_path / "bad.pt"
    save_checkpoint(path, Checkpoint("transformer", other, FeatureConfig(), ("ad", "content"), model.state_dict()))
    with pytest.raises(ModelError, match="weights do not fit the transformer architecture"):
        load_checkpoint(path).build_model()
