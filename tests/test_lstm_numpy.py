import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

from adcut.demo.synth import EpisodeSpec
from adcut.errors import ModelError
from adcut.models.checkpoint import load_checkpoint
from adcut.models.inference import build_predictor, predict_windows, uses_torch
from adcut.models.lstm import LstmConfig
from adcut.models.lstm_numpy import CONFIG_DEFAULTS, NumpyLstmClassifier
from adcut.models.registry import build_model


def _pair(config: dict, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model("lstm", config).eval()
    rng = np.random.default_rng(seed)
    n = model.config.n_features
    model.norm.set_stats(rng.normal(size=n), rng.uniform(0.5, 2.0, n))
    return model, NumpyLstmClassifier({k: v.numpy() for k, v in model.state_dict().items()}, config)


def _torch_logits(model, x):
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize(
    "config",
    [
        {"hidden_size": 16, "num_layers": 1},
        {"hidden_size": 24, "num_layers": 2},
        {"hidden_size": 8, "num_layers": 3, "n_classes": 3, "n_features": 12},
    ],
)
def test_matches_torch_on_random_weights(config):
    model, numpy_model = _pair(config)
    x = np.random.default_rng(1).normal(0, 3, (7, 40, model.config.n_features)).astype(np.float32)
    np.testing.assert_allclose(numpy_model(x), _torch_logits(model, x), atol=1e-4, rtol=0)


def test_matches_torch_after_training():
    # Trained weights saturate gates (large pre-activations), which random ones rarely do.
    model, _ = _pair({"hidden_size": 16, "num_layers": 2, "n_features": 6})
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 20, 6)).astype(np.float32)
    y = torch.from_numpy((x[:, -5:, 0].mean(axis=1) > 0).astype(np.int64))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    for _ in range(60):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), y)
        loss.backward()
        optimiser.step()
    model.eval()
    assert loss.item() < 0.3  # it did learn something
    numpy_model = NumpyLstmClassifier(
        {k: v.numpy() for k, v in model.state_dict().items()}, {"hidden_size": 16, "n_features": 6}
    )
    np.testing.assert_allclose(numpy_model(x), _torch_logits(model, x), atol=1e-4, rtol=0)
    probs = numpy_model.probabilities(x)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-6)
    assert (probs.argmax(axis=1) == y.numpy()).mean() > 0.9


def test_config_fields_follow_lstm_config():
    assert CONFIG_DEFAULTS == dataclasses.asdict(LstmConfig())


def test_weights_that_do_not_fit_are_a_model_error():
    model, _ = _pair({"hidden_size": 16})
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    with pytest.raises(ModelError, match="weights do not fit the lstm architecture"):
        NumpyLstmClassifier(state, {"hidden_size": 32})
    with pytest.raises(ModelError, match="unknown fields: width"):
        NumpyLstmClassifier(state, {"hidden_size": 16, "width": 3})


def test_predictor_is_numpy_for_an_lstm_on_cpu(random_checkpoint):
    checkpoint = load_checkpoint(random_checkpoint(hidden_size=8, num_layers=1))
    predictor = build_predictor(checkpoint, "cpu")
    assert not uses_torch(predictor)
    torch_model = checkpoint.build_model("cpu")
    x = np.random.default_rng(3).normal(size=(10, 131, 30)).astype(np.float32)
    np.testing.assert_allclose(
        predict_windows(predictor, x, batch_size=4), predict_windows(torch_model, x), atol=1e-5
    )


def test_detect_gives_the_same_curve_with_numpy_and_torch(make_episode, random_checkpoint):
    from adcut.detect.pipeline import detect

    path, _ = make_episode("ep", EpisodeSpec(40.0, ((12.0, 25.0),)), labels=False)
    checkpoint = load_checkpoint(random_checkpoint(hidden_size=8, num_layers=1))
    with_numpy = detect(path, checkpoint)
    with_torch = detect(path, checkpoint, model=checkpoint.build_model("cpu"))
    np.testing.assert_allclose(with_numpy.probabilities, with_torch.probabilities, atol=1e-5)


def test_process_without_cut_never_imports_torch(make_episode, random_checkpoint, tmp_path):
    path, _ = make_episode("ep", EpisodeSpec(30.0, ((10.0, 20.0),)), labels=False)
    model = random_checkpoint(hidden_size=8, num_layers=1)
    code = (
        "import sys\nfrom adcut.cli import main\n"
        f"rc = main(['-q', 'process', {str(path)!r}, '--model', {str(model)!r}, '--no-cut', '-o', {str(tmp_path / 'out')!r}])\n"
        "print(rc, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 False", out.stderr
    assert (tmp_path / "out" / "ep.adcut.txt").is_file()


def test_classify_and_evaluate_with_an_lstm_never_import_torch(make_episode, random_checkpoint, tmp_path):
    clips = tmp_path / "clips"
    make_episode("x_a", EpisodeSpec(9.0, ((0.0, 9.0),)), labels=False, folder=clips)
    make_episode("x_b", EpisodeSpec(9.0, ()), labels=False, folder=clips)
    episode, _ = make_episode("show", EpisodeSpec(30.0, ((10.0, 20.0),)), folder=tmp_path / "episodes")
    model = random_checkpoint(hidden_size=8, num_layers=1)
    for argv in (
        ["classify", str(clips / "x_a.wav"), "--model", str(model)],
        ["evaluate", str(clips), "--model", str(model)],
        ["evaluate", str(episode), "--model", str(model)],
    ):
        code = (
            f"import sys\nfrom adcut.cli import main\nrc = main({argv!r})\nprint(rc, 'torch' in sys.modules)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        lines = out.stdout.strip().splitlines()
        assert lines[-1] == "0 False", (argv, out.stdout, out.stderr)
        assert len(lines) > 1  # it did print its results
