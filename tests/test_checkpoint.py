import pickle
import subprocess
import sys

import pytest
import torch

from adcut.checkpoint import FORMAT_VERSION, load_checkpoint, newest_model, resolve_model
from adcut.errors import ModelError
from adcut.features import FeatureConfig


def test_round_trip_keeps_description_and_weights(random_checkpoint):
    path = random_checkpoint("m.pt", hidden_size=16)
    ckpt = load_checkpoint(path)
    assert ckpt.model_type == "lstm" and ckpt.class_names == ("ad", "content")
    assert ckpt.feature_config == FeatureConfig()
    assert ckpt.model_config["hidden_size"] == 16
    model = ckpt.build_model()
    x = torch.randn(2, 131, 30)
    again = load_checkpoint(path).build_model()
    assert torch.equal(model(x), again(x))


def test_loading_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format_version": FORMAT_VERSION, "x": Evil()}, path)
    with pytest.raises(ModelError, match="not an adcut checkpoint or damaged"):
        load_checkpoint(path)


@pytest.mark.parametrize("content,message", [
    (b"", "not an adcut checkpoint or damaged"),
    (b"hello, not a model", "not an adcut checkpoint or damaged"),
])
def test_damaged_files(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        load_checkpoint(path)


def test_other_format_version_and_foreign_dict(tmp_path, random_checkpoint):
    payload = torch.load(random_checkpoint("m.pt"), weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ModelError, match="checkpoint format 99 is not supported"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ModelError, match="no format_version"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_unknown_feature_setting_is_a_clear_error(tmp_path, random_checkpoint):
    payload = torch.load(random_checkpoint("m.pt"), weights_only=True)
    payload["feature_config"]["n_chroma"] = 12
    torch.save(payload, tmp_path / "odd.pt")
    with pytest.raises(ModelError, match="unknown fields: n_chroma"):
        load_checkpoint(tmp_path / "odd.pt")


def test_newest_model_is_the_default(tmp_path, random_checkpoint):
    import os
    import time

    models = tmp_path / "models"
    models.mkdir()
    older = random_checkpoint("models/a.pt")
    newer = random_checkpoint("models/b.pt")
    now = time.time()
    os.utime(older, (now, now))
    os.utime(newer, (now - 100, now - 100))
    assert newest_model(models) == older
    assert resolve_model(None, models).path == older
    with pytest.raises(ModelError, match="no model given and none found"):
        newest_model(tmp_path / "empty")


def test_help_does_not_import_torch():
    code = "import sys\nfrom adcut.cli import build_parser\nbuild_parser()\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
