"""The prepared GPU check: the real training job at the paper's ALFWorld shape on one GPU, measured.

It builds Qwen2.5-shaped models from their architecture alone (random weights: no model hub needed) with a
tokenizer trained on the shipped ALFWorld games, runs GRPO and ProxMO for a few iterations of 16 groups x 8
rollouts (free-form answers, responses capped), ProxMO again on two workers with its layers sharded (FSDP2, one
GPU each: on a machine with one GPU the table says it could not run), then the 7B shape for memory only, and writes
``gpu_check.json`` and ``gpu_check.md`` to ``--out`` (``$OUT`` on the device machine): seconds per iteration
and per phase, generation and update tokens per second, peak GPU memory, ``timing/adv_fraction`` of both
estimators, and whether the parameters changed after an update.

It runs on the GPU machine's own stack (torch, transformers, numpy, scikit-learn, PyYAML): what the job
needs beyond that (pydantic, ...) comes as wheels in ``--wheels`` (``benchmarks/gpu/prepare.py`` downloads
them) and is installed offline into a folder of ``--out``. The same script runs in the test suite at
``--shape tiny`` on the CPU, so it cannot rot::

    python benchmarks/gpu/check.py --out "$OUT"                       # on the GPU machine, about 6 minutes
    python benchmarks/gpu/check.py --shape tiny --groups 2 --group-size 2 --max-steps 2 --out /tmp/check
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "envs" / "alfworld" / "fixtures"
NEEDED = ("pydantic", "yaml", "numpy", "scipy", "sklearn", "torch", "transformers", "rapidfuzz", "bm25s")

# Qwen2.5 architectures (the published config.json values), and a tiny one for CPU tests.
SHAPES = {
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=2048, tie_word_embeddings=True),
}


def ensure_packages(wheels: Path, site: Path) -> list:
    """Install offline, from ``wheels``, the job's packages this Python lacks; answers what was installed."""
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if not missing:
        return []
    if not wheels.is_dir():
        raise SystemExit(f"missing {missing} and no wheel folder at {wheels} (run benchmarks/gpu/prepare.py)")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--find-links",
                    str(wheels), "--target", str(site), "-r", str(Path(__file__).with_name("requirements.txt"))],
                   check=True)
    sys.path.insert(0, str(site))
    still = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if still:
        raise SystemExit(f"still missing after installing the wheels: {still}")
    return missing


def write_model_folder(folder: Path, shape: str) -> Path:
    """config.json of the architecture and a tokenizer trained on the shipped games' texts (ChatML specials)."""
    import transformers

    from proxmo.policy.model import build_tiny_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    texts = [p.read_text(errors="ignore")[:20000] for p in sorted(FIXTURES.rglob("*.json"))]
    tokenizer = build_tiny_tokenizer(texts, vocab_size=min(4000, SHAPES[shape]["vocab_size"]))
    tokenizer.save_pretrained(folder)
    architecture = transformers.Qwen2Config(**SHAPES[shape], max_position_embeddings=32768,
                                            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    architecture.save_pretrained(folder)
    return folder


def job_config(args, model_folder: Path, estimator: str, out: Path, cuda: bool, memory_only: bool = False) -> dict:
    model = {"kind": "hf", "path": str(model_folder), "random_weights": True, "dtype": args.dtype,
             "device": "cuda" if cuda else "cpu", "gradient_checkpointing": True,
             "logprob_chunk_tokens": args.logprob_chunk, "max_prompt_tokens": args.prompt_tokens,
             "max_response_tokens": args.response_tokens, "generation_cache": args.generation_cache,
             "generation_token_budget": args.groups * args.group_size * (args.prompt_tokens + args.response_tokens),
             "compile_decode": args.compile}
    if memory_only:
        model.update(lora_rank=args.lora_rank)
    return {
        "env": {"name": "alfworld", "options": {"data": str(FIXTURES)}},
        "model": model,
        "rollout": {"n_groups": 2 if memory_only else args.groups, "group_size": 4 if memory_only else args.group_size,
                    "max_steps": 2 if memory_only else args.max_steps, "action_mode": "generate",
                    "prompt_style": "chat"},
        "advantage": {"estimator": estimator},
        "optim": {"lr": 1e-6, "micro_batch_size": args.micro_batch, "kl_coef": 0.01},
        "eval": {"every": 0, "at_start": False, "random_baseline": False},
        "run": {"iterations": 1 if memory_only else args.iterations, "tracker": "none", "seed": 0,
                "output_dir": str(out / "runs"), "name": f"{'memory' if memory_only else 'speed'}-{estimator}"},
    }


def run_job(data: dict, cuda: bool, shard=None) -> dict:
    import torch

    from proxmo.train.config import build_config
    from proxmo.train.job import Trainer

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer = Trainer(build_config(data), progress=False, shard=shard)
    built = time.perf_counter() - start
    # the actor: the policy itself, or the full copy a sharded job plays with (refreshed after each update)
    watched = [(n, p.detach().clone()) for n, p in trainer.actor.model.named_parameters()
               if dict(trainer.policy.model.named_parameters())[n].requires_grad][:4]
    result = trainer.run()
    named = dict(trainer.actor.model.named_parameters())
    changed = any(not torch.equal(named[n].detach(), before) for n, before in watched)
    iterations = []
    for metrics in result.history:
        row = {k: metrics[k] for k in sorted(metrics) if k.startswith(("timing/", "batch/"))}
        rollout_s, update_s = metrics.get("timing/rollout_s", 0.0), metrics.get("timing/update_s", 0.0)
        tokens = metrics.get("batch/response_tokens", 0.0)
        prompt_tokens = metrics.get("batch/prompt_tokens_mean", 0.0) * metrics.get("batch/steps", 0.0)
        row["generation_tokens_per_s"] = tokens / rollout_s if rollout_s else None
        row["update_tokens_per_s"] = (tokens + prompt_tokens) / update_s if update_s else None
        iterations.append(row)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    del trainer
    return {"build_s": built, "iterations": iterations, "parameters_changed": changed, "peak_gib": peak}


def worker(rank: int, data: dict, cuda: bool, world: int, folder: str) -> None:
    """Rank ``rank`` of a job on ``world`` workers (NCCL on GPUs, gloo on the CPU; no Ray on the GPU machine):
    the Trainer on its shard; rank 0 writes what :func:`run_job` measured."""
    import torch
    import torch.distributed as dist

    from proxmo.train.distributed import Shard

    if cuda:
        torch.cuda.set_device(rank)
        data = {**data, "model": {**data["model"], "device": f"cuda:{rank}"}}
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=world)
    try:
        measured = attempt(data, cuda, Shard(rank, world))
        if rank == 0:
            Path(folder, "rank0.json").write_text(json.dumps(measured))
    finally:
        dist.destroy_process_group()


def run_workers(data: dict, cuda: bool, world: int, out: Path) -> dict:
    """The job on ``world`` workers with its layers sharded (run.shard_model), each a process of this script, or
    why it could not run here."""
    import torch

    if cuda and torch.cuda.device_count() < world:
        return {"skipped": f"needs {world} GPUs; this machine has {torch.cuda.device_count()}", "iterations": [],
                "parameters_changed": None, "peak_gib": None}
    folder = out / f"workers-{world}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rendezvous").unlink(missing_ok=True)
    (folder / "rank0.json").unlink(missing_ok=True)
    data = {**data, "run": {**data["run"], "workers": world, "shard_model": True, "name": f"workers-{world}"}}
    (folder / "job.json").write_text(json.dumps(data))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    ranks = [subprocess.Popen([sys.executable, __file__, "--rank", str(rank), "--world", str(world), "--job-folder",
                               str(folder)] + (["--cuda"] if cuda else []), env=env) for rank in range(world)]
    codes = [rank.wait() for rank in ranks]
    if not (folder / "rank0.json").is_file():
        return {"error": f"the workers exited with {codes} before rank 0 reported", "iterations": [],
                "parameters_changed": None, "peak_gib": None}
    return json.loads((folder / "rank0.json").read_text())


def attempt(data: dict, cuda: bool, shard=None) -> dict:
    """:func:`run_job`, with a failure (out of memory, a missing feature) recorded instead of ending the check."""
    import traceback

    try:
        return run_job(data, cuda, shard)
    except Exception as error:  # noqa: BLE001 - reported in the JSON and the table; the next run still goes
        if cuda:
            import torch

            torch.cuda.empty_cache()
        return {"error": f"{type(error).__name__}: {error}"[:2000], "traceback": traceback.format_exc()[-6000:],
                "iterations": [], "parameters_changed": None, "peak_gib": None}


def table(report: dict) -> str:
    lines = [f"GPU check on {report['device']} (torch {report['torch']}, transformers {report['transformers']}); "
             f"{report['settings']}", "",
             "| run | iteration | s / iteration | rollout s | adv s | adv share | update s | ref log-prob s | "
             "gen tokens/s | update tokens/s | peak GiB | params changed |", "|" + "---|" * 12]
    for name, run in report["runs"].items():
        if run.get("skipped"):
            lines.append(f"| {name} | not run: {run['skipped']} |" + " |" * 10)
            continue
        if run.get("error"):
            lines.append(f"| {name} | failed: {run['error'].splitlines()[0][:150]} |" + " |" * 10)
            continue
        peak = "" if run["peak_gib"] is None else f"{run['peak_gib']:.1f}"
        for index, it in enumerate(run["iterations"], start=1):
            cell = lambda key, fmt="{:.2f}": fmt.format(it[key]) if it.get(key) is not None else ""  # noqa: E731
            lines.append(f"| {name} | {index} | {cell('timing/iteration_s')} | {cell('timing/rollout_s')} | "
                         f"{cell('timing/adv_s', '{:.4f}')} | {cell('timing/adv_fraction', '{:.4%}')} | "
                         f"{cell('timing/update_s')} | {cell('timing/ref_logprob_s')} | "
                         f"{cell('generation_tokens_per_s', '{:.0f}')} | {cell('update_tokens_per_s', '{:.0f}')} | "
                         f"{peak} | {run['parameters_changed']} |")
    return "\n".join(lines) + "\n"


def worker_main(argv) -> None:
    """A worker process of :func:`run_workers`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world", type=int, required=True)
    parser.add_argument("--job-folder", required=True)
    parser.add_argument("--cuda", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    data = json.loads(Path(args.job_folder, "job.json").read_text())
    worker(args.rank, data, args.cuda, args.world, args.job_folder)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check")))
    parser.add_argument("--wheels", type=Path, default=Path(__file__).with_name("wheels"))
    parser.add_argument("--shape", choices=["1.5b", "tiny"], default="1.5b")
    parser.add_argument("--estimators", nargs="+", default=["grpo", "proxmo"])
    parser.add_argument("--iterations", type=int, default=None,
                        help="iterations per estimator (default 1; 2 with --compile: the first one compiles)")
    parser.add_argument("--groups", type=int, default=16)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=10, help="the paper's cap is 50; 10 fits the device budget")
    parser.add_argument("--response-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=1024)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--logprob-chunk", type=int, default=512)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default=None,
                        help="compute dtype, over float32 master weights (default: bfloat16 on a GPU, float32 on a CPU)")
    parser.add_argument("--generation-cache", choices=["static", "dynamic"], default="static")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                        help="compile the decoding step (CUDA graphs); try it as a second run")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None,
                        help="one small iteration at --memory-shape with LoRA, for peak memory (default: on a GPU)")
    parser.add_argument("--memory-shape", choices=["7b", "tiny"], default="7b")
    parser.add_argument("--workers", type=int, default=2,
                        help="a last run of ProxMO on this many workers with sharded layers, one GPU each (0: none)")
    args = parser.parse_args(argv)
    if args.compile and args.generation_cache != "static":
        parser.error("--compile compiles the decoding step over the static KV cache: drop --generation-cache dynamic")
    args.iterations = args.iterations or (2 if args.compile else 1)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    installed = ensure_packages(args.wheels, out / "site")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    args.dtype = args.dtype or ("bfloat16" if cuda else "float32")
    report = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
              "transformers": transformers.__version__, "installed_from_wheels": installed, "runs": {},
              "settings": (f"shape {args.shape}, {args.groups} groups x {args.group_size}, up to {args.max_steps} "
                           f"steps, responses <= {args.response_tokens} tokens, prompts <= {args.prompt_tokens}, "
                           f"micro-batch {args.micro_batch}, log-prob chunks {args.logprob_chunk}, "
                           f"{args.generation_cache} KV cache{', compiled decoding' if args.compile else ''}, "
                           "gradient checkpointing, "
                           f"{'bf16 over fp32 masters' if args.dtype == 'bfloat16' else 'fp32'}")}
    model_folder = write_model_folder(out / f"model-{args.shape}", args.shape)
    for estimator in args.estimators:
        report["runs"][f"{args.shape} {estimator}"] = attempt(job_config(args, model_folder, estimator, out, cuda), cuda)
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2))  # what is done survives a timeout
    if args.workers > 1:
        name = f"{args.shape} proxmo, {args.workers} workers (sharded layers)"
        report["runs"][name] = run_workers(job_config(args, model_folder, "proxmo", out, cuda), cuda, args.workers, out)
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    if args.memory if args.memory is not None else cuda:
        folder = write_model_folder(out / f"model-{args.memory_shape}", args.memory_shape)
        report["runs"][f"{args.memory_shape} proxmo (LoRA {args.lora_rank}, memory)"] = attempt(
            job_config(args, folder, "proxmo", out, cuda, memory_only=True), cuda)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    (out / "gpu_check.md").write_text(table(report))
    print(table(report))
    return report


if __name__ == "__main__":
    if "--rank" in sys.argv:
        worker_main(sys.argv[1:])
    else:
        main()
