"""Policy: a language model as the RL policy of a text agent: pick or generate actions, score token log-probs."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from proxmo.policy.config import LENGTH_NORMALIZE, ModelConfig
from proxmo.policy.decoding import end_of_turn_id, sample_loop, stop_ids_of
from proxmo.policy.logprobs import chunked_token_stats, response_logits, token_stats
from proxmo.policy.model import load_policy_model
from proxmo.policy.scoring import candidate_scores, sample_categorical
from proxmo.policy.tensors import (GREEDY_TEMPERATURE, check_prompt, check_temperature, eval_mode, pad_right,
                                   row_chunks)

# Response texts whose token ids are remembered (choose mode scores the same candidates again and again).
RESPONSE_CACHE_SIZE = 65536



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
        self.end_id = end_of_turn_id(tokenizer)
        self.stop_ids = stop_ids_of(model, tokenizer, self.end_id)
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
        length_normalize: bool = LENGTH_NORMALIZE,
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
        check_temperature(temperature, allow_zero=True)
        texts, encoded = self._encode_candidates(prompt_ids, candidates, response_format)
        with eval_mode(self.model):
            logpis = self.candidate_logprobs(prompt_ids, encoded, temperature, length_normalize)
        picks = sample_categorical(logpis, generator)
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
        length_normalize: bool = LENGTH_NORMALIZE,
    ) -> list[Tensor]:
        """Per prompt, a float32 CPU tensor of candidate scores (summed, or mean, response token log-probs)."""
        _, encoded = self._encode_candidates(prompt_ids, candidates, response_format)
        with eval_mode(self.model):
            return [s.cpu() for s in candidate_scores(self, prompt_ids, encoded, length_normalize)]

    def candidate_logprobs(
        self,
        prompt_ids: list[list[int]],
        candidate_ids: list[list[list[int]]],
        temperature: float,
        length_normalize: bool = LENGTH_NORMALIZE,
    ) -> list[Tensor]:
        """log pi(k | prompt) over each prompt's candidates: log_softmax(score / temperature).

        ``candidate_ids[i]`` holds the response ids of prompt i's candidates. Gradients flow when enabled,
        so the update trains exactly the distribution that acting samples from. A temperature at or below
        :data:`GREEDY_TEMPERATURE` gives the log of the argmax's one-hot.
        """
        scores = candidate_scores(self, prompt_ids, candidate_ids, length_normalize)
        if temperature <= GREEDY_TEMPERATURE:
            return [F.one_hot(s.argmax(), len(s)).float().log() for s in scores]
        return [F.log_softmax(s / temperature, dim=-1) for s in scores]

    def _encode_candidates(self, prompt_ids, candidates, response_format):
        """(formatted texts, their response ids) per prompt, checked before any model work."""
        if len(candidates) != len(prompt_ids):
            raise ValueError(f"candidates: {len(candidates)} lists for {len(prompt_ids)} prompts")
        texts, encoded = [], []
        for i, (prompt, actions) in enumerate(zip(prompt_ids, candidates)):
            check_prompt(i, prompt)
            if not actions:
                raise ValueError(f"candidates[{i}]: prompt {i} has no candidate actions")
            texts.append([response_format(action) for action in actions])
            encoded.append([self.encode_response(text) for text in texts[-1]])
        return texts, encoded





    @torch.no_grad()
    def generate(
        self,
        prompt_ids: list[list[int]],
        temperature: float,
        generator: Optional[torch.Generator] = None,
        max_new_tokens: Optional[int] = None,
    ) -> list[Choice]:
        """Free-form responses: sample (or greedy at temperature 0) until a stop token or the token cap."""
        check_temperature(temperature, allow_zero=True)
        cap = self.config.max_response_tokens if max_new_tokens is None else max_new_tokens
        if cap < 1:
            raise ValueError(f"max_new_tokens: must be >= 1, got {cap}")
        for i, prompt in enumerate(prompt_ids):
            check_prompt(i, prompt)
        responses: list[list[int]] = []
        if self.config.rollout_backend == "vllm":
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator is not None else 0
            responses = self._vllm().generate(prompt_ids, temperature, cap, self.stop_ids, seed)
        else:
            with eval_mode(self.model), self.compute():
                for rows in row_chunks(prompt_ids, self.config.generation_token_budget):
                    responses.extend(sample_loop(self, rows, temperature, generator, cap))
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
        check_temperature(temperature, allow_zero=False)
        if len(response_ids) != len(prompt_ids):
            raise ValueError(f"response_ids: {len(response_ids)} responses for {len(prompt_ids)} prompts")
        for i, prompt in enumerate(prompt_ids):
            check_prompt(i, prompt)
        width = max((len(r) for r in response_ids), default=0)
        targets = pad_right(response_ids, width, self.pad_id, self.device)
        mask = pad_right([[1] * len(r) for r in response_ids], width, 0, self.device).float()
        if width == 0:
            empty = mask.new_zeros(mask.shape)
            return empty, (empty.clone() if with_entropy else None), mask
        chunk = self.config.logprob_chunk_tokens
        if chunk:
            with self.compute():
                hidden = response_logits(self, prompt_ids, response_ids, width, hidden_only=True)
            logprobs, entropy = chunked_token_stats(hidden, self.model.get_output_embeddings(), targets, temperature,
                                                    with_entropy, chunk, self.compute)
            return logprobs * mask, (entropy * mask if with_entropy else None), mask
        with self.compute():
            logits = response_logits(self, prompt_ids, response_ids, width)
        logprobs, entropy = token_stats(logits, targets, temperature, with_entropy)
        return logprobs * mask, (entropy * mask if with_entropy else None), mask


    # ----------------------------------------------------------------- persistence

    def save(self, folder: str | Path, state_dict: Optional[dict] = None) -> None:
        """Write model (safetensors) and tokenizer; ``ModelConfig(kind="hf", path=folder)`` loads them back.
        ``state_dict``: the weights to write instead of the model's own (a sharded model's, gathered whole)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder, state_dict=state_dict)
        self.tokenizer.save_pretrained(folder)

    def parameters_count(self) -> int:
        """Number of parameters (tied embeddings counted once)."""
        return sum(p.numel() for p in self.model.parameters())


# --------------------------------------------------------------------- helpers






































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

