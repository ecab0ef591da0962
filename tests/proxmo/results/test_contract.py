"""The run contract: names, run-name rules, final / best / objective / baseline, and the summary file."""

import pytest

from proxmo.results import contract
from proxmo.results.contract import Summary


def test_metric_names_follow_one_rule():
    assert contract.SUCCESS == "val/success" and contract.success_key(contract.GREEDY, "Pick") == "val/greedy/success/Pick"
    assert contract.metric_key("val", "success", "a:b*c") == "val/success/a_b_c"  # what MLflow refuses is replaced
    assert contract.timing_key("adv") == "timing/adv_s" and contract.ADV_FRACTION == "timing/adv_fraction"
    metrics = {"val/success": 0.5, "val/success/Pick": 1.0, "val/success/Look": 0.0, "val/success_se": 0.1,
               "val/greedy/success/Pick": 0.5, "train/success/Pick": 0.25}
    assert contract.by_category(metrics) == {"Pick": 1.0, "Look": 0.0}
    assert contract.by_category(metrics, contract.GREEDY) == {"Pick": 0.5}
    assert contract.categories([metrics, {"val/success/Cool": 0.2}]) == ["Cool", "Look", "Pick"]
    assert contract.environment_steps({"train/episodes": 4.0, "train/episode_length": 2.5}) == 10.0


def test_run_names_are_made_and_read_back_by_one_rule():
    assert contract.run_name("alfworld", "proxmo", 3, "20261207-120000") == "alfworld__proxmo__s3__20261207-120000"
    assert contract.variant_run_name("proxmo-cold", 2) == "proxmo-cold__s2"
    assert contract.parse_variant_run("proxmo-cold__s2") == ("proxmo-cold", 2)
    assert contract.parse_variant_run("a__s1__s12") == ("a__s1", 12)
    for name in ("proxmo", "proxmo__sx", "__s1", "trial003"):
        assert contract.parse_variant_run(name) is None, name
    assert contract.trial_run_name(7) == "trial007" and contract.trial_run_name(7, 2) == "trial007__s2"
    assert contract.reproduction_run_name("webshop", "gigpo", 1) == "webshop__gigpo__s1"


def test_final_best_objective_and_baseline():
    values = [0.2, 0.6, 0.4]
    assert contract.final_value(values) == 0.4 and contract.best_value(values) == 0.6
    assert contract.objective_value(values, "final") == 0.4
    assert contract.objective_value(values, "auc") == pytest.approx(0.4)
    with pytest.raises(ValueError, match="objective: expected one of"):
        contract.objective_value(values, "best")
    with pytest.raises(ValueError, match="no evaluation"):
        contract.final_value([])
    assert contract.default_baseline(["proxmo", "grpo"]) == "grpo"
    assert contract.default_baseline(["zeta", "alpha"]) == "zeta"  # the order given, not the alphabet
    assert contract.default_baseline([]) is None


def test_the_summary_round_trips_through_its_file(tmp_path):
    summary = Summary(iterations=5, evaluations=[{"step": 0.0, "val/success": 0.25}, {"step": 5.0, "val/success": 0.5,
                                                                                      "val/success/Pick": 1.0}],
                      random_baseline={"val/random/success": 0.2}, eval_tasks_hash="abc", adv_fraction=0.01)
    (tmp_path / contract.SUMMARY_FILE).write_text(summary.to_json())
    read = Summary.read(tmp_path)
    assert read == summary
    assert read.final() == 0.5 and read.best() == 0.5 and read.objective("auc") == pytest.approx(0.375)
    assert read.final_eval["val/success/Pick"] == 1.0 and read.first_eval["step"] == 0.0
    assert read.to_dict()["final_eval"] == read.final_eval  # readers of the file find the last evaluation by name
    assert Summary.from_dict({**read.to_dict(), "written_by_a_newer_version": 1}) == summary
