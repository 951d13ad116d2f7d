"""`python -m analysis SWEEP [SWEEP ...]`: build the report of one or more sweep folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

from analysis.claims import MARGIN
from analysis.group import SELECTIONS
from analysis.plan import plan_markdown
from analysis.report import ReportInputError, analyse, build_report
from analysis.stats import POWER
from jepa.runs import runs_problem


def _refuse(message: str) -> int:
    print(f"python -m analysis: error: {message}", file=sys.stderr)
    return 2


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Turn finished run folders (searched recursively) into tables, figures and report.md.")
    parser.add_argument("folders", nargs="+", help="sweep folders (or single run folders); several combine")
    parser.add_argument("--out", help="report folder (default: <first folder>/report)")
    parser.add_argument("--rows", default="loss.cov_coeff", help="config key of the table rows")
    parser.add_argument("--cols", default="loss.std_coeff", help="config key of the table columns")
    parser.add_argument("--metric", default="val/mAP", help="metrics.jsonl key in the cells")
    parser.add_argument("--select", choices=SELECTIONS, default="final",
                        help="which epoch of a run counts: the final one or its best for --metric")
    parser.add_argument("--goal", choices=("max", "min"),
                        help="whether larger or smaller --metric is better (default: min for losses, else max)")
    parser.add_argument("--hue", default="model.steps", help="config key with one line per value in the AP plot")
    parser.add_argument("--full", action="store_true", help="also plot AP over the whole validation set")
    parser.add_argument("--stale-hours", type=float, default=1.0,
                        help="a 'running' run without a write for longer is reported as stale")
    parser.add_argument("--ignore", action="append", default=[], metavar="KEY",
                        help="config key that does not split configurations (repeatable)")
    parser.add_argument("--digits", type=int, default=3, help="decimals in the tables")
    parser.add_argument("--margin", type=float, default=MARGIN,
                        help=f"claim 4's equivalence margin in mAP (default {MARGIN})")
    parser.add_argument("--plan", action="store_true",
                        help="print, for each undecided comparison, its power and the sweep command that adds the "
                             "seeds it needs; writes no report")
    parser.add_argument("--power", type=float, default=POWER, help=f"target power of --plan (default {POWER})")
    parser.add_argument("--seq-per-s", type=float,
                        help="throughput for the projected hours of --plan (default: that of the runs themselves)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    matplotlib.use("Agg")  # the figures are built without pyplot; this only guards other imports
    args = parse_args(argv)
    if problem := runs_problem(args.folders):  # a mistyped folder is an error, not an empty report
        return _refuse(problem)
    if args.digits < 0:
        return _refuse(f"--digits={args.digits} is invalid: an integer >= 0")
    if not args.stale_hours > 0:
        return _refuse(f"--stale-hours={args.stale_hours} is invalid: a number of hours > 0")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        return _refuse(f"--out={args.out!r} is invalid: a folder (it is a file)")
    if not 0 < args.margin < 1:
        return _refuse(f"--margin={args.margin} is invalid: a difference of mAP between 0 and 1, e.g. 0.02")
    if not 0 < args.power < 1:
        return _refuse(f"--power={args.power} is invalid: a probability between 0 and 1, e.g. 0.8")
    if args.seq_per_s is not None and not args.seq_per_s > 0:
        return _refuse(f"--seq-per-s={args.seq_per_s} is invalid: a throughput > 0 sequences/s")
    options = dict(rows=args.rows, cols=args.cols, metric=args.metric, select=args.select, goal=args.goal,
                   hue=args.hue, stale_hours=args.stale_hours, ignore=tuple(args.ignore), digits=args.digits,
                   margin=args.margin, power=args.power, seq_per_s=args.seq_per_s)
    try:
        if args.plan:
            a = analyse(args.folders, **options)
            print("\n".join(plan_markdown(a.plan, args.power, args.digits)))
            return 0
        paths = build_report(args.folders, out=args.out, full=args.full, **options)
    except ReportInputError as exc:
        return _refuse(str(exc))
    except OSError as exc:  # the report folder cannot be made or written (under a file, read-only, /proc)
        return _refuse(f"the report could not be written ({exc}): give --out a folder that can be written")
    print(f"wrote {len(paths)} files; report: {paths['report']}")
    return 0
