"""Install only what you need: the wheel with no extras in a fresh virtual environment runs the plug-and-play
example (with the user's own torch), and a piece whose extra is missing says which one to install."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*command, cwd=None, timeout=600):
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=cwd, timeout=timeout)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.integration
def test_the_bare_core_installs_and_runs_the_plug_and_play_example(tmp_path):
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    source = tmp_path / "source"  # a copy of the tracked files: building writes build/ and *.egg-info
    for name in tracked or []:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist",
         source if tracked else ROOT)
    [wheel] = (tmp_path / "dist").glob("proxmo-*.whl")
    _run(sys.executable, "-m", "venv", tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    # the practitioner's own torch is all that comes besides the core's own dependencies
    _run(python, "-m", "pip", "install", "--quiet", "--constraint", ROOT / "requirements.lock", wheel, "torch")
    check = ("import importlib.util as u, proxmo.advantage; "
             "print(sorted(m for m in ('prefect', 'ray', 'mlflow', 'optuna', 'transformers', 'streamlit', 'alfworld', "
             "'rapidfuzz') if u.find_spec(m)))")
    assert _run(python, "-c", check, cwd=tmp_path).stdout.strip() == "[]"
    example = _run(python, ROOT / "docs" / "examples" / "plug_and_play.py", "--iterations", "3", cwd=tmp_path)
    assert [line.split()[1] for line in example.stdout.splitlines() if line.startswith("iteration")] == ["0", "1", "2"]
    for module, extra in (("proxmo.train", "train"), ("envs.webshop", "envs"), ("flows", "platform"),
                          ("dashboards", "platform")):
        failed = subprocess.run([python, "-c", f"import {module}"], capture_output=True, text=True, cwd=tmp_path)
        assert failed.returncode != 0 and f"pip install 'proxmo[{extra}]'" in failed.stderr, (module, failed.stderr)
