"""``adcut demo`` on a tiny configuration: every step runs, outputs land, and a seed gives the same answer."""

from __future__ import annotations

from dataclasses import replace

import pytest

from adcut.core.segments import boundaries
from adcut.demo.example import DemoConfig, comparison_table, make_episodes, run_demo

TINY = DemoConfig(train_episodes=2, episode_seconds=120.0, unseen_seconds=120.0, hidden_size=8, epochs=1)


@pytest.mark.slow
def test_demo_runs_every_step_and_is_deterministic(tmp_path):
    first = run_demo(tmp_path / "a", TINY, progress=False, say=lambda line: None)
    for name in (
        "models/demo.safetensors",
        "unseen/unseen.mp3",
        "unseen/unseen.adcut.txt",
        "unseen/unseen.adcut.json",
        "dataset",
    ):
        assert (tmp_path / "a" / name).exists(), name
    assert first.found[0].start == 0 and first.found[-1].end == pytest.approx(first.truth[-1].end, abs=0.05)
    assert len(first.errors) == len(boundaries(first.truth))
    table = comparison_table(first)
    assert table.splitlines()[0].startswith("true segments") and "true boundary" in table
    again = run_demo(tmp_path / "b", TINY, progress=False, say=lambda line: None)
    assert again.truth == first.truth and again.found == first.found
    _, other_truth = make_episodes(tmp_path / "c", replace(TINY, seed=1))
    assert other_truth != first.truth
