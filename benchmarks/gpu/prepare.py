"""Download, for the GPU machine (Python 3.12, manylinux x86_64, no registry), the wheels the training job needs
beyond that machine's own torch, transformers, numpy, scikit-learn and PyYAML: ``benchmarks/gpu/wheels/``,
carried with the device call (it holds a few MiB; the carry limit is 64 MiB).

    python benchmarks/gpu/prepare.py            # then: run ... carry=["benchmarks/gpu/wheels"]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(target: Path = HERE / "wheels", python_version: str = "3.12") -> list:
    target.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps",
                    "--python-version", python_version, "--implementation", "cp",
                    "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux_2_28_x86_64", "--platform", "any",
                    "-d", str(target), "-r", str(HERE / "requirements.txt")], check=True)
    wheels = sorted(p.name for p in target.glob("*.whl"))
    size = sum(p.stat().st_size for p in target.glob("*.whl")) / 2**20
    print(f"{len(wheels)} wheels, {size:.1f} MiB in {target}")
    return wheels


if __name__ == "__main__":
    main()
