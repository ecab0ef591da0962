"""The tiny byte-level BPE tokenizer: deterministic, lossless on any text, ChatML template and special tokens."""

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxmo.policy import build_tiny_tokenizer

from .conftest import CORPUS


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer(CORPUS, 400)


def test_training_is_deterministic_even_across_processes(tokenizer):
    again = build_tiny_tokenizer(CORPUS, 400)
    assert again.get_vocab() == tokenizer.get_vocab()
    # Rust hash maps are seeded per process: a second interpreter must still produce the same merges.
    script = (
        "from proxmo.policy import build_tiny_tokenizer; import sys, json; "
        "corpus = json.loads(sys.argv[1]); t = build_tiny_tokenizer(corpus, 400); "
        "print(t.backend_tokenizer.to_str())"
    )
    import json

    out = subprocess.run([sys.executable, "-c", script, json.dumps(CORPUS)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == tokenizer.backend_tokenizer.to_str()


def test_learns_merges_from_the_corpus(tokenizer):
    assert 259 < len(tokenizer) <= 400
    assert len(tokenizer("take apple 1 from countertop 2")["input_ids"]) < len("take apple 1 from countertop 2") / 2


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_round_trips(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text


@pytest.mark.parametrize(
    "text",
    ["héllo wörld 你好 🤖", "  two  spaces\n\ttab\r\n", "", "<|im_end|> inside", "\x00\x7f"],
)
def test_unicode_and_whitespace_round_trip(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_special_tokens_and_chat_template(tokenizer):
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.eos_token == "<|im_end|>"
    for token in ("<|pad|>", "<|im_start|>", "<|im_end|>"):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "go to cabinet 1"}], add_generation_prompt=True, tokenize=False
    )
    assert text == "<|im_start|>user\ngo to cabinet 1<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "user\ngo to cabinet 1\nassistant\n"


def test_empty_corpus_gives_bytes_and_specials():
    tokenizer = build_tiny_tokenizer([], 1024)
    assert len(tokenizer) == 256 + 3
    assert tokenizer.decode(tokenizer("ünïcode ✓", add_special_tokens=False)["input_ids"]) == "ünïcode ✓"
