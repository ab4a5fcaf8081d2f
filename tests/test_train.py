"""Training end to end on generated episodes, reproducibility, checkpoints, distillation loss, calibration."""

import numpy as np
import pytest
import torch

from adcut.cli import main
from adcut.demo.synth import EpisodeSpec, random_spec, render_episode, write_labelled_episode
from adcut.errors import ModelError
from adcut.learn.dataset import DatasetConfig, build_dataset
from adcut.learn.sources import VALIDATION, find_episodes
from adcut.learn.train import TrainConfig, balanced_accuracy, class_warnings, distillation_loss, train
from adcut.media.encode import write_audio
from adcut.models.checkpoint import FORMAT_VERSION, load_checkpoint, read_description

pytestmark = pytest.mark.slow
RATE = 8000
SMALL = {"hidden_size": 32}
FAST = TrainConfig(
    model_config=SMALL, lr=3e-3, epochs=6, batch_size=32, early_stopping_patience=None, threads=1
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Four ~2.5 min generated episodes, one held out for validation."""
    root = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(11)
    (root / "eps").mkdir()
    for i in range(4):
        spec = random_spec(150.0, rng, ad_range=(20.0, 45.0), content_range=(25.0, 60.0))
        write_labelled_episode(root / "eps" / f"ep{i}.wav", spec, sample_rate=RATE, seed=100 + i)
    return build_dataset(
        find_episodes([root / "eps"]),
        root / "ds",
        config=DatasetConfig(validation_episodes=("ep3",)),
        progress=False,
    )


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.pt"
    return train(dataset, FAST, path, progress=False), path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Held-out clips in the reference naming: *_a.wav (ad) and *_b.wav (content), other seeds than training."""
    folder = tmp_path_factory.mktemp("clips")
    for i in range(6):
        write_audio(
            folder / f"clip{i}_a.wav",
            render_episode(EpisodeSpec(12.0, ((0.0, 12.0),)), RATE, seed=500 + i),
            RATE,
        )
        write_audio(
            folder / f"clip{i}_b.wav", render_episode(EpisodeSpec(12.0, ()), RATE, seed=600 + i), RATE
        )
    return folder


def test_trained_model_classifies_held_out_clips(trained, clips, capsys):
    checkpoint, path = trained
    assert checkpoint.metrics["val_accuracy"] >= 0.85
    assert main(["-q", "evaluate", str(clips), "--model", str(path)]) == 0
    out = capsys.readouterr().out
    accuracy = float(next(line for line in out.splitlines() if line.startswith("accuracy:")).split()[1])
    assert accuracy >= 0.85, out
    assert out.count("\tok") + out.count("\tWRONG") == 12


def test_checkpoint_keeps_best_epoch_and_describes_itself(trained, dataset):
    checkpoint, path = trained
    loaded = load_checkpoint(path)
    raw = read_description(path)
    assert raw["format_version"] == FORMAT_VERSION and raw["model_type"] == "lstm"
    assert loaded.feature_config == dataset.feature_config and loaded.dataset_id == dataset.dataset_id
    assert loaded.class_names == ("ad", "content") and loaded.model_config["hidden_size"] == 32
    assert raw["background"] == dataset.config.background == loaded.background
    history = loaded.training["history"]
    assert len(history) == FAST.epochs
    best = max(history, key=lambda m: (m["val_balanced_accuracy"], -m["val_loss"]))
    assert (
        loaded.metrics["epoch"] == best["epoch"]
        and loaded.metrics["val_balanced_accuracy"] == best["val_balanced_accuracy"]
    )
    for m in history:  # balanced accuracy is the mean of the per-class recalls
        assert m["val_balanced_accuracy"] == pytest.approx(np.mean(list(m["val_recall"].values())), abs=1e-5)
    assert loaded.training["lr"] == FAST.lr and loaded.training["seed"] == FAST.seed
    assert 0.05 <= loaded.metrics["temperature"] <= 20
    # Same predictions from the file as from the returned checkpoint.
    windows = dataset.gather(dataset.samples(VALIDATION))[:16]
    a = checkpoint.build_model()(torch.from_numpy(windows))
    b = loaded.build_model()(torch.from_numpy(windows))
    torch.testing.assert_close(a, b)
    # Input normalisation was fitted to the training windows.
    mean = np.asarray(loaded.state_dict["norm.mean"])
    train_frames = dataset.gather(dataset.samples("train")).reshape(-1, 30)
    np.testing.assert_allclose(mean, train_frames.mean(axis=0), rtol=1e-3, atol=1e-3)


def test_same_seed_same_weights(dataset, tmp_path):
    config = TrainConfig(
        model_config={"hidden_size": 16}, lr=3e-3, epochs=2, batches_per_epoch=4, seed=3, threads=1
    )
    a = train(dataset, config, tmp_path / "a.pt", progress=False).state_dict
    b = train(dataset, config, tmp_path / "b.pt", progress=False).state_dict
    c = train(
        dataset, TrainConfig(**{**config.__dict__, "seed": 4}), tmp_path / "c.pt", progress=False
    ).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_without_validation_keeps_last_epoch(dataset, tmp_path):
    single = build_dataset(find_episodes([dataset.episodes[0]["source"]]), tmp_path / "one", progress=False)
    checkpoint = train(
        single,
        TrainConfig(model_config={"hidden_size": 8}, epochs=2, batches_per_epoch=2),
        tmp_path / "m.pt",
        progress=False,
    )
    assert checkpoint.metrics["epoch"] == 2 and checkpoint.metrics["temperature"] == 1.0
    assert "val_accuracy" not in checkpoint.metrics


def test_train_cli_default_output_name_and_errors(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "-q",
            "train",
            str(dataset.path),
            "--model-option",
            "hidden_size=8",
            "--epochs",
            "1",
            "--batches-per-epoch",
            "2",
        ]
    )
    assert code == 0
    saved = list((tmp_path / "models").glob("*.safetensors"))
    assert len(saved) == 1 and saved[0].name.startswith(f"lstm-{dataset.dataset_id[:8]}-")
    assert f"saved models/{saved[0].name}" in capsys.readouterr().out

    cases = [
        (
            ["train", str(tmp_path / "nothing")],
            f"{tmp_path / 'nothing'}: no such dataset folder (make one with 'adcut dataset build')",
        ),
        (["train", str(dataset.path), "--model", "gru"], "unknown model type 'gru'"),
        (["train", str(dataset.path), "--epochs", "0"], "--epochs must be at least 1"),
        (
            ["train", str(dataset.path), "--model-option", "n_features=20"],
            "model option n_features=20 does not fit the dataset, which has 30",
        ),
        (["train", str(dataset.path), "--model-option", "size"], "--model-option 'size': use KEY=VALUE"),
        (
            ["train", str(dataset.path), "--teacher", str(tmp_path / "t.pt")],
            f"{tmp_path / 't.pt'}: model file not found",
        ),
    ]
    for argv, message in cases:
        assert main(["-q", *argv]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("adcut: error: ") and message in err[0], (argv, err)
    assert len(list((tmp_path / "models").glob("*"))) == 1  # no half-written or extra models


def test_teacher_with_other_classes_is_refused(dataset, tmp_path, random_checkpoint):
    from adcut.models.checkpoint import Checkpoint, save_checkpoint

    teacher = load_checkpoint(random_checkpoint(hidden_size=8))
    teacher.class_names = ("music", "speech")
    save_checkpoint(
        tmp_path / "t.pt",
        Checkpoint(**{k: v for k, v in teacher.__dict__.items() if k not in ("path", "background")}),
    )
    with pytest.raises(ModelError, match="classes"):
        train(dataset, FAST, tmp_path / "s.pt", teacher=load_checkpoint(tmp_path / "t.pt"), progress=False)
    assert not (tmp_path / "s.pt").exists()


def test_distillation_from_a_teacher_learns(dataset, trained, tmp_path):
    checkpoint, _ = trained
    student = train(
        dataset,
        TrainConfig(**{**FAST.__dict__, "model_config": {"hidden_size": 16}}),
        tmp_path / "s.pt",
        teacher=checkpoint,
        progress=False,
    )
    assert student.teacher and "m.pt" in student.teacher
    assert student.metrics["val_accuracy"] >= 0.85


# --------------------------------------------------------------------------- the distillation loss


def test_distillation_loss_is_cross_entropy_when_student_equals_teacher():
    torch.manual_seed(0)
    logits = torch.randn(8, 2)
    labels = torch.randint(0, 2, (8,))
    ce = torch.nn.functional.cross_entropy(logits, labels)
    for alpha in (0.0, 0.3, 1.0):
        loss = distillation_loss(logits, logits.clone(), labels, alpha, 2.0)
        torch.testing.assert_close(loss, alpha * ce, atol=1e-6, rtol=0)


def test_distillation_loss_soft_term_on_known_values():
    student = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1])
    t = 2.0
    p_t = torch.softmax(teacher / t, dim=1)
    log_p_s = torch.log_softmax(student / t, dim=1)
    kl = (p_t * (p_t.log() - log_p_s)).sum(dim=1).mean()
    loss = distillation_loss(student, teacher, labels, 0.0, t)
    torch.testing.assert_close(loss, t * t * kl)
    assert loss > 0


def test_distillation_gradient_reaches_the_student_only():
    student = torch.randn(4, 2, requires_grad=True)
    teacher = torch.randn(4, 2, requires_grad=True)
    distillation_loss(student, teacher, torch.tensor([0, 1, 0, 1]), 0.5, 2.0).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


# --------------------------------------------------------------------------- calibration


def test_fit_temperature_recovers_a_known_temperature():
    from adcut.learn.calibration import fit_temperature

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (4000, 2))
    true_t = 2.5
    p = np.exp(logits / true_t)
    p /= p.sum(axis=1, keepdims=True)
    labels = (rng.random(4000) < p[:, 1]).astype(int)
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.15)
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0, int)) == 1.0


def test_balanced_accuracy_does_not_reward_calling_everything_the_majority_class():
    labels = np.array([0] * 12 + [1] * 88)  # 12% ads, as in the host-read training set
    all_content = np.ones(100, dtype=int)
    assert (all_content == labels).mean() == pytest.approx(0.88)
    assert balanced_accuracy(all_content, labels, 2) == pytest.approx(0.5)
    # A model that finds most ads but cuts some content beats it, although its plain accuracy is lower.
    finds_ads = labels.copy()
    finds_ads[12:30] = 0
    assert (finds_ads == labels).mean() < 0.88
    assert balanced_accuracy(finds_ads, labels, 2) > 0.85


def test_class_warnings_name_a_class_the_model_never_predicts():
    messages = class_warnings({"val_recall": {"ad": 0.0, "content": 1.0}}, ("ad", "content"))
    assert len(messages) == 1 and "'ad'" in messages[0] and "--lr" in messages[0]
    assert class_warnings({"val_recall": {"ad": 0.7, "content": 0.95}}, ("ad", "content")) == []


def test_default_learning_rate_is_not_the_reference_one():
    assert TrainConfig().lr == pytest.approx(1e-3)
