"""Dynamic sampling: groups whose episodes all return the same are dropped and the batch is refilled."""

import pytest

from proxmo.rollout import EpisodeRecord, Rollout, StepRecord
from proxmo.train.config import build_config
from proxmo.train.job import train
from proxmo.train.sampling import dynamic_batch

from .test_job import _alfworld, _by_step


def fake_collection(returns_per_group, offset):
    """A rollout whose group g has one episode (of two steps) per return in returns_per_group[g]."""
    rollout = Rollout()
    traj = offset
    for group, returns in enumerate(returns_per_group):
        for value in returns:
            rollout.episodes.append(EpisodeRecord(group, traj, task=None, category=None, reward=value, length=2))
            for t in range(2):
                rollout.steps.append(StepRecord(group, traj, t, "obs", [1], [2], "a", "a", False,
                                                reward=value if t == 1 else 0.0))
            traj += 1
    return rollout


def collections(*plans):
    calls = []

    def collect_once(c):
        calls.append(c)
        return fake_collection(plans[c], offset=100 * c)

    return collect_once, calls


def test_groups_without_a_spread_are_dropped_and_the_batch_refilled():
    collect_once, calls = collections([[1, 1], [0, 1], [0, 0]], [[0, 1], [2, 2], [1, 0]])
    result = dynamic_batch(collect_once, n_groups=3, max_collections=10)
    assert calls == [0, 1]
    assert sorted({e.group for e in result.batch.episodes}) == [1, 3, 5]  # group g of collection c is 3c + g
    assert {s.group for s in result.batch.steps} == {1, 3, 5}
    assert len(result.collected.episodes) == 12 and result.kept_fraction == pytest.approx(3 / 6)
    assert len({e.traj for e in result.collected.episodes}) == 12  # trajectory ids stay distinct


def test_the_last_collection_fills_the_batch_unfiltered_and_extra_groups_are_cut():
    collect_once, calls = collections([[1, 1], [0, 0]], [[3, 3], [4, 4]])
    result = dynamic_batch(collect_once, n_groups=2, max_collections=2)
    assert calls == [0, 1] and result.kept_fraction == 0.0
    assert sorted({e.group for e in result.batch.episodes}) == [2, 3]
    many, _ = collections([[0, 1], [1, 0]])
    assert sorted({e.group for e in dynamic_batch(many, n_groups=1, max_collections=5).batch.episodes}) == [0]


def test_a_job_with_dynamic_sampling_logs_what_it_kept_and_repeats_with_its_seed(tmp_path):
    def run(name):
        data = _alfworld(tmp_path, name, action_mode="choose", n_groups=2, group_size=3, dynamic_sampling=True,
                         max_collections=3)
        return _by_step(train(build_config(data), progress=False).run_dir)

    first, second = run("dyn-a"), run("dyn-b")
    for step in (1,):
        metrics = first[step]
        assert 0.0 <= metrics["batch/kept_fraction"] <= 1.0 and 0 <= metrics["batch/extra_collections"] <= 2
        # everything played is reported; the update saw at most n_groups groups of it
        assert metrics["train/episodes"] == 6 * (1 + metrics["batch/extra_collections"])
        same = [k for k in metrics if not k.startswith("timing/")]
        assert {k: metrics[k] for k in same} == {k: second[step][k] for k in same}
