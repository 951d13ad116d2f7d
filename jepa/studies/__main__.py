"""`python -m jepa.studies status SWEEP_DIR [--json]` (or `jepa-studies`): each run's state;
`python -m jepa.studies cost +sweeps=NAME --seq-per-s N`: the study's projected GPU-hours."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
