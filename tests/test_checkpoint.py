import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from adcut.errors import ModelError
from adcut.features.mfcc import FeatureConfig
from adcut.models.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    newest_model,
    read_description,
    resolve_model,
)


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


def _rewrite(source, target, change):
    """Copy a checkpoint with its stored description changed by ``change(description)``."""
    from safetensors.numpy import load_file, save_file

    description = read_description(source)
    description.pop("state_dict")
    change(description)
    save_file(load_file(str(source)), str(target), metadata={"adcut": json.dumps(description)})
    return target


def test_the_checkpoint_says_which_class_is_the_background(tmp_path, random_checkpoint):
    source = random_checkpoint("m.pt", hidden_size=8, num_layers=1)

    def with_classes(classes, background):
        def change(description):
            description["class_names"] = list(classes)
            description.pop("background", None)
            if background is not None:
                description["background"] = background

        return load_checkpoint(
            _rewrite(source, tmp_path / f"{'-'.join(classes)}-{background}.pt", change)
        ).background

    assert with_classes(("ad", "content"), "ad") == "ad"  # stored: that is the answer
    assert with_classes(("speech", "ad", "music"), "speech") == "speech"
    # checkpoints from before it was stored: "content" when that is a class, else the last class
    assert with_classes(("content", "ad"), None) == "content"
    assert with_classes(("speech", "ad", "music"), None) == "music"
    with pytest.raises(ModelError, match="background class 'jingle' is not one of its classes"):
        with_classes(("ad", "content"), "jingle")


def test_evaluation_reads_the_background_from_the_checkpoint(tmp_path, random_checkpoint, make_episode):
    """Unlabelled time in an evaluated episode is the checkpoint's background, not a guess from the class names."""
    from adcut.demo.synth import EpisodeSpec
    from adcut.detect.config import SegmentationConfig
    from adcut.evaluate.episodes import evaluate_episodes

    episode, _ = make_episode("ep", EpisodeSpec(30.0, ((10.0, 20.0),)), sample_rate=8000)
    source = random_checkpoint("m.pt", hidden_size=8, num_layers=1)
    # the label file marks only the ad, 10-20 s: the rest is the background
    expected = {"content": ["content", "ad", "content"], "ad": ["ad"]}
    for background, labels in expected.items():

        def change(description, background=background):
            description["background"] = background

        checkpoint = load_checkpoint(_rewrite(source, tmp_path / f"{background}.pt", change))
        [result] = evaluate_episodes([episode], checkpoint, SegmentationConfig(), "cpu")
        assert [s.label for s in result.truth] == labels


def test_loads_without_torch(random_checkpoint):
    path = random_checkpoint("m.pt", hidden_size=8)
    code = f"import sys\nfrom adcut.models.checkpoint import load_checkpoint\nload_checkpoint({str(path)!r})\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert read_description(path)["format_version"] == FORMAT_VERSION


def test_legacy_torch_checkpoint_still_loads(tmp_path, random_checkpoint):
    current = load_checkpoint(random_checkpoint("m.pt", hidden_size=8))
    payload = {
        **current.description(),
        "format_version": 1,
        "state_dict": {k: torch.from_numpy(v) for k, v in current.arrays().items()},
    }
    torch.save(payload, tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt")
    x = torch.randn(2, 131, 30)
    assert torch.equal(old.build_model()(x), current.build_model()(x))


def test_loading_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "x": Evil()}, path)
    with pytest.raises(ModelError, match="not an adcut checkpoint or damaged"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content", [b"", b"hello, not a model", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json"]
)
def test_damaged_files(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=r"^.*bad\.pt: not an adcut checkpoint or damaged \(.+\)$"):
        load_checkpoint(path)


def test_other_format_version_and_foreign_files(tmp_path, random_checkpoint):
    from safetensors.numpy import save_file

    future = _rewrite(
        random_checkpoint("m.pt"), tmp_path / "future.pt", lambda d: d.update(format_version=99)
    )
    with pytest.raises(ModelError, match="checkpoint format 99 is not supported"):
        load_checkpoint(future)
    save_file({"weights": np.zeros(3, np.float32)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(
        ModelError, match="not an adcut checkpoint \\(no adcut description in its metadata\\)"
    ):
        load_checkpoint(tmp_path / "foreign.safetensors")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ModelError, match="no format_version"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_unknown_feature_setting_is_a_clear_error(tmp_path, random_checkpoint):
    odd = _rewrite(
        random_checkpoint("m.pt"), tmp_path / "odd.pt", lambda d: d["feature_config"].update(n_chroma=12)
    )
    with pytest.raises(ModelError, match="odd.pt: .*unknown fields: n_chroma"):
        load_checkpoint(odd)


def test_weights_that_do_not_fit_are_a_model_error(tmp_path, random_checkpoint):
    wrong = _rewrite(
        random_checkpoint("m.pt", hidden_size=8),
        tmp_path / "w.pt",
        lambda d: d["model_config"].update(hidden_size=16),
    )
    checkpoint = load_checkpoint(wrong)
    with pytest.raises(ModelError, match="w.pt: weights do not fit the lstm architecture"):
        checkpoint.build_model()
    from adcut.models.inference import build_predictor

    with pytest.raises(ModelError, match="w.pt: weights do not fit the lstm architecture"):
        build_predictor(checkpoint, "cpu")


def test_newest_model_is_the_default(tmp_path, random_checkpoint):
    import os
    import time

    models = tmp_path / "models"
    models.mkdir()
    older = random_checkpoint("models/a.pt")  # the name checkpoints had before .safetensors
    newer = random_checkpoint("models/b.safetensors")
    (models / "notes.txt").write_text("not a model")
    now = time.time()
    os.utime(older, (now, now))
    os.utime(newer, (now - 100, now - 100))
    assert newest_model(models) == older
    assert resolve_model(None, models).path == older
    os.utime(newer, (now + 100, now + 100))
    assert newest_model(models) == newer
    with pytest.raises(ModelError, match="no model given and none found"):
        newest_model(tmp_path / "empty")


def test_help_does_not_import_torch():
    code = "import sys\nfrom adcut.cli import build_parser\nbuild_parser()\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_checkpoint_read_from_its_bytes_is_the_one_read_from_its_file(tmp_path, random_checkpoint):
    """What cluster workers do: the file's bytes arrive through Ray's object store, the file may not be there."""
    from adcut.models.checkpoint import load_checkpoint_bytes

    path = random_checkpoint("m.pt", hidden_size=8)
    from_file = load_checkpoint(path)
    elsewhere = tmp_path / "not-here" / "m.pt"
    from_bytes = load_checkpoint_bytes(path.read_bytes(), elsewhere)
    assert from_bytes.path == elsewhere and from_bytes.name == "m.pt"
    assert from_bytes.description() == from_file.description()
    assert from_bytes.state_dict.keys() == from_file.state_dict.keys()
    assert all(
        np.array_equal(from_bytes.state_dict[k], from_file.state_dict[k]) for k in from_file.state_dict
    )
    # the legacy format, and damaged bytes, as from a file
    payload = {
        **from_file.description(),
        "format_version": 1,
        "state_dict": {k: torch.from_numpy(v) for k, v in from_file.arrays().items()},
    }
    torch.save(payload, tmp_path / "old.pt")
    old = load_checkpoint_bytes((tmp_path / "old.pt").read_bytes(), tmp_path / "old.pt")
    assert all(np.array_equal(old.arrays()[k], from_file.state_dict[k]) for k in from_file.state_dict)
    for damaged in (b"", b"hello, not a model", path.read_bytes()[:40]):
        with pytest.raises(ModelError, match=r"m\.pt: not an adcut checkpoint"):
            load_checkpoint_bytes(damaged, elsewhere)
