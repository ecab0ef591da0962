"""Test isolation: nothing a test does writes to the home folder or reaches a network service."""

import atexit
import os
import shutil
import tempfile

_SANDBOX = tempfile.mkdtemp(prefix="proxmo-tests-")
atexit.register(shutil.rmtree, _SANDBOX, ignore_errors=True)

os.environ.update(
    {
        "PREFECT_HOME": os.path.join(_SANDBOX, "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",  # no log shipping to the temporary server as it stops at exit
        "MLFLOW_TRACKING_URI": "sqlite:///" + os.path.join(_SANDBOX, "mlflow.db"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "RAY_TMPDIR": os.path.join(_SANDBOX, "ray"),
        "RAY_AUTH_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
)
