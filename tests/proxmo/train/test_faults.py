"""The record stays true when things go wrong: a second writer, SIGTERM, a full disk, a cut or broken record,
damaged checkpoints and a resume that asks for another model. Real jobs with tiny budgets."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from proxmo.cli import app
from proxmo.train.config import build_config
from proxmo.train.job import Trainer, train
from proxmo.train.runfolder import RunFolderBusy
from proxmo.train.tracking import close_abandoned, read_metrics
from tests.proxmo.train.test_job import _by_step, _webshop

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def _mlflow_status(run_dir: Path) -> str:
    link = json.loads((run_dir / "mlflow.json").read_text())
    return mlflow.MlflowClient(link["tracking_uri"]).get_run(link["run_id"]).info.status


def _webshop_run(tmp_path, **run):
    """The tiny WebShop job under a run name of this test's own (the tests of a process share one MLflow store)."""
    return _webshop(tmp_path, **{"name": tmp_path.name, **run})


def _finished(tmp_path, **run):
    settings = {"iterations": 2, "save_every": 1, "keep_checkpoints": 5, "tracker": "both", **run}
    return train(build_config(_webshop_run(tmp_path, **settings)), progress=False)


# -- one live writer per run folder ---------------------------------------------------------------------------
def test_a_second_job_on_a_live_run_folder_is_refused_and_touches_nothing(tmp_path):
    config = build_config(_webshop_run(tmp_path, tracker="both"))
    first = Trainer(config, progress=False)
    try:
        before = sorted(p.name for p in first.run_dir.iterdir())
        with pytest.raises(RunFolderBusy, match=r"run\.resume="):
            Trainer(config, progress=False)
        assert sorted(p.name for p in first.run_dir.iterdir()) == before
        assert not close_abandoned(first.run_dir, "FAILED")  # a live run is not taken for a dead one
        # the command line says it in one line, exit 1
        result = CliRunner().invoke(app, ["train", "configs/webshop_demo.yaml", *_overrides(config)])
        assert result.exit_code == 1 and "is being written by process" in result.output
        assert "Traceback" not in result.output
    finally:
        first.close("KILLED")
    assert (first.run_dir / "status.json").is_file()


def _overrides(config):
    data = config.to_dict()
    return [f"env.options={json.dumps(data['env']['options'])}", f"model={json.dumps(data['model'])}",
            f"rollout={json.dumps(data['rollout'])}", f"eval={json.dumps(data['eval'])}",
            f"run.output_dir={data['run']['output_dir']}", f"run.name={data['run']['name']}"]


def test_a_new_run_does_not_write_over_a_finished_one(tmp_path):
    first = _finished(tmp_path)
    before = (first.run_dir / "metrics.jsonl").read_bytes()
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(build_config(_webshop_run(tmp_path, seed=1)), progress=False)
    assert (first.run_dir / "metrics.jsonl").read_bytes() == before
    assert json.loads((first.run_dir / "status.json").read_text())["status"] == "FINISHED"


# -- SIGTERM ---------------------------------------------------------------------------------------------------
def launch_process(data, config: Path, **popen) -> subprocess.Popen:
    """``proxmo train`` of the config ``data`` (written to ``config``) in a process of its own, its output piped."""
    config.write_text(json.dumps(data))
    code = ("import json, sys; from proxmo.train.launch import launch; "
            "sys.exit(launch(None, [f'{k}={json.dumps(v)}' for k, v in json.load(open(sys.argv[1])).items()], quiet=True))")
    return subprocess.Popen([sys.executable, "-c", code, str(config)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def test_sigterm_ends_the_job_killed_in_its_folder_and_in_mlflow(tmp_path):
    data = _webshop_run(tmp_path, iterations=500, tracker="both", name="term")
    data["eval"] = {"every": 0, "tasks": 2, "batch": 2}
    run_dir = tmp_path / "runs" / "term"
    process = launch_process(data, tmp_path / "term.json")
    deadline = time.monotonic() + 120
    while not any("train/success" in r["metrics"] for r in read_metrics(run_dir)) and process.poll() is None:
        assert time.monotonic() < deadline, "the job never logged an iteration"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output and f"run.resume={run_dir}" in output
    assert json.loads((run_dir / "status.json").read_text())["status"] == "KILLED"
    assert _mlflow_status(run_dir) == "KILLED"


# -- a full disk -----------------------------------------------------------------------------------------------
def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_disk_fails_in_one_line_ends_mlflow_failed_and_leaves_no_partial_files(tmp_path):
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "150k"):
        pytest.skip("needs root to mount a small tmpfs as the output folder")
    try:
        data = _webshop_run(tmp_path, iterations=3, save_every=1, tracker="both", name="full")
        data["run"]["output_dir"] = str(disk)
        data["eval"] = {"every": 0, "tasks": 2, "batch": 2}
        overrides = [f"{section}={json.dumps(values)}" for section, values in data.items()]
        result = CliRunner().invoke(app, ["train", *overrides, "--quiet"])
        assert result.exit_code == 1, result.output
        assert "No space left on device" in result.output and "Traceback" not in result.output
        run_dir = disk / "full"
        assert _mlflow_status(run_dir) == "FAILED"
        leftovers = [p for p in run_dir.rglob("*") if p.name.endswith((".tmp", ".partial"))]
        assert leftovers == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# -- a cut or broken record ------------------------------------------------------------------------------------
def test_a_resume_after_a_cut_last_line_keeps_every_step_and_a_readable_record(tmp_path):
    first = _finished(tmp_path)
    path = first.run_dir / "metrics.jsonl"
    text = path.read_text()
    cut = text[: len(text) - len(text.splitlines()[-1]) // 2 - 1]  # the job died writing its last line
    path.write_text(cut)
    (first.run_dir / "status.json").unlink()
    train(build_config(_webshop_run(tmp_path, iterations=2, tracker="both",
                                resume=str(first.run_dir / "checkpoints" / "iter_000001"))), progress=False)
    records = read_metrics(first.run_dir)  # raises on a broken line in the middle
    assert len(path.read_text().splitlines()) == len(records)
    metrics = _by_step(first.run_dir)
    assert "val/success" in metrics[2] and "train/success" in metrics[2]
    result = CliRunner().invoke(app, ["curves", str(first.run_dir), "-o", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output


def test_a_resume_refused_on_a_broken_record_touches_nothing(tmp_path):
    first = _finished(tmp_path)
    path = first.run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:10]
    path.write_text("\n".join(lines) + "\n")
    before = {p.name: p.read_bytes() for p in first.run_dir.iterdir() if p.is_file() and p.name != "writer.lock"}
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        train(build_config(_webshop_run(tmp_path, iterations=3, tracker="both", resume=str(first.run_dir))), progress=False)
    after = {p.name: p.read_bytes() for p in first.run_dir.iterdir() if p.is_file() and p.name != "writer.lock"}
    assert after == before  # status.json and config.yaml included
    assert _mlflow_status(first.run_dir) == "FINISHED"


# -- damaged checkpoints ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["weights", "state"])
def test_a_damaged_checkpoint_is_detected_and_the_previous_one_used(tmp_path, damage, caplog):
    first = _finished(tmp_path)
    newest = first.run_dir / "checkpoints" / "iter_000002"
    target = newest / ("model/model.safetensors" if damage == "weights" else "trainer_state.pt")
    if damage == "weights":
        target.write_bytes(os.urandom(target.stat().st_size))
    else:
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 3])
    resumed = train(build_config(_webshop_run(tmp_path, iterations=3, tracker="both", resume=str(first.run_dir))),
                    progress=False)
    assert len(resumed.history) == 2  # iterations 2 and 3, from iter_000001
    assert "iter_000002 is not usable" in caplog.text
    assert resumed.iterations == 3


def test_no_intact_checkpoint_is_one_clear_error(tmp_path):
    first = _finished(tmp_path)
    for folder in (first.run_dir / "checkpoints").glob("iter_*"):
        state = folder / "trainer_state.pt"
        state.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="no intact checkpoint.*iter_000002.*iter_000001"):
        train(build_config(_webshop_run(tmp_path, iterations=3, tracker="both", resume=str(first.run_dir))), progress=False)
    assert json.loads((first.run_dir / "status.json").read_text())["status"] == "FINISHED"


# -- a resume that asks for another model ----------------------------------------------------------------------
def test_a_resume_that_changes_the_model_is_refused_naming_the_field(tmp_path):
    first = _finished(tmp_path)
    data = _webshop_run(tmp_path, iterations=3, tracker="both", resume=str(first.run_dir))
    data["model"] = {**data["model"], "hidden_size": 64}
    with pytest.raises(ValueError, match=r"model\.hidden_size: 32 -> 64"):
        train(build_config(data), progress=False)
    assert json.loads((first.run_dir / "status.json").read_text())["status"] == "FINISHED"
    # what may change (its length, where it reports, its micro-batches) does, and the record says so
    data = _webshop_run(tmp_path, iterations=3, tracker="both", resume=str(first.run_dir))
    data["optim"] = {**data["optim"], "micro_batch_size": 2}
    train(build_config(data), progress=False)
    recorded = (first.run_dir / "config.yaml").read_text()
    assert "micro_batch_size: 2" in recorded and "iterations: 3" in recorded


def test_a_sigterm_during_a_record_write_waits_for_the_write(tmp_path):
    from proxmo.train.signals import Terminated
    from proxmo.train.tracking import JsonlTracker

    class TermMidWrite(JsonlTracker):
        """SIGTERM reaches the job in the middle of writing iteration 2's metrics (a database transaction, say)."""

        def log_metrics(self, metrics, step):
            if step == 2 and "train/success" in metrics:
                os.kill(os.getpid(), signal.SIGTERM)
            super().log_metrics(metrics, step)

    config = build_config(_webshop_run(tmp_path, iterations=5, tracker="jsonl"))
    run_dir = tmp_path / "runs" / tmp_path.name
    earlier = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as in a fresh process (a test before may have set one)
    try:
        with pytest.raises(Terminated):
            train(config, tracker=TermMidWrite(run_dir), progress=False)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the job's handler is gone with it
    finally:
        signal.signal(signal.SIGTERM, earlier)
    steps = [r["step"] for r in read_metrics(run_dir) if "train/success" in r["metrics"]]
    assert steps == [1, 2]  # the write under way was finished, and nothing after it ran
    assert json.loads((run_dir / "status.json").read_text())["status"] == "KILLED"
