"""Offline analysis of sweeps: run folders -> frames -> tables, figures and a report.

Modules: `load` (run folders -> frames), `group` (configurations, the value of a run), `stats` (intervals, paired
differences, seeds needed), `claims` (the published claims checked), `published` (published table, protocol),
`tables` (pivot and its Markdown/CSV/LaTeX), `plots` (figures), `report` (`build_report`), `cli`
(`python -m analysis`), `bench`.
"""

from analysis.load import Sweep, load_runs
from analysis.report import build_report

__all__ = ["Sweep", "build_report", "load_runs"]
