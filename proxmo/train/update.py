"""The PPO-style actor update over the steps of one rollout: log-probabilities, mini-batches, micro-batches.

Each step is one sequence (its prompt, then its response); its advantage is broadcast to every
response token. Old log-probabilities are recomputed with the current weights before the update
(as the reference runs do), so sampling details (temperature, candidate scoring) never leak into
the ratio. A mini-batch is one optimizer step; it is split into micro-batches of similar length
whose losses are weighted so that the accumulated gradient equals that of the whole mini-batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Protocol, Sequence

import torch

from proxmo.train.config import OptimConfig
from proxmo.train.loss import actor_loss


class ScoringPolicy(Protocol):
    """What the update needs from a policy (see :class:`proxmo.policy.Policy`)."""

    model: torch.nn.Module

    def token_logprobs(self, prompt_ids, response_ids, temperature=1.0, with_entropy=False): ...


@dataclass
class Sequences:
    """The token sequences of the trained steps."""

    prompt_ids: List[List[int]]
    response_ids: List[List[int]]

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def lengths(self) -> List[int]:
        return [len(p) + len(r) for p, r in zip(self.prompt_ids, self.response_ids)]


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
def sequence_logprobs(policy: ScoringPolicy, sequences: Sequences, micro_batch_size: int) -> List[torch.Tensor]:
    """Per-step response log-probabilities ``(len(response),)`` on the CPU, in step order."""
    was_training = policy.model.training
    policy.model.eval()
    result: List[Optional[torch.Tensor]] = [None] * len(sequences)
    try:
        for chunk in micro_batches(range(len(sequences)), sequences.lengths(), micro_batch_size):
            logprobs, _, mask = policy.token_logprobs(
                [sequences.prompt_ids[i] for i in chunk], [sequences.response_ids[i] for i in chunk]
            )
            for row, i in enumerate(chunk):
                n = int(mask[row].sum().item())
                result[i] = logprobs[row, :n].float().cpu()
    finally:
        policy.model.train(was_training)
    return [r for r in result if r is not None]


def ppo_update(
    policy: ScoringPolicy,
    optimizer: torch.optim.Optimizer,
    sequences: Sequences,
    advantages: torch.Tensor,
    old_logprobs: Optional[Sequence[torch.Tensor]],
    ref_logprobs: Optional[Sequence[torch.Tensor]],
    config: OptimConfig,
    generator: Optional[torch.Generator] = None,
) -> Dict[str, float]:
    """``ppo_epochs`` passes of ``mini_batches`` optimizer steps; returns the mean of the loss statistics.

    Args:
        advantages: ``(N,)`` one scalar per step.
        old_logprobs / ref_logprobs: per step, ``(len(response),)``. ``old_logprobs=None`` is allowed
            only for a single optimizer step (one epoch, one mini-batch): the weights have not moved
            yet, so the old log-probabilities are the current ones, detached, and a forward pass is saved.
    """
    if old_logprobs is None and config.ppo_epochs * config.mini_batches != 1:
        raise ValueError("old_logprobs: needed when there is more than one optimizer step per batch")
    n = len(sequences)
    if advantages.shape != (n,):
        raise ValueError(f"advantages: expected shape ({n},), got {tuple(advantages.shape)}")
    policy.model.train()
    lengths = sequences.lengths()
    response_tokens = [len(r) for r in sequences.response_ids]
    device = next(policy.model.parameters()).device
    totals: Dict[str, float] = {}
    updates = 0
    for _ in range(config.ppo_epochs):
        order = torch.randperm(n, generator=generator).tolist()
        for part in range(config.mini_batches):
            mini = order[part * n // config.mini_batches : (part + 1) * n // config.mini_batches]
            if not mini:
                continue
            stats = _mini_batch_step(
                policy, optimizer, sequences, advantages, old_logprobs, ref_logprobs, config, mini, lengths,
                response_tokens, device,
            )
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value
            updates += 1
    return {key: value / max(updates, 1) for key, value in totals.items()}


def _mini_batch_step(policy, optimizer, sequences, advantages, old_logprobs, ref_logprobs, config, mini, lengths,
                     response_tokens, device) -> Dict[str, float]:
    optimizer.zero_grad(set_to_none=True)
    token_mean = config.loss_agg == "token-mean"
    mini_total = sum(response_tokens[i] for i in mini) if token_mean else len(mini)
    stats: Dict[str, float] = {}
    for chunk in micro_batches(mini, lengths, config.micro_batch_size):
        logprobs, entropy, mask = policy.token_logprobs(
            [sequences.prompt_ids[i] for i in chunk],
            [sequences.response_ids[i] for i in chunk],
            with_entropy=config.entropy_coef > 0,
        )
        if old_logprobs is None:
            old = logprobs.detach().float()
        else:
            old = _pad([old_logprobs[i] for i in chunk]).to(device)
        ref = _pad([ref_logprobs[i] for i in chunk]).to(device) if ref_logprobs is not None else None
        loss, chunk_stats = actor_loss(
            logprobs.float(),
            old,
            advantages[chunk].to(device).float(),
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
        weight = (sum(response_tokens[i] for i in chunk) if token_mean else len(chunk)) / mini_total
        (loss * weight).backward()
        for key, value in chunk_stats.items():
            stats[key] = stats.get(key, 0.0) + float(value) * weight
        stats["loss"] = stats.get("loss", 0.0) + float(loss.detach()) * weight
    grad_norm = torch.nn.utils.clip_grad_norm_(policy.model.parameters(), config.grad_clip)
    stats["grad_norm"] = float(grad_norm)
    if torch.isfinite(grad_norm):
        optimizer.step()
    else:  # a non-finite gradient would poison the weights: skip this step and say so
        stats["skipped_steps"] = 1.0
    optimizer.zero_grad(set_to_none=True)
    stats.setdefault("skipped_steps", 0.0)
    return stats
