"""Offline analysis of sweeps: run folders -> frames -> tables, figures and a report.

Modules: `load` (run folders -> frames), `group` (configurations, the value of a run), `stats` (intervals, tests,
power), `claims` (the published claims tested), `published` (published table, protocol), `tables` (pivot and its
Markdown/CSV/LaTeX), `factorial` (cell + seed-block model), `plan` (the seed planner), `plots` (figures),
`report` (`analyse`, `build_report`), `cli` (`python -m analysis`).
"""

from analysis.load import Sweep, load_runs
from analysis.report import build_report

__all__ = ["Sweep", "build_report", "load_runs"]
