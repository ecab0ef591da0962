"""The training job through its real entry points, with tiny budgets: WebShop and ALFWorld, resume, CLI."""

import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import envs.alfworld
from proxmo.cli import app
from proxmo.train.__main__ import main as module_main
from proxmo.train.config import build_config
from proxmo.train.job import train
from proxmo.train.tracking import read_metrics

TINY = {"kind": "tiny", "hidden_size": 32, "num_layers": 1, "num_heads": 2, "vocab_size": 320, "max_prompt_tokens": 384}
FIXTURES = str(Path(envs.alfworld.__file__).parent / "fixtures")


def _webshop(tmp_path, **run):
    return {
        "env": {"name": "webshop", "options": {"num_products": 300, "num_goals": 700, "max_steps": 4, "reward_mode": "score"}},
        "model": TINY,
        "rollout": {"n_groups": 2, "group_size": 2, "action_mode": "choose"},
        "optim": {"lr": 1e-3, "micro_batch_size": 8},
        "eval": {"every": 1, "tasks": 4, "batch": 4},
        "run": {"iterations": 2, "output_dir": str(tmp_path / "runs"), "name": "ws", "tracker": "jsonl", **run},
    }


def _alfworld(tmp_path, name, **rollout):
    return {
        "env": {"name": "alfworld", "options": {"data": FIXTURES}},
        "model": {**TINY, "max_response_tokens": 6},
        "rollout": {"n_groups": 2, "group_size": 2, "max_steps": 3, **rollout},
        "optim": {"lr": 1e-3, "micro_batch_size": 8},
        "eval": {"every": 0},
        "run": {"iterations": 1, "output_dir": str(tmp_path / "runs"), "name": name, "tracker": "jsonl"},
    }


def _by_step(run_dir):
    merged = {}
    for record in read_metrics(run_dir):
        merged.setdefault(record["step"], {}).update(record["metrics"])
    return merged


def test_webshop_job_trains_evaluates_checkpoints_and_resumes(tmp_path):
    result = train(build_config(_webshop(tmp_path, tracker="both")), progress=False)
    assert result.iterations == 2 and result.checkpoint.name == "iter_000002"
    assert (result.checkpoint / "model" / "model.safetensors").is_file()
    assert (result.checkpoint / "trainer_state.pt").is_file()
    metrics = _by_step(result.run_dir)
    for key in ("train/success", "train/score", "actor/pg_loss", "actor/grad_norm", "adv/success_rate_mean",
                "timing/rollout_s", "timing/adv_s", "timing/update_s", "val/success", "val/score", "batch/steps"):
        assert key in metrics[2], key
    assert any(key.startswith("val/success/") for key in metrics[1])
    assert metrics[2]["train/episodes"] == 4 and metrics[2]["val/episodes"] == 4
    assert 0.0 <= metrics[2]["val/score"] <= 1.0
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["iterations"] == 2 and "val/success" in summary["final_eval"]

    import mlflow

    client = mlflow.MlflowClient()
    [run] = client.search_runs([client.get_experiment_by_name("proxmo").experiment_id], "tags.mlflow.runName = 'ws'")
    assert run.info.status == "FINISHED"
    assert run.data.params["advantage.estimator"] == "proxmo"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/success")] == [1, 2]

    resumed = train(build_config(_webshop(tmp_path, iterations=3, resume=str(result.run_dir), tracker="both")),
                    progress=False)
    assert resumed.run_dir == result.run_dir and resumed.iterations == 3
    assert sorted(_by_step(result.run_dir)) == [1, 2, 3]
    assert (result.run_dir / "checkpoints" / "iter_000003").is_dir()
    # the MLflow run goes on: same run, metrics at the next steps
    [again] = client.search_runs([run.info.experiment_id], "tags.mlflow.runName = 'ws'")
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/success")] == [1, 2, 3]


def test_alfworld_job_is_reproducible_and_reports_every_category(tmp_path):
    first = train(build_config(_alfworld(tmp_path, "a", action_mode="choose")), progress=False)
    second = train(build_config(_alfworld(tmp_path, "b", action_mode="choose")), progress=False)
    m1, m2 = _by_step(first.run_dir)[1], _by_step(second.run_dir)[1]
    same = [k for k in m1 if not k.startswith("timing/")]
    assert {k: m1[k] for k in same} == {k: m2[k] for k in same}
    categories = {k.split("/")[-1] for k in m1 if k.startswith("val/success/")}
    assert categories == {"Pick", "Look", "Clean", "Heat", "Cool", "Pick2"}
    assert m1["val/episodes"] == 6 and m1["train/episodes"] == 4


def test_generate_mode_with_reference_kl_flags_format_errors(tmp_path):
    data = _alfworld(tmp_path, "g", action_mode="generate")
    data["run"]["iterations"] = 2
    result = train(build_config(data), progress=False)
    metrics = _by_step(result.run_dir)
    # an untrained model cannot write <think>..</think><action>..</action>: every step is invalid
    assert metrics[1]["train/invalid_rate"] == 1.0
    # the reference is the initial policy: no divergence before the first step, some after it
    assert "timing/ref_logprob_s" in metrics[1] and metrics[1]["actor/kl"] == pytest.approx(0.0, abs=1e-7)
    assert metrics[2]["actor/kl"] > 1e-9
    assert (result.run_dir / "reference" / "model.safetensors").is_file()


def test_cli_shows_the_resolved_config_and_rejects_bad_values():
    runner = CliRunner()
    shown = runner.invoke(app, ["train", "configs/webshop_demo.yaml", "optim.lr=0.5", "--show-config"])
    assert shown.exit_code == 0, shown.output
    assert "optim.lr = 0.5" in shown.output and "env.name = 'webshop'" in shown.output
    bad = runner.invoke(app, ["train", "rollout.group_size=0"])
    assert bad.exit_code == 2 and "rollout.group_size" in bad.output
    assert module_main(["optim.kl_coef=-1"]) == 2


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[3])
    assert os.environ.get("MLFLOW_TRACKING_URI", "").startswith("sqlite:")


def test_webshop_job_on_ray_environment_actors(tmp_path):
    data = _webshop(tmp_path, iterations=1, name="ray")
    data["env"].update({"backend": "ray", "envs_per_actor": 2})
    data["eval"] = {"every": 0, "tasks": 2, "batch": 2}
    result = train(build_config(data), progress=False)
    metrics = _by_step(result.run_dir)[1]
    assert metrics["train/episodes"] == 4 and metrics["train/aborted"] == 0
    assert metrics["val/episodes"] == 2

    import ray

    assert not ray.is_initialized()  # the pool started Ray and shut it down with the run


def test_the_job_imports_neither_prefect_nor_ray_nor_mlflow():
    import subprocess
    import sys

    code = ("import sys, proxmo.train.job, proxmo.train.__main__; "
            "print(sorted(m for m in ('prefect', 'ray', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_cli_train_runs_a_tiny_job_and_prints_the_evaluation(tmp_path):
    data = _webshop(tmp_path, iterations=1, name="cli", tracker="mlflow")
    overrides = [f"{section}.{key}={json.dumps(value)}" for section, values in data.items() for key, value in values.items()]
    result = CliRunner().invoke(app, ["train", "configs/webshop_demo.yaml", *overrides, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "validation success (%)" in result.output and "val/score" in result.output
    assert "4 evaluation episodes" in result.output
    run_id = json.loads((tmp_path / "runs" / "cli" / "mlflow.json").read_text())["run_id"]
    assert f"MLflow run {run_id}" in result.output and "proxmo ui" in result.output  # how to see it
    assert (tmp_path / "runs" / "cli" / "summary.json").is_file()


def test_cli_and_module_report_a_missing_model_in_one_line(tmp_path, capsys):
    args = ["configs/alfworld_demo.yaml", "model.kind=hf", f"model.path={tmp_path / 'no-model'}",
            f"run.output_dir={tmp_path / 'runs'}"]
    result = CliRunner().invoke(app, ["train", *args, "--quiet"])
    assert result.exit_code == 1
    assert "model.path" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 3
    assert module_main([*args, "--quiet"]) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    debug = CliRunner().invoke(app, ["train", *args, "--quiet", "--debug"])
    assert debug.exit_code != 0 and isinstance(debug.exception, FileNotFoundError)


def test_config_errors_name_the_field_before_any_work(tmp_path):
    cases = {
        "env.options.colour=red": "env.options.colour",
        "env.options.games.trains=4": "env.options.games.trains",
        "rollout.group_size=1": "rollout.group_size",
        "optim.mini_batches=1000": "optim.mini_batches",
        "env.name=nowhere": "env.name",
    }
    for override, field in cases.items():
        result = CliRunner().invoke(app, ["train", "configs/alfworld_demo.yaml", override,
                                          f"run.output_dir={tmp_path / 'runs'}"])
        assert result.exit_code == 2 and field in result.output, (override, result.output)
    assert not (tmp_path / "runs").exists()


def test_cuda_on_a_machine_without_it_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = CliRunner().invoke(app, ["train", "configs/alfworld_demo.yaml", "model.device=cuda",
                                      f"run.output_dir={tmp_path / 'runs'}", "--quiet"])
    assert result.exit_code == 1 and "model.device" in result.output and "CUDA" in result.output


def test_a_third_environment_trains_through_the_job_without_changes_to_proxmo(tmp_path):
    from tests.envs import toy  # noqa: F401  (registers "toy" with its defaults only)

    data = {
        "env": {"name": "toy", "options": {"n_tasks": 4}, "eval_split": "test"},
        "model": TINY,
        "rollout": {"n_groups": 2, "group_size": 2, "action_mode": "choose", "prompt_style": "compact"},
        "optim": {"lr": 1e-3},
        "eval": {"every": 0, "greedy": True, "random_baseline": True, "episodes_per_task": 2},
        "run": {"iterations": 2, "output_dir": str(tmp_path / "runs"), "name": "toy", "tracker": "jsonl"},
    }
    from proxmo.train.config import ConfigError

    with pytest.raises(ConfigError, match=r"env.options.colour"):
        build_config({**data, "env": {"name": "toy", "options": {"colour": "red"}}})
    result = train(build_config(data), progress=False)
    metrics = _by_step(result.run_dir)
    assert metrics[2]["train/episodes"] == 4 and metrics[2]["val/episodes"] == 8
    assert {"val/success/even", "val/success/odd", "val/greedy/success", "val/random/success"} <= set(metrics[2]) | set(metrics[0])
    assert metrics[2]["actor/ratio_max"] == pytest.approx(1.0, abs=1e-5)
    from proxmo.results import RunSummary

    summary = RunSummary.from_summary("proxmo", 0, json.loads((result.run_dir / "summary.json").read_text()))
    assert summary.final == metrics[2]["val/success"] and summary.eval_key and 0 < summary.adv_fraction < 1


def test_run_seed_seeds_the_model_unless_the_model_has_its_own(tmp_path):
    from proxmo.train.job import Trainer

    names = iter(range(100))

    def weights(run_seed, **model):  # every call a run of its own
        data = _alfworld(tmp_path, f"w{next(names)}", action_mode="choose")
        data["model"] = {**data["model"], **model}
        data["run"]["seed"] = run_seed
        trainer = Trainer(build_config(data), progress=False)
        try:
            return [p.detach().clone() for p in trainer.policy.model.parameters()]
        finally:
            trainer.close()

    def same(a, b):
        return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))

    assert same(weights(0), weights(0))
    assert not same(weights(0), weights(1))
    assert same(weights(1, seed=7), weights(1, seed=7)) and not same(weights(1, seed=7), weights(1))


def test_a_resumed_run_has_one_point_per_step(tmp_path):
    # The run dies after logging iteration 3 but before checkpointing it: the resume replays iteration 3.
    first = train(build_config(_webshop(tmp_path, iterations=3, save_every=2, keep_checkpoints=5, tracker="both")),
                  progress=False)
    import shutil

    shutil.rmtree(first.run_dir / "checkpoints" / "iter_000003")
    train(build_config(_webshop(tmp_path, iterations=3, resume=str(first.run_dir), tracker="both")), progress=False)
    steps = [record["step"] for record in read_metrics(first.run_dir) if "train/success" in record["metrics"]]
    assert steps == [1, 2, 3]
    evaluations = [record["step"] for record in read_metrics(first.run_dir) if "val/success" in record["metrics"]]
    assert evaluations == [1, 2, 3]

    import mlflow

    client = mlflow.MlflowClient()
    run_id = json.loads((first.run_dir / "mlflow.json").read_text())["run_id"]
    assert [m.step for m in client.get_metric_history(run_id, "train/success")] == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(run_id, "val/success")] == [1, 2, 3]
    summary = json.loads((first.run_dir / "summary.json").read_text())
    assert [e["step"] for e in summary["evaluations"]] == [1, 2, 3]  # the whole history, not only the replay
    assert client.get_run(run_id).info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(run_id)} == {"config.yaml", "summary.json", "curves.png"}


def test_a_failed_start_leaves_no_run_folder(tmp_path):
    data = _alfworld(tmp_path, "broken", action_mode="choose")
    data["env"]["options"] = {"data": str(tmp_path / "no-games-here")}
    with pytest.raises(FileNotFoundError):
        train(build_config(data), progress=False)
    assert not (tmp_path / "runs" / "broken").exists()


def test_the_evaluation_key_names_the_tasks_not_where_they_live(tmp_path):
    from proxmo.train.setup import evaluation_key, prepare_env

    def key(output, **evaluation):
        data = _alfworld(tmp_path, "k", action_mode="choose")
        data["env"]["options"] = {"games": {"train": 3, "eval": 3, "max_receptacles": 3, "distractors": 0}}
        data["eval"] = {"every": 0, **evaluation}
        data["run"]["output_dir"] = str(tmp_path / output)
        config = build_config(data)
        return evaluation_key(config, prepare_env(config))

    assert key("a") == key("b")  # the same generated games in two folders
    assert key("a") != key("a", tasks=2)
    assert key("a") != key("a", temperature=1.0)
    assert key("a") != key("a", episodes_per_task=2)


def test_lora_trains_only_the_adapters_keeps_the_base_as_reference_and_resumes_exactly(tmp_path):
    from proxmo.policy import AdaptersOff
    from proxmo.train.job import Trainer

    def config(name, iterations, resume=None):
        data = _webshop(tmp_path, iterations=iterations, save_every=1, keep_checkpoints=5, name=name, resume=resume)
        data["model"] = {**data["model"], "lora_rank": 4, "lora_targets": ["q_proj", "v_proj"]}
        data["optim"] = {**data["optim"], "kl_coef": 0.1}
        data["rollout"] = {**data["rollout"], "action_mode": "generate"}
        return build_config(data)

    trainer = Trainer(config("lora", 3), progress=False)
    named = dict(trainer.policy.model.named_parameters())
    trainable = sorted(n for n, p in named.items() if p.requires_grad)
    assert trainable and all("lora_" in n for n in trainable)
    assert isinstance(trainer.reference, AdaptersOff)
    frozen = {n: p.detach().clone() for n, p in named.items() if not p.requires_grad}
    adapters = {n: named[n].detach().clone() for n in trainable}
    prompt, response = trainer.policy.encode_prompt("find a red shirt"), trainer.policy.encode_response("search[shirt]")
    with torch.no_grad():
        initial, _, _ = trainer.policy.token_logprobs([prompt], [response])
    result = trainer.run()
    named = dict(trainer.policy.model.named_parameters())
    assert all(torch.equal(named[n], p) for n, p in frozen.items())  # the base did not move
    assert any(not torch.equal(named[n], p) for n, p in adapters.items())  # the adapters did
    with torch.no_grad():
        reference, _, _ = trainer.reference.token_logprobs([prompt], [response])
        now, _, _ = trainer.policy.token_logprobs([prompt], [response])
    torch.testing.assert_close(reference, initial, atol=1e-6, rtol=0)  # adapters off: the starting model
    assert not torch.allclose(now, initial)
    assert (result.checkpoint / "model" / "adapter_model.safetensors").is_file()  # only the adapter is saved
    assert not (result.checkpoint / "model" / "model.safetensors").exists()

    straight = _by_step(result.run_dir)
    resumed = train(config("lora", 3, resume=str(result.run_dir / "checkpoints" / "iter_000001")), progress=False)
    assert len(resumed.history) == 2 and resumed.iterations == 3  # iterations 2 and 3 trained again
    for step, replayed in zip((2, 3), resumed.history):  # ... to the same numbers
        same = [k for k in replayed if not k.startswith("timing/")]
        assert same and {k: replayed[k] for k in same} == {k: straight[step][k] for k in same}, step


@pytest.mark.parametrize("score", ["mean", "sum"])
def test_acting_and_the_update_score_candidates_the_way_the_config_says(tmp_path, score):
    """choose mode: the log-probs the update recomputes equal those acting sampled with (the PPO ratio starts at 1)
    under either candidate score, and the default is the mean (length-normalised) one."""
    from proxmo.policy.config import LENGTH_NORMALIZE
    from proxmo.rollout import collect
    from proxmo.train.job import Trainer
    from proxmo.train.update import sequence_logprobs

    assert build_config({}).rollout.choose_score == "mean" and LENGTH_NORMALIZE
    data = _alfworld(tmp_path, f"score-{score}", action_mode="choose", choose_score=score)
    trainer = Trainer(build_config(data), progress=False)
    try:
        settings = trainer._settings(1.0)
        assert settings.length_normalize == (score == "mean")
        rollout = collect(trainer._train_pool(), trainer.policy, trainer.sample_tasks(), settings,
                          torch.Generator().manual_seed(0))
        steps = rollout.trained_steps()
        sequences = trainer._sequences(steps)
        recomputed = torch.cat(sequence_logprobs(trainer.policy, sequences, 8))
        acted = torch.tensor([s.logprob for s in steps])
        assert torch.allclose(recomputed, acted, atol=1e-5)
        step = next(s for s in steps if len(s.candidate_ids) > 1)
        with torch.no_grad():
            by = {normalize: trainer.policy.candidate_logprobs([step.prompt_ids], [step.candidate_ids], 1.0, normalize)[0]
                  for normalize in (False, True)}
        assert not torch.allclose(by[False], by[True])  # the two scores differ, so the check above tells them apart
    finally:
        trainer.close()


@pytest.mark.parametrize("estimator", ["drgrpo", "rloo", "reinforce_pp_baseline", "hgpo", "g2po", "graphgpo"])
def test_every_estimator_trains_a_job_and_logs_its_diagnostics(tmp_path, estimator):
    from proxmo.results import contract

    data = _alfworld(tmp_path, estimator, action_mode="choose", n_groups=2, group_size=3)
    data["advantage"] = {"estimator": estimator, "preset": "official"}
    result = train(build_config(data), progress=False)
    metrics = _by_step(result.run_dir)[1]
    assert metrics["adv/rows"] == metrics[contract.BATCH_STEPS] > 0
    assert metrics[contract.ADV_SECONDS] > 0 and 0 < metrics[contract.ADV_FRACTION] < 1
    assert all(value == value for key, value in metrics.items() if key.startswith("adv/"))  # no NaN
    own = {"reinforce_pp_baseline": "adv/token_weighted", "hgpo": "adv/history_items_mean",
           "g2po": "adv/node_singleton_fraction", "graphgpo": "adv/distance_to_success_mean"}
    if estimator in own:
        assert own[estimator] in metrics
    if estimator == "reinforce_pp_baseline":
        assert metrics["adv/token_weighted"] == 1.0  # the job passes each step's response token count
