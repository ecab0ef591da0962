"""Policy: a language model as the RL policy of a text agent: pick or generate actions, score token log-probs."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from proxmo.policy.config import ModelConfig
from proxmo.policy.model import IM_END, load_policy_model

# Temperatures at or below this sample the argmax: softmax(x / t) is a one-hot anyway, and argmax is exact.
GREEDY_TEMPERATURE = 1e-5

# `choose` scores at most this many (prompt + candidate) tokens in one forward pass: it bounds the memory of
# the prompt's key/value cache copied once per candidate.
CHOOSE_TOKEN_BUDGET = 32768

# `generate` decodes at most this many padded prompt tokens at once: the prefill's activations and
# attention mask grow with rows x longest prompt. Chunks are consecutive rows, so a seed still reproduces.
GENERATE_TOKEN_BUDGET = 65536


@dataclass
class Choice:
    """One sampled action."""

    index: int  # index into the candidates (choose) or -1 (generate)
    text: str  # the response text (for choose: the formatted candidate)
    response_ids: list[int]  # response token ids, including the final end-of-turn / eos token when there is one


def _identity(action: str) -> str:
    return action


class Policy:
    """A causal language model with its tokenizer, used as the policy of a multi-turn text agent.

    Prompts are token id lists made by :meth:`encode_prompt`; responses end with the end-of-turn token
    (``<|im_end|>`` when the vocabulary has it, else the tokenizer's eos).
    """

    def __init__(self, model, tokenizer, config: ModelConfig):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.end_id = _end_of_turn_id(tokenizer)
        self.stop_ids = _stop_ids(model, tokenizer, self.end_id)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.end_id

    @classmethod
    def from_config(cls, config: ModelConfig, corpus: Sequence[str] = ()) -> "Policy":
        """Build or load the model described by ``config`` (``corpus`` trains the tiny tokenizer)."""
        model, tokenizer = load_policy_model(config, corpus)
        return cls(model, tokenizer, config)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live."""
        return next(self.model.parameters()).device

    # ----------------------------------------------------------------- encoding

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of ``prompt`` as one user turn followed by the opening of the assistant turn.

        Without a chat template the raw text is encoded. Longer than ``max_prompt_tokens``: the start is
        cut, because the end holds the latest observation and the generation prompt.
        """
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            ids = self.tokenizer(prompt)["input_ids"]
        return list(ids[-self.config.max_prompt_tokens :])

    def encode_response(self, text: str) -> list[int]:
        """Token ids of ``text`` followed by the end-of-turn token."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + [self.end_id]

    # ----------------------------------------------------------------- acting

    @torch.no_grad()
    def choose(
        self,
        prompt_ids: list[list[int]],
        candidates: list[list[str]],
        temperature: float,
        generator: Optional[torch.Generator] = None,
        response_format: Callable[[str], str] = _identity,
        length_normalize: bool = False,
    ) -> list[Choice]:
        """Pick one candidate action per prompt.

        Candidate k of prompt i is scored by the summed log-prob of ``encode_response(response_format(c))``
        given the prompt (divided by its token count with ``length_normalize``); k is drawn from
        softmax(score / temperature), or is the argmax when the temperature is (near) zero.

        Summed log-probs favour short candidates by a factor of about the vocabulary size per token
        at initialisation, so an untrained model always picks the shortest action; the per-token mean
        starts near uniform and explores.
        """
        _check_temperature(temperature, allow_zero=True)
        texts, encoded = self._encode_candidates(prompt_ids, candidates, response_format)
        choices = []
        for i, prompt in enumerate(prompt_ids):
            scores = self._score_one_prompt(prompt, encoded[i])
            if length_normalize:
                scores = scores / torch.tensor([len(r) for r in encoded[i]], dtype=scores.dtype)
            k = int(_sample(scores[None], temperature, generator)[0])
            choices.append(Choice(index=k, text=texts[i][k], response_ids=encoded[i][k]))
        return choices

    @torch.no_grad()
    def score_candidates(
        self,
        prompt_ids: list[list[int]],
        candidates: list[list[str]],
        response_format: Callable[[str], str] = _identity,
    ) -> list[Tensor]:
        """The scores ``choose`` samples from: per prompt, a float32 CPU tensor of summed response log-probs."""
        _, encoded = self._encode_candidates(prompt_ids, candidates, response_format)
        return [self._score_one_prompt(prompt, responses) for prompt, responses in zip(prompt_ids, encoded)]

    def _encode_candidates(self, prompt_ids, candidates, response_format):
        """(formatted texts, their response ids) per prompt, checked before any model work."""
        if len(candidates) != len(prompt_ids):
            raise ValueError(f"candidates: {len(candidates)} lists for {len(prompt_ids)} prompts")
        texts, encoded = [], []
        for i, (prompt, actions) in enumerate(zip(prompt_ids, candidates)):
            _check_prompt(i, prompt)
            if not actions:
                raise ValueError(f"candidates[{i}]: prompt {i} has no candidate actions")
            texts.append([response_format(action) for action in actions])
            encoded.append([self.encode_response(text) for text in texts[-1]])
        return texts, encoded

    def _score_one_prompt(self, prompt: list[int], responses: list[list[int]]) -> Tensor:
        """Summed log-prob of each response given the prompt; the prompt runs once, its cache serves all."""
        with _eval_mode(self.model):
            out = self.model(input_ids=torch.tensor([prompt], device=self.device), use_cache=True, logits_to_keep=1)
            first = F.log_softmax(out.logits[0, -1].float(), dim=-1)
            scores = first[torch.tensor([r[0] for r in responses], device=self.device)]
            scores = scores + self._continuation_logprobs(out.past_key_values, len(prompt), responses)
        return scores.cpu()

    def _continuation_logprobs(self, cache, prompt_len: int, responses: list[list[int]]) -> Tensor:
        """Summed log-probs of response tokens 1.. (token 0 is scored from the prompt's last logit)."""
        per_chunk = max(1, CHOOSE_TOKEN_BUDGET // (prompt_len + max(len(r) for r in responses)))
        chunks = [responses[start : start + per_chunk] for start in range(0, len(responses), per_chunk)]
        sums = []
        for n, chunk in enumerate(chunks):
            # The forward appends to the cache in place; keep the prompt-only cache for the next chunk.
            chunk_cache = cache if n == len(chunks) - 1 else copy.deepcopy(cache)
            sums.append(self._chunk_logprobs(chunk_cache, prompt_len, chunk))
        return torch.cat(sums)

    def _chunk_logprobs(self, cache, prompt_len: int, responses: list[list[int]]) -> Tensor:
        width = max(len(r) for r in responses) - 1
        if width == 0:
            return torch.zeros(len(responses), device=self.device)
        inputs = _pad_right([r[:-1] for r in responses], width, self.pad_id, self.device)
        targets = _pad_right([r[1:] for r in responses], width, self.pad_id, self.device)
        mask = _pad_right([[1] * (len(r) - 1) for r in responses], width, 0, self.device).float()
        cache.batch_repeat_interleave(len(responses))
        # Right padding needs no attention mask: causal attention never lets a real token see a later pad.
        positions = torch.arange(prompt_len, prompt_len + width, device=self.device).expand(len(responses), -1)
        out = self.model(input_ids=inputs, position_ids=positions, past_key_values=cache, use_cache=True)
        logprobs = F.log_softmax(out.logits.float(), dim=-1).gather(-1, targets[..., None]).squeeze(-1)
        return (logprobs * mask).sum(-1)

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: list[list[int]],
        temperature: float,
        generator: Optional[torch.Generator] = None,
        max_new_tokens: Optional[int] = None,
    ) -> list[Choice]:
        """Free-form responses: sample (or greedy at temperature 0) until a stop token or the token cap."""
        _check_temperature(temperature, allow_zero=True)
        cap = self.config.max_response_tokens if max_new_tokens is None else max_new_tokens
        if cap < 1:
            raise ValueError(f"max_new_tokens: must be >= 1, got {cap}")
        for i, prompt in enumerate(prompt_ids):
            _check_prompt(i, prompt)
        responses: list[list[int]] = []
        with _eval_mode(self.model):
            for rows in _row_chunks(prompt_ids, GENERATE_TOKEN_BUDGET):
                responses.extend(self._sample_loop(rows, temperature, generator, cap))
        return [
            Choice(index=-1, text=self.tokenizer.decode(ids, skip_special_tokens=True), response_ids=ids)
            for ids in responses
        ]

    def _sample_loop(self, prompt_ids, temperature, generator, cap: int) -> list[list[int]]:
        inputs, attention = _pad_left(prompt_ids, self.pad_id, self.device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=inputs, attention_mask=attention, position_ids=positions, use_cache=True, logits_to_keep=1
        )
        cache, next_position = out.past_key_values, positions[:, -1:] + 1
        responses: list[list[int]] = [[] for _ in prompt_ids]
        done = [False] * len(prompt_ids)
        for step in range(cap):
            tokens = _sample(out.logits[:, -1], temperature, generator)
            for row, token in enumerate(tokens.tolist()):
                if not done[row]:
                    responses[row].append(token)
                    done[row] = token in self.stop_ids
            if all(done) or step == cap - 1:
                break
            # Finished rows keep decoding (their tokens are ignored): a fixed batch shape keeps the cache simple.
            attention = torch.cat([attention, attention.new_ones(len(prompt_ids), 1)], dim=-1)
            out = self.model(
                input_ids=tokens[:, None],
                attention_mask=attention,
                position_ids=next_position,
                past_key_values=cache,
                use_cache=True,
            )
            next_position = next_position + 1
        return responses

    # ----------------------------------------------------------------- training

    def token_logprobs(
        self,
        prompt_ids: list[list[int]],
        response_ids: list[list[int]],
        temperature: float = 1.0,
        with_entropy: bool = False,
    ) -> tuple[Tensor, Optional[Tensor], Tensor]:
        """Log-prob (and entropy) of every response token given its prompt, in one forward pass.

        Returns ``(logprobs [B, R], entropy [B, R] or None, mask [B, R])`` with R the longest response;
        padded entries are 0 and have mask 0. Logits are divided by ``temperature``. Gradients flow.
        """
        _check_temperature(temperature, allow_zero=False)
        if len(response_ids) != len(prompt_ids):
            raise ValueError(f"response_ids: {len(response_ids)} responses for {len(prompt_ids)} prompts")
        for i, prompt in enumerate(prompt_ids):
            _check_prompt(i, prompt)
        width = max((len(r) for r in response_ids), default=0)
        targets = _pad_right(response_ids, width, self.pad_id, self.device)
        mask = _pad_right([[1] * len(r) for r in response_ids], width, 0, self.device).float()
        if width == 0:
            empty = mask.new_zeros(mask.shape)
            return empty, (empty.clone() if with_entropy else None), mask
        logits = self._response_logits(prompt_ids, response_ids, width).float() / temperature
        logp_all = F.log_softmax(logits, dim=-1)
        logprobs = logp_all.gather(-1, targets[..., None]).squeeze(-1) * mask
        entropy = None
        if with_entropy:
            entropy = -(logp_all.exp() * logp_all).sum(-1) * mask
        return logprobs, entropy, mask

    def _response_logits(self, prompt_ids, response_ids, width: int) -> Tensor:
        """Logits [B, width, V] predicting each response token.

        Prompts are left-padded and responses right-padded, so that every response starts in the same
        column: the logits needed are then the last ``width`` columns for all rows, and the model's
        ``logits_to_keep`` skips the vocabulary projection of every prompt position.
        """
        prompt_width = max(len(p) for p in prompt_ids)
        rows, attention = [], []
        for prompt, response in zip(prompt_ids, response_ids):
            left, right = prompt_width - len(prompt), width - len(response)
            rows.append([self.pad_id] * left + list(prompt) + list(response) + [self.pad_id] * right)
            attention.append([0] * left + [1] * (len(prompt) + len(response)) + [0] * right)
        # The last column is never an input: nothing is predicted after the final response token.
        inputs = torch.tensor(rows, device=self.device)[:, :-1]
        attention_mask = torch.tensor(attention, device=self.device)[:, :-1]
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=inputs,
            attention_mask=attention_mask,
            position_ids=positions,
            use_cache=False,
            logits_to_keep=width,
        )
        return out.logits

    # ----------------------------------------------------------------- persistence

    def save(self, folder: str | Path) -> None:
        """Write model (safetensors) and tokenizer; ``ModelConfig(kind="hf", path=folder)`` loads them back."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)

    def parameters_count(self) -> int:
        """Number of parameters (tied embeddings counted once)."""
        return sum(p.numel() for p in self.model.parameters())


# --------------------------------------------------------------------- helpers


def _end_of_turn_id(tokenizer) -> int:
    """<|im_end|> when it is one token of the vocabulary (ChatML models), else the tokenizer's eos."""
    vocab = tokenizer.get_vocab()
    if IM_END in vocab:
        return int(vocab[IM_END])
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer: has neither <|im_end|> nor an eos token, so responses cannot be terminated")
    return int(tokenizer.eos_token_id)


def _stop_ids(model, tokenizer, end_id: int) -> frozenset[int]:
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


def _check_temperature(temperature: float, allow_zero: bool) -> None:
    if temperature < 0 or (not allow_zero and temperature == 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"temperature: must be {bound}, got {temperature}")


def _check_prompt(index: int, prompt: Sequence[int]) -> None:
    if len(prompt) == 0:
        raise ValueError(f"prompt_ids[{index}]: empty prompt (a response needs at least one token of context)")


def _sample(logits: Tensor, temperature: float, generator: Optional[torch.Generator]) -> Tensor:
    """One index per row of ``logits`` [N, V]: argmax when (near) greedy, else a draw from softmax(logits / t).

    The uniforms come from ``generator`` (on its own device, CPU usually), so a seed reproduces the draws
    whichever device the model runs on; inverting the CDF turns them into indices.
    """
    if temperature <= GREEDY_TEMPERATURE:
        return logits.argmax(dim=-1)
    probs = F.softmax(logits.double() / temperature, dim=-1)
    cdf = probs.cumsum(dim=-1)
    rng_device = generator.device if generator is not None else torch.device("cpu")
    uniforms = torch.rand(logits.shape[0], generator=generator, device=rng_device, dtype=torch.float64)
    targets = uniforms.to(logits.device)[:, None] * cdf[:, -1:]
    return torch.searchsorted(cdf, targets, right=True).squeeze(-1).clamp(max=logits.shape[-1] - 1)


def _row_chunks(rows: Sequence[Sequence[int]], budget: int) -> Iterator[list[Sequence[int]]]:
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


def _pad_right(rows: Sequence[Sequence[int]], width: int, value: int, device) -> Tensor:
    """[len(rows), width] long tensor, each row followed by ``value``."""
    padded = [list(row) + [value] * (width - len(row)) for row in rows]
    # reshape: torch.tensor of empty rows has no second dimension.
    return torch.tensor(padded, dtype=torch.long, device=device).reshape(len(rows), width)


def _pad_left(rows: Sequence[Sequence[int]], value: int, device) -> tuple[Tensor, Tensor]:
    """(ids, attention mask), both [B, longest], real tokens flush right."""
    width = max(len(row) for row in rows)
    ids = [[value] * (width - len(row)) + list(row) for row in rows]
    mask = [[0] * (width - len(row)) + [1] * len(row) for row in rows]
    return torch.tensor(ids, device=device), torch.tensor(mask, device=device)


@contextmanager
def _eval_mode(model) -> Iterator[None]:
    """Acting runs without dropout and with the KV cache (checkpointing turns the cache off in train mode)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
