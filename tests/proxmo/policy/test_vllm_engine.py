"""The vLLM rollout backend with the real engine (vLLM's CPU build) against the Hugging Face path, on a small
Qwen2 with random weights written to a local folder. vLLM lives in its own environment: ``make test-vllm``
installs it (.venv-vllm, from requirements-vllm.lock) and runs these tests there."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

vllm = pytest.importorskip("vllm", reason="needs vLLM's CPU build: `make test-vllm` installs it into .venv-vllm")

import transformers  # noqa: E402

from proxmo.policy import ModelConfig, Policy, build_tiny_tokenizer  # noqa: E402
from proxmo.policy.vllm_backend import trainer_weights  # noqa: E402
from proxmo.train.tracking import read_metrics  # noqa: E402

from .conftest import CORPUS  # noqa: E402

pytestmark = pytest.mark.vllm

LOGPROB_TOLERANCE = 1e-4
"""Largest difference allowed between the engine's and the trainer's log-prob of a sampled token (float32 both; the
measured difference is about 1e-6): the PPO ratio starts at 1 within 1e-4."""

PROMPTS = [
    "look",
    "go to cabinet 1",
    "Your task is to: put a clean apple in the fridge.",
    " ".join(CORPUS),  # past vLLM's cache block size: its prefix is cached
    " ".join(CORPUS * 3),
]


def write_model(folder: Path) -> None:
    """A random 2-layer Qwen2 (head size 64, which vLLM's CPU attention takes) with the tiny ChatML tokenizer. The
    weights are scaled up from the usual initialisation so that the next-token distribution is far from uniform:
    greedy choices then have clear margins, not float noise."""
    tokenizer = build_tiny_tokenizer(CORPUS, 400)
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024, tie_word_embeddings=False,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.mul_(8.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def model_config(folder: Path, **extra) -> ModelConfig:
    return ModelConfig(kind="hf", path=str(folder), device="cpu", dtype="float32", max_prompt_tokens=256,
                       max_response_tokens=16, vllm_gpu_memory_utilization=0.05, **extra)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("qwen2")
    write_model(path)
    return path


@pytest.fixture(scope="module")
def pair(folder):
    """The same weights twice: a policy sampling with Hugging Face, and one sampling with a vLLM engine (one engine
    for the module: building one takes about 10 s)."""
    return Policy.from_config(model_config(folder)), Policy.from_config(model_config(folder, rollout_backend="vllm"))


def prompt_ids(policy):
    return [policy.encode_prompt(text) for text in PROMPTS]


def greedy(policy):
    return [choice.response_ids for choice in policy.generate(prompt_ids(policy), 0.0)]


def test_greedy_responses_equal_the_hugging_face_paths(pair):
    hf, engine = pair
    lengths = [len(p) for p in prompt_ids(hf)]
    assert len(set(lengths)) == len(lengths) and max(lengths) > 128  # different lengths, past a cache block
    expected = greedy(hf)
    assert greedy(engine) == expected
    assert len({tuple(r) for r in expected}) == len(expected)  # the prompts lead to different responses


def test_sampled_tokens_have_the_trainers_log_probs(pair):
    _, engine = pair
    prompts = prompt_ids(engine)
    for temperature in (1.0, 0.7):
        sampled = engine._vllm().generate_with_logprobs(prompts, temperature, 16, engine.stop_ids, seed=3)
        responses = [ids for ids, _ in sampled]
        mine, _, mask = engine.token_logprobs(prompts, responses, temperature=temperature)
        for row, (ids, theirs) in enumerate(sampled):
            assert len(theirs) == len(ids) == int(mask[row].sum())
            ratio = torch.exp(mine[row, : len(ids)].detach() - torch.tensor(theirs))
            assert torch.allclose(ratio, torch.ones_like(ratio), atol=LOGPROB_TOLERANCE), (temperature, row)


def test_a_group_of_equal_prompts_gets_different_rollouts_and_a_seed_repeats(pair):
    _, engine = pair
    group = [engine.encode_prompt("go to cabinet 1")] * 8

    def rollouts(seed):
        return [c.response_ids for c in engine.generate(group, 1.0, torch.Generator().manual_seed(seed))]

    first = rollouts(5)
    assert len({tuple(r) for r in first}) > 1
    assert rollouts(5) == first
    assert rollouts(6) != first


def test_a_batch_of_more_prompt_tokens_than_one_step_takes_is_sampled_with_per_prompt_seeds(pair):
    """16 groups x 8 prompts of 61 tokens: 7,808 prompt tokens, more than vLLM schedules in one step (4,096). A
    prompt prefilled in pieces made vLLM rewind its seeded generator, which CPU generators cannot do."""
    _, engine = pair
    generator = torch.Generator().manual_seed(0)
    group_prompts = [torch.randint(4, 300, (61,), generator=generator).tolist() for _ in range(16)]
    batch = [p for p in group_prompts for _ in range(8)]
    first = engine._vllm().generate(batch, 1.0, 4, engine.stop_ids, seed=9)
    assert len(first) == 128 and engine._vllm().generate(batch, 1.0, 4, engine.stop_ids, seed=9) == first


def test_a_stop_token_ends_the_response_and_is_kept(pair):
    hf, engine = pair
    prompt = hf.encode_prompt("go to cabinet 1")
    [reference] = [c.response_ids for c in hf.generate([prompt], 0.0)]
    stop = reference[3]
    [response] = engine._vllm().generate([prompt], 0.0, 16, {stop}, seed=0)
    assert response == reference[: reference.index(stop) + 1]


def test_after_an_update_the_engine_samples_with_the_new_weights_and_no_stale_prefix(pair):
    """A real optimizer step on the trainer's model; the Hugging Face policy gets the same weights. The engine
    has cached the prompts' prefixes under the old weights: after the sync its greedy responses and its
    log-probs are the updated model's."""
    hf, engine = pair
    before = greedy(engine)  # fills the prefix cache with the old weights' keys and values
    prompts = prompt_ids(engine)
    optimizer = torch.optim.AdamW(engine.model.parameters(), lr=0.05)
    logprobs, _, mask = engine.token_logprobs(prompts, before, temperature=1.0)
    (logprobs * mask).sum().neg().backward()
    optimizer.step()
    hf.model.load_state_dict(engine.model.state_dict())
    engine.sync_rollout_weights()
    after = greedy(hf)
    assert after != before
    assert greedy(engine) == after
    sampled = engine._vllm().generate_with_logprobs(prompts, 1.0, 16, engine.stop_ids, seed=11)
    mine, _, _ = engine.token_logprobs(prompts, [ids for ids, _ in sampled], temperature=1.0)
    for row, (ids, theirs) in enumerate(sampled):
        assert torch.allclose(mine[row, : len(ids)].detach(), torch.tensor(theirs), atol=LOGPROB_TOLERANCE)


def test_lora_adapters_reach_the_engine_merged(pair, folder):
    _, engine = pair
    lora = Policy.from_config(model_config(folder, lora_rank=4, lora_targets=["q_proj", "v_proj", "down_proj"]))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a trained adapter: B no longer zero
        for name, parameter in lora.model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
    base = Policy.from_config(model_config(folder))
    assert greedy(lora) != greedy(base)  # the adapter changes what is generated
    try:
        engine._vllm().load_weights(trainer_weights(lora.model, None))
        assert greedy(engine) == greedy(lora)
    finally:
        engine.sync_rollout_weights()  # the engine back to its own trainer's weights


def test_a_generate_mode_alfworld_job_runs_on_the_vllm_backend_and_logs_what_the_hf_backend_logs(folder, tmp_path):
    """The training command, end to end, on ALFWorld's fixture games: 3 iterations and an evaluation with each
    backend; both log the same metrics at the same steps."""
    import envs.alfworld

    fixtures = Path(envs.alfworld.__file__).parent / "fixtures"
    keys = {}
    for backend in ("hf", "vllm"):
        command = [
            sys.executable, "-m", "proxmo.train", f"env.options.data={fixtures}", "env.name=alfworld",
            "model.kind=hf", f"model.path={folder}", "model.dtype=float32", "model.max_prompt_tokens=384",
            "model.max_response_tokens=8", f"model.rollout_backend={backend}",
            "model.vllm_gpu_memory_utilization=0.05", "rollout.n_groups=2", "rollout.group_size=2",
            "rollout.max_steps=3", "rollout.action_mode=generate", "advantage.estimator=gigpo",
            "optim.lr=1e-3", "optim.micro_batch_size=8", "eval.every=3", "eval.at_start=false", "eval.batch=4",
            "run.iterations=3", "run.tracker=jsonl", f"run.output_dir={tmp_path}", f"run.name={backend}",
            "run.seed=1", "--quiet",
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-4000:]
        keys[backend] = {(r["step"], k) for r in read_metrics(tmp_path / backend) for k in r["metrics"]}
    assert keys["vllm"] == keys["hf"]
    assert {step for step, _ in keys["vllm"]} >= {1, 2, 3}


def test_the_generation_benchmark_runs_at_a_tiny_shape():
    root = Path(__file__).resolve().parents[3]
    command = [sys.executable, str(root / "benchmarks" / "vllm_generation.py"), "--groups", "2", "--group-size", "2",
               "--max-tokens", "4", "--repeats", "1", "--backends", "hf, static cache", "vllm"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=root)
    assert result.returncode == 0, result.stderr[-4000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| hf") or line.startswith("| vllm")]
    assert [row.split(" | ")[0] for row in rows] == ["| hf, static cache", "| vllm"]
    assert all(float(row.split(" | ")[1]) > 0 for row in rows)
