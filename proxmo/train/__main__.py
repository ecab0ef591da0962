"""``python -m proxmo.train CONFIG [dotted.key=value ...]``: the training job without the CLI's extras."""

from __future__ import annotations

import argparse
import logging
import sys

from proxmo.train.config import ConfigError, load_config
from proxmo.train.job import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxmo.train", description=__doc__)
    parser.add_argument("config", nargs="?", help="YAML preset (default: the reference settings)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
    config_path, overrides = args.config, list(args.overrides)
    if config_path is not None and "=" in config_path:  # only overrides were given
        overrides.insert(0, config_path)
        config_path = None
    try:
        config = load_config(config_path, overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = train(config, progress=not args.quiet)
    final = result.evaluations[-1] if result.evaluations else {}
    for key in sorted(k for k in final if k.startswith("val/")):
        print(f"{key:32s} {final[key]:.4f}")
    print(f"run folder: {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
