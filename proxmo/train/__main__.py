"""``python -m proxmo.train CONFIG [dotted.key=value ...]``: the same path as ``proxmo train``."""

from __future__ import annotations

import argparse
import logging
import sys

from proxmo.telemetry import keep_local
from proxmo.train.launch import launch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxmo.train", description=__doc__)
    parser.add_argument("config", nargs="?", help="YAML preset (default: the reference settings)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    keep_local()  # before the job imports MLflow
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return launch(args.config, args.overrides, quiet=args.quiet, show_config=args.show_config, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
