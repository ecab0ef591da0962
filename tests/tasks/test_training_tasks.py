"""The results table: paper columns from run summaries, averaged over seeds."""

from proxmo.results.table import markdown_table
from tasks.publish import results_row


def _alfworld(seed, pick, all_):
    return {"env": "alfworld", "estimator": "proxmo", "seed": seed,
            "final_eval": {"val/success/Pick": pick, "val/success/Look": 0.5, "val/success": all_}}


def test_results_row_averages_seeds_and_fills_both_environments():
    runs = [_alfworld(0, 1.0, 0.5), _alfworld(1, 0.5, 0.25),
            {"env": "webshop", "estimator": "proxmo", "seed": 0, "final_eval": {"val/score": 0.853, "val/success": 0.671}}]
    row = results_row(runs)
    assert row["method"] == "proxmo" and row["seeds"] == 2
    # mean over seeds with its 95% Student-t interval (two seeds: t = 12.71, so a wide one)
    assert row["Pick"] == "75.0 [-242.7, 392.7]" and row["Look"] == "50.0 [50.0, 50.0]"
    assert row["All"].startswith("37.5 [")
    assert row["WS score"] == "85.3" and row["WS succ"] == "67.1"  # one seed: the value alone
    assert row["Clean"] is None


def test_markdown_table_leaves_missing_cells_empty():
    text = markdown_table([{"method": "grpo", "Pick": 80.0, "WS score": None}], "results")
    assert text.splitlines()[:4] == ["## results", "", "| method | Pick | WS score |", "|---|---|---|"]
    assert "| grpo | 80.0 |  |" in text


def test_a_flow_finds_its_parent_run_again_whatever_its_name(tmp_path):
    from tasks.publish import parent_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    name = "it's \"quoted\" = 'x'"
    first = parent_run("parents", name, "ablation", uri, {})
    first.close()
    other = parent_run("parents", name, "study", uri, {})  # same name, another role: another run
    again = parent_run("parents", name, "ablation", uri, {})
    assert again.run_id == first.run_id and other.run_id != first.run_id
    assert again.client.get_run(first.run_id).info.status == "RUNNING"  # continued


def test_progress_lines_say_one_thing_per_iteration_and_per_evaluation():
    from tasks.progress import progress_lines

    iteration = {"step": 3, "metrics": {"train/success": 0.25, "actor/loss": 0.5, "timing/iteration_s": 1.25}}
    assert progress_lines(iteration, 10) == ["iteration 3/10: train success 0.250, loss 0.5000, 1.25 s"]
    evaluation = {"step": 5, "metrics": {"val/success": 0.5, "val/success_se": 0.1, "val/episodes": 24.0,
                                         "val/greedy/success": 0.75, "val/greedy/episodes": 24.0}}
    assert progress_lines(evaluation) == ["evaluation at 5: success 0.500 ± 0.100 over 24 episodes",
                                          "greedy evaluation at 5: success 0.750 ± nan over 24 episodes"]
    assert progress_lines({"step": 1, "metrics": {"adv/rows": 4.0}}) == []


def test_a_job_on_a_folder_that_a_live_job_writes_is_refused_not_moved_aside(tmp_path):
    import pytest

    from proxmo.train.runfolder import RunFolderBusy, acquire_writer
    from tasks.training import run_job
    from tests.proxmo.train.test_job import _webshop

    folder = tmp_path / "runs" / "busy"
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text('{"step": 1, "time": 0, "metrics": {"train/success": 0.5}}\n')
    live = acquire_writer(folder)  # another job, before its first checkpoint
    try:
        with pytest.raises(RunFolderBusy, match="is being written by"):
            run_job(_webshop(tmp_path, name="busy"))
        assert (folder / "metrics.jsonl").is_file() and [p.name for p in (tmp_path / "runs").iterdir()] == ["busy"]
    finally:
        live.release()



def test_an_interrupted_flow_cancels_its_ray_jobs_and_lets_their_tasks_close_before_ray_goes_down():
    """Ctrl-C in a flow's main thread: every job a task thread waits on is cancelled while Ray still runs, and the task
    is marked stopped (its run ends KILLED, it is not retried); the flow's own thread is never marked."""
    import threading

    import pytest
    import ray

    from tasks.specs import LaunchSpec
    from tasks.training import _RAY_JOBS, _failed, _no_retry_once_stopped, ray_session

    seen = {}
    tracked = threading.Event()

    def waits_on_a_job():
        with _RAY_JOBS.waiting():
            job = ray.remote(num_cpus=0)(lambda: __import__("time").sleep(600)).remote()
            try:
                _RAY_JOBS.track(job)
                tracked.set()
                ray.get(job)
            except BaseException as error:  # noqa: BLE001 - what the task thread sees
                seen.update(error=error, ray_up=ray.is_initialized(), failed=_failed(error),
                            retried=_no_retry_once_stopped(None, None, None))

    task = threading.Thread(target=waits_on_a_job)
    with pytest.raises(KeyboardInterrupt):
        with ray_session(LaunchSpec(launcher="ray", num_cpus=1)):
            task.start()
            assert tracked.wait(60)
            raise KeyboardInterrupt
    task.join(10)
    assert type(seen["error"]).__name__ == "TaskCancelledError" and seen["ray_up"]
    assert not seen["failed"] and not seen["retried"]
    assert not ray.is_initialized()
    assert _no_retry_once_stopped(None, None, None) and _failed(RuntimeError("a job that failed"))


def test_a_task_that_reaches_ray_after_its_flow_was_stopped_submits_nothing():
    import threading

    from tasks.training import _RAY_JOBS, JobStopped

    seen = {}
    entered, stopped = threading.Event(), threading.Event()

    def submits_late():
        with _RAY_JOBS.waiting():
            entered.set()
            stopped.wait(60)
            try:
                _RAY_JOBS.track("a job")
            except JobStopped as error:
                seen["error"] = error

    task = threading.Thread(target=submits_late)
    task.start()
    assert entered.wait(60)
    _RAY_JOBS.stop(grace_s=0)
    stopped.set()
    task.join(10)
    assert isinstance(seen.get("error"), JobStopped)
