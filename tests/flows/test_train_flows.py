"""The reproduce flow, fully orchestrated by Prefect: real training jobs, the table as an artifact."""

import json

from prefect.artifacts import Artifact

from flows.specs import ReproduceSpec
from flows.train import reproduce_flow

TINY = [
    "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2", "model.vocab_size=320",
    "model.max_prompt_tokens=384", "rollout.n_groups=1", "rollout.group_size=2", "rollout.max_steps=3",
    "eval.tasks=2", "eval.batch=2", "run.iterations=1", "run.tracker=jsonl",
]


def test_reproduce_flow_publishes_the_results_table(tmp_path):
    rows = reproduce_flow(ReproduceSpec(
        estimators=["grpo", "proxmo"], seeds=[0], overrides=[*TINY, "env.options.games.train=6", "env.options.games.eval=6"],
        presets={"alfworld": "configs/alfworld_demo.yaml", "webshop": None}, output_dir=str(tmp_path / "runs"),
    ))
    assert [row["method"] for row in rows] == ["grpo", "proxmo"]
    assert all(row["All"] is not None and row["WS score"] is None for row in rows)
    assert (tmp_path / "runs" / "alfworld__proxmo__s0" / "summary.json").is_file()
    table = json.loads(Artifact.get("reproduce-table").data)
    assert [row["method"] for row in table] == ["grpo", "proxmo"]
    markdown = Artifact.get("reproduce-table-md").data
    assert "| method | Pick |" in markdown and "95% CI" in markdown

    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("proxmo-reproduce").experiment_id
    parent = client.search_runs([experiment], "tags.proxmo_role = 'reproduction'")[0]
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r.info.run_name for r in children) == ["alfworld__grpo__s0", "alfworld__proxmo__s0"]
    assert parent.info.status == "FINISHED" and all(r.info.status == "FINISHED" for r in children)
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {"reproduce.md", "reproduce.csv"}


def test_prefect_yaml_deployments_point_at_flows_and_their_parameters():
    import importlib
    import inspect
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    spec = yaml.safe_load((root / "prefect.yaml").read_text())
    assert spec["deployments"]
    for deployment in spec["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, name)
        assert set(deployment["parameters"]) == {"spec"}, deployment["name"]
        spec_type = inspect.signature(flow.fn).parameters["spec"].annotation
        name = spec_type if isinstance(spec_type, str) else spec_type.__name__
        spec = getattr(importlib.import_module("flows.specs"), name)(**deployment["parameters"]["spec"])
        for preset in [getattr(spec, "preset", None), *getattr(spec, "presets", {}).values()]:
            assert preset is None or (root / preset).is_file(), (deployment["name"], preset)


def test_every_flow_takes_one_typed_spec_that_prefect_renders_as_a_form():
    from prefect.utilities.callables import parameter_schema

    from flows.ablate import ablate_flow
    from flows.sweep import sweep_flow
    from flows.train import train_flow

    for flow, fields in [(ablate_flow, {"variants", "seeds", "baseline", "launcher", "retries", "experiment"}),
                         (sweep_flow, {"params", "ranges", "objective", "storage", "launcher", "tracking_uri"}),
                         (reproduce_flow, {"presets", "estimators", "env_overrides", "num_gpus", "experiment"}),
                         (train_flow, {"preset", "overrides", "launcher", "ray_address"})]:
        schema = parameter_schema(flow).model_dump(by_alias=True)
        assert list(schema["properties"]) == ["spec"], flow.name
        [definition] = [d for name, d in schema["definitions"].items() if name.endswith("Spec") and fields <= set(d["properties"])]
        assert all(d.get("description") for d in definition["properties"].values()), flow.name  # every field says what it is
    launcher = parameter_schema(ablate_flow).model_dump(by_alias=True)["definitions"]["AblationSpec"]["properties"]["launcher"]
    assert launcher["enum"] == ["local", "ray"] and launcher["default"] == "local"


def test_reproduce_takes_overrides_per_environment_and_checks_them_all_first(tmp_path):
    import pytest

    from proxmo.train.config import ConfigError

    with pytest.raises(ConfigError, match="env.options.num_products"):
        # A WebShop option given to every job fails on the ALFWorld config, before any job runs.
        reproduce_flow(ReproduceSpec(estimators=["grpo"], seeds=[0], overrides=[*TINY, "env.options.num_products=300"],
                                     output_dir=str(tmp_path / "runs")))
    assert not (tmp_path / "runs").exists()
    rows = reproduce_flow(ReproduceSpec(
        estimators=["grpo"], seeds=[0], overrides=TINY, output_dir=str(tmp_path / "runs"),
        env_overrides={"alfworld": ["env.options.games.train=6", "env.options.games.eval=6"],
                       "webshop": ["env.options.num_products=300", "env.options.num_goals=700"]},
    ))
    assert float(rows[0]["All"]) >= 0 and float(rows[0]["WS score"]) >= 0  # one seed: the value alone, in percent
