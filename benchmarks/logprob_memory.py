"""Peak memory of token log-probs and entropy with their backward pass: all at once vs in chunks.

Each variant runs in a fresh process (``ru_maxrss``, the process's peak resident memory, minus the same
process's peak before the measured call) on a tiny Llama with a large vocabulary, so the [B, R, V] float32
tensors dominate. On a GPU the same comparison is part of ``benchmarks/gpu/check.py``.

    OMP_NUM_THREADS=1 python benchmarks/logprob_memory.py --vocab 32000 --batch 8 --response 256
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")



def measure(vocab: int, batch: int, response: int, chunk: int) -> dict:
    code = f"""
import json, resource, time, torch
from proxmo.policy.config import ModelConfig
from proxmo.policy.policy import Policy
config = ModelConfig(hidden_size=64, num_layers=1, num_heads=4, vocab_size=300, logprob_chunk_tokens={chunk})
policy = Policy.from_config(config, ["a tiny corpus for the tokenizer"])
policy.model.resize_token_embeddings({vocab})  # a large vocabulary: the [B, R, V] tensors dominate
prompts = [[1 + (i * 7 + j) % ({vocab} - 1) for j in range(32)] for i in range({batch})]
responses = [[1 + (i * 13 + j) % ({vocab} - 1) for j in range({response})] for i in range({batch})]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
logprobs, entropy, mask = policy.token_logprobs(prompts, responses, with_entropy=True)
((logprobs + 0.01 * entropy) * mask).sum().backward()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"extra_mib": (peak - before) / 1024, "seconds": seconds}}))
"""
    # Every block over 128 KiB gets its own mapping, returned to the system when freed: the process's peak
    # resident memory is then the peak of what was alive, not of what the allocator kept around.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--response", type=int, default=256)
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 1024, 256])
    args = parser.parse_args(argv)
    one = args.batch * args.response * args.vocab * 4 / 2**20
    print(f"vocabulary {args.vocab}, {args.batch} x {args.response} response tokens; one [B, R, V] float32 tensor "
          f"is {one:.0f} MiB\n")
    print("| chunk (tokens) | peak extra memory (MiB) | x one [B,R,V] | seconds |\n|---|---|---|---|")
    rows = []
    for chunk in args.chunks:
        result = measure(args.vocab, args.batch, args.response, chunk)
        rows.append({"chunk": chunk, **result})
        print(f"| {chunk or 'all at once'} | {result['extra_mib']:.0f} | {result['extra_mib'] / one:.2f} | "
              f"{result['seconds']:.2f} |")
    return rows


if __name__ == "__main__":
    main()
