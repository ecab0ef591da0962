"""ModelConfig: which language model the policy runs, where, and how long its prompts and responses may be."""

from __future__ import annotations

from typing import Literal, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LENGTH_NORMALIZE = True
"""choose mode: a candidate action's score is the mean of its response tokens' log-probs, not their sum, unless a
run says otherwise (``rollout.choose_score``). Summed log-probs favour short candidates by about the vocabulary
size per token at initialisation, so an untrained model would always pick the shortest action."""

ModelKind = Literal["tiny", "hf", "gguf"]
DType = Literal["float32", "bfloat16", "float16", "auto"]


class ModelConfig(BaseModel):
    """Configuration of the policy model and its tokenizer.

    ``kind="tiny"`` builds a small randomly initialised Llama with a byte-level BPE tokenizer trained on
    a corpus (the CPU demo model); ``kind="hf"`` loads a local folder or hub id with ``from_pretrained``;
    ``kind="gguf"`` loads a GGUF checkpoint through transformers.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    kind: ModelKind = Field(
        "tiny",
        description="tiny: small random Llama + BPE tokenizer trained on a corpus; hf: from_pretrained(path); "
        "gguf: from_pretrained(folder, gguf_file=...).",
    )
    path: Optional[str] = Field(
        None,
        description="hf: a local folder or hub id (e.g. Qwen/Qwen2.5-1.5B-Instruct); gguf: the .gguf file, "
        "or its folder together with gguf_file. Unused by tiny.",
    )
    gguf_file: Optional[str] = Field(
        None, description="gguf only: file name inside the folder given by path (leave empty when path is the file)."
    )
    hidden_size: int = Field(64, ge=1, description="tiny only: width of the model.")
    num_layers: int = Field(2, ge=1, description="tiny only: number of decoder layers.")
    num_heads: int = Field(4, ge=1, description="tiny only: attention heads; must divide hidden_size.")
    vocab_size: int = Field(
        1024, ge=1, description="tiny only: target BPE vocabulary (the 256 bytes and 3 special tokens always stay)."
    )
    max_positions: int = Field(4096, ge=1, description="tiny only: longest prompt + response the model accepts.")
    dtype: DType = Field(
        "float32",
        description="Dtype of the weights as loaded; 'auto' keeps the checkpoint's own (float32 for tiny). "
        "bfloat16/float16 become the compute dtype when master_weights is on.",
    )
    master_weights: bool = Field(
        True,
        description="Keep float32 weights (and optimizer state) when dtype is bfloat16/float16 and autocast the "
        "forward passes to that dtype: pure-bf16 AdamW rounds away most updates at small learning rates.",
    )
    device: str = Field("auto", description="torch device string; 'auto' means cuda when available, else cpu.")
    seed: Optional[int] = Field(
        None, description="Seed of the tiny model's initialisation; unset: the run's seed (run.seed)."
    )
    max_prompt_tokens: int = Field(
        1024, ge=1, description="Longer prompts are cut from the left, so that their end (the latest turn) stays."
    )
    max_response_tokens: int = Field(48, ge=1, description="Cap on the tokens generated for one response.")
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory, about a third more compute."
    )
    rollout_backend: Literal["hf", "vllm"] = Field(
        "hf", description="Who samples free-form responses: the Hugging Face model itself, or a vLLM engine (CUDA, "
        "or vLLM's CPU build) that gets the trainer's weights after every update. Needs kind=hf.",
    )
    vllm_gpu_memory_utilization: float = Field(
        0.35, gt=0, lt=1, description="rollout_backend=vllm: the share of GPU memory the vLLM engine may take "
        "(on vLLM's CPU build: the share of the machine's memory its KV cache takes).")
    generation_token_budget: int = Field(
        65536, ge=1, description="Free-form generation decodes at most this many prompt tokens' rows together "
        "(rows x longest prompt); more rows decode in turn. Raise it on a large GPU: one batch decodes fastest.",
    )
    generation_cache: Literal["dynamic", "static"] = Field(
        "dynamic", description="KV cache of free-form generation: dynamic (grows each token) or static (allocated "
        "once for prompt + max_response_tokens; fixed shapes, what compiled decoding needs). The same samples.",
    )
    compile_decode: bool = Field(
        False, description="With generation_cache=static: compile the one-token decoding step (torch.compile; "
        "CUDA graphs on CUDA). The first call compiles (tens of seconds), the next ones reuse it.",
    )
    random_weights: bool = Field(
        False, description="hf only: the architecture of path's config.json with random weights instead of trained "
        "ones (speed and memory checks at a real model's shape without its weights).",
    )
    lora_rank: int = Field(
        0, ge=0, description="LoRA adapters of this rank on the projections in lora_targets; only they train and the "
        "KL reference is the same model with them switched off (0: full fine-tuning). Needs peft.",
    )
    lora_alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (the update is scaled by alpha / rank).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA inputs.")
    lora_targets: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Module names that get LoRA adapters (Llama and Qwen names).",
    )
    adapter: Optional[str] = Field(
        None, description="A saved LoRA adapter (a checkpoint's model folder) to load on the model and train on "
        "(set by resume; needs lora_rank > 0).",
    )
    logprob_chunk_tokens: int = Field(
        0, ge=0, description="Token log-probs and entropy over this many response tokens at a time, recomputed in "
        "the backward pass, so no [batch, response, vocabulary] float32 tensor exists (0: all at once). Needs "
        "logits = output embedding(last hidden state), true of Llama, Qwen and most causal LMs.",
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value == "auto":
            return value
        try:
            torch.device(value)
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"device: {value!r} is not a torch device ('auto', 'cpu', 'cuda', 'cuda:1')") from err
        return value

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        if self.adapter and not self.lora_rank:
            raise ValueError("model.adapter: a LoRA adapter needs model.lora_rank > 0")
        if self.rollout_backend == "vllm" and (self.kind != "hf" or self.random_weights):
            raise ValueError("model.rollout_backend: vllm loads a Hugging Face folder with weights "
                             f"(kind=hf without random_weights), got kind={self.kind!r}")
        if self.kind in ("hf", "gguf") and not self.path:
            raise ValueError(f"model.path: required when kind={self.kind!r} (a folder, hub id or .gguf file)")
        if self.compile_decode and self.generation_cache != "static":
            raise ValueError("model.compile_decode: compiles the decoding step over the static KV cache; "
                             "set model.generation_cache=static too")
        if self.lora_rank and not self.lora_targets:
            raise ValueError("model.lora_targets: empty, so model.lora_rank has no module to adapt")
        if self.random_weights and self.kind != "hf":
            raise ValueError(f"model.random_weights: builds a Hugging Face architecture (kind=hf), "
                             f"got kind={self.kind!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size: {self.hidden_size} is not divisible by num_heads={self.num_heads}")
        return self

    def resolved_device(self) -> torch.device:
        """The device the model goes to: ``device``, with 'auto' turned into cuda or cpu."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def torch_dtype(self) -> Optional[torch.dtype]:
        """The torch dtype of ``dtype``, or None for 'auto'."""
        return None if self.dtype == "auto" else getattr(torch, self.dtype)
