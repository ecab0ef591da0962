"""A training job whose worker process is killed mid-run: the flow's task retry resumes it from its checkpoint,
and it ends with the numbers of a run that was never interrupted."""

import json
import os
import signal
import threading
import time

import mlflow
import pytest

from flows.ablate import ablate_flow
from flows.specs import AblationSpec
from proxmo.train.tracking import read_metrics
from tasks.training import run_job
from tests.flows.test_ablate_flow import TINY
from tests.servers import as_foreground

# long enough episodes that some succeed (the numbers compared are not all zero), and a few seconds in all
LONGER = [*TINY, "rollout.max_steps=12", "rollout.group_size=4", "eval.episodes_per_task=4", "run.iterations=16",
          "run.save_every=2", "run.keep_checkpoints=10", "eval.every=2"]


def _numbers(run_dir):
    """Every metric point of a run except wall-clock timings, by step."""
    by_step = {}
    for record in read_metrics(run_dir):
        for key, value in record["metrics"].items():
            if not key.startswith("timing/"):
                assert (key not in by_step.get(record["step"], {})), f"two points for {key} at {record['step']}"
                by_step.setdefault(record["step"], {})[key] = value
    return by_step


@pytest.mark.integration
def test_a_killed_job_is_retried_and_resumes_to_the_same_numbers(tmp_path, caplog):
    caplog.set_level("INFO", logger="prefect")
    run_dir = tmp_path / "runs" / "killed" / "proxmo__s0"
    outcome = {}

    def run_flow():
        try:
            outcome["out"] = ablate_flow(AblationSpec(
                preset="configs/alfworld_demo.yaml", variants={"proxmo": []}, seeds=[0], overrides=LONGER,
                name="killed", output_dir=str(tmp_path / "runs"), experiment="kill-test", launcher="ray", retries=1))
        except BaseException as error:  # noqa: BLE001 - reported by the assertions below
            outcome["error"] = error

    flow = threading.Thread(target=run_flow)
    flow.start()
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "iter_000002").is_dir():
        assert time.monotonic() < deadline and flow.is_alive(), outcome
        time.sleep(0.02)
    victim = json.loads((run_dir / "process.json").read_text())["pid"]
    assert victim != os.getpid()  # the job runs in a Ray worker
    os.kill(victim, signal.SIGKILL)
    flow.join(timeout=600)
    assert "error" not in outcome, outcome.get("error")

    # the task's log follows the job: one line per iteration and per evaluation, through the retry
    logged = [r.getMessage() for r in caplog.records if r.name == "prefect.task_runs"]
    assert any("WorkerCrashedError" in line and "Retry 1/1" in line for line in logged)
    for step in range(1, 17):
        assert sum(f"proxmo__s0: iteration {step}/16:" in line for line in logged) == 1, step
    assert sum("proxmo__s0: evaluation at 16: success" in line for line in logged) == 1
    retried = json.loads((run_dir / "process.json").read_text())["pid"]
    assert retried != victim  # a second attempt, in another process
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iterations"] == 16 and not summary["stopped"]
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("kill-test").experiment_id
    runs = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{outcome['out']['parent_run_id']}'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # one run, continued, not left RUNNING

    # the same job, never interrupted, in this process
    config = json.loads(json.dumps(_config_of(run_dir)))
    config["run"].update(output_dir=str(tmp_path / "straight"), tracker="jsonl", parent_run_id=None, resume=None)
    straight = run_job(config)
    numbers = _numbers(run_dir)
    assert _numbers(straight["run_dir"]) == numbers
    assert any(step.get("train/success", 0) > 0 for step in numbers.values())  # not a run of zeros
    assert any(step.get("actor/loss", 0) != 0 for step in numbers.values())


def _config_of(run_dir):
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())


@pytest.mark.integration
@pytest.mark.parametrize("launcher", ["local", "ray"])
def test_ctrl_c_stops_a_flow_and_leaves_no_run_running(tmp_path, launcher):
    """In the flow's process or in a Ray worker (which the flow stops before closing the run)."""
    import subprocess
    import sys

    run_dir = tmp_path / "runs" / "stopped" / "a__s0"
    experiment = f"ctrl-c-{launcher}"
    command = [sys.executable, "-m", "proxmo", "ablate", "configs/alfworld_demo.yaml", *LONGER, "run.iterations=5000",
               "--variant", "a=advantage.estimator=grpo", "--seed", "0", "--name", "stopped",
               "--output-dir", str(tmp_path / "runs"), "--experiment", experiment, "--launcher", launcher]
    flow = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=as_foreground)
    try:
        deadline = time.monotonic() + 300
        while len(read_metrics(run_dir)) < 5:  # training has started
            assert time.monotonic() < deadline and flow.poll() is None, flow.stdout.read()
            time.sleep(0.2)
        flow.send_signal(signal.SIGINT)
        output, _ = flow.communicate(timeout=120)
    finally:
        if flow.poll() is None:  # a failed check: stop what the command started too (its Prefect server, ...)
            import psutil

            for process in [*psutil.Process(flow.pid).children(recursive=True), psutil.Process(flow.pid)]:
                try:
                    process.kill()
                except psutil.NoSuchProcess:
                    pass
    assert flow.returncode != 0, output
    assert json.loads((run_dir / "status.json").read_text())["status"] == "KILLED"
    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [("a__s0", "KILLED"), ("stopped", "KILLED")]
    assert len(read_metrics(run_dir)) < 5000  # it stopped, long before the end
