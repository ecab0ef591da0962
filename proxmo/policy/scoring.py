"""Choose mode: a policy's scores of candidate actions, the distribution over them, and the draw.

A candidate's score is the sum (or mean) of its response tokens' log-probs given the prompt. Prompts with all of
their candidates are batched by a token budget, and each batch is scored in one packed forward pass (short rows)
or in two passes over the prompt's cache (long rows); both give the same numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import DynamicCache

from proxmo.policy.tensors import additive_mask, pad_right, row_chunks, stored_in

if TYPE_CHECKING:
    from proxmo.policy.policy import Policy

CHOOSE_TOKEN_BUDGET = 16384
"""Tokens (prompts plus their candidates) packed into one forward pass at most; a row is one prompt and all of its
candidates, and the attention mask grows with rows x width^2."""

PACKED_MAX_WIDTH = 160
"""Rows of a prompt and its candidates up to this many tokens are scored in one packed pass, longer ones in two
passes (prompt, then candidates against its cache). Measured on the demo presets (one CPU thread): packed is
faster for ALFWorld's ~80-token rows, two passes for WebShop's ~320-token rows."""


def candidate_scores(policy: "Policy", prompt_ids, candidate_ids, length_normalize: bool) -> list[Tensor]:
    """Per prompt, the float32 scores of its candidates, prompts batched by the token budget.

    Two ways give the same numbers: short rows (prompt + candidates within :data:`PACKED_MAX_WIDTH`
    tokens) go through one packed forward pass, where one model call costs less than the attention
    it saves; longer ones through two passes over the prompt's cache. Gradient checkpointing drops
    that cache, so with it every row is packed.
    """
    checkpointing = getattr(policy.model, "is_activation_checkpointing", False)
    rows = [len(p) + sum(len(r) - 1 for r in c) for p, c in zip(prompt_ids, candidate_ids)]
    scores: list[Tensor] = []
    start = 0
    for chunk in row_chunks([[0] * n for n in rows], CHOOSE_TOKEN_BUDGET):
        stop = start + len(chunk)
        packed = checkpointing or max(len(row) for row in chunk) <= PACKED_MAX_WIDTH
        score = packed_scores if packed else cached_scores
        scores.extend(score(policy, prompt_ids[start:stop], candidate_ids[start:stop], length_normalize))
        start = stop
    return scores


def cached_scores(policy: "Policy", prompt_ids, candidate_ids, length_normalize: bool) -> list[Tensor]:
    """Two forward passes: the prompts (right-padded, causal), then all candidates against their cache.

    Row i of the second pass holds every candidate of prompt i after another; a block mask lets a
    candidate token see its own prompt's real tokens and the earlier tokens of its own candidate,
    and its position ids continue from the end of the prompt. The prompt is computed once for all of
    its candidates, and attention costs candidates x (prompt + candidates), not their square.
    """
    device = policy.device
    prompt_width = max(len(p) for p in prompt_ids)
    fed = [[t for r in candidates for t in r[:-1]] for candidates in candidate_ids]
    width = max(1, max(len(f) for f in fed))
    # Right padding needs no mask in the first pass: causal attention never lets a real token see a pad.
    prompts = pad_right(prompt_ids, prompt_width, 0, device)
    segment, positions = [], []
    token_row, token_col, token_target, token_candidate, lengths, counts = [], [], [], [], [], []
    for row, (prompt, candidates) in enumerate(zip(prompt_ids, candidate_ids)):
        seg, pos = [], []
        for k, response in enumerate(candidates):
            if not response:
                raise ValueError(f"candidate_ids[{row}][{k}]: an empty response cannot be scored")
            first = len(seg)
            # The first token is predicted by the prompt's last position (first pass, column -1 below).
            token_col.extend([-(len(prompt))] + [prompt_width + first + j for j in range(len(response) - 1)])
            seg.extend([k + 1] * (len(response) - 1))
            pos.extend(range(len(prompt), len(prompt) + len(response) - 1))
            token_row.extend([row] * len(response))
            token_target.extend(response)
            token_candidate.extend([len(lengths)] * len(response))
            lengths.append(len(response))
        segment.append(seg)
        positions.append(pos)
        counts.append(len(candidates))
    segment_t = pad_right(segment, width, -1, device)
    prompt_lengths = torch.tensor([len(p) for p in prompt_ids], device=device)
    mask = _candidate_mask(segment_t, prompt_lengths, prompt_width)
    decoder = policy.model.get_decoder()
    with policy.compute():
        # An empty cache of our own: the model would build one from its config, which costs milliseconds.
        first = decoder(input_ids=prompts, use_cache=True,
                        past_key_values=stored_in(DynamicCache(), policy.compute_dtype))
        second = decoder(
            input_ids=pad_right(fed, width, 0, device),
            attention_mask=additive_mask(mask, mask_dtype(policy)),
            position_ids=pad_right(positions, width, 0, device),
            past_key_values=first.past_key_values,
            use_cache=True,
        )
        hidden = torch.cat([first.last_hidden_state, second.last_hidden_state], dim=1)
        rows = torch.tensor(token_row, device=device)
        cols = torch.tensor(token_col, device=device)
        # Negative columns mark "the prompt's last token": -len(prompt) -> len(prompt) - 1.
        cols = torch.where(cols < 0, -cols - 1, cols)
        logits = policy.model.get_output_embeddings()(hidden[rows, cols])
    return _candidate_totals(logits, torch.tensor(token_target, device=device),
                             torch.tensor(token_candidate, device=device),
                             torch.tensor(lengths, dtype=torch.float32, device=device), counts, length_normalize)


def packed_scores(policy: "Policy", prompt_ids, candidate_ids, length_normalize: bool) -> list[Tensor]:
    """One forward pass over rows ``prompt + candidate_1 + candidate_2 + ...``.

    A block attention mask lets each candidate see the prompt and itself only, and its position ids
    continue from the end of the prompt, so every candidate is scored as if it followed the prompt
    alone, while the prompt's keys and values are computed once for all of its candidates. Only the
    positions that predict a candidate token go through the output projection.
    """
    packed = _pack_candidates(prompt_ids, candidate_ids, policy.device)
    with policy.compute():
        hidden = policy.model.get_decoder()(
            input_ids=packed.input_ids,
            attention_mask=additive_mask(packed.attention_mask(), mask_dtype(policy)),
            position_ids=packed.position_ids,
            use_cache=False,
        ).last_hidden_state
        logits = policy.model.get_output_embeddings()(hidden[packed.token_row, packed.token_col])
    return _candidate_totals(logits, packed.token_target, packed.token_candidate, packed.candidate_length,
                             packed.counts, length_normalize)


def mask_dtype(policy: "Policy") -> torch.dtype:
    """The dtype of additive attention masks: that of the attention scores.

    Additive masks work with every attention implementation that takes a mask (eager adds it to its
    scores), and SDPA on the CPU runs several times faster with a float mask than with a boolean one.
    """
    implementation = getattr(policy.model.config, "_attn_implementation", None) or "eager"
    if "flash" in implementation:
        raise ValueError(f"choose: attention {implementation!r} cannot take the block mask that candidate "
                         "scoring needs; load the model with attn_implementation='sdpa' or 'eager'")
    return policy.compute_dtype or next(policy.model.parameters()).dtype


class _Packed(NamedTuple):
    """Prompts and their candidates packed one prompt per row (see :func:`packed_scores`)."""

    input_ids: Tensor  # [B, W]
    position_ids: Tensor  # [B, W]
    segment: Tensor  # [B, W]: 0 prompt, k + 1 candidate k of the row, -1 padding
    token_row: Tensor  # [T] for every scored candidate token: its row,
    token_col: Tensor  # [T] the column whose output predicts it,
    token_target: Tensor  # [T] its id,
    token_candidate: Tensor  # [T] and its candidate's index over the whole batch
    candidate_length: Tensor  # [C] tokens per candidate (float)
    counts: list[int]  # candidates per row

    def attention_mask(self) -> Tensor:
        """[B, 1, W, W]: a query sees earlier keys of the prompt and of its own candidate; padding sees itself."""
        width = self.segment.shape[1]
        columns = torch.arange(width, device=self.segment.device)
        causal = columns[None, :] <= columns[:, None]  # [query, key]
        query, key = self.segment[:, :, None], self.segment[:, None, :]
        allowed = causal & (key >= 0) & ((key == 0) | (key == query))
        allowed = allowed | (torch.eye(width, dtype=torch.bool, device=self.segment.device) & (query < 0))
        allowed = allowed[:, None]
        return allowed


def _pack_candidates(prompt_ids: Sequence[Sequence[int]], candidate_ids: Sequence[Sequence[Sequence[int]]],
                     device) -> _Packed:
    """Rows ``prompt + c_1[:-1] + c_2[:-1] + ...``: the last token of a candidate predicts nothing."""
    rows, positions, segments, counts = [], [], [], []
    token_row, token_col, token_target, token_candidate, lengths = [], [], [], [], []
    for row, (prompt, candidates) in enumerate(zip(prompt_ids, candidate_ids)):
        ids, pos, seg = list(prompt), list(range(len(prompt))), [0] * len(prompt)
        for k, response in enumerate(candidates):
            if not response:
                raise ValueError(f"candidate_ids[{row}][{k}]: an empty response cannot be scored")
            index = len(lengths)
            first = len(ids)
            columns = [len(prompt) - 1] + list(range(first, first + len(response) - 1))
            ids.extend(response[:-1])
            pos.extend(range(len(prompt), len(prompt) + len(response) - 1))
            seg.extend([k + 1] * (len(response) - 1))
            token_row.extend([row] * len(response))
            token_col.extend(columns)
            token_target.extend(response)
            token_candidate.extend([index] * len(response))
            lengths.append(len(response))
        rows.append(ids)
        positions.append(pos)
        segments.append(seg)
        counts.append(len(candidates))
    width = max(len(r) for r in rows)
    return _Packed(
        input_ids=pad_right(rows, width, 0, device),
        position_ids=pad_right(positions, width, 0, device),
        segment=pad_right(segments, width, -1, device),
        token_row=torch.tensor(token_row, device=device),
        token_col=torch.tensor(token_col, device=device),
        token_target=torch.tensor(token_target, device=device),
        token_candidate=torch.tensor(token_candidate, device=device),
        candidate_length=torch.tensor(lengths, dtype=torch.float32, device=device),
        counts=counts,
    )


def _candidate_totals(logits: Tensor, targets: Tensor, candidate: Tensor, lengths: Tensor, counts: list[int],
                      length_normalize: bool) -> list[Tensor]:
    """Per prompt, its candidates' summed (or mean) token log-probs.

    logits: [T, V] predicting the scored tokens ``targets`` [T]; candidate: [T] each token's candidate over
    the batch; lengths: [C] tokens per candidate; counts: candidates per prompt.
    """
    token_logprobs = F.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    totals = torch.zeros(len(lengths), device=logits.device).index_add(0, candidate, token_logprobs)
    if length_normalize:
        totals = totals / lengths
    return list(totals.split(counts))


def _candidate_mask(segment: Tensor, prompt_lengths: Tensor, prompt_width: int) -> Tensor:
    """[B, 1, W, P + W] boolean mask of the second pass: real prompt keys, and earlier keys of the same candidate.

    Padding queries see their row's first key, so that no row of the softmax is empty.
    """
    width = segment.shape[1]
    keys = torch.arange(prompt_width, device=segment.device)
    sees_prompt = (keys[None, :] < prompt_lengths[:, None])[:, None, :].expand(-1, width, -1)
    columns = torch.arange(width, device=segment.device)
    causal = columns[None, :] <= columns[:, None]
    query, key = segment[:, :, None], segment[:, None, :]
    own = causal & (key == query) & (query > 0)
    padding = (query < 0) & (keys[None, None, :1] == 0)
    sees_prompt = sees_prompt & (query > 0) | torch.nn.functional.pad(padding, (0, prompt_width - 1))
    return torch.cat([sees_prompt, own], dim=-1)[:, None]


def sample_categorical(logpis: Sequence[Tensor], generator: Optional[torch.Generator]) -> list[int]:
    """One index per distribution (given as log-probs), one uniform draw each, in order.

    The uniforms come from ``generator`` (on its own device), so a seed reproduces the draws wherever the
    model runs; a one-hot distribution (greedy) still consumes its draw, so greedy and sampled runs stay aligned.
    """
    rng_device = generator.device if generator is not None else torch.device("cpu")
    uniforms = torch.rand(len(logpis), generator=generator, device=rng_device, dtype=torch.float64).tolist()
    picks = []
    for logpi, u in zip(logpis, uniforms):
        cdf = logpi.detach().double().exp().cumsum(-1).cpu()
        k = int(torch.searchsorted(cdf, torch.tensor([u * float(cdf[-1])], dtype=torch.float64), right=True)[0])
        picks.append(min(k, len(cdf) - 1))
    return picks


__all__ = ["CHOOSE_TOKEN_BUDGET", "PACKED_MAX_WIDTH", "candidate_scores", "sample_categorical"]
