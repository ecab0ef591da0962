"""ModelConfig: defaults of the CPU demo, and errors that name the wrong field."""

import pytest
import torch
from pydantic import ValidationError

from proxmo.policy import ModelConfig


def test_defaults_describe_the_cpu_demo_model():
    config = ModelConfig()
    sizes = (config.hidden_size, config.num_layers, config.num_heads, config.vocab_size, config.max_positions)
    assert config.kind == "tiny" and sizes == (64, 2, 4, 1024, 4096)
    assert (config.max_prompt_tokens, config.max_response_tokens, config.dtype) == (1024, 48, "float32")
    assert config.resolved_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert ModelConfig(device="cpu").resolved_device() == torch.device("cpu")


@pytest.mark.parametrize(
    "fields,message",
    [
        (dict(kind="hf"), "model.path"),
        (dict(kind="gguf"), "model.path"),
        (dict(hidden_size=30, num_heads=4), "hidden_size"),
        (dict(hidden_size=0), "hidden_size"),
        (dict(num_layers=0), "num_layers"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(max_prompt_tokens=0), "max_prompt_tokens"),
        (dict(max_response_tokens=0), "max_response_tokens"),
        (dict(dtype="float8"), "dtype"),
        (dict(device="gpu-please"), "device"),
        (dict(kind="onnx"), "kind"),
        (dict(hidden=64), "hidden"),
        (dict(compile_decode=True), "model.compile_decode.*generation_cache=static"),
        (dict(lora_rank=4, lora_targets=[]), "model.lora_targets"),
        (dict(random_weights=True), "model.random_weights"),
    ],
)
def test_invalid_values_name_the_field(fields, message):
    with pytest.raises(ValidationError, match=message):
        ModelConfig(**fields)


def test_every_field_is_described():
    assert all(field.description for field in ModelConfig.model_fields.values())
