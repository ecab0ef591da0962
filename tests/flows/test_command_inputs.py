"""`proxmo ablate` and `proxmo sweep` refuse bad input in one line, exit 2, before any job: names that are not one
folder, a variant given twice, an Optuna storage that does not open, an MLflow server that does not answer."""

import os
import time

import pytest
from typer.testing import CliRunner

from proxmo.cli import app
from tests.flows.test_ablate_flow import TINY
from tests.servers import free_port


def _run(command, tmp_path, *args):
    start = time.monotonic()
    common = ["configs/alfworld_demo.yaml", *TINY, "--output-dir", str(tmp_path / "runs")]
    if command == "sweep":
        common += ["--trials", "1", "--storage", f"sqlite:///{tmp_path / 'optuna.db'}"]
    result = CliRunner().invoke(app, [command, *common, *args])
    return result, time.monotonic() - start


@pytest.mark.parametrize("command", ["ablate", "sweep"])
@pytest.mark.parametrize("name", ["../outside", "/", ".", "a/b"])
def test_an_ablation_or_study_name_is_one_folder(tmp_path, command, name):
    result, _ = _run(command, tmp_path, "--name", name)
    assert result.exit_code == 2 and "name: " in result.output and "must name one folder" in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("metrics.jsonl"))


def test_a_variant_name_is_one_folder_and_given_once(tmp_path):
    result, _ = _run("ablate", tmp_path, "--variant", "a=advantage.estimator=grpo",
                     "--variant", "a=advantage.estimator=proxmo")
    assert result.exit_code == 2 and "given twice" in result.output
    result, _ = _run("ablate", tmp_path, "--variant", "../up=advantage.estimator=grpo")
    assert result.exit_code == 2 and "must name one folder" in result.output


@pytest.mark.parametrize("storage", ["foo://nowhere", "not a url", "sqlite:////no/such/folder/optuna.db"])
def test_a_bad_storage_url_is_one_line(tmp_path, storage):
    result = CliRunner().invoke(app, ["sweep", "configs/alfworld_demo.yaml", *TINY, "--trials", "1",
                                      "--storage", storage, "--output-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "cannot open the Optuna storage" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["ablate", "sweep"])
def test_a_dead_tracking_server_is_one_line_in_seconds(tmp_path, command):
    dead = f"http://127.0.0.1:{free_port()}"
    result, seconds = _run(command, tmp_path, "--tracking-uri", dead)
    assert result.exit_code == 2 and f"the MLflow server at {dead} does not answer" in result.output
    assert "Traceback" not in result.output and seconds < 30


def test_a_storage_password_is_kept_out_of_parameters_and_printed_results(tmp_path):
    from flows.specs import SweepSpec
    from flows.sweep import sweep_flow
    from proxmo.urls import redact_url

    assert redact_url("postgresql+psycopg2://optuna:s3cret@db:5432/optuna") == "postgresql+psycopg2://optuna:***@db:5432/optuna"
    assert redact_url("sqlite:///optuna.db") == "sqlite:///optuna.db"
    with pytest.raises(ValueError, match=r"holds a password.*PROXMO_OPTUNA_STORAGE") as refused:
        sweep_flow(SweepSpec(preset="configs/alfworld_demo.yaml", name="secret", storage="postgresql://u:s3cret@127.0.0.1:1/db"))
    assert "s3cret" not in str(refused.value)

    result, _ = _run("sweep", tmp_path, "--name", "via-env", "--concurrency", "1", "--pruner", "none")
    assert result.exit_code == 0, result.output
    import asyncio

    from prefect.client.orchestration import get_client

    async def parameters():
        async with get_client() as client:
            runs = await client.read_flow_runs(limit=50)
            return [run.parameters["spec"] for run in runs if run.parameters.get("spec", {}).get("name") == "via-env"]

    [stored] = asyncio.run(parameters())
    assert stored.get("storage") is None  # the URL went to the flow through PROXMO_OPTUNA_STORAGE
    assert "study via-env" in result.output
    assert "PROXMO_OPTUNA_STORAGE" not in os.environ  # the command leaves the environment as it found it


def test_the_zoo_grid_holds_every_registered_estimator_at_its_defaults():
    from flows.specs import AblationSpec
    from proxmo.advantage import ESTIMATORS

    zoo = AblationSpec.build(grid="zoo")
    assert zoo.variants == {name: [f"advantage.estimator={name}"] for name in ESTIMATORS}
    assert {"drgrpo", "rloo", "reinforce_pp_baseline", "hgpo", "g2po", "graphgpo"} <= set(zoo.variants)
    assert AblationSpec.build(grid="zoo", variants={"a": ["advantage.estimator=rloo"]}).variants == {
        "a": ["advantage.estimator=rloo"]}  # variants given win over the grid
    assert AblationSpec.model_validate(zoo.model_dump()) == zoo  # as a deployment sends it back
    with pytest.raises(ValueError, match="grid"):
        AblationSpec.build(grid="everything")
