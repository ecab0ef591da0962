"""Free-form generation on this machine's CPU: the vLLM backend (vLLM's CPU build) against the Hugging Face path.

Runs in the vLLM environment (``make bench-vllm``, or ``.venv-vllm/bin/python benchmarks/vllm_generation.py``). A
Qwen2 with random weights is written to a temporary folder (no model hub); every backend samples at temperature 1
for the same prompts: ``--groups`` x ``--group-size`` rollouts (16 x 8: the demo's shape, 8 rollouts of each task)
whose prompts have ``--prompt-tokens`` tokens (61: the ALFWorld demo's compact prompt, on average), up to
``--max-tokens`` response tokens each, one thread. Reported: generated tokens per second (the median of
``--repeats`` timed calls after one untimed warm-up call), the start-up of each (building the engine, loading
the model) and the cores it kept busy while generating (CPU seconds per second). A tiny model on two CPU cores: this says nothing about a GPU.

    OMP_NUM_THREADS=1 .venv-vllm/bin/python benchmarks/vllm_generation.py
    OMP_NUM_THREADS=1 .venv-vllm/bin/python benchmarks/vllm_generation.py --hidden 512 --layers 4 --heads 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch

BACKENDS = {
    "hf, dynamic cache": {"generation_cache": "dynamic"},
    "hf, static cache": {"generation_cache": "static"},
    "vllm": {"rollout_backend": "vllm"},
}


def write_model(folder: Path, hidden: int, layers: int, heads: int) -> None:
    """A random Qwen2 with the tiny ChatML tokenizer (its head size ``hidden / heads`` must be one that vLLM's CPU
    attention takes: :mod:`proxmo.policy.vllm_backend` lists them)."""
    import transformers

    from proxmo.policy import build_tiny_tokenizer

    corpus = ["You arrive at countertop 1. On the countertop 1, you see a apple 1, and a mug 2.",
              "Your task is to: put a clean apple in fridge.", "go to cabinet 1", "take apple 1 from countertop 1"]
    tokenizer = build_tiny_tokenizer(corpus, 512)
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), max_position_embeddings=1024,
        tie_word_embeddings=False, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def prompts(groups: int, group_size: int, length: int, vocab: int) -> List[List[int]]:
    """``groups`` distinct prompts of ``length`` ordinary tokens, each ``group_size`` times (a group's rollouts)."""
    generator = torch.Generator().manual_seed(0)
    distinct = [torch.randint(4, vocab, (length,), generator=generator).tolist() for _ in range(groups)]
    return [p for p in distinct for _ in range(group_size)]


def measure(name: str, folder: Path, batch: List[List[int]], max_tokens: int, repeats: int) -> Dict[str, float]:
    from proxmo.policy import ModelConfig, Policy

    start = time.perf_counter()
    policy = Policy.from_config(ModelConfig(
        kind="hf", path=str(folder), device="cpu", dtype="float32", max_prompt_tokens=256,
        max_response_tokens=max_tokens, vllm_gpu_memory_utilization=0.05, **BACKENDS[name]))
    policy.generate(batch[:1], 1.0, torch.Generator().manual_seed(0))  # builds the engine / the cache
    startup = time.perf_counter() - start
    policy.generate(batch, 1.0, torch.Generator().manual_seed(1))  # warm-up
    rates, cores = [], []
    for repeat in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        choices = policy.generate(batch, 1.0, torch.Generator().manual_seed(2 + repeat))
        seconds = time.perf_counter() - start
        rates.append(sum(len(c.response_ids) for c in choices) / seconds)
        cores.append((time.process_time() - cpu) / seconds)  # CPU seconds per second: the cores it kept busy
    return {"tokens_per_s": statistics.median(rates), "runs": rates, "startup_s": startup,
            "cores": statistics.median(cores)}


def main(argv=None) -> Dict[str, Dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=16)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=61)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    results = {}
    with tempfile.TemporaryDirectory(prefix="proxmo-vllm-bench-") as tmp:
        folder = Path(tmp)
        write_model(folder, args.hidden, args.layers, args.heads)
        import json

        vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
        batch = prompts(args.groups, args.group_size, args.prompt_tokens, vocab)
        for name in args.backends:
            results[name] = measure(name, folder, batch, args.max_tokens, args.repeats)
    base = results.get("hf, static cache", next(iter(results.values())))["tokens_per_s"]
    print(f"Qwen2 {args.hidden} wide, {args.layers} layers, {args.heads} heads (random weights, float32); "
          f"{args.groups} x {args.group_size} rollouts, {args.prompt_tokens}-token prompts, up to {args.max_tokens} "
          f"tokens each, temperature 1, {torch.get_num_threads()} thread(s); median of {args.repeats}")
    print("| backend | generated tokens / s | vs static-cache HF | each run | start-up s | cores busy |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        each = ", ".join(f"{x:.0f}" for x in r["runs"])
        print(f"| {name} | {r['tokens_per_s']:.0f} | {r['tokens_per_s'] / base:.2f}x | {each} | {r['startup_s']:.1f} | {r['cores']:.2f} |")
    return results


if __name__ == "__main__":
    main()
