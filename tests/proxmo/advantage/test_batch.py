"""StepBatch accepts arrays, tensors and lists in any row order, and names the field that is wrong."""

import numpy as np
import pytest
import torch

from proxmo.advantage import AdvantageConfig, StepBatch, compute_advantages

GOOD = dict(
    group=[0, 0, 0, 1],
    traj=[0, 0, 1, 2],
    t=[0, 1, 0, 0],
    reward=[0.0, 10.0, 0.0, 0.0],
    invalid=[False, False, True, False],
    won=[True, True, False, False],
    anchor=["a room", "a fridge", "a room", "a desk"],
)


def batch_with(**changes):
    return StepBatch(**{**GOOD, **changes})


@pytest.mark.parametrize(
    "changes,field,message",
    [
        (dict(group=[], traj=[], t=[], reward=[], invalid=[], won=[], anchor=[]), "group", "empty"),
        (dict(reward=[0.0, float("nan"), 0.0, 0.0]), "reward", "NaN"),
        (dict(reward=[0.0, float("inf"), 0.0, 0.0]), "reward", "infinite"),
        (dict(reward=[0.0, 1.0, 0.0]), "reward", "3 rows"),
        (dict(anchor=["a room", 7, "a room", "a desk"]), "anchor", "row 1 is int"),
        (dict(anchor=["a room", None, "a room", "a desk"]), "anchor", "NoneType"),
        (dict(group=[0, 1, 0, 1]), "traj", "two groups"),
        (dict(t=[0, 2, 0, 0]), "t", "without gaps"),
        (dict(t=[0, 0, 0, 0]), "t", "repeats"),
        (dict(t=[0, -1, 0, 0]), "t", ">= 0"),
        (dict(t=[0.5, 1, 0, 0]), "t", "integer"),
        (dict(won=[True, False, False, False]), "won", "both"),
        (dict(invalid=[0, 2, 0, 0]), "invalid", "booleans"),
        (dict(group=[0, "a", 0, 1]), "group", "all integers or all strings"),
        (dict(reward=np.zeros((2, 2))), "reward", "1-D"),
        (dict(anchor="a room"), "anchor", "single str"),
        (dict(reward=["x", "y", "z", "w"]), "reward", "numbers"),
    ],
)
def test_bad_input_names_the_field(changes, field, message):
    with pytest.raises((ValueError, TypeError)) as info:
        batch_with(**changes)
    assert str(info.value).startswith(field + ":"), str(info.value)
    assert message in str(info.value)


def test_numpy_torch_and_lists_give_the_same_advantages():
    as_lists = compute_advantages(batch_with(), AdvantageConfig()).advantages
    as_numpy = StepBatch(**{k: np.asarray(v) if k != "anchor" else v for k, v in GOOD.items()})
    as_torch = StepBatch(**{k: torch.tensor(v) if k != "anchor" else v for k, v in GOOD.items()})
    for batch in (as_numpy, as_torch):
        np.testing.assert_array_equal(compute_advantages(batch, AdvantageConfig()).advantages, as_lists)


def test_string_ids_and_records():
    records = [dict(zip(GOOD, values)) for values in zip(*GOOD.values())]
    for r in records:
        r["group"], r["traj"] = f"task-{r['group']}", f"uuid-{r['traj']}"
    by_records = compute_advantages(StepBatch.from_records(records)).advantages
    np.testing.assert_allclose(by_records, compute_advantages(batch_with()).advantages)
    with pytest.raises(KeyError, match="row 2 lacks \\['won'\\]"):
        StepBatch.from_records(records[:2] + [{k: v for k, v in records[2].items() if k != "won"}])


def test_result_is_float32_in_input_order():
    result = compute_advantages(batch_with())
    assert result.advantages.dtype == np.float32 and result.advantages.shape == (4,)
    # the only row of group 1 has nothing to compare with: no episode advantage, no step advantage
    assert result.advantages[3] == 0.0
    assert result.advantages[1] > 0 > result.advantages[2]


def test_whole_trajectory_shares_its_episode_advantage_up_to_the_penalty():
    result = compute_advantages(batch_with(), AdvantageConfig(estimator="grpo"))
    assert result.episode[0] == result.episode[1]
