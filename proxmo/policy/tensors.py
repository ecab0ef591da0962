"""Tensor layouts and guards shared by candidate scoring, decoding and log-probs: padding, chunking by a token
budget, additive masks, a KV cache in the compute dtype, and the checks of a policy call's arguments."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor

GREEDY_TEMPERATURE = 1e-5
"""Temperatures at or below this act greedily: softmax(x / t) is a one-hot anyway, and argmax is exact."""


def check_temperature(temperature: float, allow_zero: bool) -> None:
    if temperature < 0 or (not allow_zero and temperature == 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"temperature: must be {bound}, got {temperature}")


def check_prompt(index: int, prompt: Sequence[int]) -> None:
    if len(prompt) == 0:
        raise ValueError(f"prompt_ids[{index}]: empty prompt (a response needs at least one token of context)")


def row_chunks(rows: Sequence[Sequence[int]], budget: int) -> Iterator[list[Sequence[int]]]:
    """Consecutive runs of rows whose count times longest length fits ``budget`` (a single row always fits)."""
    chunk: list[Sequence[int]] = []
    longest = 0
    for row in rows:
        if chunk and (len(chunk) + 1) * max(longest, len(row)) > budget:
            yield chunk
            chunk, longest = [], 0
        chunk.append(row)
        longest = max(longest, len(row))
    if chunk:
        yield chunk


def stored_in(cache, dtype: Optional[torch.dtype]):
    """``cache`` storing keys and values in ``dtype`` (the compute dtype of autocast over float32 weights).

    Under autocast the keys leave the rotary embedding in float32 (its cos/sin follow the float32 residual stream)
    while the values leave their projection in the compute dtype. A static cache holds one dtype and cannot take
    both; a dynamic one would keep the keys at twice the memory. Attention casts both to the compute dtype anyway
    (autocast), so storing them cast changes no result.
    """
    if dtype is None:
        return cache
    update = cache.update

    def cast_update(key_states: Tensor, value_states: Tensor, *args, **kwargs):
        return update(key_states.to(dtype), value_states.to(dtype), *args, **kwargs)

    cache.update = cast_update
    return cache


def pad_right(rows: Sequence[Sequence[int]], width: int, value: int, device) -> Tensor:
    """[len(rows), width] long tensor, each row followed by ``value``."""
    padded = [list(row) + [value] * (width - len(row)) for row in rows]
    # reshape: torch.tensor of empty rows has no second dimension.
    return torch.tensor(padded, dtype=torch.long, device=device).reshape(len(rows), width)


def pad_left(rows: Sequence[Sequence[int]], value: int, device) -> tuple[Tensor, Tensor]:
    """(ids, attention mask), both [B, longest], real tokens flush right."""
    width = max(len(row) for row in rows)
    ids = [[value] * (width - len(row)) + list(row) for row in rows]
    mask = [[0] * (width - len(row)) + [1] * len(row) for row in rows]
    return torch.tensor(ids, device=device), torch.tensor(mask, device=device)


@contextmanager
def eval_mode(model) -> Iterator[None]:
    """Acting runs without dropout and with the KV cache (checkpointing turns the cache off in train mode)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def additive_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean attention mask as the additive float mask added to the attention scores."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


__all__ = ["GREEDY_TEMPERATURE", "additive_mask", "check_prompt", "check_temperature", "eval_mode", "pad_left", "pad_right",
           "row_chunks", "stored_in"]
