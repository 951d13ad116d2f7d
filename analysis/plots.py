"""Figures of a sweep. Each function returns a matplotlib `Figure` (no pyplot state) for the caller to save
or to inspect: the plotted arrays are the seed means of the metrics, so tests can compare them exactly.

Rules: every seed is drawn as a point; intervals of AP/mAP are the 95% t-interval of the seed mean computed on
the logit scale (`stats.logit_interval`), so they stay inside [0, 1]; heat maps of AP/mAP use a fixed colour
scale from 0 to 1 with chance marked on the colour bar; lines are chosen by the study's design (one panel per
combination of the other varying keys), never by which one scored best; copy-last is drawn per configuration;
training curves only for runs with at least MIN_EVALUATIONS evaluations."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from analysis.group import ap_keys, format_value, horizon_keys, short_names, sort_values
from analysis.stats import bounded, logit_interval, metric_interval
from analysis.tables import Grid, PivotTable, facet_title

# Training-curve panels: (metrics.jsonl key, title).
CURVES = (("train/loss", "JEPA loss"), ("train/vc", "VC loss"), ("train/pred", "prediction loss"),
          ("val/mAP", "validation mAP"))
MIN_EVALUATIONS = 3  # a training curve needs at least this many points
MAX_PANELS = 12


def colours(n: int) -> list:
    """Distinct colours for n lines: tab10, tab20, then a continuous map."""
    if n <= 10:
        return list(colormaps["tab10"].colors[:n])
    if n <= 20:
        return list(colormaps["tab20"].colors[:n])
    return list(colormaps["viridis"](np.linspace(0, 0.95, n)))


def mean_band(values: np.ndarray):
    """Column means of `values` [n, k] (AP in [0, 1]) and their logit-scale 95% interval (low, high);
    no band (None) for n < 2."""
    values = np.asarray(values, dtype=float)
    mean = np.nanmean(values, axis=0) if len(values) else np.full(values.shape[1], np.nan)
    if len(values) < 2:
        return mean, None
    low, high = np.array([logit_interval(column) for column in values.T]).T
    return mean, (low, high)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def plot_heatmap(grid: Grid, table: PivotTable, digits: int = 3, chance: float | None = None) -> Figure:
    """The grid's seed means as a heat map (at least 2 x 2; smaller grids are drawn by `plot_configs`), each
    cell annotated with mean, std, n (and the published value when the runs follow the published protocol).
    AP/mAP: colour scale fixed to [0, 1], chance marked. The best cell is framed: solid when it beats every
    other cell, dashed when not."""
    n_rows, n_cols = grid.mean.shape
    fig = Figure(figsize=(max(5.6, 1.9 * n_cols + 2.4), 1.25 * n_rows + 2.0), layout="constrained")
    ax = fig.add_subplot()
    values = grid.mean.to_numpy(dtype=float)
    fixed = bounded(table.metric)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis" if table.goal == "max" else "viridis_r",
                      aspect="auto", vmin=0 if fixed else None, vmax=1 if fixed else None)
    names = short_names([table.rows, table.cols])
    ax.set_xticks(range(n_cols), [format_value(c) for c in grid.mean.columns])
    ax.set_yticks(range(n_rows), [format_value(r) for r in grid.mean.index])
    ax.set_xlabel(names[table.cols])
    ax.set_ylabel(names[table.rows])
    for i in range(n_rows):
        for j in range(n_cols):
            if not grid.n.iat[i, j]:
                continue
            std = grid.std.iat[i, j]
            text = f"{values[i, j]:.{digits}f}\n± {'–' if np.isnan(std) else f'{std:.{digits}f}'}\nn={grid.n.iat[i, j]}"
            if grid.published is not None and not np.isnan(grid.published.iat[i, j]):
                text += f"\npub {grid.published.iat[i, j]:.{digits}f}"
            red, green, blue, _ = image.cmap(image.norm(values[i, j]))
            light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
            best = bool(grid.best.iat[i, j])
            ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color="black" if light else "white",
                    fontweight="bold" if best and grid.separable else "normal")
            if best and grid.top is not None:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5,
                                       linestyle="-" if grid.separable else "--"))
    note = ("a single cell" if grid.top is None else "solid frame: best, beats every other cell" if grid.separable
            else "dashed frame: best mean, not shown to beat every other cell")
    scale = "colour fixed to [0, 1]" + (f", chance {chance:.3f} marked" if chance is not None else "") if fixed \
        else "colour: this grid's range"
    title = " · ".join(filter(None, [f"{table.metric} ({table.select})", facet_title(grid.facet)]))
    ax.set_title(f"{title}\ncells: seed mean, ± std, n; {scale}\n{note}", fontsize=9)
    bar = fig.colorbar(image, ax=ax, label=table.metric)
    if fixed and chance is not None:
        bar.ax.axhline(chance, color="red", linewidth=2)
        bar.ax.text(1.6, chance, "chance", transform=bar.ax.get_yaxis_transform(), va="center", fontsize=7)
    return fig


def plot_configs(selected: pd.DataFrame, configs: pd.DataFrame, metric: str, chance: float | None = None) -> Figure:
    """One row per configuration (best first, as in `configs`): every seed as a dot, the mean as a bar and its
    95% interval (logit scale for AP/mAP, else the t-interval); chance as a dotted line."""
    labels = list(configs["config"])
    fig = Figure(figsize=(8, 1.2 + 0.38 * len(labels)), layout="constrained")
    ax = fig.add_subplot()
    for y, config in enumerate(labels):
        values = selected.loc[selected["config"] == config, metric].astype(float).dropna().to_numpy()
        if not len(values):
            continue
        ax.plot(values, np.full(len(values), y) + np.linspace(-0.12, 0.12, len(values)), "o", color="0.45",
                markersize=3.5, alpha=0.8, zorder=3, label="a seed" if y == 0 else None)
        iv = metric_interval(values, metric)
        if iv.defined:
            ax.plot([iv.low, iv.high], [y, y], color="C0", linewidth=2.2, label="95% interval" if y == 0 else None)
        ax.plot([values.mean()], [y], "|", color="C3", markersize=14, markeredgewidth=2.5,
                label="mean" if y == 0 else None)
    if chance is not None and bounded(metric):
        ax.axvline(chance, linestyle=":", color="0.2", label="chance")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    ax.grid(alpha=0.3, axis="x")
    how = "logit-scale t-interval" if bounded(metric) else "t-interval"
    ax.set_title(f"{metric} per configuration: seeds, mean and 95% {how} of the mean", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return fig


def _panels(selected: pd.DataFrame, keys: list[str], hue: str):
    """(title, runs) per combination of the varying keys other than `hue`: the study's design."""
    others = [k for k in keys if k != hue and k in selected]
    if not others:
        return [("", selected)]
    names = short_names(others)
    combos = sort_values(tuple(row) for row in selected[others].itertuples(index=False))
    return [(", ".join(f"{names[k]}={format_value(v)}" for k, v in zip(others, combo, strict=True)),
             selected[np.logical_and.reduce([selected[k] == v for k, v in zip(others, combo, strict=True)])])
            for combo in combos]


def plot_ap_horizon(selected: pd.DataFrame, keys: list[str], hue: str = "model.steps", full: bool = False) -> Figure:
    """AP against prediction horizon (k+1 steps ahead): one panel per combination of the other varying keys,
    one line per `hue` value (each a single configuration), seed dots, logit-scale 95% band; the copy-last
    baseline of that configuration dashed in its colour; chance dotted."""
    panels = _panels(selected, keys, hue)[:MAX_PANELS] if not selected.empty else [("", selected)]
    columns = min(3, len(panels))
    fig = Figure(figsize=(max(8.0, 4.6 * columns + 1.5), 3.6 * ((len(panels) + columns - 1) // columns) + 1.2),
                 layout="constrained")
    axes = fig.subplots((len(panels) + columns - 1) // columns, columns, squeeze=False, sharey=True).ravel()
    protocol = "whole validation set" if full else "per-batch, published protocol"
    fig.suptitle(f"AP against prediction horizon ({protocol})\nband: 95% logit-scale t-interval of the seed mean, "
                 "dots: seeds", fontsize=10)
    keys_ap = ap_keys(selected.columns, full)
    hue_values = sort_values(v for v in selected.get(hue, pd.Series(dtype=float)) if v == v)
    palette = dict(zip(hue_values, colours(len(hue_values)), strict=True))
    for ax, (title, runs) in zip(axes, panels, strict=False):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("prediction horizon (steps ahead)")
        if runs.empty or not keys_ap:
            _empty(ax, "no AP values in the finished runs")
            continue
        _draw_panel(ax, runs, keys_ap, hue, palette, full)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].set_ylabel("AP")
    axes[0].set_ylim(0, 1)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", fontsize=8, ncol=min(4, max(1, len(labels))))
    return fig


def _draw_panel(ax, runs: pd.DataFrame, keys_ap, hue: str, palette: dict, full: bool) -> None:
    x = np.array([k + 1 for k, _ in keys_ap])
    name = short_names([hue])[hue]
    first = True
    for value, members in (runs.groupby(hue, sort=False) if hue in runs else [("all", runs)]):
        colour = palette.get(value, "C0")
        values = members[[c for _, c in keys_ap]].astype(float).to_numpy()
        mean, band = mean_band(values)
        label = f"{name}={format_value(value)}" if hue in runs else "all runs"
        ax.plot(x, mean, marker="o", color=colour, label=f"{label}, n={len(members)}")
        ax.plot(np.tile(x, len(values)), values.ravel(), ".", color=colour, alpha=0.35, markersize=4)
        if band is not None:
            ax.fill_between(x, *band, color=colour, alpha=0.2, linewidth=0)
        copy = _baseline(members, "copy_last", full)
        if copy is not None:
            ax.plot(copy[0], copy[1], "--", color=colour, linewidth=1,
                    label="copy-last of each configuration (dashed, its colour)" if first else "_copy-last")
            first = False
    chance = _baseline(runs, "chance", full)
    if chance is not None:
        ax.plot(chance[0], chance[1], ":", color="0.0", label="chance")
    ax.set_xticks(x)
    ax.grid(alpha=0.3)


def _baseline(runs: pd.DataFrame, name: str, full: bool):
    """(horizons, seed means) of a baseline; the full protocol falls back to the per-batch one."""
    keys = (horizon_keys(runs.columns, f"val/{name}/AP_full_") if full else []) or \
        horizon_keys(runs.columns, f"val/{name}/AP_")
    if not keys:
        return None
    return np.array([k + 1 for k, _ in keys]), runs[[c for _, c in keys]].astype(float).mean().to_numpy()


def evaluations(epochs: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """Epoch records of each finished run of `runs` (0 for the others): a training curve needs MIN_EVALUATIONS."""
    counts = runs["run"].map(epochs.groupby("run")["epoch"].count()).fillna(0)
    return counts.where(runs["status"] == "done", 0)


def plot_curves(epochs: pd.DataFrame, runs: pd.DataFrame, panels=CURVES, configs=None) -> Figure:
    """Training curves, one line per configuration (seed mean per epoch, 95% band: t-interval, logit scale for
    AP) for each panel key.

    `runs` needs `run`, `status`, `config`; only finished runs with at least MIN_EVALUATIONS epoch records are
    drawn. `configs`: the configuration labels to draw (default: all, in `runs` order)."""
    done = runs.loc[evaluations(epochs, runs).ge(MIN_EVALUATIONS), ["run", "config"]]
    configs = list(dict.fromkeys(done["config"] if configs is None else configs))
    data = epochs.merge(done[done["config"].isin(configs)], on="run")
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    axes = fig.subplots(2, (len(panels) + 1) // 2, squeeze=False).ravel()
    handles = {}
    for ax, (key, title) in zip(axes, panels, strict=False):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key not in data or data[key].isna().all():
            _empty(ax, f"{key} not logged" if len(data) else f"no run with {MIN_EVALUATIONS}+ evaluations")
            continue
        groups = data.groupby(["config", "epoch"])[key]
        stats = groups.agg(["mean", "std", "count"]).dropna(subset=["mean"])
        bands = groups.apply(lambda v, key=key: metric_interval(v, key)).reindex(stats.index)  # AP: logit scale
        stats["low"], stats["high"] = [b.low for b in bands], [b.high for b in bands]
        for config, colour in zip(configs, colours(len(configs)), strict=True):
            if config not in stats.index:
                continue
            line_stats = stats.loc[config]
            (line,) = ax.plot(line_stats.index, line_stats["mean"], color=colour, label=config)
            handles.setdefault(config, line)
            band = line_stats[line_stats["count"] > 1]
            ax.fill_between(band.index, band["low"], band["high"], color=colour, alpha=0.2, linewidth=0)
        if key.startswith("train/") and (data[key].dropna() > 0).all():
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", fontsize=8,
                   ncol=min(3, len(handles)))
    fig.suptitle("Training curves per configuration (mean over seeds, band: 95% t-interval; for mAP on the logit "
                 "scale)")
    return fig
