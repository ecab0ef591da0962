"""The prepared GPU check runs end to end at a tiny shape on the CPU (so it cannot rot) and reports every number."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu" / "check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gpu_check_runs_at_a_tiny_shape_on_cpu(tmp_path):
    check = _load()
    # bfloat16 autocast over float32 weights and the static KV cache: the GPU run's own path
    report = check.main(["--shape", "tiny", "--groups", "2", "--group-size", "2", "--max-steps", "2",
                         "--response-tokens", "8", "--prompt-tokens", "256", "--memory", "--memory-shape", "tiny",
                         "--dtype", "bfloat16", "--out", str(tmp_path)])
    assert set(report["runs"]) == {"tiny grpo", "tiny proxmo", "tiny proxmo, 2 workers (sharded layers)",
                                   "tiny proxmo (LoRA 16, memory)"}
    for run in report["runs"].values():
        assert run["parameters_changed"] is True
        [iteration] = run["iterations"]
        for key in ("timing/iteration_s", "timing/rollout_s", "timing/adv_s", "timing/adv_fraction",
                    "timing/update_s", "generation_tokens_per_s", "update_tokens_per_s"):
            assert iteration[key] is not None and iteration[key] >= 0, key
    assert json.loads((tmp_path / "gpu_check.json").read_text())["runs"].keys() == report["runs"].keys()
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| tiny proxmo | 1 |" in table and "bf16 over fp32 masters" in table
    config = json.loads((tmp_path / "model-tiny" / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["num_key_value_heads"] == 2


def test_the_shapes_are_qwen25s():
    shapes = _load().SHAPES
    assert shapes["1.5b"]["vocab_size"] == 151936 and shapes["1.5b"]["num_hidden_layers"] == 28
    assert shapes["7b"]["hidden_size"] == 3584 and shapes["7b"]["vocab_size"] == 152064


def test_a_run_that_fails_is_recorded_and_the_check_goes_on(tmp_path):
    check = _load()
    report = check.main(["--shape", "tiny", "--groups", "2", "--group-size", "2", "--max-steps", "2",
                         "--response-tokens", "8", "--prompt-tokens", "256", "--estimators", "no-such", "grpo",
                         "--no-memory", "--workers", "0", "--out", str(tmp_path)])
    assert "no-such" in report["runs"]["tiny no-such"]["error"]
    assert report["runs"]["tiny grpo"]["parameters_changed"] is True
    assert "| tiny no-such | failed:" in (tmp_path / "gpu_check.md").read_text()
