"""A job on two workers takes the step one worker takes on the whole batch (gloo processes on the CPU)."""

import pytest
import torch
import torch.multiprocessing as mp

from proxmo.train.distributed import RowLayout, Shard, share
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
