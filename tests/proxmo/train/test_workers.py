"""One job on two workers (Ray Train, gloo): bad settings refused before any work, the same seed gives the same
run, and a worker killed mid-run is restarted from the last checkpoint to the numbers of an uninterrupted run."""

import json
import os
import signal
import threading
import time

import psutil
import pytest

from proxmo.train.config import build_config
from proxmo.train.job import train
from tests.flows.test_kill_and_retry import _numbers
from tests.proxmo.train.test_job import _webshop


def _two_workers(tmp_path, name, **run):
    settings = {"name": name, "workers": 2, "iterations": 4, "save_every": 2, "keep_checkpoints": 5, **run}
    return build_config(_webshop(tmp_path, **settings))


@pytest.mark.parametrize("settings, message", [
    ({"run": {"workers": 3}}, r"run.workers: 3 workers for 2 task groups \(rollout.n_groups\)"),
    ({"run": {"workers": 2, "worker_gpus": 1}, "model": {"device": "cpu"}},
     r"run.worker_gpus: 1 GPUs per worker with model.device=cpu"),
])
def test_bad_worker_settings_are_refused_naming_the_field(tmp_path, settings, message):
    config = _webshop(tmp_path)
    for section, values in settings.items():
        config[section] = {**config[section], **values}
    with pytest.raises(ValueError, match=message):
        build_config(config)


def test_a_job_on_workers_takes_no_tracker_or_callback(tmp_path):
    from proxmo.train.tracking import NullTracker

    with pytest.raises(ValueError, match="run.workers: a job on 2 workers makes its tracker on rank 0"):
        train(_two_workers(tmp_path, "tracked"), tracker=NullTracker())
    assert not (tmp_path / "runs").exists()


@pytest.mark.integration
def test_more_than_the_cluster_holds_is_refused_before_any_worker_starts(tmp_path):
    with pytest.raises(ValueError, match="run.worker_gpus: 2 workers x 1 GPUs needs 2 GPUs and this machine has no GPU"):
        train(_two_workers(tmp_path, "gpus", worker_gpus=1), progress=False)
    with pytest.raises(ValueError, match="run.worker_cpus: 2 workers x 64 CPUs needs 128 CPUs"):
        train(_two_workers(tmp_path, "cpus", worker_cpus=64), progress=False)
    assert not (tmp_path / "runs").exists()
    import ray

    assert not ray.is_initialized()  # the Ray the refused job started is gone with it


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted two-worker run, and its twin with the same seed."""
    root = tmp_path_factory.mktemp("straight")
    return [train(_two_workers(root, name), progress=False) for name in ("first", "twin")]


@pytest.mark.integration
def test_two_workers_play_the_whole_batch_and_the_same_seed_gives_the_same_run(straight):
    first, twin = straight
    numbers = _numbers(first.run_dir)
    assert numbers == _numbers(twin.run_dir)
    assert first.iterations == 4 and [e["step"] for e in first.evaluations] == [1.0, 2.0, 3.0, 4.0]
    iteration = numbers[1]
    assert iteration["train/episodes"] == 4.0  # 2 groups x 2 episodes: one group on each worker
    assert first.evaluations[-1]["val/episodes"] == 4.0  # the 4 evaluation tasks, 2 on each worker
    assert iteration["actor/loss"] != 0.0
    launch = json.loads((first.run_dir / "workers.json").read_text())
    assert launch["workers"] == 2 and len(launch["nodes"]) == 2
    assert json.loads((first.run_dir / "status.json").read_text())["status"] == "FINISHED"
    assert len(first.history) == 4


@pytest.mark.integration
def test_a_killed_worker_is_restarted_from_the_last_checkpoint_to_the_same_numbers(tmp_path, straight):
    config = _two_workers(tmp_path, "killed", max_failures=1)
    run_dir = tmp_path / "runs" / "killed"
    outcome = {}

    def run():
        try:
            outcome["result"] = train(config, progress=False)
        except BaseException as error:  # noqa: BLE001 - reported below
            outcome["error"] = error

    job = threading.Thread(target=run)
    job.start()
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "iter_000002").is_dir():
        assert time.monotonic() < deadline and job.is_alive(), outcome
        time.sleep(0.02)
    leader = json.loads((run_dir / "process.json").read_text())["pid"]
    assert leader != os.getpid()
    psutil.Process(leader).send_signal(signal.SIGKILL)
    job.join(timeout=600)
    assert "error" not in outcome, outcome.get("error")
    assert json.loads((run_dir / "process.json").read_text())["pid"] != leader  # a second attempt
    assert outcome["result"].iterations == 4
    assert _numbers(run_dir) == _numbers(straight[0].run_dir)
    assert json.loads((run_dir / "status.json").read_text())["status"] == "FINISHED"


@pytest.mark.integration
def test_a_sharded_model_trains_as_the_whole_one_and_resumes_from_its_gathered_checkpoint(tmp_path, straight):
    sharded = train(_two_workers(tmp_path, "sharded", shard_model=True), progress=False)
    expected, numbers = _numbers(straight[0].run_dir), _numbers(sharded.run_dir)
    assert numbers.keys() == expected.keys()
    for step, metrics in expected.items():
        assert numbers[step].keys() == metrics.keys()
        for key, value in metrics.items():
            assert numbers[step][key] == pytest.approx(value, rel=1e-4, abs=1e-5), (step, key)
    # its checkpoints hold the full weights (those of the whole model's run), and a run resumed from the middle
    # one (its optimizer state gathered there and sharded again) writes the same weights at iteration 4 again
    assert _weights(sharded.run_dir, 4).keys() == _weights(straight[0].run_dir, 4).keys()
    _assert_close(_weights(sharded.run_dir, 4), _weights(straight[0].run_dir, 4))
    (sharded.run_dir / "checkpoints" / "iter_000004").rename(tmp_path / "first_iter_000004")
    config = _two_workers(tmp_path, "sharded", shard_model=True, iterations=6,
                          resume=str(sharded.run_dir / "checkpoints" / "iter_000002"))
    assert train(config, progress=False).iterations == 6
    _assert_close(_weights(sharded.run_dir, 4), _weights(straight[0].run_dir, 4))


def _weights(run_dir, iteration):
    from safetensors.torch import load_file

    return load_file(run_dir / "checkpoints" / f"iter_{iteration:06d}" / "model" / "model.safetensors")


def _assert_close(got, expected):
    import torch

    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, atol=1e-5, rtol=1e-4, msg=lambda m: f"{name}: {m}")


@pytest.mark.integration
def test_sigterm_ends_a_job_on_workers_killed_and_stops_its_workers(tmp_path):
    import mlflow

    from proxmo.train.tracking import read_metrics
    from tests.proxmo.train.test_faults import launch_process

    data = _webshop(tmp_path, name="term", workers=2, iterations=500, tracker="both")
    data["eval"] = {"every": 0, "tasks": 2, "batch": 2}
    run_dir = tmp_path / "runs" / "term"
    process = launch_process(data, tmp_path / "term.json", start_new_session=True)
    deadline = time.monotonic() + 300
    while not any("train/success" in r["metrics"] for r in read_metrics(run_dir)) and process.poll() is None:
        assert time.monotonic() < deadline, "the job never logged an iteration"
        time.sleep(0.2)
    workers = [p for p in psutil.Process(process.pid).children(recursive=True) if "RayTrainWorker" in " ".join(p.cmdline())]
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, [line for line in output.splitlines() if "rror" in line or "erminat" in line][-20:]
    assert f"run.resume={run_dir}" in output
    assert json.loads((run_dir / "status.json").read_text())["status"] == "KILLED"
    link = json.loads((run_dir / "mlflow.json").read_text())
    assert mlflow.MlflowClient(link["tracking_uri"]).get_run(link["run_id"]).info.status == "KILLED"
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers)


def test_a_resume_on_another_number_of_workers_is_refused_naming_the_field(tmp_path):
    from proxmo.train.checkpoint import resume_conflicts
    from proxmo.train.config import save_config

    checkpoint = tmp_path / "iter_000002"
    checkpoint.mkdir()
    save_config(_two_workers(tmp_path, "saved"), checkpoint / "config.yaml")
    assert resume_conflicts(checkpoint, _two_workers(tmp_path, "saved", iterations=8)) == []
    assert resume_conflicts(checkpoint, _two_workers(tmp_path, "saved", workers=1)) == ["run.workers: 2 -> 1"]
    assert resume_conflicts(checkpoint, _two_workers(tmp_path, "saved", shard_model=True)) == [
        "run.shard_model: False -> True"]


def test_a_checkpoint_older_than_the_worker_settings_resumes_at_their_defaults(tmp_path):
    import yaml

    from proxmo.train.checkpoint import resume_conflicts
    from proxmo.train.config import build_config

    checkpoint = tmp_path / "iter_000002"
    checkpoint.mkdir()
    one = build_config(_webshop(tmp_path, name="old"))
    saved = one.to_dict()
    for key in ("workers", "worker_cpus", "worker_gpus", "shard_model", "max_failures"):
        del saved["run"][key]
    (checkpoint / "config.yaml").write_text(yaml.safe_dump(saved))
    assert resume_conflicts(checkpoint, one) == []
    assert resume_conflicts(checkpoint, _two_workers(tmp_path, "old", iterations=2, save_every=0,
                                                     keep_checkpoints=2)) == ["run.workers: (absent) -> 2"]


@pytest.mark.integration
def test_a_job_on_workers_writes_its_run_and_mlflow_store_where_the_command_was_started(tmp_path):
    """Ray Train runs each worker in a folder of its own: relative paths (``run.output_dir=runs``, MLflow's default
    ``./mlflow.db``) still mean the command's folder, and the command prints the run's results."""
    import subprocess
    import sys

    import mlflow
    import yaml

    data = _webshop(tmp_path, name="here", workers=2, iterations=2, tracker="mlflow", output_dir="runs")
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run([sys.executable, "-m", "proxmo", "train", "job.yaml"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "here"
    assert json.loads((run_dir / "summary.json").read_text())["iterations"] == 2
    link = json.loads((run_dir / "mlflow.json").read_text())
    assert link["tracking_uri"] == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert mlflow.MlflowClient(link["tracking_uri"]).get_run(link["run_id"]).info.status == "FINISHED"
    printed = " ".join(done.stdout.split())  # as wrapped to the console's width
    assert "validation success (%)" in printed and f"run folder: {run_dir}" in printed
