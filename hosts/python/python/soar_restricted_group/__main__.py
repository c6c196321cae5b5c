"""`soar-host` and `python -m soar_restricted_group`: the soar-host command line, every command
included (README, "Command line"), run by the Rust core with the component this package carries."""

from __future__ import annotations

import sys

from . import PLUGIN
from ._native import run_cli


def main() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(run_cli(sys.argv[1:], PLUGIN))


if __name__ == "__main__":
    main()
