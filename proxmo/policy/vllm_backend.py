"""Free-form rollouts with vLLM's offline engine instead of Hugging Face generation (``model.rollout_backend=vllm``).

The trainer keeps its Hugging Face model for log-probs and updates; vLLM holds a second copy of the weights for
sampling and receives the trainer's weights after every update. Written against vLLM's documented offline API
(``vllm.LLM``, ``SamplingParams``, ``LLM.generate`` with token-id prompts, ``LLM.collective_rpc`` to reach the
workers, whose model's ``load_weights`` takes ``(name, tensor)`` pairs, and ``LLM.reset_prefix_cache``). vLLM runs
on CUDA only and is not installed on this project's machines: this backend has not been run here.

The engine runs in the trainer's process (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` unless set otherwise): the function
that loads the weights then runs on the worker directly, with the trainer's tensors, on the device, without being
serialised; vLLM refuses to send a Python function to a separate engine process unless
``VLLM_ALLOW_INSECURE_SERIALIZATION=1``, which is checked before the engine is built.
"""

from __future__ import annotations

import os
from typing import Iterable, List, Optional, Sequence, Tuple

import torch


def _require_vllm():
    try:
        import vllm
    except ImportError as error:
        raise ImportError("model.rollout_backend=vllm needs the 'vllm' package, which runs on CUDA GPUs only: "
                          "pip install vllm (the GPU image: --build-arg WITH_VLLM=1), or use rollout_backend=hf") \
            from error
    return vllm


class VllmSampler:
    """Generates responses for token-id prompts with a vLLM engine built from ``path`` (a Hugging Face folder)."""

    def __init__(self, path: str, dtype: str, gpu_memory_utilization: float, max_model_len: int, seed: int):
        vllm = _require_vllm()
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] != "0" \
                and os.environ.get("VLLM_ALLOW_INSECURE_SERIALIZATION") != "1":
            raise RuntimeError("model.rollout_backend=vllm: with VLLM_ENABLE_V1_MULTIPROCESSING on, the weight sync "
                               "sends a function to vLLM's engine process, which vLLM allows only with "
                               "VLLM_ALLOW_INSECURE_SERIALIZATION=1; set that, or unset "
                               "VLLM_ENABLE_V1_MULTIPROCESSING (the engine then runs in this process)")
        self._vllm = vllm
        self.llm = vllm.LLM(model=path, dtype=dtype, seed=seed,
                            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                            enable_prefix_caching=True)

    def generate(self, prompt_ids: Sequence[List[int]], temperature: float, max_tokens: int,
                 stop_ids: Iterable[int], seed: int) -> List[List[int]]:
        """One response per prompt (token ids, the stop token included), sampled at ``temperature`` (greedy at 0).

        Each prompt gets its own seed (``seed + i``): a request's seed fixes its whole stream of draws, so one seed
        for all would give the rollouts of a group, which share their first prompt, the same response."""
        prompts = [{"prompt_token_ids": list(ids)} for ids in prompt_ids]
        params = [self._vllm.SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed + i,
                                            stop_token_ids=sorted(stop_ids), include_stop_str_in_output=True,
                                            skip_special_tokens=False)
                  for i in range(len(prompts))]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [list(output.outputs[0].token_ids) for output in outputs]

    def load_weights(self, named: Iterable[Tuple[str, torch.Tensor]]) -> None:
        """Give the engine's model the trainer's current weights (names as in the Hugging Face state dict), then drop
        the prefix cache: its keys and values were computed with the old weights."""
        weights = [(name, tensor.detach()) for name, tensor in named]

        def load(worker, weights=weights):
            worker.model_runner.model.load_weights(weights=weights)

        self.llm.collective_rpc(load)
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
