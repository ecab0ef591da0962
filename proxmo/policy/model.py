"""Build or load the policy's causal LM and tokenizer: a tiny random Llama, a Hugging Face checkpoint or a GGUF file."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from proxmo.policy.config import ModelConfig

PAD_TOKEN = "<|pad|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# ChatML: each message is framed by <|im_start|>role\n ... <|im_end|>\n; the generation prompt opens the assistant turn.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# A hub id is "name" or "owner/name"; anything else that is not on disk is a typo in a local path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def build_tiny_tokenizer(corpus: Sequence[str], vocab_size: int) -> transformers.PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``corpus``, with ChatML special tokens and chat template.

    Byte level: every string encodes (no unknown token) and decodes back to itself. Training is
    deterministic for the same corpus and vocab_size; an empty corpus gives the 256 bytes plus specials.
    """
    backend = Tokenizer(models.BPE())
    # No normaliser and no added prefix space, so that decode(encode(text)) == text exactly.
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(corpus), trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        eos_token=IM_END,
        additional_special_tokens=[IM_START],
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


LOW_PRECISION = (torch.bfloat16, torch.float16)


def load_policy_model(
    config: ModelConfig, corpus: Sequence[str] = ()
) -> tuple[transformers.PreTrainedModel, transformers.PreTrainedTokenizerBase, Optional[torch.dtype]]:
    """The model (on its device, KV cache on), its tokenizer, and the dtype forward passes compute in.

    ``corpus`` only matters for ``kind="tiny"``: it trains the tokenizer. With ``master_weights`` a model
    whose dtype is bfloat16 or float16 is kept in float32, so that AdamW's small updates are not rounded
    away (at lr 1e-6 most of them would be in bfloat16); forward passes then autocast to the low precision
    dtype, which is returned. Otherwise the returned dtype is None (compute in the weights' own dtype).
    """
    if config.kind == "tiny":
        model, tokenizer = _build_tiny(config, corpus)
    elif config.kind == "hf":
        model, tokenizer = _load_hf(config)
    else:
        model, tokenizer = _load_gguf(config)
    _ensure_pad_token(model, tokenizer)
    compute_dtype = None
    weights_dtype = next(model.parameters()).dtype
    if config.master_weights and weights_dtype in LOW_PRECISION:
        compute_dtype = weights_dtype
        model.float()
    model.to(config.resolved_device())
    # Generation and `choose` reuse the KV cache; some checkpoints ship with it switched off.
    model.config.use_cache = True
    if config.gradient_checkpointing:
        # Non-reentrant checkpointing works without inputs that require grad (embeddings may be frozen).
        # transformers >= 5.2x calls it activation checkpointing; older 5.x (e.g. 5.17) gradient checkpointing.
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable({"use_reentrant": False})
    if config.lora_rank:
        with _seeded(config):  # the same seed gives the same adapters
            model = _with_lora(model, config)
    return model, tokenizer, compute_dtype


@contextmanager
def _seeded(config: ModelConfig) -> Iterator[None]:
    """A private RNG stream seeded with ``model.seed`` (0 when unset) for initialising weights: the same seed gives
    the same weights, and the caller's streams (CPU and every CUDA device, which ``manual_seed`` also seeds) are
    restored afterwards."""
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(config.seed if config.seed is not None else 0)
        yield


def _with_lora(model, config: ModelConfig):
    """``model`` with LoRA adapters (new, or the saved ``config.adapter``); only the adapters require grad."""
    from proxmo.extras import require

    require("train", "LoRA (model.lora_rank)", ["peft"])
    import peft

    if config.adapter:
        return peft.PeftModel.from_pretrained(model, config.adapter, is_trainable=True)
    lora = peft.LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                           target_modules=list(config.lora_targets), task_type="CAUSAL_LM")
    try:
        return peft.get_peft_model(model, lora)
    except ValueError as error:  # e.g. none of the target modules exist in this architecture
        raise ValueError(f"model.lora_targets: {error}") from None


def _build_tiny(config: ModelConfig, corpus: Sequence[str]):
    tokenizer = build_tiny_tokenizer(corpus, config.vocab_size)
    llama_config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=4 * config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    with _seeded(config):
        model = transformers.LlamaForCausalLM(llama_config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    dtype = config.torch_dtype()
    if dtype is not None:
        model.to(dtype)
    return model, tokenizer


def _load_hf(config: ModelConfig):
    path = str(config.path)
    _check_hf_path(path)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        if config.random_weights:
            architecture = transformers.AutoConfig.from_pretrained(path)
            # Built where it will run: initialising billions of weights on a GPU takes seconds, on a CPU minutes.
            # The same seed gives the same weights on the same device.
            with _seeded(config), config.resolved_device():
                model = transformers.AutoModelForCausalLM.from_config(architecture, dtype=config.torch_dtype())
        else:
            model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=config.dtype)
    except OSError as err:
        raise FileNotFoundError(
            f"model.path: {path!r} could not be loaded as a local folder or hub model: {err}"
        ) from err
    return model, tokenizer


def check_model_path(config: ModelConfig) -> None:
    """Fail, naming ``model.path``, when a checkpoint the config names cannot exist (checks files only)."""
    if config.kind == "hf":
        _check_hf_path(str(config.path))
    elif config.kind == "gguf":
        _gguf_location(config)


def _check_hf_path(path: str) -> None:
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ValueError(
                f"model.path: {path!r} is a file; kind='hf' needs a folder or hub id (kind='gguf' loads .gguf files)"
            )
        return
    if not _HUB_ID.match(path):
        raise FileNotFoundError(f"model.path: {path!r} does not exist and is not a hub id like 'owner/name'")


def _load_gguf(config: ModelConfig):
    folder, file_name = _gguf_location(config)
    # Dense weights: packed GGUF blocks (kept when a matmul kernel is installed) can be neither trained nor saved.
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=file_name,
        dtype=config.dtype,
        quantization_config=transformers.GgufConfig(gguf_file=file_name, dequantize=True),
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=file_name)
    # The weights are now plain tensors; without this, save_pretrained refuses the "quantized" model.
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    return model, tokenizer


def _gguf_location(config: ModelConfig) -> tuple[str, str]:
    """(folder, file name) of the GGUF checkpoint, checked to exist."""
    path = Path(str(config.path))
    if config.gguf_file:
        folder, file_name = path, config.gguf_file
    elif path.suffix.lower() == ".gguf":
        folder, file_name = path.parent, path.name
    else:
        raise ValueError(
            f"model.path: {str(path)!r} is not a .gguf file; give the file, or its folder plus model.gguf_file"
        )
    if not (folder / file_name).is_file():
        raise FileNotFoundError(f"model.path: GGUF file {str(folder / file_name)!r} not found")
    return str(folder), file_name


def _ensure_pad_token(model, tokenizer) -> None:
    # Batching needs a pad id; the value is never attended to, so eos is a safe stand-in.
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.generation_config, "pad_token_id", None) is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
