"""Policy: a language model as the RL policy of a text agent: pick or generate actions, score token log-probs."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterator, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from transformers import DynamicCache

from proxmo.policy.config import ModelConfig
from proxmo.policy.model import IM_END, load_policy_model

# Temperatures at or below this sample the argmax: softmax(x / t) is a one-hot anyway, and argmax is exact.
GREEDY_TEMPERATURE = 1e-5

# `choose` packs at most this many tokens (prompts plus their candidates) into one forward pass; a row is
# one prompt and all of its candidates, and the attention mask grows with rows x width^2.
CHOOSE_TOKEN_BUDGET = 16384

# Rows of a prompt and its candidates up to this many tokens are scored in one packed pass, longer ones in
# two passes (prompt, then candidates against its cache). Measured on the demo presets (one CPU thread):
# packed is faster for ALFWorld's ~80-token rows, two passes for WebShop's ~320-token rows.
PACKED_MAX_WIDTH = 160

# Response texts whose token ids are remembered (choose mode scores the same candidates again and again).
RESPONSE_CACHE_SIZE = 65536

# `generate` decodes at most this many padded prompt tokens at once: the prefill's activations and
# attention mask grow with rows x longest prompt. Chunks are consecutive rows, so a seed still reproduces.


@dataclass
class Choice:
    """One sampled action."""

    index: int  # index into the candidates (choose) or -1 (generate)
    text: str  # the response text (for choose: the formatted candidate)
    response_ids: list[int]  # response token ids, including the final end-of-turn / eos token when there is one
    logprob: Optional[float] = None  # choose: log pi(index | prompt) under the acting distribution
    candidate_ids: Optional[list[list[int]]] = None  # choose: the response ids of every candidate


def _identity(action: str) -> str:
    return action


class Policy:
    """A causal language model with its tokenizer, used as the policy of a multi-turn text agent.

    Prompts are token id lists made by :meth:`encode_prompt`; responses end with the end-of-turn token
    (``<|im_end|>`` when the vocabulary has it, else the tokenizer's eos).
    """

    def __init__(self, model, tokenizer, config: ModelConfig, compute_dtype: Optional[torch.dtype] = None):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.compute_dtype = compute_dtype
        """Forward passes autocast to this dtype when the weights are kept in another (float32 masters)."""
        self.end_id = _end_of_turn_id(tokenizer)
        self.stop_ids = _stop_ids(model, tokenizer, self.end_id)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.end_id
        self._responses: dict[str, list[int]] = {}
        self._sampler = None  # the vLLM engine of rollout_backend=vllm, built on first use
        self._compiled_step = None  # the compiled decoding step of compile_decode, built on first use

    @classmethod
    def from_config(cls, config: ModelConfig, corpus: Sequence[str] = ()) -> "Policy":
        """Build or load the model described by ``config`` (``corpus`` trains the tiny tokenizer)."""
        model, tokenizer, compute_dtype = load_policy_model(config, corpus)
        return cls(model, tokenizer, config, compute_dtype)

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
        return self.encode_prompts([prompt])[0]

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode_prompt` of many prompts in one tokenizer call."""
        if not prompts:
            return []
        if getattr(self.tokenizer, "chat_template", None):
            texts = [self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                        add_generation_prompt=True, tokenize=False)
                     for prompt in prompts]
            encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        else:
            encoded = self.tokenizer(list(prompts))["input_ids"]
        return [list(ids[-self.config.max_prompt_tokens :]) for ids in encoded]

    def encode_response(self, text: str) -> list[int]:
        """Token ids of ``text`` followed by the end-of-turn token (remembered: candidates repeat a lot)."""
        ids = self._responses.get(text)
        if ids is None:
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + [self.end_id]
            if len(self._responses) >= RESPONSE_CACHE_SIZE:
                self._responses.clear()
            self._responses[text] = ids
        return list(ids)

    # ----------------------------------------------------------------- acting

    def compute(self) -> ContextManager:
        """The context every forward pass runs in: autocast to the compute dtype over float32 master weights."""
        if self.compute_dtype is None or self.compute_dtype == next(self.model.parameters()).dtype:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.compute_dtype)

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
        """Pick one candidate action per prompt: the policy is a distribution over the candidates.

        Candidate k of prompt i gets the score s_k = log-prob of ``encode_response(response_format(c))``
        given the prompt, summed over its tokens (or their mean with ``length_normalize``); k is drawn from
        pi(k | prompt) = softmax(s / temperature), or is the argmax when the temperature is (near) zero.
        Each choice carries ``logprob`` = log pi(k | prompt) and the response ids of every candidate, so the
        update can recompute the same distribution (:meth:`candidate_logprobs`).

        Summed log-probs favour short candidates by a factor of about the vocabulary size per token
        at initialisation, so an untrained model always picks the shortest action; the per-token mean
        starts near uniform and explores.
        """
        _check_temperature(temperature, allow_zero=True)
        texts, encoded = self._encode_candidates(prompt_ids, candidates, response_format)
        with _eval_mode(self.model):
            logpis = self.candidate_logprobs(prompt_ids, encoded, temperature, length_normalize)
        picks = _sample_categorical(logpis, generator)
        return [
            Choice(index=k, text=texts[i][k], response_ids=encoded[i][k], logprob=float(logpis[i][k]),
                   candidate_ids=encoded[i])
            for i, k in enumerate(picks)
        ]

    @torch.no_grad()
    def score_candidates(
        self,
        prompt_ids: list[list[int]],
        candidates: list[list[str]],
        response_format: Callable[[str], str] = _identity,
        length_normalize: bool = False,
    ) -> list[Tensor]:
        """Per prompt, a float32 CPU tensor of candidate scores (summed, or mean, response token log-probs)."""
        _, encoded = self._encode_candidates(prompt_ids, candidates, response_format)
        with _eval_mode(self.model):
            return [s.cpu() for s in self._candidate_scores(prompt_ids, encoded, length_normalize)]

    def candidate_logprobs(
        self,
        prompt_ids: list[list[int]],
        candidate_ids: list[list[list[int]]],
        temperature: float,
        length_normalize: bool = False,
    ) -> list[Tensor]:
        """log pi(k | prompt) over each prompt's candidates: log_softmax(score / temperature).

        ``candidate_ids[i]`` holds the response ids of prompt i's candidates. Gradients flow when enabled,
        so the update trains exactly the distribution that acting samples from. A temperature at or below
        :data:`GREEDY_TEMPERATURE` gives the log of the argmax's one-hot.
        """
        scores = self._candidate_scores(prompt_ids, candidate_ids, length_normalize)
        if temperature <= GREEDY_TEMPERATURE:
            return [F.one_hot(s.argmax(), len(s)).float().log() for s in scores]
        return [F.log_softmax(s / temperature, dim=-1) for s in scores]

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

    def _candidate_scores(self, prompt_ids, candidate_ids, length_normalize: bool) -> list[Tensor]:
        """Per prompt, the float32 scores of its candidates, prompts batched by the token budget.

        Two ways give the same numbers: short rows (prompt + candidates within :data:`PACKED_MAX_WIDTH`
        tokens) go through one packed forward pass, where one model call costs less than the attention
        it saves; longer ones through two passes over the prompt's cache. Gradient checkpointing drops
        that cache, so with it every row is packed.
        """
        checkpointing = getattr(self.model, "is_activation_checkpointing", False)
        rows = [len(p) + sum(len(r) - 1 for r in c) for p, c in zip(prompt_ids, candidate_ids)]
        scores: list[Tensor] = []
        start = 0
        for chunk in _row_chunks([[0] * n for n in rows], CHOOSE_TOKEN_BUDGET):
            stop = start + len(chunk)
            packed = checkpointing or max(len(row) for row in chunk) <= PACKED_MAX_WIDTH
            score = self._packed_scores if packed else self._cached_scores
            scores.extend(score(prompt_ids[start:stop], candidate_ids[start:stop], length_normalize))
            start = stop
        return scores

    def _cached_scores(self, prompt_ids, candidate_ids, length_normalize: bool) -> list[Tensor]:
        """Two forward passes: the prompts (right-padded, causal), then all candidates against their cache.

        Row i of the second pass holds every candidate of prompt i after another; a block mask lets a
        candidate token see its own prompt's real tokens and the earlier tokens of its own candidate,
        and its position ids continue from the end of the prompt. The prompt is computed once for all of
        its candidates, and attention costs candidates x (prompt + candidates), not their square.
        """
        device = self.device
        prompt_width = max(len(p) for p in prompt_ids)
        fed = [[t for r in candidates for t in r[:-1]] for candidates in candidate_ids]
        width = max(1, max(len(f) for f in fed))
        # Right padding needs no mask in the first pass: causal attention never lets a real token see a pad.
        prompts = _pad_right(prompt_ids, prompt_width, 0, device)
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
        segment_t = _pad_right(segment, width, -1, device)
        prompt_lengths = torch.tensor([len(p) for p in prompt_ids], device=device)
        mask = _candidate_mask(segment_t, prompt_lengths, prompt_width)
        decoder = self.model.get_decoder()
        with self.compute():
            # An empty cache of our own: the model would build one from its config, which costs milliseconds.
            first = decoder(input_ids=prompts, use_cache=True,
                            past_key_values=_stored_in(DynamicCache(), self.compute_dtype))
            second = decoder(
                input_ids=_pad_right(fed, width, 0, device),
                attention_mask=_additive(mask, self._mask_dtype()),
                position_ids=_pad_right(positions, width, 0, device),
                past_key_values=first.past_key_values,
                use_cache=True,
            )
            hidden = torch.cat([first.last_hidden_state, second.last_hidden_state], dim=1)
            rows = torch.tensor(token_row, device=device)
            cols = torch.tensor(token_col, device=device)
            # Negative columns mark "the prompt's last token": -len(prompt) -> len(prompt) - 1.
            cols = torch.where(cols < 0, -cols - 1, cols)
            logits = self.model.get_output_embeddings()(hidden[rows, cols])
        return _candidate_totals(logits, torch.tensor(token_target, device=device),
                                 torch.tensor(token_candidate, device=device),
                                 torch.tensor(lengths, dtype=torch.float32, device=device), counts, length_normalize)

    def _packed_scores(self, prompt_ids, candidate_ids, length_normalize: bool) -> list[Tensor]:
        """One forward pass over rows ``prompt + candidate_1 + candidate_2 + ...``.

        A block attention mask lets each candidate see the prompt and itself only, and its position ids
        continue from the end of the prompt, so every candidate is scored as if it followed the prompt
        alone, while the prompt's keys and values are computed once for all of its candidates. Only the
        positions that predict a candidate token go through the output projection.
        """
        packed = _pack_candidates(prompt_ids, candidate_ids, self.device)
        with self.compute():
            hidden = self.model.get_decoder()(
                input_ids=packed.input_ids,
                attention_mask=_additive(packed.attention_mask(), self._mask_dtype()),
                position_ids=packed.position_ids,
                use_cache=False,
            ).last_hidden_state
            logits = self.model.get_output_embeddings()(hidden[packed.token_row, packed.token_col])
        return _candidate_totals(logits, packed.token_target, packed.token_candidate, packed.candidate_length,
                                 packed.counts, length_normalize)

    def _mask_dtype(self) -> torch.dtype:
        """The dtype of additive attention masks: that of the attention scores.

        Additive masks work with every attention implementation that takes a mask (eager adds it to its
        scores), and SDPA on the CPU runs several times faster with a float mask than with a boolean one.
        """
        implementation = getattr(self.model.config, "_attn_implementation", None) or "eager"
        if "flash" in implementation:
            raise ValueError(f"choose: attention {implementation!r} cannot take the block mask that candidate "
                             "scoring needs; load the model with attn_implementation='sdpa' or 'eager'")
        return self.compute_dtype or next(self.model.parameters()).dtype

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
        if self.config.rollout_backend == "vllm":
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator is not None else 0
            responses = self._vllm().generate(prompt_ids, temperature, cap, self.stop_ids, seed)
        else:
            with _eval_mode(self.model), self.compute():
                for rows in _row_chunks(prompt_ids, self.config.generation_token_budget):
                    responses.extend(self._sample_loop(rows, temperature, generator, cap))
        return [
            Choice(index=-1, text=self.tokenizer.decode(ids, skip_special_tokens=True), response_ids=ids)
            for ids in responses
        ]

    def _vllm(self):
        """The vLLM engine of ``rollout_backend=vllm``, built on first use with the trainer's current weights."""
        if self._sampler is None:
            from proxmo.policy.vllm_backend import VllmSampler

            c = self.config
            self._sampler = VllmSampler(str(c.path), c.dtype, c.vllm_gpu_memory_utilization,
                                        c.max_prompt_tokens + c.max_response_tokens, c.seed or 0)
            self.sync_rollout_weights()
        return self._sampler

    def sync_rollout_weights(self) -> None:
        """After an update: give a separate rollout engine (vLLM) the trained weights; nothing to do otherwise."""
        if self._sampler is not None:
            from proxmo.policy.vllm_backend import trainer_weights

            self._sampler.load_weights(trainer_weights(self.model, self.compute_dtype))

    def _sample_loop(self, prompt_ids, temperature, generator, cap: int) -> list[list[int]]:
        if self.config.generation_cache == "static":
            return self._sample_loop_static(prompt_ids, temperature, generator, cap)
        inputs, attention = _pad_left(prompt_ids, self.pad_id, self.device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=inputs, attention_mask=attention, position_ids=positions, use_cache=True, logits_to_keep=1,
            past_key_values=_stored_in(DynamicCache(config=self.model.config), self.compute_dtype),
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
                if token not in self.stop_ids:
                    keep.append(position)
            if not keep or step == cap - 1:
                break
            if len(keep) < len(active):  # finished rows leave the batch, and their part of the cache with them
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                attention, next_position, tokens = attention[index], next_position[index], tokens[index]
                active = [active[position] for position in keep]
            attention = torch.cat([attention, attention.new_ones(len(active), 1)], dim=-1)
            out = self.model(
                input_ids=tokens[:, None],
                attention_mask=attention,
                position_ids=next_position,
                past_key_values=cache,
                use_cache=True,
            )
            next_position = next_position + 1
        return responses

    def _sample_loop_static(self, prompt_ids, temperature, generator, cap: int) -> list[list[int]]:
        """:meth:`_sample_loop` over a static KV cache: every tensor keeps its shape from the first decoding step to
        the last (the attention mask spans prompt + cap from the start; the causal mask hides the slots not
        written yet), so the one-token step can be compiled once (CUDA graphs). Finished rows are tracked on the
        device and checked every few tokens, not synchronised after each one. The samples are those of the
        dynamic cache: the same logits, the same draws."""
        from transformers import StaticCache

        inputs, attention = _pad_left(prompt_ids, self.pad_id, self.device)
        rows, width = inputs.shape
        cache = _stored_in(StaticCache(config=self.model.config, max_cache_len=width + cap), self.compute_dtype)
        mask = torch.cat([attention, attention.new_ones(rows, cap)], dim=-1)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=inputs, attention_mask=mask[:, :width], position_ids=positions,
                         past_key_values=cache, use_cache=True, logits_to_keep=1,
                         cache_position=torch.arange(width, device=self.device))
        step_fn = self._decode_step()
        stops = torch.tensor(sorted(self.stop_ids), device=self.device)
        tokens_so_far = []
        done = torch.zeros(rows, dtype=torch.bool, device=self.device)
        next_position = positions[:, -1:] + 1
        logits = out.logits[:, -1]
        for step in range(cap):
            tokens = _sample(logits, temperature, generator)
            tokens_so_far.append(torch.where(done, torch.full_like(tokens, -1), tokens))
            done = done | torch.isin(tokens, stops)
            if step == cap - 1 or ((step + 1) % 8 == 0 and bool(done.all())):
                break
            logits = step_fn(tokens[:, None], mask, next_position, cache,
                             torch.tensor([width + step], device=self.device))
            next_position = next_position + 1
        table = torch.stack(tokens_so_far, dim=1).tolist()
        return [[t for t in row if t >= 0] for row in table]

    def _decode_step(self):
        """One token for every row over the static cache: the model's forward, compiled when asked (compiled once:
        every call has the same shapes)."""
        def step(tokens, mask, position, cache, cache_position):
            out = self.model(input_ids=tokens, attention_mask=mask, position_ids=position, past_key_values=cache,
                             use_cache=True, cache_position=cache_position)
            return out.logits[:, -1]

        if self.config.compile_decode:
            if self._compiled_step is None:  # CUDA graphs on CUDA; fused kernels elsewhere
                mode = "reduce-overhead" if self.device.type == "cuda" else None
                self._compiled_step = torch.compile(step, mode=mode, fullgraph=False)
            return self._compiled_step
        return step

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
        chunk = self.config.logprob_chunk_tokens
        if chunk:
            with self.compute():
                hidden = self._response_logits(prompt_ids, response_ids, width, hidden_only=True)
            logprobs, entropy = chunked_token_stats(hidden, self.model.get_output_embeddings(), targets, temperature,
                                                    with_entropy, chunk, self.compute)
            return logprobs * mask, (entropy * mask if with_entropy else None), mask
        with self.compute():
            logits = self._response_logits(prompt_ids, response_ids, width)
        logprobs, entropy = _token_stats(logits, targets, temperature, with_entropy)
        return logprobs * mask, (entropy * mask if with_entropy else None), mask

    def _response_logits(self, prompt_ids, response_ids, width: int, hidden_only: bool = False) -> Tensor:
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
            rows.append([self.pad_id] * left + list(prompt) + list(response) + [self.pad_id] * right)
            attention.append([0] * left + [1] * (len(prompt) + len(response)) + [0] * right)
        # The last column is never an input: nothing is predicted after the final response token.
        inputs = torch.tensor(rows, device=self.device)[:, :-1]
        attention_mask = torch.tensor(attention, device=self.device)[:, :-1]
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        if hidden_only:
            out = self.model.get_decoder()(input_ids=inputs, attention_mask=attention_mask, position_ids=positions,
                                           use_cache=False)
            return out.last_hidden_state[:, -width:]
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


class _Packed(NamedTuple):
    """Prompts and their candidates packed one prompt per row (see :meth:`Policy._packed_scores`)."""

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
        input_ids=_pad_right(rows, width, 0, device),
        position_ids=_pad_right(positions, width, 0, device),
        segment=_pad_right(segments, width, -1, device),
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


def _additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean attention mask as the additive float mask added to the attention scores."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def _sample_categorical(logpis: Sequence[Tensor], generator: Optional[torch.Generator]) -> list[int]:
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


def _stored_in(cache, dtype: Optional[torch.dtype]):
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


def _token_stats(logits: Tensor, targets: Tensor, temperature: float, with_entropy: bool):
    """Log-prob of each target and (optionally) the entropy, from logits [..., V], in float32."""
    logp_all = F.log_softmax(logits.float() / temperature, dim=-1)
    logprobs = logp_all.gather(-1, targets[..., None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1) if with_entropy else None
    return logprobs, entropy


def chunked_token_stats(hidden: Tensor, head: torch.nn.Module, targets: Tensor, temperature: float,
                        with_entropy: bool, chunk_tokens: int, compute: Callable[[], ContextManager] = nullcontext):
    """:func:`_token_stats` of ``head(hidden)`` over ``chunk_tokens`` tokens at a time.

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
        logprobs, entropy = _token_stats(logits, t, temperature, with_entropy)
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


class AdaptersOff:
    """The policy with its LoRA adapters switched off, that is the model it started from, without a copy: the
    KL reference of a LoRA run. Scoring goes through the policy's own methods; everything else is the policy's."""

    def __init__(self, policy: "Policy"):
        self.policy = policy

    def __getattr__(self, name: str):
        return getattr(self.policy, name)

    def token_logprobs(self, *args, **kwargs):
        with torch.no_grad(), self.policy.model.disable_adapter():
            return self.policy.token_logprobs(*args, **kwargs)

    def candidate_logprobs(self, *args, **kwargs):
        with torch.no_grad(), self.policy.model.disable_adapter():
            return self.policy.candidate_logprobs(*args, **kwargs)

