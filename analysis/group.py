"""Configurations (seeds grouped) and the one value of each run that counts.

A configuration is the set of config values that vary across the loaded runs, among the keys that identify
a configuration (jepa.config.identity: not the seed, paths, logging, device, workers, checkpoint cadence).
"""

from __future__ import annotations

import math
import re

import pandas as pd

from analysis.load import Sweep
from analysis.stats import metric_interval
from jepa.config.identity import identifies

# Metrics where smaller is better; everything else (AP, mAP, throughput) is larger-is-better.
LOWER_IS_BETTER = re.compile(r"loss|mse|bce|/vc$|/pred$|/std$|/cov$|^time/(?!seq_per_s)")
SELECTIONS = ("final", "best")


def infer_goal(metric: str) -> str:
    """'min' for losses and timings, else 'max'."""
    return "min" if LOWER_IS_BETTER.search(metric) else "max"


def is_ignored(key: str, ignore=()) -> bool:
    """Keys that never split seeds of one configuration (jepa.config.identity), plus `ignore`."""
    return not identifies(key) or key in ignore


def varying_keys(runs: pd.DataFrame, config_keys, ignore=()) -> list[str]:
    """Config keys with more than one value (a missing key counts as a value) over `runs`."""
    keys = []
    for key in config_keys:
        if is_ignored(key, ignore) or key not in runs:
            continue
        values = {_hashable(v) for v in runs[key]}
        if len(values) > 1:
            keys.append(key)
    return keys


def _hashable(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def format_value(value) -> str:
    """100.0 -> '100', 0.001 -> '0.001', (2, 2, 1) -> '[2, 2, 1]', missing -> '–'."""
    value = _hashable(value)
    if value is None:
        return "–"
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def value_order(value):
    """Sort key: numbers ascending before everything else by its text; tuples element by element."""
    if isinstance(value, tuple):
        return (2, tuple(value_order(v) for v in value))
    return (0, value) if isinstance(value, float) and value == value else (1, format_value(value))


def sort_values(values) -> list:
    return sorted(set(values), key=value_order)


def short_names(keys: list[str]) -> dict[str, str]:
    """Last dotted part of each key where that is unambiguous ('loss.cov_coeff' -> 'cov_coeff')."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def config_label(row, keys: list[str], names: dict[str, str] | None = None) -> str:
    """'cov_coeff=100, std_coeff=10' for the varying `keys`; 'all runs' when nothing varies."""
    names = names or short_names(keys)
    return ", ".join(f"{names[k]}={format_value(row.get(k))}" for k in keys) or "all runs"


def add_configs(sweep: Sweep, ignore=()) -> list[str]:
    """Add a `config` label column to `sweep.runs` (seeds of one configuration share it) and sort the runs by
    configuration, so every table and plot lists configurations in the same order; returns the varying keys."""
    valid = sweep.runs[sweep.runs["status"] != "invalid"]
    keys = varying_keys(valid, sweep.config_keys, ignore)
    names = short_names(keys)
    records = sweep.runs.to_dict("records")
    sweep.runs["config"] = [config_label(row, keys, names) for row in records]
    order = sorted(range(len(records)), key=lambda i: tuple(value_order(_hashable(records[i].get(k))) for k in keys))
    sweep.runs = sweep.runs.iloc[order].reset_index(drop=True)
    return keys


def select_records(sweep: Sweep, metric: str, select: str = "final", goal: str = "max") -> pd.DataFrame:
    """One row per finished run that has `metric`: the epoch record that counts, joined with its config.

    `final`: the last epoch with a value of `metric`; `best`: the epoch where it is best (`goal`).
    Index: run id. Columns: the run's config keys and `config`, then that epoch's metrics.
    """
    if select not in SELECTIONS:
        raise ValueError(f"select must be one of {SELECTIONS}, not {select!r}")
    runs = sweep.runs.set_index("run")
    done = runs.index[runs["status"] == "done"]
    epochs = sweep.epochs
    if metric not in epochs:
        return pd.DataFrame(columns=[*runs.columns, metric])
    epochs = epochs[epochs["run"].isin(done) & epochs[metric].notna()]
    if select == "final":
        chosen = epochs.sort_values(["run", "epoch"], kind="stable").groupby("run").tail(1)
    else:
        by_run = epochs.groupby("run")[metric]
        chosen = epochs.loc[by_run.idxmax() if goal == "max" else by_run.idxmin()]
    chosen = chosen.set_index("run")
    order = runs.index[runs.index.isin(chosen.index)]  # the runs' order: by configuration, then folder
    config_cols = [c for c in runs.columns if c not in chosen.columns]
    return runs.loc[order, config_cols].join(chosen)


def summarise_configs(selected: pd.DataFrame, metric: str, goal: str = "max") -> pd.DataFrame:
    """One row per configuration, best first: mean, std, its 95% interval (stats.metric_interval: on the logit
    scale for AP/mAP) and n of `metric` over its seeds."""
    rows = []
    for config, group in selected.groupby("config", sort=False):
        iv = metric_interval(group[metric] if metric in group else [], metric)
        rows.append({"config": config, "mean": iv.mean, "std": iv.std, "ci_low": iv.low, "ci_high": iv.high,
                     "n": iv.n, "runs": ", ".join(group.index)})
    table = pd.DataFrame(rows, columns=["config", "mean", "std", "ci_low", "ci_high", "n", "runs"])
    return table.sort_values("mean", ascending=goal == "min", na_position="last", ignore_index=True)


def horizon_keys(columns, prefix: str) -> list[tuple[int, str]]:
    """[(k, prefix + k), ...] for the columns named prefix<k>, by horizon k."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)$")
    return sorted((int(m.group(1)), c) for c in columns if (m := pattern.match(c)))


def ap_keys(columns, full: bool = False) -> list[tuple[int, str]]:
    """val/AP_k (published protocol) or, with `full`, val/AP_full_k, present in `columns`."""
    return horizon_keys(columns, "val/AP_full_" if full else "val/AP_")
