"""Updates on one worker and on two (gloo processes): the cases the equality test compares.

Each case builds the same tiny policy, batch and optimizer from fixed seeds; :func:`worker` plays the rows of
its share on a two-process gloo group and saves the parameters after the update.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Dict, List

import torch
import torch.distributed as dist

from proxmo.policy import ModelConfig, Policy
from proxmo.train.config import OptimConfig
from proxmo.train.distributed import Shard
from proxmo.train.sharding import shard_model
from proxmo.train.update import Sequences, UpdateBatch, ppo_update, sequence_logprobs

CORPUS = ["go to cabinet 1", "take apple 1 from cabinet 1", "open fridge 1", "click[buy now]", "look"]
CHOICES = [["go to cabinet 1", "take apple 1 from cabinet 1", "open fridge 1"], ["click[buy now]", "look"],
           ["go to cabinet 1", "look", "open fridge 1"], ["take apple 1 from cabinet 1", "look"],
           ["open fridge 1", "click[buy now]", "look", "go to cabinet 1"]]

CASES: Dict[str, dict] = {
    # name: mode, rows, optimizer settings
    "generate-token-mean": dict(mode="generate", rows=7, optim=dict(mini_batches=2, ppo_epochs=2, micro_batch_size=2)),
    "generate-seq-mean": dict(mode="generate", rows=7, optim=dict(mini_batches=1, ppo_epochs=1, micro_batch_size=3,
                                                                  loss_agg="seq-mean-token-mean")),
    "generate-empty-share": dict(mode="generate", rows=3, optim=dict(mini_batches=3, ppo_epochs=1, micro_batch_size=1)),
    "choose": dict(mode="choose", rows=5, optim=dict(mini_batches=2, ppo_epochs=2, micro_batch_size=2)),
}
# the same updates with the model sharded over the two workers (FSDP2)
CASES.update({f"{name}-sharded": {**case, "shard_model": True} for name, case in list(CASES.items())
              if name != "generate-seq-mean"})


def base_policy() -> Policy:
    torch.manual_seed(0)
    config = ModelConfig(kind="tiny", hidden_size=32, num_layers=2, num_heads=2, vocab_size=300)
    return Policy.from_config(config, corpus=CORPUS)


def _sequences(policy: Policy, mode: str, rows: int) -> Sequences:
    g = torch.Generator().manual_seed(1)
    if mode == "choose":
        prompts = [policy.encode_prompt(f"you see a cabinet {i}") for i in range(rows)]
        choices = policy.choose(prompts, CHOICES[:rows], 1.0, g)
        return Sequences(prompts, [c.response_ids for c in choices], candidate_ids=[c.candidate_ids for c in choices],
                         choice=[c.index for c in choices])
    vocab = len(policy.tokenizer)
    prompts = [torch.randint(5, vocab, (int(n),), generator=g).tolist() for n in torch.randint(3, 20, (rows,), generator=g)]
    responses = [torch.randint(5, vocab, (int(n),), generator=g).tolist() for n in torch.randint(1, 6, (rows,), generator=g)]
    return Sequences(prompts, responses)


def batch(policy: Policy, case: dict) -> UpdateBatch:
    """The whole batch: sequences, advantages of both signs, behaviour and reference log-probs."""
    sequences = _sequences(policy, case["mode"], case["rows"])
    advantages = torch.linspace(-1.5, 2.0, len(sequences))
    old = sequence_logprobs(policy, sequences, 4)
    ref = [lp - 0.05 for lp in old]
    return UpdateBatch(sequences, advantages, old, ref)


def rows_of(whole: UpdateBatch, start: int, end: int) -> UpdateBatch:
    s = whole.sequences
    pick = list(range(start, end))
    sequences = Sequences([s.prompt_ids[i] for i in pick], [s.response_ids[i] for i in pick], s.temperature,
                          [s.candidate_ids[i] for i in pick] if s.candidate_ids is not None else None,
                          [s.choice[i] for i in pick] if s.choice is not None else None, s.length_normalize)
    return UpdateBatch(sequences, whole.advantages[start:end], [whole.old_logprobs[i] for i in pick],
                       [whole.ref_logprobs[i] for i in pick])


def update(case: dict, shard: Shard = None) -> List[torch.Tensor]:
    """The parameters after one update on ``shard``'s rows (all rows without one)."""
    policy = base_policy()
    whole = batch(policy, case)
    policy = Policy(copy.deepcopy(policy.model), policy.tokenizer, policy.config)
    mine = whole if shard is None else rows_of(whole, *shard.share(len(whole)))
    if shard is not None and case.get("shard_model"):
        shard_model(policy.model, shard, None)
        assert sum(hasattr(p, "full_tensor") for p in policy.model.parameters()) > 0  # the layers are sharded
    # SGD with momentum: the parameters show the gradients themselves (Adam's first steps are ~lr * sign(g), which
    # rounding flips for the gradients near zero of rarely seen tokens)
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=0.5, momentum=0.9)
    config = OptimConfig(kl_coef=0.05, entropy_coef=0.01, grad_clip=1.0, **case["optim"])
    ppo_update(policy, optimizer, mine, config, torch.Generator().manual_seed(0), shard=shard)
    return [(p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone() for p in policy.model.parameters()]


def worker(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    try:
        shard = Shard.current()
        for name, case in CASES.items():
            torch.save(update(case, shard), Path(folder) / f"{name}.rank{rank}.pt")
    finally:
        dist.destroy_process_group()


# rows of uneven cost on uneven workers: (rank, index) items and their costs
REBALANCE = {0: [5, 1, 1, 1], 1: [2, 2, 10]}


def rebalance_worker(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    try:
        costs = REBALANCE[rank]
        kept = Shard.current().rebalance([(rank, i) for i in range(len(costs))], costs)
        torch.save(kept, Path(folder) / f"rebalanced.rank{rank}.pt")
    finally:
        dist.destroy_process_group()
