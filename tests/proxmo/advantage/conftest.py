import numpy as np
import pytest

from proxmo.advantage import StepBatch
from proxmo.advantage.synthetic import random_batch

FIELDS = ("group", "traj", "t", "reward", "invalid", "won", "anchor")


def rows_of(batch: StepBatch) -> list[dict]:
    """The batch as a list of plain dicts, in its row order (the reference's input)."""
    columns = {name: getattr(batch, name).tolist() for name in FIELDS}
    return [dict(zip(FIELDS, values)) for values in zip(*(columns[n] for n in FIELDS))]


def shuffled(batch: StepBatch, seed: int) -> tuple[StepBatch, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(len(batch))
    return StepBatch(**{name: getattr(batch, name)[perm] for name in FIELDS}), perm


@pytest.fixture(params=[0, 1, 2])
def small_batch(request) -> StepBatch:
    """Random small batches (shuffled rows) with repeats, one-letter tokens and empty anchors."""
    batch = random_batch(np.random.default_rng(100 + request.param), n_groups=3, group_size=4, max_steps=5, vocabulary=10)
    return shuffled(batch, request.param)[0]
