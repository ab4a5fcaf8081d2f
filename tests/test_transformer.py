"""The transformer classifier, checkpoints of every model type, and distillation from a teacher."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adcut.demo.synth import EpisodeSpec, episode_segments, write_episode
from adcut.errors import DatasetError, ModelError
from adcut.features.episode import episode_features
from adcut.features.mfcc import FeatureConfig
from adcut.formats.labels import format_audacity
from adcut.learn.dataset import DatasetConfig, build_dataset
from adcut.learn.distill import map_to_teacher, teacher_logits
from adcut.learn.sources import find_episodes
from adcut.learn.train import TrainConfig, distillation_loss, train
from adcut.learn.windows import WindowSamples
from adcut.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from adcut.models.registry import MODEL_TYPES, build_model, config_dict
from adcut.models.transformer import TransformerClassifier, TransformerConfig, sinusoidal_positions

SMALL = {
    "transformer": {"d_model": 16, "n_heads": 2, "dim_feedforward": 32, "max_frames": 200},
    "lstm": {"hidden_size": 16},
}


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
    with pytest.raises(
        ModelError, match="window of 51 frames is longer than this transformer's max_frames 50"
    ):
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
    assert (config.d_model, config.n_heads, config.num_layers, config.dim_feedforward, config.dropout) == (
        32,
        4,
        2,
        128,
        0.1,
    )


@pytest.mark.parametrize("model_type", sorted(MODEL_TYPES))
def test_checkpoint_round_trip_for_every_model_type(tmp_path, model_type):
    features = FeatureConfig(sample_rate=2048, n_mfcc=4, window_frames=32, window_hop_frames=16)
    model = small_model(model_type, n_features=features.n_features)
    model.norm.set_stats(torch.arange(12.0), torch.full((12,), 2.0))
    path = tmp_path / f"{model_type}.pt"
    saved = Checkpoint(
        model_type,
        config_dict(model),
        features,
        ("ad", "content"),
        model.state_dict(),
        training={"epochs": 1},
        metrics={"accuracy": 0.5},
        teacher="teacher.pt",
    )
    save_checkpoint(path, saved)
    loaded = load_checkpoint(path)
    assert (loaded.model_type, loaded.model_config, loaded.feature_config) == (
        model_type,
        config_dict(model),
        features,
    )
    assert (loaded.teacher, loaded.metrics, loaded.class_names) == (
        "teacher.pt",
        {"accuracy": 0.5},
        ("ad", "content"),
    )
    rebuilt = loaded.build_model()
    x = torch.randn(3, features.window_frames, features.n_features)
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), model.eval()(x), atol=1e-6)


def test_weights_of_another_architecture_are_refused(tmp_path):
    model = small_model("transformer")
    other = dict(config_dict(model), d_model=32)
    path = tmp_path / "bad.pt"
    save_checkpoint(
        path, Checkpoint("transformer", other, FeatureConfig(), ("ad", "content"), model.state_dict())
    )
    with pytest.raises(ModelError, match="weights do not fit the transformer architecture"):
        load_checkpoint(path).build_model()


# --------------------------------------------------------------------------- distillation

# The reference student's cheaper features: 2048 Hz, 4 MFCC, 32-frame (2 s) windows.
CHEAP = FeatureConfig(
    sample_rate=2048, n_fft=256, hop_length=128, n_mfcc=4, window_frames=32, window_hop_frames=16
)
TEACHER_FEATURES = FeatureConfig()
SPECS = [
    EpisodeSpec(80.0, ((20.0, 45.0),)),
    EpisodeSpec(80.0, ((10.0, 30.0), (55.0, 75.0))),
    EpisodeSpec(80.0, ((35.0, 65.0),)),
    EpisodeSpec(80.0, ((15.0, 40.0),)),
]


def test_kl_term_vanishes_when_student_equals_teacher():
    logits = torch.tensor([[2.0, -1.0], [0.3, 0.1], [-4.0, 1.5]])
    labels = torch.tensor([0, 1, 1])
    ce = torch.nn.functional.cross_entropy(logits, labels)
    for alpha in (0.0, 0.5, 1.0):
        loss = distillation_loss(logits, logits.clone(), labels, alpha, 2.0)
        assert loss.item() == pytest.approx(alpha * ce.item(), abs=1e-6)


def test_distillation_loss_on_known_numbers():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[2.0 * np.log(3.0), 0.0]])  # at T=2: teacher probabilities (3/4, 1/4)
    labels = torch.tensor([1])
    p = np.array([0.75, 0.25])
    kl = float(np.sum(p * np.log(p / 0.5)))
    expected = 0.3 * np.log(2.0) + 0.7 * 4.0 * kl
    assert distillation_loss(student, teacher, labels, 0.3, 2.0).item() == pytest.approx(expected, rel=1e-5)


def test_gradient_reaches_the_student_only():
    student_net = torch.nn.Linear(3, 2)
    teacher_net = torch.nn.Linear(3, 2)
    x = torch.randn(5, 3)
    loss = distillation_loss(student_net(x), teacher_net(x), torch.tensor([0, 1, 0, 1, 1]), 0.5, 2.0)
    loss.backward()
    assert student_net.weight.grad is not None and student_net.weight.grad.abs().sum() > 0
    assert teacher_net.weight.grad is None and teacher_net.bias.grad is None


@pytest.fixture(scope="module")
def episodes_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("episodes")
    for i, spec in enumerate(SPECS):
        write_episode(folder / f"ep{i}.wav", spec, sample_rate=8000, seed=i)
        (folder / f"ep{i}.txt").write_text(format_audacity(episode_segments(spec), only=("ad",)))
    return folder


def build(episodes_dir, out, features, **config):
    config.setdefault("validation_episodes", ("ep1",))
    config.setdefault("keep_straddling", False)  # accuracy thresholds below are for windows inside one class
    return build_dataset(
        find_episodes([episodes_dir]), out, features, DatasetConfig(**config), progress=False
    )


@pytest.fixture(scope="module")
def datasets(episodes_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    return build(episodes_dir, root / "full", TEACHER_FEATURES), build(episodes_dir, root / "cheap", CHEAP)


@pytest.fixture(scope="module")
def lstm_teacher(datasets, tmp_path_factory):
    full, _ = datasets
    config = TrainConfig(model_type="lstm", model_config={"hidden_size": 24}, lr=3e-3, epochs=6, device="cpu")
    return train(full, config, tmp_path_factory.mktemp("models") / "teacher.pt", progress=False)


def test_same_features_map_each_window_to_itself(datasets):
    _, cheap = datasets
    plain = cheap.samples("train")
    half = CHEAP.window_frames // 2
    swaps = WindowSamples(
        plain.first[:5] + half, plain.first[5:10], np.full(5, CHEAP.window_frames - half), plain.label[:5]
    )
    for samples in (plain, swaps):
        mapped, _ = map_to_teacher(
            samples, cheap, CHEAP, [len(f) for f in np.split(cheap.frames, cheap.offsets[1:])]
        )
        assert np.array_equal(mapped.first, samples.first)
        assert np.array_equal(mapped.second, samples.second)
        assert np.array_equal(mapped.cut, samples.cut)


def test_teacher_with_other_features_reads_them_from_the_audio_around_the_same_moment(datasets, lstm_teacher):
    _, cheap = datasets
    samples = cheap.samples("train")
    got = teacher_logits(lstm_teacher, cheap, samples).numpy()
    # Independently: the teacher's own features of the audio, its window centred on each student window.
    model = lstm_teacher.build_model()
    expected, own_features = [], {}
    for first in samples.first:
        episode = int(np.searchsorted(cheap.offsets, first, side="right") - 1)
        centre = (first - cheap.offsets[episode] + CHEAP.window_frames / 2) * CHEAP.frame_seconds
        if episode not in own_features:
            own_features[episode] = episode_features(cheap.episodes[episode]["source"], TEACHER_FEATURES)[0]
        feats = own_features[episode]
        start = int(round(centre / TEACHER_FEATURES.frame_seconds - TEACHER_FEATURES.window_frames / 2))
        start = min(max(start, 0), len(feats) - TEACHER_FEATURES.window_frames)
        window = torch.from_numpy(feats[start : start + TEACHER_FEATURES.window_frames][None])
        with torch.no_grad():
            expected.append(model(window)[0].numpy())
    assert np.allclose(got, np.array(expected), atol=1e-4)
    # And the teacher, trained on its own features, agrees with the labels of the cheap windows.
    assert (got.argmax(axis=1) == samples.label).mean() > 0.8


def test_teacher_features_need_the_source_audio(episodes_dir, tmp_path, lstm_teacher):
    import shutil

    copy = tmp_path / "eps"
    shutil.copytree(episodes_dir, copy)
    cheap = build(copy, tmp_path / "cheap", CHEAP)
    (copy / "ep2.wav").unlink()
    with pytest.raises(DatasetError, match=r"computed from the audio, but .*ep2.wav is gone"):
        teacher_logits(lstm_teacher, cheap, cheap.samples("train"))


def test_teacher_with_other_classes_is_refused(datasets, lstm_teacher, tmp_path):
    _, cheap = datasets
    other = Checkpoint(
        lstm_teacher.model_type,
        lstm_teacher.model_config,
        lstm_teacher.feature_config,
        ("music", "speech"),
        lstm_teacher.state_dict,
    )
    with pytest.raises(ModelError, match="has classes music, speech, the dataset ad, content"):
        train(
            cheap,
            TrainConfig(model_type="transformer", epochs=1),
            tmp_path / "s.pt",
            teacher=other,
            progress=False,
        )
    assert not (tmp_path / "s.pt").exists()


def test_distilled_student_on_cheaper_features_learns(datasets, lstm_teacher, tmp_path):
    _, cheap = datasets
    assert lstm_teacher.metrics["val_accuracy"] > 0.8
    config = TrainConfig(
        model_type="transformer",
        model_config={"d_model": 16, "n_heads": 2, "dim_feedforward": 32},
        lr=3e-3,
        epochs=6,
        device="cpu",
    )
    student = train(cheap, config, tmp_path / "student.pt", teacher=lstm_teacher, progress=False)
    assert (
        student.metrics["val_accuracy"] > 0.8
    )  # the validation episode has ~half ad windows: chance is ~0.5
    saved = load_checkpoint(tmp_path / "student.pt")
    assert saved.teacher and "teacher.pt" in saved.teacher
    assert (saved.model_type, saved.feature_config) == ("transformer", CHEAP)


def test_cli_refuses_windows_longer_than_max_frames_in_one_line(datasets, tmp_path, capsys):
    from adcut.cli import main

    _, cheap = datasets
    out = tmp_path / "short.pt"
    code = main(
        [
            "-q",
            "train",
            str(cheap.path),
            "--model",
            "transformer",
            "--model-option",
            "max_frames=16",
            "--epochs",
            "1",
            "-o",
            str(out),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == (
        "adcut: error: window of 32 frames is longer than this transformer's max_frames 16 "
        "(train one with a larger max_frames, e.g. --model-option max_frames=N)"
    )
    assert not out.exists()
