"""The Docker images and the compose stack, checked as far as a machine without a Docker engine can: hadolint on
every Dockerfile, docker-compose's own validation of the compose file, and the stack's invariants."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile*"))


def _hadolint() -> str:
    here = Path(sys.executable).with_name("hadolint")
    return str(here) if here.exists() else (shutil.which("hadolint") or pytest.skip("hadolint is not installed"))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_pass_hadolint(dockerfile):
    result = subprocess.run([_hadolint(), str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_is_a_cpu_and_a_gpu_image():
    assert {p.name for p in DOCKERFILES} == {"Dockerfile.cpu", "Dockerfile.gpu"}
    gpu = (DOCKER / "Dockerfile.gpu").read_text()
    assert "nvidia/cuda" in gpu and "WITH_VLLM" in gpu


def _compose_config(env):
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose; .ci/run installs it)")
    return subprocess.run([binary, "-f", str(DOCKER / "compose.yaml"), "config", "-q"], capture_output=True, text=True,
                          timeout=60, env=env, cwd=DOCKER.parent)


def test_the_compose_file_is_valid_and_needs_a_password_from_outside():
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTGRES_")}
    ok = _compose_config({**env, "POSTGRES_PASSWORD": "only-for-this-check"})
    assert ok.returncode == 0, ok.stderr
    refused = _compose_config(env)
    assert refused.returncode != 0 and "POSTGRES_PASSWORD" in refused.stderr


def test_the_stack_has_every_service_with_a_health_check_and_no_credentials():
    text = (DOCKER / "compose.yaml").read_text()
    services = yaml.safe_load(text)["services"]
    assert set(services) == {"postgres", "mlflow", "prefect-server", "prefect-worker", "ray-head", "ray-worker",
                             "dashboard"}
    assert all("healthcheck" in service for service in services.values())
    for service in services.values():  # published only on this host's loopback
        assert all(str(port).startswith("127.0.0.1:") for port in service.get("ports", []))
    import re

    connections = [line for line in text.splitlines() if "@postgres:" in line]
    assert connections and all("${POSTGRES_PASSWORD:?" in line for line in connections), connections
    keys = re.findall(r"^\s*\w*PASSWORD:\s*(\S+)", text, re.M)
    assert keys and all(value.startswith("${POSTGRES_PASSWORD:?") for value in keys), keys
    assert "POSTGRES_PASSWORD=\n" in (DOCKER / ".env.example").read_text()  # an example, with no value
    assert not (DOCKER / ".env").exists() or ".env" in (DOCKER.parent / ".gitignore").read_text()
