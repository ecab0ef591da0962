"""GGUF checkpoints load as dense, trainable, saveable models (a tiny Qwen2 GGUF is written on the fly)."""

import json
import os

import numpy as np
import pytest
import torch
import transformers

from proxmo.policy import ModelConfig, Policy, build_tiny_tokenizer

from .conftest import CORPUS

gguf = pytest.importorskip("gguf", reason="the gguf package writes the test checkpoint")

# transformers parameter suffix -> llama.cpp tensor name inside block N.
_BLOCK_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_TOP_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "lm_head.weight": "output.weight",
    "model.norm.weight": "output_norm.weight",
}


def write_tiny_qwen2_gguf(path, quantize: bool):
    """A random 2-layer Qwen2 with the tiny BPE vocabulary, as llama.cpp lays it out; returns the reference model."""
    tokenizer = build_tiny_tokenizer(CORPUS, 400)
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    merges = [" ".join(m) if isinstance(m, list) else m for m in merges]
    config = transformers.Qwen2Config(
        vocab_size=len(tokens), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    reference = transformers.Qwen2ForCausalLM(config).eval()

    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name("tiny")
    writer.add_context_length(512)
    writer.add_block_count(2)
    writer.add_feed_forward_length(64)
    writer.add_embedding_length(32)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_merges(merges)
    writer.add_token_types([3 if t.startswith("<|") else 1 for t in tokens])
    writer.add_eos_token_id(vocab["<|im_end|>"])
    writer.add_chat_template(tokenizer.chat_template)
    for name, tensor in reference.state_dict().items():
        array = tensor.numpy().astype(np.float32)
        parts = name.split(".")
        gguf_name = _TOP_NAMES.get(name) or f"blk.{parts[2]}.{_BLOCK_NAMES['.'.join(parts[3:])]}"
        if quantize and array.ndim == 2 and name.startswith("model.layers."):
            q8 = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(gguf_name, gguf.quants.quantize(array, q8), raw_dtype=q8)
        else:
            writer.add_tensor(gguf_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return reference


@pytest.mark.parametrize("quantize", [False, True], ids=["f32", "q8_0"])
def test_gguf_loads_dense_trains_and_saves(tmp_path, quantize):
    reference = write_tiny_qwen2_gguf(tmp_path / "tiny.gguf", quantize)
    policy = Policy.from_config(ModelConfig(kind="gguf", path=str(tmp_path / "tiny.gguf"), device="cpu"))
    assert policy.model.hf_quantizer is None and getattr(policy.model.config, "quantization_config", None) is None
    assert policy.model.dtype == torch.float32 and policy.end_id == policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    prompt = policy.encode_prompt("go to cabinet 1")
    assert policy.tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
    ids = torch.tensor([prompt])
    with torch.no_grad():
        # Q8_0 rounds every weight of the layers: logits move by about 1e-3.
        tolerance = 0.05 if quantize else 1e-6
        torch.testing.assert_close(policy.model(ids).logits, reference(ids).logits, atol=tolerance, rtol=0)

    logprobs, _, _ = policy.token_logprobs([prompt], [policy.encode_response("look")])
    logprobs.sum().backward()
    assert policy.model.get_input_embeddings().weight.grad.abs().sum() > 0

    policy.save(tmp_path / "saved")
    loaded = Policy.from_config(ModelConfig(kind="hf", path=str(tmp_path / "saved"), device="cpu"))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids).logits, policy.model(ids).logits, atol=0, rtol=0)


def test_gguf_folder_plus_file_name(tmp_path):
    write_tiny_qwen2_gguf(tmp_path / "tiny.gguf", quantize=False)
    policy = Policy.from_config(ModelConfig(kind="gguf", path=str(tmp_path), gguf_file="tiny.gguf", device="cpu"))
    assert policy.parameters_count() > 0


@pytest.mark.skipif(not os.environ.get("PROXMO_TEST_GGUF"), reason="set PROXMO_TEST_GGUF to a real .gguf checkpoint")
def test_a_real_gguf_checkpoint_generates():
    policy = Policy.from_config(ModelConfig(kind="gguf", path=os.environ["PROXMO_TEST_GGUF"]))
    [choice] = policy.generate([policy.encode_prompt("Say hello.")], 0.0, max_new_tokens=8)
    assert 1 <= len(choice.response_ids) <= 8
