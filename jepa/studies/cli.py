"""The package's command line: `python -m jepa.studies status SWEEP_DIR [--json]` (or `jepa-studies`), each run's
state; `python -m jepa.studies cost +sweeps=NAME --seq-per-s N`, a study's projected GPU-hours before it is
submitted (jepa.studies.cost)."""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from .status import counts, counts_line, format_table, sweep_states


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jepa.studies", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="each run's state: pending, running, done or failed (reason)")
    status.add_argument("sweep_dir", type=Path)
    status.add_argument("--json", action="store_true", help="one JSON object: counts and runs")
    cost = commands.add_parser("cost", help="a study's projected GPU-hours from a measured throughput")
    cost.add_argument("overrides", nargs="*", help="the study's overrides, e.g. +sweeps=cov_std experiment=published")
    cost.add_argument("--seq-per-s", type=float, help="training sequences per second, e.g. from the bench")
    cost.add_argument("--bench", type=Path, help="JSON lines of `python -m jepa.tools.bench --json`")
    cost.add_argument("--mode", help="with --bench: the bench mode to take (default: the fastest run)")
    cost.add_argument("--json", action="store_true", help="one JSON object: runs and total")
    args = parser.parse_args(argv)
    if args.command == "cost":
        from .cost import main as cost_main  # noqa: I001  (Hydra's compose and torch: `status` needs neither)

        return cost_main(args)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a folder")
    states = sweep_states(args.sweep_dir)
    if args.json:
        print(json.dumps({"sweep_dir": str(args.sweep_dir), "counts": counts(states),
                          "runs": [asdict(s) for s in states]}, indent=2))
    else:
        print(f"{args.sweep_dir}: {counts_line(states)}")
        print(format_table(states))
    return 0


if __name__ == "__main__":
    sys.exit(main())
