"""Bad input to a training run is refused before any work, in one line naming what is wrong: names that are
not one folder, non-finite numbers, batches past the limit, unreadable configs and output folders; and the
WebShop server adapter works from a training config."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from proxmo.cli import app
from proxmo.train.config import ConfigError, build_config
from proxmo.train.job import train
from tests.envs.webshop.test_remote import server  # noqa: F401 - the fake WebShop server fixture
from tests.proxmo.train.test_job import TINY, _by_step, _webshop

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", ["../escaped", "/", ".", "..", "a/b", "/tmp/abs", "", "tab\there"])
def test_a_run_name_is_one_folder(tmp_path, name):
    with pytest.raises(ConfigError, match=r"run\.name: .*must name one folder"):
        build_config(_webshop(tmp_path, name=name))


@pytest.mark.parametrize("override", ["optim.lr=.inf", "rollout.temperature=.inf", "advantage.temperature=.nan",
                                      "eval.temperature=.inf", "model.lora_alpha=.inf", "optim.clip_high=.nan"])
def test_non_finite_settings_are_refused(override):
    field = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"{field}: Input should be a finite number"):
        build_config({}, [override])


def test_a_huge_batch_is_refused_with_what_it_would_cost():
    with pytest.raises(ConfigError, match=r"rollout.n_groups x rollout.group_size: 8,000,000 environments .* limit"):
        build_config({}, ["rollout.n_groups=1000000"])
    with pytest.raises(ConfigError, match=r"eval.batch: 20,000 environments"):
        build_config({}, ["eval.batch=20000"])


def _invoke(*args):
    return CliRunner().invoke(app, ["train", *args, "--quiet"])


def test_a_config_that_is_not_utf8_is_a_config_error(tmp_path):
    preset = tmp_path / "latin1.yaml"
    preset.write_bytes("run:\n  name: caf\xe9\n".encode("latin-1"))
    result = _invoke(str(preset))
    assert result.exit_code == 2 and "is not UTF-8 text" in result.output and "Traceback" not in result.output


def _overrides(tmp_path, output_dir):
    data = _webshop(tmp_path, iterations=1, name="out")
    data["run"]["output_dir"] = str(output_dir)
    return [f"{section}={json.dumps(values)}" for section, values in data.items()]


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _invoke(*_overrides(tmp_path, blocker))
    assert result.exit_code == 1 and "run.output_dir: cannot write the run folder" in result.output
    assert "Traceback" not in result.output


def test_a_read_only_output_folder_is_one_line(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    mounted = False
    if os.geteuid() == 0:  # root writes through file modes: a read-only mount it cannot
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("as root, a read-only folder needs a read-only mount")
    else:
        folder.chmod(0o555)
    try:
        result = _invoke(*_overrides(tmp_path, folder))
        assert result.exit_code == 1 and "run.output_dir: cannot write the run folder" in result.output
        assert "Read-only file system" in result.output or "Permission denied" in result.output
        assert "Traceback" not in result.output
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=False)
        else:
            folder.chmod(0o755)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/", "", "127.0.0.1:36001"])
def test_the_webshop_server_url_must_be_http(tmp_path, url):
    data = _webshop(tmp_path)
    data["env"]["options"] = {"server_url": url}
    with pytest.raises(ConfigError, match=r"env.options.server_url: expected the http\(s\) address"):
        build_config(data)


def test_a_training_run_plays_a_webshop_server(tmp_path, server):  # noqa: F811 - the fixture
    url, shop = server
    data = {
        "env": {"name": "webshop", "options": {"server_url": url, "max_steps": 3}, "train_split": "test"},
        "model": TINY,
        "rollout": {"n_groups": 1, "group_size": 2, "action_mode": "choose"},
        "eval": {"every": 0, "tasks": 1, "batch": 1},
        "run": {"iterations": 1, "output_dir": str(tmp_path / "runs"), "name": "remote", "tracker": "jsonl"},
    }
    result = train(build_config(data), progress=False)
    metrics = _by_step(result.run_dir)[1]
    assert metrics["train/episodes"] == 2 and metrics["val/episodes"] == 1
    assert any(request[1] == "/step" for request in shop.requests)  # the episodes were played on the server


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)
