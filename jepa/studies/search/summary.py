"""A study's summary in study_dir/optuna/: the trial table, the best trial and optuna's plots.

    trials.csv             one row per trial: number, state, value, params, epochs reported, run folder, retry_of
    best.json              the best trial: value, params, the overrides that rerun it, its run folder
    summary.md             counts, best parameters and the table, with the figures below
    history.png            optimisation history (plot_optimization_history)
    intermediate.png       the metric per epoch of every trial: what the pruner saw
    importances.png        parameter importances (fANOVA); needs 2 finished trials and a parameter that varies
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from ...atomic_write import atomic_write
from .spec import override

log = logging.getLogger("jepa.studies.search")

# file: (optuna.visualization.matplotlib function, complete trials it needs)
PLOTS = {
    "history.png": ("plot_optimization_history", 1),
    "intermediate.png": ("plot_intermediate_values", 0),
    "importances.png": ("plot_param_importances", 2),
}


def trial_rows(study: optuna.Study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({"number": t.number, "state": t.state.name, "value": t.value,
                     **{f"params_{k}": v for k, v in t.params.items()},
                     "epochs": len(t.intermediate_values), "run_dir": t.user_attrs.get("run_dir"),
                     "retry_of": t.user_attrs.get("retry_of"),
                     "duration_s": t.duration.total_seconds() if t.duration else None})
    return rows


def best_trial(study: optuna.Study, spec: DictConfig) -> dict | None:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    best = study.best_trial
    return {"number": best.number, "value": best.value, "metric": spec.metric, "direction": spec.direction,
            "params": best.params, "run_dir": best.user_attrs.get("run_dir"),
            "overrides": [*spec.overrides, *(override(k, v) for k, v in best.params.items())]}


def write_plots(study: optuna.Study, out: Path) -> dict[str, str]:
    """Each plot's file, or why it was left out (too few trials, no variance...)."""
    import matplotlib  # plots only: a summary without them needs no matplotlib

    matplotlib.use("Agg")  # files only, also on nodes without a display
    import matplotlib.pyplot as plt

    written = {}
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    for name, (function, needed) in PLOTS.items():
        (out / name).unlink(missing_ok=True)
        if complete < needed or not study.trials:
            written[name] = f"not drawn: needs {needed} complete trial(s)"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna's ExperimentalWarning
                axes = getattr(optuna.visualization.matplotlib, function)(study)
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.savefig(out / name, dpi=100, bbox_inches="tight")
            plt.close(figure)
            written[name] = name
        except (ValueError, RuntimeError) as err:  # e.g. importances when no parameter varies
            written[name] = f"not drawn: {err}"
    return written


def write_summary(study: optuna.Study, study_dir: Path, spec: DictConfig) -> dict:
    """Write study_dir/optuna/ and return best.json's content (best: None while no trial is complete)."""
    out = Path(study_dir) / "optuna"
    out.mkdir(parents=True, exist_ok=True)
    rows = trial_rows(study)
    import pandas as pd  # the trial table only (pandas loads in about 0.5 s)

    table = pd.DataFrame(rows)
    atomic_write(out / "trials.csv", lambda f: f.write(table.to_csv(index=False).encode()))
    counts = {state.name: sum(r["state"] == state.name for r in rows) for state in TrialState}
    best = {"study": spec.name, "n_trials": spec.n_trials, "counts": counts, "best": best_trial(study, spec)}
    atomic_write(out / "best.json", lambda f: f.write(json.dumps(best, indent=2).encode() + b"\n"))
    plots = write_plots(study, out)
    atomic_write(out / "summary.md", lambda f: f.write(summary_markdown(best, table, plots).encode()))
    return best


def summary_markdown(best: dict, table, plots: dict[str, str]) -> str:
    b = best["best"]
    counts = ", ".join(f"{n} {state.lower()}" for state, n in best["counts"].items() if n)
    md = [f"# Optuna study `{best['study']}`", "", f"{len(table)} trials ({counts or 'none'}); "
          f"the study stops at {best['n_trials']} complete or pruned.", ""]
    if b:
        md += [f"Best: trial {b['number']}, {b['metric']} = {b['value']:.4f}, run folder `{b['run_dir']}`.", "",
               "Rerun it: `python -m jepa.train " + " ".join(b["overrides"]) + "`", "",
               "| parameter | value |", "|---|---|", *(f"| {k} | {v:.6g} |" if isinstance(v, float) else
                                                      f"| {k} | {v} |" for k, v in b["params"].items()), ""]
    else:
        md += ["No trial is complete yet.", ""]
    for name, entry in plots.items():
        md += [f"![{name}]({name})" if entry == name else f"{name}: {entry}", ""]
    md += ["## Trials", "", *markdown_table(table), ""]
    return "\n".join(md)


def markdown_table(table) -> list[str]:
    if not len(table):
        return ["None."]
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    return lines + ["| " + " | ".join(map(cell, row)) + " |" for row in table.itertuples(index=False)]


def cell(value) -> str:
    if value is None or value != value:  # None, NaN (pandas fills missing values with NaN)
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
