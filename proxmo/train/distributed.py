"""What a job on several workers shares: its place among them, the batch's rows, summed gradients and statistics.

A job on N workers (``run.workers``) is data-parallel: every worker plays its share of the iteration's task
groups, and the update takes exactly the optimizer step one worker would take on the union of the workers'
rows. For that the update sees the batch's *global* layout (how many rows each worker holds and their token
counts), draws its mini-batches over global rows from a generator every worker holds in the same state, and
normalises each loss by the global mini-batch's row or token count. Each worker back-propagates its own rows;
the gradients are then summed over workers with ``torch.distributed.all_reduce`` (gloo on CPUs, NCCL on GPUs),
so clipping and the optimizer step see the same gradient on every worker. The sum is explicit rather than
DistributedDataParallel's because workers hold different numbers of micro-batches in a mini-batch, and some
none at all.

The rest of an iteration is shared the same way: every worker estimates the advantages of the whole batch
(:func:`merge_batches` of every worker's rows; batch-wide normalisations such as REINFORCE++-baseline's see
all of it) and keeps its own rows; metrics are computed over every worker's episodes.

Plain torch: the process group is set up by whoever starts the workers (Ray Train's ``TorchTrainer``, or
``torch.distributed.init_process_group`` in a test); this module only uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist

from proxmo.advantage import StepBatch
from proxmo.advantage.batch import OPTIONAL_FIELDS

GRADIENT_BUCKET = 1 << 24
"""Elements of gradient summed in one all-reduce (64 MiB in fp32): few calls, bounded extra memory."""


def share(count: int, rank: int, world: int) -> Tuple[int, int]:
    """``[start, end)`` of worker ``rank``'s contiguous share of ``count`` items: the first ``count % world``
    workers hold one more than the others."""
    base, extra = divmod(count, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


@dataclass(frozen=True)
class Shard:
    """This worker's place in a job on ``world`` workers (``rank`` 0 tracks and checkpoints)."""

    rank: int
    world: int

    def __post_init__(self) -> None:
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise ValueError(f"Shard: rank {self.rank} is not one of {self.world} workers")

    @classmethod
    def current(cls) -> "Shard":
        """The shard of this process in the initialised default process group."""
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("Shard.current: no torch.distributed process group in this process")
        return cls(dist.get_rank(), dist.get_world_size())

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def share(self, count: int) -> Tuple[int, int]:
        return share(count, self.rank, self.world)

    def gather(self, item: Any) -> List[Any]:
        """``item`` of every worker, in rank order (picklable objects; for small things: counts, records)."""
        if self.world == 1:
            return [item]
        out: List[Any] = [None] * self.world
        dist.all_gather_object(out, item)
        return out

    def sum_stats(self, stats: Dict[str, float]) -> Dict[str, float]:
        """Every worker's statistics added key by key (a worker without rows contributes nothing)."""
        total: Dict[str, float] = {}
        for part in self.gather(stats):
            for key, value in part.items():
                total[key] = total.get(key, 0.0) + value
        return total

    def sum_gradients(self, parameters: Iterable[torch.nn.Parameter], scale: float = 1.0) -> None:
        """Replace each gradient by its sum over workers (times ``scale``). A parameter no worker has a gradient for keeps
        ``grad=None`` (as in one process, so the optimizer leaves it alone); one that only some workers
        have a gradient for gets zeros from the others."""
        params = [p for p in parameters if p.requires_grad]
        if self.world == 1 or not params:
            return
        device = params[0].device
        present = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
        dist.all_reduce(present)
        params = [p for p, seen in zip(params, present.tolist()) if seen > 0]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        for bucket in _buckets(params, GRADIENT_BUCKET):
            flat = torch.cat([p.grad.reshape(-1) for p in bucket])
            dist.all_reduce(flat)
            if scale != 1.0:
                flat.mul_(scale)
            offset = 0
            for p in bucket:
                n = p.grad.numel()
                p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
                offset += n

    def rebalance(self, items: List[Any], costs: Sequence[float]) -> List[Any]:
        """This worker's share of every worker's ``items`` (in rank order) after moving rows between workers so that
        each holds a contiguous span of about the same total ``cost``: only the rows that change hands travel
        (point to point). One worker: ``items`` as they are."""
        if self.world == 1:
            return list(items)
        parts = self.gather(list(costs))
        old, start = [], 0
        for part in parts:
            old.append((start, start + len(part)))
            start += len(part)
        new = balanced_spans([c for part in parts for c in part], self.world)
        mine_first = old[self.rank][0]
        pieces: Dict[int, List[Any]] = {}
        for source in range(self.world):
            for target in range(self.world):
                first, last = max(old[source][0], new[target][0]), min(old[source][1], new[target][1])
                if first >= last:
                    continue
                if source == target == self.rank:
                    pieces[first] = list(items[first - mine_first : last - mine_first])
                elif source == self.rank:
                    dist.send_object_list([list(items[first - mine_first : last - mine_first])], dst=target)
                elif target == self.rank:
                    box: List[Any] = [None]
                    dist.recv_object_list(box, src=source)
                    pieces[first] = box[0]
        return [item for first in sorted(pieces) for item in pieces[first]]

    def broadcast(self, item: Any) -> Any:
        """Rank 0's ``item`` on every worker (a picklable object: a decision, a random state)."""
        if self.world == 1:
            return item
        box = [item if self.leader else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every worker (identical starts, whatever each worker built)."""
        if self.world == 1:
            return
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)


def _buckets(params: Sequence[torch.nn.Parameter], size: int) -> List[List[torch.nn.Parameter]]:
    """Consecutive parameters of one dtype, grouped up to ``size`` elements (a larger one alone)."""
    buckets: List[List[torch.nn.Parameter]] = []
    current: List[torch.nn.Parameter] = []
    count = 0
    for p in params:
        if current and (count + p.numel() > size or p.grad.dtype != current[0].grad.dtype):
            buckets.append(current)
            current, count = [], 0
        current.append(p)
        count += p.numel()
    if current:
        buckets.append(current)
    return buckets


@dataclass(frozen=True)
class RowLayout:
    """Where this worker's rows sit among the batch's rows: ``tokens`` per global row, in rank order, and
    this worker's ``[offset, offset + count)``. One worker: its own rows, offset 0."""

    tokens: List[int]
    offset: int
    count: int

    @classmethod
    def of(cls, local_tokens: Sequence[int], shard: Optional[Shard]) -> "RowLayout":
        if shard is None or shard.world == 1:
            return cls(list(local_tokens), 0, len(local_tokens))
        parts = shard.gather(list(local_tokens))
        offset = sum(len(p) for p in parts[: shard.rank])
        return cls([t for p in parts for t in p], offset, len(local_tokens))

    @property
    def total(self) -> int:
        return len(self.tokens)

    def local(self, rows: Sequence[int]) -> List[int]:
        """The rows among ``rows`` (global indices) that this worker holds, as its own indices, in order."""
        return [i - self.offset for i in rows if self.offset <= i < self.offset + self.count]


def balanced_spans(costs: Sequence[float], world: int) -> List[Tuple[int, int]]:
    """Contiguous ``[start, end)`` spans of the rows, one per worker in order, whose summed ``costs`` are as even as
    contiguous spans allow (each boundary where the running total is nearest its share); every span holds a row
    when there are as many rows as workers."""
    n = len(costs)
    prefix = np.concatenate([[0.0], np.cumsum(np.asarray(costs, dtype=np.float64))])
    total = prefix[-1]
    bounds = [0]
    for k in range(1, world):
        cut = int(np.argmin(np.abs(prefix - total * k / world)))
        if n >= world:  # leave a row for this worker and for each one after it
            cut = min(max(cut, bounds[-1] + 1), n - (world - k))
        bounds.append(max(cut, bounds[-1]))
    bounds.append(len(costs))
    return [(bounds[k], bounds[k + 1]) for k in range(world)]


def worker_seed(seed: int, rank: int) -> int:
    """The seed of worker ``rank``'s own random streams (action sampling, evaluation episodes): ``seed`` itself
    on rank 0, so one worker samples exactly as a plain job does, and distinct derived seeds on the others."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, rank]).generate_state(1, dtype=np.uint32)[0])


def batch_rows(batch: StepBatch) -> Dict[str, Any]:
    """A batch's fields as plain arrays, what a worker sends (not the prepared form, which is rebuilt)."""
    rows = {name: getattr(batch, name) for name in ("group", "traj", "t", "reward", "invalid", "won", "anchor")}
    rows.update({name: getattr(batch, name) for name in OPTIONAL_FIELDS if getattr(batch, name) is not None})
    return rows


def merge_batches(parts: Sequence[Dict[str, Any]]) -> StepBatch:
    """One batch of every worker's rows (:func:`batch_rows`), in rank order; each worker's groups and
    trajectories keep ids of their own (renumbered, so equal ids of two workers do not merge)."""
    merged: Dict[str, List[Any]] = {}
    offsets = {"group": 0, "traj": 0}
    for part in parts:
        for name, values in part.items():
            if name in offsets:
                _, codes = np.unique(np.asarray(values), return_inverse=True)
                values = codes.reshape(-1) + offsets[name]
                offsets[name] = int(values.max()) + 1 if len(values) else offsets[name]
            merged.setdefault(name, []).append(np.asarray(values))
    optional = {name: np.concatenate(merged[name]) for name in OPTIONAL_FIELDS
                if name in merged and len(merged[name]) == len(parts)}
    return StepBatch(**{name: np.concatenate(merged[name]) for name in
                        ("group", "traj", "t", "reward", "invalid", "won", "anchor")}, **optional)


__all__ = ["GRADIENT_BUCKET", "RowLayout", "Shard", "balanced_spans", "batch_rows", "merge_batches", "share",
           "worker_seed"]
