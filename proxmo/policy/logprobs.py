"""Training: the log-prob (and entropy) of every response token given its prompt, from one forward pass, with the
vocabulary projection chunked when asked so that a [batch, response, vocabulary] block never exists at once."""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from proxmo.policy.policy import Policy


def response_logits(policy: "Policy", prompt_ids, response_ids, width: int, hidden_only: bool = False) -> Tensor:
    """Logits [B, width, V] predicting each response token (``hidden_only``: the last hidden states
    [B, width, H] they are projected from).

    Prompts are left-padded and responses right-padded, so that every response starts in the same
    column: the logits needed are then the last ``width`` columns for all rows, and the model's
    ``logits_to_keep`` skips the vocabulary projection of every prompt position.
    """
    prompt_width = max(len(p) for p in prompt_ids)
    rows, attention = [], []
    for prompt, response in zip(prompt_ids, response_ids):
        left, right = prompt_width - len(prompt), width - len(response)
        rows.append([policy.pad_id] * left + list(prompt) + list(response) + [policy.pad_id] * right)
        attention.append([0] * left + [1] * (len(prompt) + len(response)) + [0] * right)
    # The last column is never an input: nothing is predicted after the final response token.
    inputs = torch.tensor(rows, device=policy.device)[:, :-1]
    attention_mask = torch.tensor(attention, device=policy.device)[:, :-1]
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    if hidden_only:
        out = policy.model.get_decoder()(input_ids=inputs, attention_mask=attention_mask, position_ids=positions,
                                         use_cache=False)
        return out.last_hidden_state[:, -width:]
    out = policy.model(
        input_ids=inputs,
        attention_mask=attention_mask,
        position_ids=positions,
        use_cache=False,
        logits_to_keep=width,
    )
    return out.logits


def token_stats(logits: Tensor, targets: Tensor, temperature: float, with_entropy: bool):
    """Log-prob of each target and (optionally) the entropy, from logits [..., V], in float32."""
    logp_all = F.log_softmax(logits.float() / temperature, dim=-1)
    logprobs = logp_all.gather(-1, targets[..., None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1) if with_entropy else None
    return logprobs, entropy


def chunked_token_stats(hidden: Tensor, head: torch.nn.Module, targets: Tensor, temperature: float,
                        with_entropy: bool, chunk_tokens: int, compute: Callable[[], ContextManager] = nullcontext):
    """:func:`token_stats` of ``head(hidden)`` over ``chunk_tokens`` tokens at a time.

    Each chunk's logits exist only while it is computed: under autograd the chunk is checkpointed, so the
    backward pass recomputes its logits instead of keeping them. Peak memory is one [chunk, V] float32 block
    (a few of them in the backward) instead of [B, R, V]. ``compute`` is the autocast context of the head.
    """
    from torch.utils.checkpoint import checkpoint

    shape = targets.shape
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    flat_targets = targets.reshape(-1)

    def stats(h: Tensor, t: Tensor):
        with compute():
            logits = head(h)
        logprobs, entropy = token_stats(logits, t, temperature, with_entropy)
        return logprobs, (entropy if entropy is not None else torch.zeros_like(logprobs))

    parts_lp, parts_ent = [], []
    for start in range(0, flat_targets.numel(), chunk_tokens):
        h, t = flat_hidden[start:start + chunk_tokens], flat_targets[start:start + chunk_tokens]
        if torch.is_grad_enabled() and (h.requires_grad or any(p.requires_grad for p in head.parameters())):
            logprobs, entropy = checkpoint(stats, h, t, use_reentrant=False)
        else:
            logprobs, entropy = stats(h, t)
        parts_lp.append(logprobs)
        parts_ent.append(entropy)
    return torch.cat(parts_lp).reshape(shape), (torch.cat(parts_ent).reshape(shape) if with_entropy else None)


__all__ = ["chunked_token_stats", "response_logits", "token_stats"]
