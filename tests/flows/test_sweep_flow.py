"""The sweep flow: an Optuna study of real training jobs, nested MLflow runs, failures recorded, studies resumed."""

import json

import mlflow
import optuna
import pytest
from prefect.artifacts import Artifact

import tasks.study
import tasks.training
from flows.specs import SweepSpec
from flows.sweep import sweep_flow
from tests.flows.test_ablate_flow import TINY


def test_sweep_runs_trials_records_the_study_and_resumes(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    common = dict(preset="configs/alfworld_demo.yaml", name="tiny-sweep", concurrency=2, overrides=TINY,
                  storage=storage, output_dir=str(tmp_path / "runs"), experiment="sweep-test", pruner="none")
    out = sweep_flow(SweepSpec(n_trials=3, **common))
    study = optuna.load_study(study_name="tiny-sweep", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    for trial in study.trials:
        assert 0.01 <= trial.params["delta"] <= 0.3 and 0.02 <= trial.params["tau"] <= 1.0
        assert 0.0 <= trial.value <= 1.0
    assert out["best_value"] == max(t.value for t in study.trials)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("sweep-test").experiment_id
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{out['parent_run_id']}'")
    assert sorted(r.data.tags["trial"] for r in children) == ["0", "1", "2"]
    assert {r.data.params["advantage.target_range"] for r in children} == {f"{t.params['delta']}" for t in study.trials}
    parent = client.get_run(out["parent_run_id"])
    assert parent.info.status == "FINISHED" and "best.delta" in parent.data.tags
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["trials.csv"]
    published = json.loads(Artifact.get("sweep-tiny-sweep").data)  # the trials table, best first
    assert sorted(row["trial"] for row in published) == [0, 1, 2]
    assert published[0]["value"] == round(out["best_value"], 4)

    again = sweep_flow(SweepSpec(n_trials=4, **common))  # the study goes on: one more trial, same parent
    assert len(optuna.load_study(study_name="tiny-sweep", storage=storage).trials) == 4
    assert again["parent_run_id"] == out["parent_run_id"]


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tmp_path, monkeypatch):
    real = tasks.training.run_job

    def flaky(config, trial=None):
        if config.run.name == "trial001":
            raise RuntimeError("simulated crash")
        return real(config, trial)

    monkeypatch.setattr(tasks.training, "run_job", flaky)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweep_flow(SweepSpec(preset="configs/alfworld_demo.yaml", name="flaky", n_trials=3, concurrency=1, overrides=TINY,
                         storage=storage, output_dir=str(tmp_path / "runs"), experiment="sweep-test", pruner="none"))
    states = [t.state.name for t in optuna.load_study(study_name="flaky", storage=storage).trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"]


def test_bad_sweep_settings_fail_before_any_trial(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    for kwargs, message in [(dict(params=["delta", "gamma"]), "gamma"), (dict(params=["delta", "beta"]), "beta"),
                            (dict(ranges={"tau": [0.0, 1.0]}), "ranges.tau"),
                            (dict(overrides=["optim.lr=-1"]), "optim.lr"), (dict(pruner="sometimes"), "pruner")]:
        with pytest.raises(ValueError, match=message):
            sweep_flow(SweepSpec.build(preset="configs/alfworld_demo.yaml", name="bad", n_trials=1, storage=storage,
                                       output_dir=str(tmp_path / "runs"), **kwargs))
    assert not (tmp_path / "runs").exists()
    assert "bad" not in optuna.study.get_all_study_names(storage)


def test_the_trial_reporter_prunes_through_the_study(tmp_path):
    from proxmo.train.job import StopRun

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="p", storage=storage, direction="maximize")
    trial = study.ask()
    report = tasks.study.trial_reporter({"storage": storage, "study": "p", "number": trial.number,
                                            "metric": "val/success", "pruner": "threshold:0.5"})
    report(1, {"val/success": 0.9})  # above the threshold: goes on
    with pytest.raises(StopRun, match="pruned"):
        report(2, {"val/success": 0.1})
    assert study.trials[0].intermediate_values == {1: 0.9, 2: 0.1}


def test_a_pruned_trial_stops_its_job_early(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # no success rate reaches 2: pruned at the first evaluation
    out = sweep_flow(SweepSpec(preset="configs/alfworld_demo.yaml", name="pruned", n_trials=1, concurrency=1,
                               overrides=TINY, storage=storage, output_dir=str(tmp_path / "runs"), experiment="sweep-test",
                               pruner="threshold:2.0"))
    assert [t.state.name for t in optuna.load_study(study_name="pruned", storage=storage).trials] == ["PRUNED"]
    assert out["best_value"] is None
    run = mlflow.MlflowClient().search_runs(
        [mlflow.MlflowClient().get_experiment_by_name("sweep-test").experiment_id],
        f"tags.`mlflow.parentRunId` = '{out['parent_run_id']}'")[0]
    assert run.info.status == "KILLED"


def test_proxmo_sweep_command_prints_the_trials(tmp_path):
    from typer.testing import CliRunner

    from proxmo.cli import app

    result = CliRunner().invoke(app, ["sweep", "configs/alfworld_demo.yaml", *TINY, "--name", "cli-sweep",
                                      "--trials", "2", "--concurrency", "1", "--pruner", "none",
                                      "--storage", f"sqlite:///{tmp_path / 'optuna.db'}",
                                      "--output-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "study cli-sweep" in result.output and "best:" in result.output and "COMPLETE" in result.output


def test_a_sweep_searches_any_numeric_option_of_any_estimator(tmp_path):
    from typer.testing import CliRunner

    from proxmo.cli import app

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = CliRunner().invoke(app, ["sweep", "configs/alfworld_demo.yaml", *TINY, "advantage.estimator=hgpo",
                                      "--param", "advantage.history_length=0:4", "--param", "advantage.alpha=0.1:4:log",
                                      "--name", "hgpo-sweep", "--trials", "3", "--concurrency", "1", "--pruner", "none",
                                      "--storage", storage, "--output-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="hgpo-sweep", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for trial in trials:  # an int option is searched over whole numbers
        assert isinstance(trial.params["advantage.history_length"], int) and 0 <= trial.params["advantage.history_length"] <= 4
        assert 0.1 <= trial.params["advantage.alpha"] <= 4.0
        config = json.loads(json.dumps(trial.distributions["advantage.alpha"]._asdict()))
        assert config["log"] is True
    runs = tmp_path / "runs" / "hgpo-sweep"
    saved = {p.parent.name: p.read_text() for p in runs.glob("trial*/config.yaml")}
    assert len(saved) == 3 and all("estimator: hgpo" in text for text in saved.values())


def test_a_dotted_sweep_parameter_is_checked_before_any_trial(tmp_path):
    from flows.sweep import _config, _integer_params

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    common = dict(preset="configs/alfworld_demo.yaml", name="bad-dotted", n_trials=1, storage=storage,
                  output_dir=str(tmp_path / "runs"), overrides=TINY)
    with pytest.raises(ValueError, match="history_length: not an option of estimator 'proxmo'"):
        sweep_flow(SweepSpec.build(**common, params=["advantage.history_length"],
                                   ranges={"advantage.history_length": [1, 3]}))
    assert not (tmp_path / "runs").exists()
    assert "bad-dotted" not in optuna.study.get_all_study_names(storage)
    # the same check the flow runs first: the config at the low end of every range
    for kwargs, message in [
        (dict(params=["advantage.modulation"], ranges={"advantage.modulation": [0, 1]}), "not a numeric setting"),
        (dict(params=["advantage.max_features"], ranges={"advantage.max_features": [8.5, 64]}),
         "advantage.max_features: Input should be a valid integer"),
        (dict(params=["advantage.max_features"], ranges={"advantage.max_features": [8, 64.5]}), "whole numbers"),
    ]:
        spec = SweepSpec.build(**common, **kwargs)
        space = spec.space()
        with pytest.raises(ValueError, match=message):
            _integer_params(_config(spec, {n: (k, low) for n, (k, low, _, _) in space.items()}, 0, 0), space)
    with pytest.raises(ValueError, match="ranges.advantage.temperature: give"):
        SweepSpec.build(**common, params=["advantage.temperature"])


def test_a_trial_over_several_seeds_scores_their_mean_and_is_pruned_as_one(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    common = dict(preset="configs/alfworld_demo.yaml", concurrency=1, overrides=TINY, storage=storage,
                  output_dir=str(tmp_path / "runs"), experiment="sweep-seeds", seeds=[0, 1])
    out = sweep_flow(SweepSpec(name="two-seeds", n_trials=2, pruner="none", **common))
    for trial in optuna.load_study(study_name="two-seeds", storage=storage).trials:
        values = trial.user_attrs["values"]
        assert set(values) == {"0", "1"} and trial.value == pytest.approx(sum(values.values()) / 2)
    assert all(row["per seed"] for row in out["trials"])
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("sweep-seeds").experiment_id
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{out['parent_run_id']}'")
    assert sorted(r.info.run_name for r in children) == ["trial000__s0", "trial000__s1", "trial001__s0", "trial001__s1"]
    assert {r.data.params["run.seed"] for r in children} == {"0", "1"}

    pruned = sweep_flow(SweepSpec(name="two-seeds-pruned", n_trials=1, pruner="threshold:2.0", **common))
    assert [t.state.name for t in optuna.load_study(study_name="two-seeds-pruned", storage=storage).trials] == ["PRUNED"]
    runs = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{pruned['parent_run_id']}'")
    assert len(runs) == 2 and all(r.info.status == "KILLED" for r in runs)  # both seeds stopped, not only the first
    with pytest.raises(ValueError, match="seeds: give distinct seeds"):
        SweepSpec(name="bad-seeds", n_trials=1, pruner="none", **{**common, "seeds": [1, 1]})


def test_a_second_worker_on_the_study_leaves_the_live_trial_alone_and_samples_its_own_stream(tmp_path):
    from tasks.study import Heartbeats, ask, make_pruner, open_study, study_storage, use_worker_stream

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first_worker = study_storage(storage, heartbeat_s=1)
    study = open_study("shared", first_worker, make_pruner("none"))
    with Heartbeats(first_worker) as beats:
        live = ask(study)  # the first worker's trial, still training
        use_worker_stream(study, 0, live.number)
        beats.add(live._trial_id)
        live_params = {"delta": live.suggest_float("delta", 0.01, 0.3, log=True),
                       "tau": live.suggest_float("tau", 0.02, 1.0, log=True)}
        sweep_flow(SweepSpec(preset="configs/alfworld_demo.yaml", name="shared", n_trials=1, concurrency=1,
                             overrides=TINY, storage=storage, output_dir=str(tmp_path / "runs"), experiment="sweep-test",
                             pruner="none", seeds=[0]))
        trials = optuna.load_study(study_name="shared", storage=storage).trials
        assert [t.state.name for t in trials] == ["RUNNING", "COMPLETE"]
        assert trials[1].params != live_params  # the same seed, its own stream
        study.tell(live, 0.5)  # the first worker finishes its trial
    assert optuna.load_study(study_name="shared", storage=storage).trials[0].state.name == "COMPLETE"
