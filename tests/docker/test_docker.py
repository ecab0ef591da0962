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


PASSWORDS = ("POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "PREFECT_DB_PASSWORD", "OPTUNA_DB_PASSWORD")


def test_the_compose_file_is_valid_and_needs_every_password_from_outside():
    env = {k: v for k, v in os.environ.items() if k not in PASSWORDS and not k.startswith("POSTGRES_")}
    ok = _compose_config({**env, **{name: "only-for-this-check" for name in PASSWORDS}})
    assert ok.returncode == 0, ok.stderr
    for missing in PASSWORDS:
        refused = _compose_config({**env, **{name: "x" for name in PASSWORDS if name != missing}})
        assert refused.returncode != 0 and missing in refused.stderr, missing


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
    assert len(connections) == 3, connections
    for service in ("mlflow", "prefect", "optuna"):  # each service as its own role, with its own password
        [line] = [c for c in connections if f"@postgres:5432/{service}" in c]
        assert f"://{service}:${{{service.upper()}_DB_PASSWORD:?" in line, line
    keys = re.findall(r"^\s*(\w*PASSWORD):\s*(\S+)", text, re.M)
    assert keys and all(value.startswith(f"${{{name}:?") for name, value in keys), keys
    example = (DOCKER / ".env.example").read_text()
    for name in ("POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "PREFECT_DB_PASSWORD", "OPTUNA_DB_PASSWORD"):
        assert f"{name}=\n" in example  # an example, with no value
    assert not (DOCKER / ".env").exists() or ".env" in (DOCKER.parent / ".gitignore").read_text()


def test_no_password_on_a_command_line_and_no_unauthenticated_ray_dashboard():
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    for name, service in services.items():
        assert "PASSWORD" not in str(service.get("command", "")), name  # `ps` shows command lines to every user
    assert "--include-dashboard=false" in services["ray-head"]["command"]
    assert (DOCKER.parent / ".dockerignore").is_file()
    ignored = (DOCKER.parent / ".dockerignore").read_text().split()
    for secret_or_bulk in (".venv", ".venv-vllm", "runs", "*.db", "docker/.env", ".git"):
        assert secret_or_bulk in ignored, secret_or_bulk


PG_BIN = next((p for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True) if (p / "initdb").exists()),
              None) if Path("/usr/lib/postgresql").exists() else None


@pytest.mark.skipif(PG_BIN is None or os.geteuid() != 0, reason="needs PostgreSQL and root to run it as its own user")
def test_the_init_script_gives_each_service_a_role_that_reaches_its_own_database_only(tmp_path):
    import tempfile
    import time

    import psycopg2

    from tests.servers import free_port

    data = Path(tempfile.mkdtemp(prefix="proxmo-pg-"))  # outside pytest's folders, which only root may enter
    shutil.chown(data, "postgres")
    port = free_port()
    superuser = {"POSTGRES_USER": "proxmo", "POSTGRES_DB": "proxmo"}
    passwords = {"MLFLOW_DB_PASSWORD": "m-pw", "PREFECT_DB_PASSWORD": "p-pw", "OPTUNA_DB_PASSWORD": "o-pw"}
    server = None
    try:
        (data / "pw").write_text("root-pw\n")
        shutil.chown(data / "pw", "postgres")
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data / "data"),
                        "-U", "proxmo", "--auth=scram-sha-256", f"--pwfile={data / 'pw'}"], check=True,
                       capture_output=True, timeout=120)
        server = subprocess.Popen(["runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D", str(data / "data"),
                                   "-p", str(port), "-k", str(data), "-c", "listen_addresses=127.0.0.1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                             capture_output=True).returncode != 0:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        admin = psycopg2.connect(host="127.0.0.1", port=port, user="proxmo", password="root-pw", dbname="postgres")
        admin.autocommit = True
        admin.cursor().execute("CREATE DATABASE proxmo")
        admin.close()
        env = {**os.environ, **superuser, **passwords, "PGHOST": "127.0.0.1", "PGPORT": str(port),
               "PGPASSWORD": "root-pw"}
        result = subprocess.run(["bash", str(DOCKER / "initdb" / "01-databases.sh")], env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr

        def connect(user, database):
            password = passwords[f"{user.upper()}_DB_PASSWORD"]
            return psycopg2.connect(host="127.0.0.1", port=port, user=user, password=password, dbname=database)

        for service in ("mlflow", "prefect", "optuna"):
            with connect(service, service) as own:  # its own database: it may create tables there
                own.cursor().execute("CREATE TABLE probe (x int)")
            for other in {"mlflow", "prefect", "optuna", "proxmo"} - {service}:
                with pytest.raises(psycopg2.OperationalError, match="permission denied"):
                    connect(service, other)
        with pytest.raises(psycopg2.OperationalError, match="authentication failed"):
            psycopg2.connect(host="127.0.0.1", port=port, user="mlflow", password="p-pw", dbname="mlflow")
    finally:
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)
