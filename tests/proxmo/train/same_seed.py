"""Three 10-iteration runs with fixed seeds whose metrics are kept in ``data/same_seed_metrics.json``.

The file was written by the code before its structure changed; ``test_same_seed.py`` checks that the same
runs still write the same metrics (timings aside). Rewrite the file only for a change meant to alter what a
run computes, and say so in the commit:  python -m tests.proxmo.train.same_seed
"""

from __future__ import annotations

import json
from pathlib import Path

import envs.alfworld
from proxmo.train.config import build_config
from proxmo.train.job import train
from proxmo.train.tracking import read_metrics

DATA = Path(__file__).parent / "data" / "same_seed_metrics.json"
FIXTURES = str(Path(envs.alfworld.__file__).parent / "fixtures")
TINY = {"kind": "tiny", "hidden_size": 32, "num_layers": 1, "num_heads": 2, "vocab_size": 320}


def runs(output_dir: Path) -> dict:
    """The three runs: ALFWorld generated games in choose mode (ProxMO, evaluation with a random baseline),
    ALFWorld fixtures in generate mode (GiGPO, reference KL, entropy), WebShop in choose mode (GRPO)."""
    common = {"output_dir": str(output_dir), "tracker": "jsonl", "iterations": 10, "seed": 3}
    return {
        "alfworld_choose_proxmo": {
            "env": {"name": "alfworld", "options": {"info_commands": False, "games": {
                "train": 8, "eval": 6, "max_receptacles": 3, "distractors": 0}}},
            "model": {**TINY, "max_prompt_tokens": 256},
            "rollout": {"n_groups": 2, "group_size": 4, "max_steps": 20, "action_mode": "choose",
                        "prompt_style": "compact"},
            "advantage": {"estimator": "proxmo"},
            "optim": {"lr": 3e-3, "kl_coef": 0.0, "entropy_coef": 0.0, "micro_batch_size": 16},
            "eval": {"every": 5, "at_start": True, "episodes_per_task": 1, "greedy": True,
                     "random_baseline": True, "batch": 6},
            "run": {**common, "name": "alfworld_choose_proxmo"},
        },
        "alfworld_generate_gigpo": {
            "env": {"name": "alfworld", "options": {"data": FIXTURES}},
            "model": {**TINY, "max_prompt_tokens": 384, "max_response_tokens": 6},
            "rollout": {"n_groups": 2, "group_size": 2, "max_steps": 3, "action_mode": "generate"},
            "advantage": {"estimator": "gigpo"},
            "optim": {"lr": 1e-3, "kl_coef": 0.01, "entropy_coef": 0.001, "micro_batch_size": 8},
            "eval": {"every": 5, "batch": 6},
            "run": {**common, "name": "alfworld_generate_gigpo"},
        },
        "webshop_choose_grpo": {
            "env": {"name": "webshop", "options": {"num_products": 300, "num_goals": 700, "max_steps": 4,
                                                     "reward_mode": "score"}},
            "model": {**TINY, "max_prompt_tokens": 384},
            "rollout": {"n_groups": 2, "group_size": 2, "action_mode": "choose"},
            "advantage": {"estimator": "grpo"},
            "optim": {"lr": 1e-3, "micro_batch_size": 8},
            "eval": {"every": 5, "tasks": 4, "batch": 4},
            "run": {**common, "name": "webshop_choose_grpo"},
        },
    }


def metrics_of(config: dict) -> dict:
    """{step: {metric: value}} of one run, timings left out (they are the only values that may change)."""
    result = train(build_config(config), progress=False)
    merged: dict = {}
    for record in read_metrics(result.run_dir):
        merged.setdefault(str(record["step"]), {}).update(
            {k: v for k, v in record["metrics"].items() if not k.startswith("timing/")})
    return merged


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        data = {name: metrics_of(config) for name, config in runs(Path(folder)).items()}
    DATA.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {DATA}: " + ", ".join(f"{k} ({len(v)} steps)" for k, v in data.items()))
