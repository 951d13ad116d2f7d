"""`python -m jepa.studies status SWEEP_DIR [--json]` (or `jepa-studies`): each run's state."""

import sys

from .status import main

if __name__ == "__main__":
    sys.exit(main())
