"""Generate mode: free-form responses sampled token by token over a dynamic or a static KV cache, and the tokens
that end a response."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import DynamicCache

from proxmo.policy.model import IM_END
from proxmo.policy.tensors import GREEDY_TEMPERATURE, pad_left, stored_in

if TYPE_CHECKING:
    from proxmo.policy.policy import Policy


def sample_loop(policy: "Policy", prompt_ids, temperature, generator, cap: int) -> list[list[int]]:
    """Up to ``cap`` tokens per prompt, sampled at ``temperature`` (greedy near 0) until a stop token; over a dynamic
    KV cache that finished rows leave, or the static one of ``generation_cache=static``."""
    if policy.config.generation_cache == "static":
        return sample_loop_static(policy, prompt_ids, temperature, generator, cap)
    inputs, attention = pad_left(prompt_ids, policy.pad_id, policy.device)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    out = policy.model(
        input_ids=inputs, attention_mask=attention, position_ids=positions, use_cache=True, logits_to_keep=1,
        past_key_values=stored_in(DynamicCache(config=policy.model.config), policy.compute_dtype),
    )
    cache, next_position = out.past_key_values, positions[:, -1:] + 1
    responses: list[list[int]] = [[] for _ in prompt_ids]
    active = list(range(len(prompt_ids)))  # the prompt each batch row belongs to
    for step in range(cap):
        # Every prompt's uniform is drawn each step, finished or not: the samples do not depend on which
        # rows are still decoding (and equal those of the static cache, which decodes them all).
        tokens = _sample(out.logits[:, -1], temperature, generator, rows=active, total=len(prompt_ids))
        keep = []
        for position, (row, token) in enumerate(zip(active, tokens.tolist())):
            responses[row].append(token)
            if token not in policy.stop_ids:
                keep.append(position)
        if not keep or step == cap - 1:
            break
        if len(keep) < len(active):  # finished rows leave the batch, and their part of the cache with them
            index = torch.tensor(keep, device=policy.device)
            cache.batch_select_indices(index)
            attention, next_position, tokens = attention[index], next_position[index], tokens[index]
            active = [active[position] for position in keep]
        attention = torch.cat([attention, attention.new_ones(len(active), 1)], dim=-1)
        out = policy.model(
            input_ids=tokens[:, None],
            attention_mask=attention,
            position_ids=next_position,
            past_key_values=cache,
            use_cache=True,
        )
        next_position = next_position + 1
    return responses


def sample_loop_static(policy: "Policy", prompt_ids, temperature, generator, cap: int) -> list[list[int]]:
    """:func:`sample_loop` over a static KV cache: every tensor keeps its shape from the first decoding step to
    the last (the attention mask spans prompt + cap from the start; the causal mask hides the slots not
    written yet), so the one-token step can be compiled once (CUDA graphs). Finished rows are tracked on the
    device and checked every few tokens, not synchronised after each one. The samples are those of the
    dynamic cache: the same logits, the same draws."""
    from transformers import StaticCache

    inputs, attention = pad_left(prompt_ids, policy.pad_id, policy.device)
    rows, width = inputs.shape
    cache = stored_in(StaticCache(config=policy.model.config, max_cache_len=width + cap), policy.compute_dtype)
    mask = torch.cat([attention, attention.new_ones(rows, cap)], dim=-1)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    out = policy.model(input_ids=inputs, attention_mask=mask[:, :width], position_ids=positions,
                       past_key_values=cache, use_cache=True, logits_to_keep=1,
                       cache_position=torch.arange(width, device=policy.device))
    step_fn = decode_step(policy)
    stops = torch.tensor(sorted(policy.stop_ids), device=policy.device)
    tokens_so_far = []
    done = torch.zeros(rows, dtype=torch.bool, device=policy.device)
    next_position = positions[:, -1:] + 1
    logits = out.logits[:, -1]
    for step in range(cap):
        tokens = _sample(logits, temperature, generator)
        tokens_so_far.append(torch.where(done, torch.full_like(tokens, -1), tokens))
        done = done | torch.isin(tokens, stops)
        if step == cap - 1 or ((step + 1) % 8 == 0 and bool(done.all())):
            break
        logits = step_fn(tokens[:, None], mask, next_position, cache,
                         torch.tensor([width + step], device=policy.device))
        next_position = next_position + 1
    table = torch.stack(tokens_so_far, dim=1).tolist()
    return [[t for t in row if t >= 0] for row in table]


def decode_step(policy: "Policy"):
    """One token for every row over the static cache: the model's forward, compiled when asked (compiled once:
    every call has the same shapes)."""
    def step(tokens, mask, position, cache, cache_position):
        out = policy.model(input_ids=tokens, attention_mask=mask, position_ids=position, past_key_values=cache,
                           use_cache=True, cache_position=cache_position)
        return out.logits[:, -1]

    if policy.config.compile_decode:
        if policy._compiled_step is None:  # CUDA graphs on CUDA; fused kernels elsewhere
            mode = "reduce-overhead" if policy.device.type == "cuda" else None
            policy._compiled_step = torch.compile(step, mode=mode, fullgraph=False)
        return policy._compiled_step
    return step


def _sample(logits: Tensor, temperature: float, generator: Optional[torch.Generator],
            rows: Optional[Sequence[int]] = None, total: Optional[int] = None) -> Tensor:
    """One index per row of ``logits`` [N, V]: argmax when (near) greedy, else a draw from softmax(logits / t).

    The uniforms come from ``generator`` (on its own device, CPU usually), so a seed reproduces the draws
    whichever device the model runs on; inverting the CDF turns them into indices. With ``rows`` and
    ``total``, ``total`` uniforms are drawn and row i of ``logits`` uses the one of ``rows[i]``: the same
    draws as when all ``total`` rows are sampled.
    """
    if temperature <= GREEDY_TEMPERATURE:
        return logits.argmax(dim=-1)
    probs = F.softmax(logits.double() / temperature, dim=-1)
    cdf = probs.cumsum(dim=-1)
    rng_device = generator.device if generator is not None else torch.device("cpu")
    uniforms = torch.rand(total or logits.shape[0], generator=generator, device=rng_device, dtype=torch.float64)
    if rows is not None:
        uniforms = uniforms[torch.as_tensor(list(rows), device=rng_device)]
    targets = uniforms.to(logits.device)[:, None] * cdf[:, -1:]
    return torch.searchsorted(cdf, targets, right=True).squeeze(-1).clamp(max=logits.shape[-1] - 1)


def end_of_turn_id(tokenizer) -> int:
    """<|im_end|> when it is one token of the vocabulary (ChatML models), else the tokenizer's eos."""
    vocab = tokenizer.get_vocab()
    if IM_END in vocab:
        return int(vocab[IM_END])
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer: has neither <|im_end|> nor an eos token, so responses cannot be terminated")
    return int(tokenizer.eos_token_id)


def stop_ids_of(model, tokenizer, end_id: int) -> frozenset[int]:
    """Every token that ends a generated response: end of turn, eos, and the generation config's eos ids."""
    ids = {end_id}
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured is not None:
        ids.update(int(i) for i in configured)
    return frozenset(ids)


__all__ = ["decode_step", "end_of_turn_id", "sample_loop", "sample_loop_static", "stop_ids_of"]
