"""``python -m proxmo``: the same command line as ``proxmo``."""

from proxmo.cli import app

app(prog_name="proxmo")
