"""The `proxmo` command: the installed entry point and its advantage subcommand on a file of records."""

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from proxmo.advantage import AdvantageConfig, compute_advantages
from proxmo.advantage.synthetic import alfworld_like_batch
from proxmo.cli import app

FIELDS = ("group", "traj", "t", "reward", "invalid", "won", "anchor")


def write_records(path: Path, batch) -> list[dict]:
    columns = [getattr(batch, name).tolist() for name in FIELDS]
    records = [dict(zip(FIELDS, values)) for values in zip(*columns)]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return records


def test_installed_command_lists_estimators():
    exe = Path(sys.executable).with_name("proxmo")
    out = subprocess.run([str(exe), "estimators"], capture_output=True, text=True, check=True).stdout
    from proxmo.advantage import ESTIMATORS

    for name in ESTIMATORS:
        assert name in out


def test_one_estimators_options_are_listed_with_types_ranges_and_help():
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["estimators", "hgpo"])
    assert result.exit_code == 0, result.output
    for expected in ("history_length", "int", "ge 0", "base_group", "bool", "mean_norm | mean_std_norm",
                     "Depth weight exponent"):
        assert expected in result.output, expected
    listing = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["estimators"]).output
    assert "graph_gamma=0.1" in listing and "history_length=2" in listing and "temperature=0.1" in listing
    unknown = CliRunner().invoke(app, ["estimators", "ppo"])
    assert unknown.exit_code == 2 and "unknown estimator 'ppo'" in unknown.output


def test_advantages_refuses_an_option_of_another_estimator(tmp_path):
    batch = alfworld_like_batch(n_groups=1, seed=1)
    write_records(tmp_path / "steps.jsonl", batch)
    result = CliRunner().invoke(app, ["advantages", str(tmp_path / "steps.jsonl"), "--estimator", "rloo",
                                      "--set", "temperature=0.2"])
    assert result.exit_code == 2 and "temperature" in result.output
    assert "not an option of estimator 'rloo'" in result.output


def test_advantages_from_a_jsonl_file(tmp_path):
    batch = alfworld_like_batch(n_groups=2, seed=1)
    write_records(tmp_path / "steps.jsonl", batch)
    result = CliRunner().invoke(app, ["advantages", str(tmp_path / "steps.jsonl"), "--estimator", "gigpo",
                                      "--set", "gamma=0.9", "--out", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    assert "step_group_size_mean" in result.output
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    expected = compute_advantages(batch, AdvantageConfig(estimator="gigpo", gamma=0.9)).advantages
    assert [round(r["advantage"], 5) for r in written] == [round(float(a), 5) for a in expected]


def test_bad_input_is_reported_not_a_traceback(tmp_path):
    batch = alfworld_like_batch(n_groups=1, seed=1)
    records = write_records(tmp_path / "steps.jsonl", batch)
    records[3]["reward"] = None
    (tmp_path / "bad.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    result = CliRunner().invoke(app, ["advantages", str(tmp_path / "bad.jsonl")])
    assert result.exit_code == 2 and "reward" in result.output
    result = CliRunner().invoke(app, ["advantages", str(tmp_path / "steps.jsonl"), "--set", "temperature=-1"])
    assert result.exit_code == 2 and "temperature" in result.output


def test_play_shows_bracketed_commands_verbatim():
    result = CliRunner().invoke(app, ["play", "--env", "webshop", "--set", "split=test", "--task", "3"],
                                input="search[sunglasses]\nquit\n")
    assert result.exit_code == 0, result.output
    assert "1. search[<your query>]" in result.output and "click[back to search]" in result.output


def test_curves_command_plots_a_run_or_an_ablation(tmp_path):
    from proxmo.train.tracking import JsonlTracker

    for variant in ("grpo", "proxmo"):
        for seed in (0, 1):
            with JsonlTracker(tmp_path / "ablation" / f"{variant}__s{seed}") as run:
                for step in (0, 5, 10):
                    run.log_metrics({"val/success": 0.1 * seed + step / 20, "val/success/pick": 0.5}, step=step)
    result = CliRunner().invoke(app, ["curves", str(tmp_path / "ablation"), "-o", str(tmp_path / "a.png")])
    assert result.exit_code == 0, result.output
    assert "grpo (2 seeds)" in result.output and (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    one = CliRunner().invoke(app, ["curves", str(tmp_path / "ablation" / "grpo__s0"), "-o", str(tmp_path / "r.png")])
    assert one.exit_code == 0 and (tmp_path / "r.png").is_file()
    empty = CliRunner().invoke(app, ["curves", str(tmp_path), "-o", str(tmp_path / "x.png")])
    assert empty.exit_code != 0 and "no run folder" in empty.output


def test_unreadable_step_files_and_overflowing_rewards_are_one_line_errors(tmp_path):
    batch = alfworld_like_batch(n_groups=1, seed=1)
    records = write_records(tmp_path / "steps.jsonl", batch)
    cases = {
        "cut.json": (json.dumps(records)[:-40].encode(), "not a valid JSON list"),
        "latin1.jsonl": ("\n".join(json.dumps({**r, "anchor": "caf\xe9"}, ensure_ascii=False) for r in records)
                         .encode("latin-1"), "not UTF-8 text"),
        "huge.jsonl": ("\n".join(json.dumps({**r, "reward": 1e308 if r["won"] else 0.0}) for r in records).encode(),
                       "overflow"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        result = CliRunner().invoke(app, ["advantages", str(tmp_path / name)])
        assert result.exit_code == 2, (name, result.output)
        assert message in result.output and "Traceback" not in result.output, (name, result.output)


def test_sync_to_a_dead_server_fails_in_seconds(tmp_path):
    import time

    from proxmo.train.tracking import JsonlTracker
    from tests.servers import free_port

    tracker = JsonlTracker(tmp_path / "run")
    tracker.log_metrics({"x": 1.0}, step=1)
    tracker.close()
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "proxmo", "sync", str(tmp_path / "run"), "--tracking-uri",
                             f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "does not answer" in result.stdout, result.stdout + result.stderr
    assert time.monotonic() - start < 60


def test_packages_mount_their_commands_and_the_library_cli_imports_none_of_the_platform():
    code = ("import sys, proxmo.cli; print(sorted(m for m in ('prefect', 'mlflow', 'ray', 'streamlit', 'optuna', "
            "'flows.ablate', 'flows.sweep', 'dashboards.serve') if m in sys.modules))")
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert imported == "[]"
    names = {c.name or c.callback.__name__ for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert {"ablate", "sweep", "play", "dashboard", "ui", "games", "train", "advantages"} <= names


def test_a_command_whose_extra_is_missing_is_listed_and_says_what_to_install():
    import typer

    from proxmo.cli import _unavailable, mount

    target = typer.Typer()
    target.command("version")(lambda: None)
    mount(target, "ablate", _unavailable("the flows need prefect, which come with the 'platform' extra: "
                                         "pip install 'proxmo[platform]'"))
    listed = CliRunner().invoke(target, ["--help"])
    assert "ablate" in listed.output and "not installed here" in listed.output
    result = CliRunner().invoke(target, ["ablate", "configs/alfworld_demo.yaml", "--seed", "1"])
    assert result.exit_code == 2 and "pip install 'proxmo[platform]'" in result.output
