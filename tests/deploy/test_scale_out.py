"""The scale-out path on real servers, all on 127.0.0.1: PostgreSQL (Debian's package), an MLflow server on it, a
Prefect server (on PostgreSQL too) with a process work pool and a worker, and a two-node Ray cluster. The sweep flow
runs as a deployment, two trials at a time on the cluster, with its Optuna study on the same PostgreSQL; an
ablation deployment runs one job on two workers, one on each node (Ray Train). Only configuration differs from a
run on one machine. Everything is stopped by PID at the end.

Slow (about two minutes): ``make test-slow``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import as_foreground, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_BIN = next((p for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True) if (p / "initdb").exists()),
              None) if Path("/usr/lib/postgresql").exists() else None

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(PG_BIN is None, reason="needs PostgreSQL (apt-get install postgresql)")]

TINY = ["model.hidden_size=32", "model.num_layers=1", "model.num_heads=2", "model.vocab_size=320",
        "model.max_prompt_tokens=256", "rollout.n_groups=1", "rollout.group_size=4", "rollout.max_steps=8",
        "env.options.games={train: 3, eval: 2, max_receptacles: 3, distractors: 0}", "eval.tasks=2",
        "eval.episodes_per_task=2", "eval.batch=4", "eval.every=2", "eval.greedy=false", "eval.random_baseline=false",
        "run.iterations=4"]


class Processes:
    """Background processes, each in its own process group, with a log file; stopped by PID in reverse order."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.started = []

    def start(self, name, command, env, user=None):
        log = open(self.folder / f"{name}.log", "ab")
        command = [str(c) for c in command]
        if user is not None:
            command = ["runuser", "-u", user, "--", *command]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                   start_new_session=True, preexec_fn=as_foreground)  # the worker stops on SIGINT
        self.started.append((name, process))
        return process

    def log(self, name):
        return (self.folder / f"{name}.log").read_text()[-4000:]

    def stop_all(self):
        for name, process in reversed(self.started):
            if process.poll() is None:
                # a Prefect worker stops on SIGINT; `ray start --block` and the servers on SIGTERM
                os.killpg(process.pid, signal.SIGINT if name == "worker" else signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=30)


def _wait(url, processes, name, timeout=120):
    deadline = time.monotonic() + timeout
    process = dict(processes.started)[name]
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{name} exited:\n{processes.log(name)}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{name} did not answer at {url}:\n{processes.log(name)}")


def _run(command, env, timeout=600):
    result = subprocess.run([str(c) for c in command], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def test_the_sweep_runs_as_a_deployment_on_a_ray_cluster_with_postgresql(tmp_path):
    import mlflow
    import optuna
    import psycopg2

    processes = Processes(tmp_path)
    ray_tmp = tempfile.mkdtemp(prefix="rt-")  # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_TMPDIR": ray_tmp, "RAY_USAGE_STATS_ENABLED": "0",
           "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    data = None
    try:
        # PostgreSQL, run as its own user; one database per service
        data = Path(tempfile.mkdtemp(prefix="proxmo-pg-"))  # outside pytest's folders, which only root may enter
        shutil.chown(data, "postgres")
        pg_port = free_port()
        _run(["runuser", "-u", "postgres", "--", PG_BIN / "initdb", "-D", data / "data", "-A", "trust", "-U", "proxmo"],
             env)
        processes.start("postgres", [PG_BIN / "postgres", "-D", data / "data", "-p", pg_port, "-k", data,
                                     "-c", "listen_addresses=127.0.0.1"], env, user="postgres")
        deadline = time.monotonic() + 60
        while subprocess.run([PG_BIN / "pg_isready", "-h", "127.0.0.1", "-p", str(pg_port)]).returncode != 0:
            assert time.monotonic() < deadline, processes.log("postgres")
            time.sleep(0.3)
        database = f"postgresql+psycopg2://proxmo@127.0.0.1:{pg_port}"
        connection = psycopg2.connect(host="127.0.0.1", port=pg_port, user="proxmo", dbname="postgres")
        connection.autocommit = True  # CREATE DATABASE runs outside a transaction
        for name in ("mlflow", "optuna", "prefect"):
            connection.cursor().execute(f"CREATE DATABASE {name}")
        connection.close()

        # the MLflow server on PostgreSQL, with an artifact folder
        mlflow_uri = f"http://127.0.0.1:{free_port()}"
        processes.start("mlflow", [BIN / "mlflow", "server", "--host", "127.0.0.1", "--port", mlflow_uri.rsplit(":", 1)[1],
                                   "--workers", "1", "--backend-store-uri", f"{database}/mlflow",
                                   "--artifacts-destination", tmp_path / "artifacts"],
                        {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})

        # the Prefect server on PostgreSQL
        prefect_port = free_port()
        api = f"http://127.0.0.1:{prefect_port}/api"
        processes.start("prefect", [BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", prefect_port],
                        {**env, "PREFECT_API_DATABASE_CONNECTION_URL":
                         f"postgresql+asyncpg://proxmo@127.0.0.1:{pg_port}/prefect"})

        # a two-node Ray cluster: a head and a second node, one CPU each
        ray_port = free_port()
        processes.start("ray-head", [BIN / "ray", "start", "--head", "--port", ray_port, "--num-cpus", "1",
                                     "--include-dashboard", "false", "--block"], env)
        _wait(f"{mlflow_uri}/health", processes, "mlflow")
        _wait(f"{api}/health", processes, "prefect")
        ray_address = f"127.0.0.1:{ray_port}"
        deadline = time.monotonic() + 120
        while subprocess.run([BIN / "ray", "health-check", "--address", ray_address], env=env,
                             capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, processes.log("ray-head")
            time.sleep(1)
        processes.start("ray-node", [BIN / "ray", "start", "--address", ray_address, "--num-cpus", "1", "--block"], env)

        # the work pool, the deployment (the project's own kind of prefect.yaml) and a worker
        client_env = {**env, "PREFECT_API_URL": api}
        storage = f"{database}/optuna"
        parameters = {"preset": "configs/alfworld_demo.yaml", "name": "scale-out", "n_trials": 2, "concurrency": 2,
                      "overrides": TINY, "pruner": "none", "launcher": "ray", "ray_address": ray_address,
                      "num_cpus": 1, "storage": storage, "tracking_uri": mlflow_uri, "experiment": "scale-out",
                      "output_dir": str(tmp_path / "runs")}
        # one job on two workers (one CPU each: one on each node), its driver a Ray task of the ablation flow
        two_workers = {"preset": "configs/alfworld_demo.yaml", "name": "two-workers", "variants": {"proxmo": []},
                       "seeds": [0], "overrides": [*TINY, "rollout.n_groups=2", "run.workers=2"],
                       "launcher": "ray", "ray_address": ray_address, "tracking_uri": mlflow_uri,
                       "experiment": "scale-out-workers", "output_dir": str(tmp_path / "runs")}
        (tmp_path / "prefect.yaml").write_text(json.dumps({
            "name": "scale-out", "prefect-version": "3.8.8",
            "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}],
            "deployments": [{"name": "scale-out", "entrypoint": "flows/sweep.py:sweep_flow", "parameters": {"spec": parameters},
                             "work_pool": {"name": "scale"}},
                            {"name": "two-workers", "entrypoint": "flows/ablate.py:ablate_flow",
                             "parameters": {"spec": two_workers}, "work_pool": {"name": "scale"}}]}))
        _run([BIN / "prefect", "work-pool", "create", "scale", "--type", "process"], client_env)
        _run([BIN / "prefect", "deploy", "--all", "--no-prompt", "--prefect-file", tmp_path / "prefect.yaml"],
             client_env)
        processes.start("worker", [BIN / "prefect", "worker", "start", "--pool", "scale"], client_env)
        deadline = time.monotonic() + 60
        import ray

        ray.init(address=ray_address)
        try:
            while len([n for n in ray.nodes() if n["Alive"]]) < 2:
                assert time.monotonic() < deadline, processes.log("ray-node")
                time.sleep(0.5)
            nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        finally:
            ray.shutdown()
        run = _run([BIN / "prefect", "deployment", "run", "sweep/scale-out", "--watch"], client_env, timeout=900)
        assert "Completed" in run.stdout, run.stdout[-3000:] + processes.log("worker")

        # the study is in PostgreSQL, its two trials trained side by side on both nodes
        study = optuna.load_study(study_name="scale-out", storage=storage)
        assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
        ran_on = {node for t in study.trials for node in t.user_attrs["ray_nodes"]}
        assert ran_on == nodes, (ran_on, nodes)
        # the parent and nested runs are in the MLflow server, whose store is PostgreSQL
        client = mlflow.MlflowClient(mlflow_uri)
        experiment = client.get_experiment_by_name("scale-out").experiment_id
        [parent] = client.search_runs([experiment], "tags.proxmo_role = 'study'")
        children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        assert sorted(r.info.run_name for r in children) == ["trial000", "trial001"]
        assert all(r.info.status == "FINISHED" for r in children + [parent])
        with psycopg2.connect(host="127.0.0.1", port=pg_port, user="proxmo", dbname="mlflow") as connection:
            cursor = connection.cursor()
            cursor.execute("SELECT count(*) FROM runs WHERE experiment_id = %s", (int(experiment),))
            assert cursor.fetchone()[0] == 3
        with psycopg2.connect(host="127.0.0.1", port=pg_port, user="proxmo", dbname="optuna") as connection:
            cursor = connection.cursor()
            cursor.execute("SELECT count(*) FROM trials")
            assert cursor.fetchone()[0] == 2

        # one job on two workers, a worker on each node, tracked by rank 0 in the MLflow server
        run = _run([BIN / "prefect", "deployment", "run", "ablate/two-workers", "--watch"], client_env, timeout=900)
        assert "Completed" in run.stdout, run.stdout[-3000:] + processes.log("worker")
        run_dir = tmp_path / "runs" / "two-workers" / "proxmo__s0"
        launch = json.loads((run_dir / "workers.json").read_text())
        assert launch["workers"] == 2 and set(launch["nodes"]) == nodes, (launch, nodes)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["iterations"] == 4 and summary["final_eval"]["val/episodes"] == 4.0
        experiment = client.get_experiment_by_name("scale-out-workers").experiment_id
        jobs = client.search_runs([experiment])
        assert [r.info.status for r in jobs if r.info.run_name == "proxmo__s0"] == ["FINISHED"]
    finally:
        processes.stop_all()
        if data is not None:
            shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert all(process.poll() is not None for _, process in processes.started)
