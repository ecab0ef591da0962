"""optuna-dashboard as ``proxmo ui`` serves it: behind a Host check, with its storage URL out of the command line.

optuna-dashboard's own server answers any ``Host`` header, so a web page the user visits can reach it through
DNS rebinding (a name of the attacker's that resolves to 127.0.0.1) and change or delete studies. This server
answers only the names the address is known by (``localhost``, the loopback addresses, the bound host, and
``PROXMO_ALLOWED_HOSTS``, comma-separated) and refuses any other with 403, as MLflow's server does. The storage
URL, which may hold a database password, is read from ``PROXMO_OPTUNA_STORAGE`` instead of the arguments,
which ``ps`` shows to every user of the machine::

    PROXMO_OPTUNA_STORAGE=sqlite:///optuna.db python -m dashboards.optuna_server --host 127.0.0.1 --port 8080
"""

from __future__ import annotations

import argparse
import os
import sys
from socketserver import ThreadingMixIn
from typing import Callable, Iterable, Set
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from proxmo.urls import OPTUNA_STORAGE_ENV as STORAGE_ENV

ALLOWED_HOSTS_ENV = "PROXMO_ALLOWED_HOSTS"
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def allowed_hosts(bind: str, extra: str = "") -> Set[str]:
    """Host names a request may carry: the loopback names, the bound address (unless it is a wildcard) and
    ``extra`` (comma-separated)."""
    names = set(LOOPBACK)
    if bind not in ("0.0.0.0", "::", ""):
        names.add(bind.strip("[]").lower())
    names.update(name.strip().lower() for name in extra.split(",") if name.strip())
    return names


def host_name(header: str) -> str:
    """The name of a ``Host`` header without its port: ``example.com:8080`` -> ``example.com``, ``[::1]:80`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_check(app: Callable, allowed: Set[str]) -> Callable:
    """A WSGI app that passes requests for ``allowed`` hosts to ``app`` and answers any other with 403."""

    def checked(environ, start_response) -> Iterable[bytes]:
        if host_name(environ.get("HTTP_HOST", "")) in allowed:
            return app(environ, start_response)
        body = b"403 Forbidden: this server answers only for " + ", ".join(sorted(allowed)).encode() + b"\n"
        start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return checked


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.optuna_server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    storage = os.environ.get(STORAGE_ENV)
    if not storage:
        print(f"error: set {STORAGE_ENV} to the Optuna storage URL", file=sys.stderr)
        return 2
    import optuna_dashboard

    app = host_check(optuna_dashboard.wsgi(storage), allowed_hosts(args.host, os.environ.get(ALLOWED_HOSTS_ENV, "")))
    server = make_server(args.host, args.port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
