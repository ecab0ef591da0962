"""The plug-and-play example in the docs runs, and its policy learns from the library's advantages."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "plug_and_play.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("plug_and_play", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_policy_learns(example, capsys):
    progress = example.main(["--iterations", "30"])
    assert progress["last"] >= progress["first"] + 0.3
    assert "iteration  29" in capsys.readouterr().out


def test_token_advantages_spread_the_step_advantage_over_its_tokens(example):
    import torch

    records = [{"response_ids": [1, 5]}, {"response_ids": [3]}]
    tokens, mask, token_adv = example.token_advantages(np.array([2.0, -1.0], dtype=np.float32), records)
    assert mask.tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert torch.equal(token_adv, torch.tensor([[2.0, 2.0], [-1.0, 0.0]]))


def test_trainer_records_map_onto_a_step_batch(example):
    import torch

    records = example.rollout(example.TinyPolicy(), tasks=[0, 1], group_size=3, generator=torch.Generator().manual_seed(1))
    batch = example.to_step_batch(records)
    assert len(batch) == len(records)
    assert batch.prepared.n_groups == 2 and batch.prepared.n_traj == 6
