"""The ablation flow, fully orchestrated: real jobs nested under a parent MLflow run, a table with intervals, re-runs resume."""

import json

import mlflow
import pytest
from prefect.artifacts import Artifact

from flows.ablate import ablate_flow, variant_configs
from flows.specs import PAPER_VARIANTS, AblationSpec

TINY = [
    "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2", "model.vocab_size=320",
    "model.max_prompt_tokens=256", "rollout.n_groups=1", "rollout.group_size=2", "rollout.max_steps=3",
    "env.options.games={train: 3, eval: 2, max_receptacles: 3, distractors: 0}", "eval.tasks=2",
    "eval.episodes_per_task=1", "eval.batch=2", "eval.every=1", "eval.greedy=false", "eval.random_baseline=false",
    "run.iterations=2",
]


def test_variants_are_validated_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="variant 'broken'.*advantage.estimator_typo"):
        variant_configs(AblationSpec(variants={"ok": [], "broken": ["advantage.estimator_typo=x"]}, seeds=[0],
                                     overrides=TINY, output_dir=str(tmp_path), name="a"))
    with pytest.raises(ValueError, match="baseline: 'nope' is not one of the variants"):
        AblationSpec(variants={"a": []}, seeds=[0], overrides=TINY, baseline="nope", output_dir=str(tmp_path / "runs"))
    for bad, message in [({"name": "a/b"}, "name: 'a/b' must name one folder"), ({"variants": {"..": []}}, "variant"),
                         ({"seeds": []}, "seeds"), ({"launcher": "slurm"}, "launcher"), ({"retries": -1}, "retries")]:
        with pytest.raises(ValueError, match=message):
            AblationSpec.build(**bad)
    from tests.servers import free_port

    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match=f"run.tracking_uri.*{down}"):
        ablate_flow(AblationSpec(variants={"a": []}, seeds=[0], overrides=TINY, tracking_uri=down,
                                 output_dir=str(tmp_path / "runs")))
    with pytest.raises(ValueError, match="run.resume: no checkpoint"):
        ablate_flow(AblationSpec(variants={"a": []}, seeds=[0], overrides=[*TINY, f"run.resume={tmp_path}"],
                                 output_dir=str(tmp_path / "runs")))
    assert not (tmp_path / "runs").exists()
    assert set(PAPER_VARIANTS) == {"grpo", "gigpo", "proxmo", "proxmo-no-modulation", "proxmo-exact-groups",
                                   "proxmo-official"}


def test_ablation_nests_runs_publishes_the_table_and_resumes(tmp_path):
    variants = {"grpo": ["advantage.estimator=grpo"], "proxmo": ["advantage.estimator=proxmo"]}
    spec = AblationSpec(preset="configs/alfworld_demo.yaml", variants=variants, seeds=[0, 1], overrides=TINY,
                        name="tiny", output_dir=str(tmp_path / "runs"), experiment="ablate-test")
    out = ablate_flow(spec)
    assert "| proxmo | 2 |" in out["table"] and "final - grpo" in out["table"]
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("ablate-test").experiment_id
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{out['parent_run_id']}'")
    assert sorted(r.info.run_name for r in children) == ["grpo__s0", "grpo__s1", "proxmo__s0", "proxmo__s1"]
    assert all(r.info.status == "FINISHED" and r.data.tags["prefect.flow_run_id"] for r in children)
    parent = client.get_run(out["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"ablation.md", "ablation.csv", "curves.png"}
    assert all({a.path for a in client.list_artifacts(r.info.run_id)} == {"config.yaml", "summary.json", "curves.png"}
               for r in children)
    table = json.loads(Artifact.get("ablation-tiny").data)
    assert [row["variant"] for row in table] == ["grpo", "proxmo"]

    # A second run of the same ablation trains nothing again: same parent, same children, one point per step.
    again = ablate_flow(spec.model_dump())  # as a deployment sends it: a dict, validated into the spec
    assert again["parent_run_id"] == out["parent_run_id"] and again["table"] == out["table"]
    assert len(client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{out['parent_run_id']}'")) == 4
    history = client.get_metric_history(children[0].info.run_id, "train/success")
    assert [m.step for m in history] == [1, 2]


@pytest.mark.integration
def test_ablation_jobs_run_side_by_side_as_ray_tasks(tmp_path):
    import os

    variants = {"grpo": ["advantage.estimator=grpo"], "proxmo": ["advantage.estimator=proxmo"]}
    out = ablate_flow(AblationSpec(preset="configs/alfworld_demo.yaml", variants=variants, seeds=[3], overrides=TINY,
                                   name="on-ray", output_dir=str(tmp_path / "runs"), experiment="ablate-ray",
                                   launcher="ray"))
    assert "| proxmo | 1 |" in out["table"]
    assert all(pid != os.getpid() for pid in out["pids"])  # each job ran in a Ray worker process
    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("ablate-ray").experiment_id],
                              f"tags.`mlflow.parentRunId` = '{out['parent_run_id']}'")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    import ray

    assert not ray.is_initialized()  # the flow started Ray and shut it down


def test_proxmo_ablate_command_runs_the_grid_and_prints_the_table(tmp_path):
    from typer.testing import CliRunner

    from proxmo.cli import app

    args = ["ablate", "configs/alfworld_demo.yaml", *TINY, "--variant", "grpo=advantage.estimator=grpo",
            "--variant", "cold=advantage.estimator=proxmo advantage.temperature=0.05", "--seed", "0",
            "--name", "cli", "--output-dir", str(tmp_path / "runs")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| cold | 1 |" in result.output and "parent MLflow run" in result.output
    bad = CliRunner().invoke(app, [*args[:-4], "--variant", "x=advantage.nothing=1"])
    assert bad.exit_code == 2 and "advantage.nothing" in bad.output


def test_the_dashboard_compares_with_the_baseline_the_ablation_used(tmp_path):
    """Without grpo the baseline is the first variant as given (here not the first alphabetically), and the
    dashboard, reading only MLflow, compares with the same one."""
    from dashboards import data

    variants = {"proxmo-cold": ["advantage.estimator=proxmo", "advantage.temperature=0.05"],
                "gigpo": ["advantage.estimator=gigpo"]}
    out = ablate_flow(AblationSpec(preset="configs/alfworld_demo.yaml", variants=variants, seeds=[0], name="order",
                                   overrides=[*TINY, "run.iterations=1"], output_dir=str(tmp_path / "runs"),
                                   experiment="ablate-baseline"))
    assert "final - proxmo-cold" in out["table"]
    store = data.Store(mlflow.get_tracking_uri(), None)
    runs = data.runs_frame(store)
    rows, baseline = data.ablation_table(store, runs, out["parent_run_id"])
    assert baseline == "proxmo-cold" and [r.variant for r in rows] == ["proxmo-cold", "gigpo"]
    assert rows[0].difference is None
    assert rows[1].difference.mean == pytest.approx(rows[1].final.mean - rows[0].final.mean)  # one seed: paired = plain


@pytest.mark.integration
def test_the_zoo_grid_trains_every_estimator_and_ranks_them(tmp_path):
    from typer.testing import CliRunner

    from proxmo.advantage import ESTIMATORS
    from proxmo.cli import app

    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["ablate", "configs/alfworld_demo.yaml", *TINY, "--grid", "zoo", "--seed", "0",
                                      "--seed", "1", "--name", "zoo", "--output-dir", str(runs)])
    assert result.exit_code == 0, result.output
    for name in ESTIMATORS:
        assert f"| {name} | 2 |" in result.output, name
    board = CliRunner().invoke(app, ["leaderboard", str(runs / "zoo")])
    assert board.exit_code == 0, board.output
    assert all(f"| {name} | 2 |" in board.output for name in ESTIMATORS) and "final - grpo" in board.output
