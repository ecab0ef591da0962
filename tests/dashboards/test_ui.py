"""`proxmo ui`: the MLflow UI, optuna-dashboard and the dashboard come up on the given stores, and Ctrl-C stops
every process they started."""

import signal
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from tests.servers import as_foreground, free_port


def _status(port: int, path: str, host: str) -> int:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host})
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.integration
def test_proxmo_ui_starts_three_uis_and_ctrl_c_stops_them_all(tmp_path):
    ports = [free_port() for _ in range(3)]
    command = [sys.executable, "-m", "proxmo", "ui", "--mlflow-port", str(ports[0]), "--optuna-port", str(ports[1]),
               "--dashboard-port", str(ports[2]), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
               "--storage", f"sqlite:///{tmp_path / 'optuna.db'}"]
    ui = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                          preexec_fn=as_foreground)
    lines = []
    started = []
    try:
        deadline = time.monotonic() + 180
        while not any("Ctrl-C stops them all" in line for line in lines):
            assert time.monotonic() < deadline and ui.poll() is None, "".join(lines)
            lines.append(ui.stdout.readline())
        text = "".join(lines)
        for port in ports:
            assert f"http://127.0.0.1:{port}" in text
        for url in (f"http://127.0.0.1:{ports[0]}/health", f"http://127.0.0.1:{ports[1]}/",
                    f"http://127.0.0.1:{ports[2]}/_stcore/health"):
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200, url
        started = psutil.Process(ui.pid).children(recursive=True)
        assert len(started) >= 3
        # a page elsewhere reaching the UIs through DNS rebinding carries its own Host: refused
        for port in ports[:2]:
            assert _status(port, "/", host="attacker.example") == 403, port
            assert _status(port, "/", host=f"localhost:{port}") < 400, port
        # the stores' URLs (which may hold passwords) are not on any command line that `ps` shows
        for process in started:
            assert not any("optuna.db" in arg or "mlflow.db" in arg for arg in process.cmdline()), process.cmdline()
        ui.send_signal(signal.SIGINT)
        assert ui.wait(timeout=60) == 0, ui.stdout.read()
    finally:
        if ui.poll() is None:  # a failed check: stop the UIs too, not only their launcher
            started = started or psutil.Process(ui.pid).children(recursive=True)
            for process in [psutil.Process(ui.pid), *started]:
                try:
                    process.kill()
                except psutil.NoSuchProcess:
                    pass
    gone, alive = psutil.wait_procs(started, timeout=15)
    assert not alive, [p.pid for p in alive]  # no orphans: not the servers, not their workers


def test_the_uis_are_stopped_together_so_their_grace_periods_do_not_add_up(tmp_path):
    """Each stand-in ignores SIGTERM (as a server slow to stop under load does) and notes when it got it: all get it
    at once, and all are killed one grace period later, not one grace period each."""
    from dashboards.serve import Service, stop_all

    services = []
    for index in range(3):
        note = tmp_path / f"term{index}"
        script = f"trap 'date +%s.%N > {note}' TERM; echo up; while true; do sleep 0.05; done"
        services.append(Service(f"ui{index}", ["bash", "-c", script], url="", health=""))
    for service in services:
        service.start(tmp_path)
    time.sleep(0.5)  # the traps are set
    processes = [s.process for s in services]
    stop_all(services, grace=3.0)
    assert all(p.poll() is not None for p in processes) and all(s.process is None for s in services)
    received = [float((tmp_path / f"term{index}").read_text()) for index in range(3)]
    assert max(received) - min(received) < 1.5  # one after another, they would be 3 s apart
    assert all(p.returncode == -signal.SIGKILL for p in processes)  # SIGTERM ignored: killed after the grace
