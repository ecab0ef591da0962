"""Tests of the trackers: the run folder's own record, a real MLflow store and server, and sending what a
server that was down missed."""

import json
import math
import subprocess
import sys
import warnings

import pytest

from proxmo.train.tracking import (
    JsonlTracker,
    MlflowTracker,
    NullTracker,
    Tracker,
    flatten_params,
    make_tracker,
    read_metrics,
    sync_run,
)
from tests.servers import MlflowServer, free_port


def test_flatten_params():
    flat = flatten_params({
        "optim": {"lr": 1e-6, "betas": [0.9, 0.999], "sched": {"kind": "constant"}},
        "seed": 0, "bf16": True, "empty": {}, "none": None,
    })
    assert flat == {
        "optim.lr": "1e-06", "optim.betas": "[0.9, 0.999]", "optim.sched.kind": "constant",
        "seed": "0", "bf16": "True", "empty": "{}", "none": "None",
    }
    assert flatten_params({"lr": 1}, prefix="optim") == {"optim.lr": "1"}


def test_long_param_values_are_truncated_with_a_marker():
    value = flatten_params({"prompt": "x" * 7000})["prompt"]
    assert len(value) == 6000 and value.endswith("...[truncated]")
    assert flatten_params({"ok": "y" * 6000})["ok"] == "y" * 6000


@pytest.mark.parametrize("value", [None, "0.5x", [1.0, 2.0]])
def test_metric_values_that_are_not_numbers_are_named(tmp_path, value):
    tracker = JsonlTracker(tmp_path)
    with pytest.raises(ValueError, match="metric 'loss'"):
        tracker.log_metrics({"loss": value}, step=0)
    with pytest.raises(ValueError, match="metric 'loss'"):
        NullTracker().log_metrics({"loss": value}, step=0)
    assert read_metrics(tmp_path) == []  # nothing half-written


# --- the run folder -----------------------------------------------------------------------------


def test_jsonl_round_trip(tmp_path):
    import numpy as np
    import torch

    folder = tmp_path / "run"
    (tmp_path / "notes.txt").write_text("hello")
    with JsonlTracker(folder) as tracker:
        assert isinstance(tracker, Tracker)
        tracker.log_params({"optim": {"lr": 1e-6}, "estimator": "proxmo"})
        tracker.log_params({"seed": 1})
        tracker.set_tags({"task": "alfworld"})
        tracker.log_metrics({"train/loss": 0.5, "n": 3, "np": np.float32(0.25), "t": torch.tensor(2.0)}, step=1)
        tracker.log_metrics({"train/loss": float("nan"), "kl": float("inf")}, step=2)
        tracker.log_artifact(tmp_path / "notes.txt")
        with pytest.raises(FileNotFoundError, match="missing.txt"):
            tracker.log_artifact(tmp_path / "missing.txt")
        assert not (folder / "status.json").exists()  # live

    assert json.loads((folder / "params.json").read_text()) == {"optim.lr": "1e-06", "estimator": "proxmo", "seed": "1"}
    assert json.loads((folder / "tags.json").read_text()) == {"task": "alfworld"}
    assert json.loads((folder / "status.json").read_text())["status"] == "FINISHED"
    assert (folder / "artifacts" / "notes.txt").read_text() == "hello"
    records = read_metrics(folder)
    assert [r["step"] for r in records] == [1, 2]
    assert records[0]["metrics"] == {"train/loss": 0.5, "n": 3.0, "np": 0.25, "t": 2.0}
    assert math.isnan(records[1]["metrics"]["train/loss"]) and records[1]["metrics"]["kl"] == math.inf
    assert tracker.logged() == {1: {"train/loss", "n", "np", "t"}, 2: {"train/loss", "kl"}}
    JsonlTracker(folder)  # opened again (a resumed run): live again, nothing else changes
    assert not (folder / "status.json").exists() and len(read_metrics(folder)) == 2


def test_jsonl_failed_and_killed_status_and_cut_off_last_line(tmp_path):
    with pytest.raises(RuntimeError):
        with JsonlTracker(tmp_path) as tracker:
            tracker.log_metrics({"loss": 1.0}, step=0)
            raise RuntimeError("boom")
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "FAILED"
    with pytest.raises(KeyboardInterrupt):
        with JsonlTracker(tmp_path):
            raise KeyboardInterrupt
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "KILLED"
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 1, "ti')  # the job died mid-write
    assert [r["step"] for r in read_metrics(tmp_path)] == [0]
    with pytest.raises(ValueError, match="status"):
        tracker.close("DONE")


def test_jsonl_tracking_does_not_import_mlflow(tmp_path):
    # The job runs where mlflow is not installed: importing and using the JSONL path must not need it.
    code = (
        "import sys; from proxmo.train.tracking import make_tracker; "
        "t = make_tracker('jsonl', sys.argv[1], 'e', 'r'); t.log_metrics({'loss': 1.0}, step=0); t.close(); "
        "assert 'mlflow' not in sys.modules, 'mlflow was imported'"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)


def test_make_tracker_kinds(tmp_path):
    assert isinstance(make_tracker("jsonl", tmp_path / "j", "e", "r"), JsonlTracker)
    null = make_tracker("none", tmp_path / "n", "e", "r")
    assert isinstance(null, NullTracker) and isinstance(null, Tracker)
    null.log_metrics({"loss": 1.0}, step=0)
    null.close()
    assert not (tmp_path / "n").exists()
    with pytest.raises(ValueError, match="jsonl.*mlflow.*both.*none"):
        make_tracker("wandb", tmp_path, "e", "r")


# --- MLflow, one real sqlite store shared by the tests below -------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite tracking URI in a fresh folder, migrated once, with the CWD moved to an empty folder."""
    root = tmp_path_factory.mktemp("mlflow")
    cwd = root / "cwd"
    cwd.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)  # before the first connection: MLflow's defaults point under the CWD
        uri = f"sqlite:///{root}/db/mlflow.db"
        with warnings.catch_warnings():
            # Raised inside MLflow's own SQLAlchemy set-up: nothing to act on here.
            warnings.filterwarnings("ignore", message="The ``noload`` loader strategy is deprecated")
            MlflowTracker("warm-up", tracking_uri=uri).close()
        yield {"root": root, "uri": uri, "cwd": cwd}
    assert list(cwd.iterdir()) == []


@pytest.fixture
def in_cwd(store, monkeypatch):
    monkeypatch.chdir(store["cwd"])
    yield store
    assert list(store["cwd"].iterdir()) == [], "MLflow wrote under the working directory"


def test_mlflow_params_metrics_artifacts(in_cwd, tmp_path):
    uri, root = in_cwd["uri"], in_cwd["root"]
    (tmp_path / "report.txt").write_text("ok")
    tracker = MlflowTracker("train", run_name="proxmo-seed0", tracking_uri=uri, tags={"task": "alfworld"})
    assert isinstance(tracker, Tracker)
    many = {f"p{i}": i for i in range(150)}  # more than one batch of params
    tracker.log_params({"optim": {"lr": 1e-6, "betas": [0.9, 0.999]}, "long": "x" * 7000, **many})
    for step in range(3):
        tracker.log_metrics({"train/loss": 1.0 / (step + 1), "kl": float("nan") if step == 2 else 0.1}, step=step)
    tracker.set_tags({"estimator": "proxmo"})
    tracker.log_artifact(tmp_path / "report.txt")
    tracker.close()

    client = tracker.client
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.experiment_id == tracker.experiment_id
    assert run.data.params["optim.lr"] == "1e-06" and run.data.params["optim.betas"] == "[0.9, 0.999]"
    assert len(run.data.params["long"]) == 6000 and run.data.params["p149"] == "149"
    assert run.data.tags["mlflow.runName"] == "proxmo-seed0"
    assert run.data.tags["task"] == "alfworld" and run.data.tags["estimator"] == "proxmo"
    history = client.get_metric_history(tracker.run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert math.isnan(run.data.metrics["kl"])
    # with a sqlite store, artifacts live next to the database, not under the working directory
    assert (root / "db" / "mlartifacts" / tracker.run_id / "artifacts" / "report.txt").read_text() == "ok"
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="acc:val%"):  # MLflow's own name rules, at once
        MlflowTracker("train", tracking_uri=uri).log_metrics({"acc:val%": 1.0}, step=0)


def test_mlflow_nested_run_and_failed_status(in_cwd):
    parent = MlflowTracker("sweep", run_name="study", tracking_uri=in_cwd["uri"])
    with pytest.raises(RuntimeError):
        with MlflowTracker("sweep", run_name="trial-0", tracking_uri=in_cwd["uri"],
                           parent_run_id=parent.run_id) as child:
            raise RuntimeError("diverged")
    parent.close("KILLED")
    child_run = child.client.get_run(child.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.run_id
    assert child_run.info.status == "FAILED"
    assert child.client.get_run(parent.run_id).info.status == "KILLED"
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match=f"Run with id={'0' * 32} not found"):  # a parent that does not exist
        MlflowTracker("sweep", tracking_uri=in_cwd["uri"], parent_run_id="0" * 32)


def test_mlflow_with_a_run_folder_records_both_and_continues_the_same_run(in_cwd, tmp_path):
    folder = tmp_path / "run"
    tracker = make_tracker("mlflow", folder, "both", "r", tracking_uri=in_cwd["uri"])
    tracker.log_metrics({"loss": 2.0}, step=5)
    tracker.close("FAILED")
    assert read_metrics(folder)[0]["metrics"] == {"loss": 2.0}
    assert json.loads((folder / "mlflow.json").read_text())["run_id"] == tracker.run_id
    assert tracker.client.get_run(tracker.run_id).info.status == "FAILED"
    again = make_tracker("both", folder, "both", "r", tracking_uri=in_cwd["uri"], run_id=tracker.run_id)
    assert again.run_id == tracker.run_id
    assert tracker.client.get_run(tracker.run_id).info.status == "RUNNING"  # a retry continues the same run
    again.log_metrics({"loss": 1.0}, step=6)
    again.close()
    assert [m.step for m in tracker.client.get_metric_history(tracker.run_id, "loss")] == [5, 6]
    assert tracker.client.get_run(tracker.run_id).info.status == "FINISHED"


def test_a_run_whose_process_died_is_closed_by_whoever_notices(in_cwd, tmp_path):
    from proxmo.train.tracking import close_abandoned

    folder = tmp_path / "run"
    dead = make_tracker("mlflow", folder, "abandoned", "r", tracking_uri=in_cwd["uri"])
    dead.log_metrics({"loss": 1.0}, step=1)  # ... and its process is killed here, before close()
    assert close_abandoned(folder, "KILLED")
    assert dead.client.get_run(dead.run_id).info.status == "KILLED"
    assert json.loads((folder / "status.json").read_text())["status"] == "KILLED"
    assert not close_abandoned(folder, "FAILED")  # already ended: left alone
    assert dead.client.get_run(dead.run_id).info.status == "KILLED"
    assert not close_abandoned(tmp_path / "never-started", "FAILED")


def test_sync_sends_a_run_recorded_without_mlflow_once(in_cwd, tmp_path):
    folder = tmp_path / "offline"
    with JsonlTracker(folder) as tracker:
        tracker.log_params({"run": {"experiment": "offline-runs"}, "seed": 3})
        tracker.set_tags({"estimator": "grpo"})
        for step in range(1, 4):
            tracker.log_metrics({"train/loss": 1.0 / step}, step=step)
        (tmp_path / "summary.json").write_text("{}")
        tracker.log_artifact(tmp_path / "summary.json")
    first = sync_run(folder, tracking_uri=in_cwd["uri"])
    assert (first["metric_points"], first["params"], first["artifacts"], first["status"]) == (3, 2, 1, "FINISHED")
    second = sync_run(folder)  # the folder now knows its run and its store
    assert second["run_id"] == first["run_id"] and second["metric_points"] == 0 and second["params"] == 0
    import mlflow

    client = mlflow.MlflowClient(in_cwd["uri"])
    run = client.get_run(first["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "offline-runs"
    assert run.info.run_name == "offline" and run.info.status == "FINISHED" and run.data.tags["estimator"] == "grpo"
    assert [m.step for m in client.get_metric_history(first["run_id"], "train/loss")] == [1, 2, 3]
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        sync_run(tmp_path / "nothing")


@pytest.mark.integration
def test_a_server_that_goes_down_mid_run_loses_nothing(tmp_path):
    server = MlflowServer(tmp_path / "server").start()
    try:
        folder = tmp_path / "run"
        tracker = MlflowTracker("flaky", run_name="r", tracking_uri=server.uri, folder=folder, retry_s=0.0)
        tracker.log_params({"lr": 0.1})
        tracker.log_metrics({"loss": 1.0}, step=1)
        server.stop()
        tracker.log_metrics({"loss": 0.5}, step=2)  # no error: the run goes on
        assert tracker.behind
        tracker.set_tags({"late": "yes"})
        server.start()
        tracker.log_metrics({"loss": 0.25}, step=3)  # answers again: what it missed is sent first
        assert not tracker.behind
        server.stop()
        (tmp_path / "summary.json").write_text('{"done": true}')
        tracker.log_artifact(tmp_path / "summary.json")
        tracker.log_metrics({"loss": 0.125}, step=4)
        tracker.close()  # down at the end: the folder has everything and says so
        assert json.loads((folder / "status.json").read_text())["status"] == "FINISHED"
        server.start()
        result = subprocess.run([sys.executable, "-m", "proxmo", "sync", str(folder)], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        import mlflow

        client = mlflow.MlflowClient(server.uri)
        run = client.get_run(tracker.run_id)
        assert run.info.status == "FINISHED" and run.data.tags["late"] == "yes" and run.data.params["lr"] == "0.1"
        assert [(m.step, m.value) for m in client.get_metric_history(tracker.run_id, "loss")] == [
            (1, 1.0), (2, 0.5), (3, 0.25), (4, 0.125)]
        assert [a.path for a in client.list_artifacts(tracker.run_id)] == ["summary.json"]
    finally:
        server.stop()


def test_a_tracking_server_that_is_down_fails_in_seconds_naming_it(tmp_path):
    import time

    from proxmo.train.config import build_config
    from proxmo.train.job import train
    from proxmo.train.tracking import check_tracking_server

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    data = {"env": {"name": "webshop", "options": {"num_products": 300, "num_goals": 700}},
            "rollout": {"n_groups": 1, "group_size": 2},
            "run": {"tracker": "both", "tracking_uri": uri, "output_dir": str(tmp_path / "runs"), "name": "down"}}
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=f"run.tracking_uri.*{uri}"):
        train(build_config(data), progress=False)
    assert time.perf_counter() - start < 15
    assert not (tmp_path / "runs").exists()  # failed before any folder, game or model
    check_tracking_server("sqlite:///somewhere.db")  # no server to ask


def test_a_tracking_server_that_answers_passes_the_check():
    import http.server
    import threading

    from proxmo.train.tracking import check_tracking_server

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        check_tracking_server(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()


@pytest.mark.parametrize("uri, ok", [("sqlite:///x.db", True), ("http://host:5000", True), ("/some/folder", True),
                                     ("postgresql+psycopg://u@h/db", True), ("ftp://host/x", False)])
def test_tracking_uri_schemes_are_checked_when_the_config_loads(uri, ok):
    from proxmo.train.config import ConfigError, build_config

    if ok:
        assert build_config({"run": {"tracking_uri": uri}}).run.tracking_uri == uri
    else:
        with pytest.raises(ConfigError, match="run.tracking_uri"):
            build_config({"run": {"tracking_uri": uri}})


@pytest.mark.integration
def test_jobs_started_together_on_a_fresh_sqlite_store_all_record_their_runs(tmp_path):
    # Each process opens the store at the same instant: MLflow creates a fresh store's schema in whoever comes
    # first, and two at once failed (and could leave the store unusable for every later run).
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    code = ("import sys, time; from proxmo.train.tracking import MlflowTracker; import mlflow; "
            "start = float(sys.argv[2])\n"
            "while time.time() < start: time.sleep(0.001)\n"
            "t = MlflowTracker('together', run_name='w' + sys.argv[3], tracking_uri=sys.argv[1]); "
            "t.log_metrics({'x': 1.0}, step=1); t.close()")
    import time

    start = time.time() + 10  # every process has imported MLflow by then
    processes = [subprocess.Popen([sys.executable, "-c", code, uri, str(start), str(i)], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for i in range(4)]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, outputs[0][-2000:]
    tracker = MlflowTracker("together", run_name="later", tracking_uri=uri)  # the store still works afterwards
    tracker.close()
    import mlflow

    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("together").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["later", "w0", "w1", "w2", "w3"]
    assert {r.info.status for r in runs} == {"FINISHED"}
