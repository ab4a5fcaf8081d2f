"""The cut's dispatcher (copy paths by format, falling back to re-encoding) and the MP3 copy path."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from adcut.cli import main
from adcut.core.segments import Segment
from adcut.demo.synth import EpisodeSpec
from adcut.errors import CopyUnsupported
from adcut.media import cut as cutmod
from adcut.media.cut import cut_episode
from adcut.media.decode import decode_original, probe


def _refuse(path, info, segments, tmp, out_path, **kwargs):
    raise CopyUnsupported("test copy path refuses")


def test_a_copy_path_that_gives_up_falls_back_to_reencoding_with_one_warning(make_episode, tmp_path, monkeypatch, caplog):
    path, _ = make_episode("show", EpisodeSpec(20.0, ((5.0, 10.0),)), suffix=".wav", labels=False)
    monkeypatch.setitem(cutmod.COPY_PATHS, ".wav", ("copy-test", f"{__name__}:_refuse"))
    segments = [Segment(0.0, 5.0, "content"), Segment(5.0, 10.0, "ad"), Segment(10.0, 20.0, "content")]
    with caplog.at_level(logging.WARNING, logger="adcut.media.cut"):
        result = cut_episode(path, segments, tmp_path / "show.adcut.wav")
    assert result.method == "reencode"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "re-encoding the whole episode" in warnings[0].getMessage()
    assert "test copy path refuses" in warnings[0].getMessage()
    assert decode_original(result.path)[1].shape[1] / probe(result.path).sample_rate == pytest.approx(15.0, abs=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["show.adcut.wav", "show.wav"]  # no temporary left


def test_reencode_forces_the_whole_file_path_and_the_json_says_so(make_episode, random_checkpoint, tmp_path):
    path, _ = make_episode("show", EpisodeSpec(40.0, ((10.0, 25.0),)), suffix=".mp3", labels=False, bit_rate=64000)
    model = random_checkpoint(hidden_size=8, num_layers=1)
    assert main(["-q", "process", str(path), "--model", str(model), "--reencode"]) == 0
    settings = json.loads((tmp_path / "show.adcut.json").read_text())["settings"]
    assert settings["cut_method"] in ("reencode", None)  # None: an untrained model may call it all ad
