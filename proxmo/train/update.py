"""The PPO-style actor update over the steps of one rollout: log-probabilities, mini-batches, micro-batches.

Two kinds of policy are trained, each with the distribution it acted with:

* token level (``generate``): a step is one sequence (its prompt, then its response) and its
  advantage is broadcast to every response token; log-probs use the rollout temperature, as sampling did.
* candidate level (``choose``): the policy is pi(k | prompt) = softmax(score_k / T) over the step's
  candidate actions, so a step is one "token": the ratio, the KL to the reference and the entropy are
  those of that distribution, recomputed exactly as acting computed it.

Old log-probabilities are recomputed with the current weights before the update (as the reference
runs do); in candidate mode the acting-time log pi(choice) is the old log-prob. A mini-batch is one
optimizer step; it is split into micro-batches of similar length whose losses are weighted so that
the accumulated gradient equals that of the whole mini-batch. Forward passes of the update run without
dropout (a model with dropout would otherwise have a ratio != 1 before any step).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Protocol, Sequence, Tuple

import torch

from proxmo.policy.config import LENGTH_NORMALIZE
from proxmo.train.config import OptimConfig
from proxmo.train.distributed import RowLayout, Shard
from proxmo.train.loss import actor_loss
from proxmo.train.sharding import clip_gradients, filler, is_sharded, lockstep, whole_parameters


class ScoringPolicy(Protocol):
    """What the update needs from a policy (see :class:`proxmo.policy.Policy`)."""

    model: torch.nn.Module

    def token_logprobs(self, prompt_ids, response_ids, temperature=1.0, with_entropy=False): ...

    def candidate_logprobs(self, prompt_ids, candidate_ids, temperature, length_normalize=LENGTH_NORMALIZE): ...


@dataclass
class Sequences:
    """The token sequences of the trained steps, and the distribution their actions were sampled from."""

    prompt_ids: List[List[int]]
    response_ids: List[List[int]]
    temperature: float = 1.0
    """Sampling temperature of the rollout: log-probs are those of softmax(logits / T) (or of scores / T)."""
    candidate_ids: Optional[List[List[List[int]]]] = None
    """Candidate level (choose mode): per step, the response ids of every candidate; None: token level."""
    choice: Optional[List[int]] = None
    """Candidate level: per step, the index of the chosen candidate."""
    length_normalize: bool = LENGTH_NORMALIZE
    """Candidate level: scores are mean (True) or summed token log-probs."""

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature: the trained distribution needs a temperature > 0, got {self.temperature}")
        if self.candidate_ids is not None:
            if self.choice is None or len(self.choice) != len(self) or len(self.candidate_ids) != len(self):
                raise ValueError("candidate_ids and choice: one list of candidates and one index per step")
            for i, (options, k) in enumerate(zip(self.candidate_ids, self.choice)):
                if not 0 <= k < len(options):
                    raise ValueError(f"choice[{i}]: {k} is not an index of its {len(options)} candidates")

    def __len__(self) -> int:
        return len(self.prompt_ids)

    @property
    def candidate_level(self) -> bool:
        return self.candidate_ids is not None

    def lengths(self) -> List[int]:
        if self.candidate_ids is not None:
            return [len(p) + sum(len(r) for r in c) for p, c in zip(self.prompt_ids, self.candidate_ids)]
        return [len(p) + len(r) for p, r in zip(self.prompt_ids, self.response_ids)]

    def action_logprobs(self, policy: ScoringPolicy, chunk: Sequence[int], with_entropy: bool = False
                        ) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
        """``(logprobs [B, R], entropy [B, R] or None, mask [B, R])`` of the steps in ``chunk`` under ``policy``.

        Token level: R is the longest response. Candidate level: R = 1, the log-prob of the chosen
        candidate and the entropy of the candidate distribution. Gradients flow when enabled.
        """
        prompts = [self.prompt_ids[i] for i in chunk]
        if self.candidate_ids is None:
            return policy.token_logprobs(prompts, [self.response_ids[i] for i in chunk], self.temperature,
                                         with_entropy=with_entropy)
        logpis = policy.candidate_logprobs(prompts, [self.candidate_ids[i] for i in chunk], self.temperature,
                                           self.length_normalize)
        chosen = torch.stack([logpi[self.choice[i]] for logpi, i in zip(logpis, chunk)])[:, None]
        entropy = None
        if with_entropy:
            entropy = torch.stack([-(logpi.exp() * logpi).sum() for logpi in logpis])[:, None]
        return chosen, entropy, torch.ones_like(chosen)


@contextmanager
def update_mode(model: torch.nn.Module) -> Iterator[None]:
    """Forward passes for the update: no dropout (as when acting), but gradient checkpointing stays on.

    Hugging Face layers checkpoint only in train mode, so the layers that checkpoint keep their train
    flag while every other module (attention and dropout included) is in eval mode.
    """
    was_training = model.training
    model.eval()
    for module in model.modules():
        if getattr(module, "gradient_checkpointing", False):
            module.training = True
    try:
        yield
    finally:
        model.train(was_training)


def _pad(rows: Sequence[torch.Tensor]) -> torch.Tensor:
    """Right-pad 1-D tensors into ``(B, max_len)`` with zeros."""
    width = max(int(r.numel()) for r in rows)
    out = torch.zeros(len(rows), width, dtype=rows[0].dtype, device=rows[0].device)
    for i, row in enumerate(rows):
        out[i, : row.numel()] = row
    return out


def micro_batches(indices: Sequence[int], lengths: Sequence[int], size: int) -> List[List[int]]:
    """Split ``indices`` into chunks of ``size``, sorted by sequence length so padding stays small."""
    ordered = sorted(indices, key=lambda i: lengths[i])
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


@torch.no_grad()
def sequence_logprobs(policy: ScoringPolicy, sequences: Sequences, micro_batch_size: int,
                      shard: Optional[Shard] = None) -> List[torch.Tensor]:
    """Per-step log-probabilities of the actions on the CPU, in step order.

    Token level: ``(len(response),)`` per step; candidate level: ``(1,)``, log pi(choice | prompt). A model sharded
    over the workers of ``shard`` makes as many passes on every worker (the extra ones are discarded).
    """
    result: List[Optional[torch.Tensor]] = [None] * len(sequences)
    chunks = micro_batches(range(len(sequences)), sequences.lengths(), micro_batch_size)
    if is_sharded(policy.model):
        chunks = lockstep(chunks, shard)
    with update_mode(policy.model):
        for chunk in chunks:
            if chunk is None:
                sequences.action_logprobs(policy, filler(range(len(sequences))))
                continue
            logprobs, _, mask = sequences.action_logprobs(policy, chunk)
            for row, i in enumerate(chunk):
                n = int(mask[row].sum().item())
                result[i] = logprobs[row, :n].float().cpu()
    return [r for r in result if r is not None]


@dataclass
class UpdateBatch:
    """What one update trains on: the steps' sequences, one advantage per step, and per step the log-probs of its
    action under the behaviour policy (``old_logprobs``) and the KL reference (``ref_logprobs``), each
    ``(len(response),)`` (``(1,)`` at candidate level).

    ``old_logprobs=None`` is allowed only for a single optimizer step (one epoch, one mini-batch): the weights have
    not moved yet, so the old log-probs are the current ones, detached, and a forward pass is saved.
    ``ref_logprobs=None``: no KL term.
    """

    sequences: Sequences
    advantages: torch.Tensor
    old_logprobs: Optional[Sequence[torch.Tensor]] = None
    ref_logprobs: Optional[Sequence[torch.Tensor]] = None

    def __post_init__(self) -> None:
        n = len(self.sequences)
        if self.advantages.shape != (n,):
            raise ValueError(f"advantages: expected shape ({n},), got {tuple(self.advantages.shape)}")
        for name in ("old_logprobs", "ref_logprobs"):
            given = getattr(self, name)
            if given is not None and len(given) != n:
                raise ValueError(f"{name}: {len(given)} entries for {n} steps")

    def __len__(self) -> int:
        return len(self.sequences)

    def response_tokens(self) -> List[int]:
        """The tokens each step contributes to a token mean: at candidate level one (a step is one action,
        whatever the length of its text), else its response's."""
        if self.sequences.candidate_level:
            return [1] * len(self)
        return [len(r) for r in self.sequences.response_ids]


def ppo_update(policy: ScoringPolicy, optimizer: torch.optim.Optimizer, batch: UpdateBatch, config: OptimConfig,
               generator: Optional[torch.Generator] = None, shard: Optional[Shard] = None) -> Dict[str, float]:
    """``ppo_epochs`` passes of ``mini_batches`` optimizer steps over ``batch`` (mini-batches drawn from
    ``generator``); returns the mean of the loss statistics.

    With ``shard`` (a job on several workers) ``batch`` holds this worker's rows: mini-batches are drawn over the
    rows of all workers (``generator`` must be in the same state on every worker), losses are normalised by the
    global mini-batch and gradients and statistics summed over workers, so every worker takes the step one
    worker would take on the whole batch (:mod:`proxmo.train.distributed`).
    """
    if batch.old_logprobs is None and config.ppo_epochs * config.mini_batches != 1:
        raise ValueError("old_logprobs: needed when there is more than one optimizer step per batch")
    layout = RowLayout.of(batch.response_tokens(), shard)
    n = layout.total
    device = next(policy.model.parameters()).device
    totals: Dict[str, float] = {}
    updates = 0
    with update_mode(policy.model):
        for _ in range(config.ppo_epochs):
            order = torch.randperm(n, generator=generator).tolist()
            for part in range(config.mini_batches):
                mini = order[part * n // config.mini_batches : (part + 1) * n // config.mini_batches]
                if not mini:
                    continue
                stats = _mini_batch_step(policy, optimizer, batch, config, layout, mini, device, shard)
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + value
                updates += 1
    return {key: value / max(updates, 1) for key, value in totals.items()}


def _mini_batch_step(policy: ScoringPolicy, optimizer: torch.optim.Optimizer, batch: UpdateBatch, config: OptimConfig,
                     layout: RowLayout, mini: List[int], device: torch.device, shard: Optional[Shard]
                     ) -> Dict[str, float]:
    """One optimizer step over the global rows ``mini``, their gradients accumulated over this worker's
    micro-batches weighted so that the sum over workers is the gradient of the whole mini-batch."""
    sequences, old_logprobs, ref_logprobs = batch.sequences, batch.old_logprobs, batch.ref_logprobs
    lengths = sequences.lengths()
    optimizer.zero_grad(set_to_none=True)
    token_mean = config.loss_agg == "token-mean"
    mini_total = sum(layout.tokens[i] for i in mini) if token_mean else len(mini)
    local_tokens = layout.tokens[layout.offset : layout.offset + layout.count]
    # sharded layers reduce the mean of the workers' gradients: each loss counts ``world`` times to give their sum
    sharded = shard is not None and shard.world > 1 and is_sharded(policy.model)
    chunks = micro_batches(layout.local(mini), lengths, config.micro_batch_size)
    if sharded:
        chunks = lockstep(chunks, shard)
    stats: Dict[str, float] = {}
    for chunk in chunks:
        padding = chunk is None
        if padding:  # a pass in lock step with the other workers; its loss counts zero
            chunk = filler(range(layout.count))
        logprobs, entropy, mask = sequences.action_logprobs(
            policy, chunk, with_entropy=config.entropy_coef > 0 or sequences.candidate_level)  # cheap per candidate
        if old_logprobs is None:
            old = logprobs.detach().float()
        else:
            old = _pad([old_logprobs[i] for i in chunk]).to(device)
        ref = _pad([ref_logprobs[i] for i in chunk]).to(device) if ref_logprobs is not None else None
        loss, chunk_stats = actor_loss(
            logprobs.float(),
            old,
            batch.advantages[chunk].to(device).float(),
            mask,
            ref_logprobs=ref,
            entropy=entropy.float() if entropy is not None else None,
            kl_coef=config.kl_coef,
            entropy_coef=config.entropy_coef,
            clip_low=config.clip_low,
            clip_high=config.clip_high,
            dual_clip=config.dual_clip,
            mode=config.loss_agg,
        )
        weight = 0.0 if padding else (sum(local_tokens[i] for i in chunk) if token_mean else len(chunk)) / mini_total
        (loss * (weight * shard.world if sharded else weight)).backward()
        for key, value in chunk_stats.items():
            stats[key] = stats.get(key, 0.0) + float(value) * weight
        stats["loss"] = stats.get("loss", 0.0) + float(loss.detach()) * weight
    if shard is not None and shard.world > 1:
        if sharded:  # the sharded layers reduced theirs in the backward passes; the whole ones count world times
            shard.sum_gradients(whole_parameters(policy.model), scale=1.0 / shard.world)
        else:
            shard.sum_gradients(policy.model.parameters())
        stats = shard.sum_stats(stats)
    if sharded:
        grad_norm = clip_gradients(policy.model.parameters(), config.grad_clip)
    else:
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.model.parameters(), config.grad_clip)
    stats["grad_norm"] = float(grad_norm)
    if torch.isfinite(grad_norm):
        optimizer.step()
    else:  # a non-finite gradient would poison the weights: skip this step and say so
        stats["skipped_steps"] = 1.0
    optimizer.zero_grad(set_to_none=True)
    stats.setdefault("skipped_steps", 0.0)
    return stats
