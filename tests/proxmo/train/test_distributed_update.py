"""A job on two workers takes the step one worker takes on the whole batch (gloo processes on the CPU)."""

import pytest
import torch
import torch.multiprocessing as mp

from proxmo.train.distributed import RowLayout, Shard, balanced_spans, share
from tests.proxmo.train import two_workers


def test_shares_cover_the_items_once_in_order():
    for count in range(0, 12):
        for world in range(1, 5):
            spans = [share(count, rank, world) for rank in range(world)]
            assert spans[0][0] == 0 and spans[-1][1] == count
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
            sizes = [end - start for start, end in spans]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_one_worker_layout_is_its_own_rows():
    layout = RowLayout.of([3, 1, 2], None)
    assert layout.total == 3 and layout.local([2, 0]) == [2, 0]
    with pytest.raises(ValueError, match="rank 2 is not one of 2 workers"):
        Shard(2, 2)


@pytest.fixture(scope="module")
def two_worker_parameters(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_workers")
    mp.start_processes(two_workers.worker, args=(str(folder),), nprocs=2, join=True, start_method="spawn")
    return {name: [torch.load(folder / f"{name}.rank{rank}.pt") for rank in range(2)] for name in two_workers.CASES}


@pytest.mark.parametrize("name", list(two_workers.CASES))
def test_two_workers_take_the_step_of_one_on_the_whole_batch(two_worker_parameters, name):
    case = two_workers.CASES[name]
    one = two_workers.update(case)
    start = [p.detach() for p in two_workers.base_policy().model.parameters()]
    for rank, params in enumerate(two_worker_parameters[name]):
        for a, b in zip(one, params):
            torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=lambda m: f"{name}, rank {rank}: {m}")
    # The step is large against the tolerance: a wrong normalisation or a missing gradient sum would show.
    moved = max(float((a - s).abs().max()) for a, s in zip(one, start))
    assert moved > 1e-3
    # Each worker alone on its half takes another step.
    half = two_workers.update(case | {"rows": share(case["rows"], 0, 2)[1]})
    assert max(float((a - b).abs().max()) for a, b in zip(one, half)) > 1e-4


def test_balanced_spans_cover_the_rows_in_order_with_even_costs():
    assert balanced_spans([1] * 10, 2) == [(0, 5), (5, 10)]
    assert balanced_spans([5, 1, 1, 1, 1, 1], 2) == [(0, 1), (1, 6)]
    assert balanced_spans([100, 1, 1], 3) == [(0, 1), (1, 2), (2, 3)]  # a row for every worker while rows last
    assert balanced_spans([1], 3) == [(0, 0), (0, 1), (1, 1)]


def test_rebalancing_moves_rows_between_workers_and_keeps_their_order(tmp_path):
    mp.start_processes(two_workers.rebalance_worker, args=(str(tmp_path),), nprocs=2, join=True, start_method="spawn")
    kept = [torch.load(tmp_path / f"rebalanced.rank{rank}.pt") for rank in range(2)]
    everything = [(rank, i) for rank, costs in two_workers.REBALANCE.items() for i in range(len(costs))]
    assert kept[0] + kept[1] == everything  # every row once, in rank order
    costs = {(rank, i): c for rank, row in two_workers.REBALANCE.items() for i, c in enumerate(row)}
    assert [sum(costs[item] for item in part) for part in kept] == [10, 12]  # from 8 against 14
    assert kept[0] == everything[:5]  # worker 0 took worker 1's first row
