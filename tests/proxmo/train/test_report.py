"""The end-of-run success table and the learning gain with its standard error."""

import math

import pytest
import torch

from proxmo.policy import UniformPolicy
from proxmo.train.report import learning_gain, success_table


def test_table_lists_random_first_and_last_with_standard_errors():
    first = {"step": 0, "val/success": 0.2, "val/success_se": 0.03, "val/success/Pick": 0.5, "val/greedy/success": 0.0}
    last = {"step": 150, "val/success": 0.6, "val/success_se": 0.04, "val/success/Pick": 1.0, "val/success/Look": 0.25}
    columns, rows = success_table([first, last], {"val/random/success": 0.3, "val/random/success/Pick": 0.4})
    assert columns == ["all", "Look", "Pick"]
    assert [label for label, _ in rows] == ["random agent", "sampled, iteration 0", "greedy, iteration 0",
                                             "sampled, iteration 150"]
    assert rows[1][1] == ["20.0 ± 3.0", "-", "50.0"] and rows[3][1] == ["60.0 ± 4.0", "25.0", "100.0"]
    gain = learning_gain([first, last])
    assert gain["gain"] == pytest.approx(40.0) and gain["se"] == pytest.approx(100 * math.hypot(0.03, 0.04))
    assert learning_gain([last]) is None and success_table([], {}) == ([], [])
    # in the environment's order (ALFWorld's: the paper's), categories it does not list after them
    assert success_table([first, last], {}, ("Pick", "Look"))[0] == ["all", "Pick", "Look"]
    assert success_table([first, last], {}, ("Pick", "Clean"))[0] == ["all", "Pick", "Look"]


def test_uniform_policy_picks_every_candidate_alike_and_reproducibly():
    candidates = [["a", "b", "c", "d"]] * 4000

    def picks(seed):
        return [c.index for c in UniformPolicy().choose([[0]] * 4000, candidates, 1.0, torch.Generator().manual_seed(seed))]

    counts = torch.bincount(torch.tensor(picks(0)), minlength=4).float() / 4000
    assert picks(0) == picks(0) and picks(0) != picks(1)
    assert (counts - 0.25).abs().max() < 0.03  # about 4 standard errors
    with pytest.raises(ValueError, match="choose mode"):
        UniformPolicy().generate([[0]], 1.0)
