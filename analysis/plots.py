"""Figures of a sweep. Each function returns a matplotlib `Figure` (no pyplot state) for the caller to save
or to inspect: the plotted arrays are the seed means of the metrics, so tests can compare them exactly.
Bands are 95% t-intervals of the seed mean (`analysis.stats`); a line of a single seed has no band."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from analysis.group import ap_keys, format_value, horizon_keys, short_names, sort_values, summarise_configs
from analysis.stats import LEVEL, interval_text, t_quantile
from analysis.tables import Grid, PivotTable, cell_interval, facet_title

# Training-curve panels: (metrics.jsonl key, title).
CURVES = (("train/loss", "JEPA loss"), ("train/vc", "VC loss"), ("train/pred", "prediction loss"),
          ("val/mAP", "validation mAP"))
BASELINES = (("copy_last", "copy-last", "--", "0.35"), ("chance", "chance", ":", "0.0"))  # name, label, style, colour


def colours(n: int) -> list:
    """Distinct colours for n lines: tab10, tab20, then a continuous map."""
    if n <= 10:
        return list(colormaps["tab10"].colors[:n])
    if n <= 20:
        return list(colormaps["tab20"].colors[:n])
    return list(colormaps["viridis"](np.linspace(0, 0.95, n)))


def mean_band(values: np.ndarray, level: float = LEVEL):
    """Column means of `values` [n, k] and their t-interval (low, high); no band (None) for n < 2."""
    values = np.asarray(values, dtype=float)
    n = np.isfinite(values).sum(axis=0)
    mean = np.nanmean(values, axis=0) if len(values) else np.full(values.shape[1], np.nan)
    if len(values) < 2:
        return mean, None
    std = np.nanstd(values, axis=0, ddof=1)
    half = np.array([t_quantile(k - 1, level) if k > 1 else np.nan for k in n]) * std / np.sqrt(np.maximum(n, 1))
    return mean, (mean - half, mean + half)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def plot_heatmap(grid: Grid, table: PivotTable, digits: int = 3) -> Figure:
    """The grid's seed means as a heat map (rows and columns as in the table), each cell annotated with
    mean, std, its 95% t-interval, n and (when the runs follow the published protocol) the published value.
    The best cell is framed: solid when separable from the runner-up, dashed when not."""
    n_rows, n_cols = grid.mean.shape
    fig = Figure(figsize=(max(5.6, 1.9 * n_cols + 2.4), 1.25 * n_rows + 2.0), layout="constrained")
    ax = fig.add_subplot()
    values = grid.mean.to_numpy(dtype=float)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis" if table.goal == "max" else "viridis_r",
                      aspect="auto")
    names = short_names([table.rows, table.cols])
    ax.set_xticks(range(n_cols), [format_value(c) for c in grid.mean.columns])
    ax.set_yticks(range(n_rows), [format_value(r) for r in grid.mean.index])
    ax.set_xlabel(names[table.cols])
    ax.set_ylabel(names[table.rows])
    for i in range(n_rows):
        for j in range(n_cols):
            if not grid.n.iat[i, j]:
                continue
            row, col = grid.mean.index[i], grid.mean.columns[j]
            std = grid.std.iat[i, j]
            text = (f"{values[i, j]:.{digits}f}\n± {'–' if np.isnan(std) else f'{std:.{digits}f}'}\n"
                    f"{interval_text(cell_interval(grid, row, col), digits)}\nn={grid.n.iat[i, j]}")
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
    if grid.top is None:
        note = "a single cell"
    elif grid.separable:
        note = "solid frame: best, separable from the runner-up"
    else:
        note = "dashed frame: best mean, not separable from the runner-up"
    title = " · ".join(filter(None, [f"{table.metric} ({table.select})", facet_title(grid.facet)]))
    ax.set_title(f"{title}\ncells: mean, ± std, [95% t-interval], n\n{note}", fontsize=9)
    fig.colorbar(image, ax=ax, label=table.metric)
    return fig


def _baseline_keys(columns, name: str, full: bool) -> tuple[list[tuple[int, str]], str]:
    """The baseline's keys for the protocol and a label note; the full protocol falls back to per-batch."""
    keys = horizon_keys(columns, f"val/{name}/AP_full_") if full else []
    if keys:
        return keys, ""
    return horizon_keys(columns, f"val/{name}/AP_"), " (per-batch)" if full else ""


def plot_ap_horizon(selected: pd.DataFrame, metric: str = "val/mAP", hue: str = "model.steps",
                    goal: str = "max", full: bool = False) -> Figure:
    """AP against prediction horizon (k+1 steps ahead), one line per value of `hue` with a band of the 95%
    t-interval of the seed mean. Where several configurations share a `hue` value, the line is the best one by
    `metric` (named in the legend). Copy-last (with its band) and chance baselines: means over the plotted
    runs."""
    fig = Figure(figsize=(8, 4.8), layout="constrained")
    ax = fig.add_subplot()
    protocol = "whole validation set" if full else "per-batch, published protocol"
    ax.set_title(f"AP against prediction horizon ({protocol})")
    ax.set_xlabel("prediction horizon (steps ahead)")
    ax.set_ylabel("AP")
    keys = ap_keys(selected.columns, full)
    if selected.empty or not keys:
        _empty(ax, "no AP values in the finished runs")
        return fig
    x = [k + 1 for k, _ in keys]
    hue_values = selected[hue] if hue in selected else pd.Series("all", index=selected.index)
    hue_name = short_names([hue])[hue]
    plotted = []
    ordered = sort_values(v for v in hue_values if v == v)  # NaN (missing key) is not a line
    for value, colour in zip(ordered, colours(len(ordered)), strict=True):
        runs = selected[hue_values == value]
        configs = summarise_configs(runs, metric, goal)
        members = runs[runs["config"] == configs["config"].iat[0]]
        mean, band = mean_band(members[[k for _, k in keys]].astype(float).to_numpy())
        label = f"{hue_name}={format_value(value)}" if hue in selected else "all runs"
        if len(configs) > 1:
            others = [p for p in configs["config"].iat[0].split(", ") if not p.startswith(f"{hue_name}=")]
            label += f" (best of {len(configs)}: {', '.join(others)})"
        ax.plot(x, mean, marker="o", color=colour, label=f"{label}, n={len(members)}")
        if band is not None:
            ax.fill_between(x, *band, color=colour, alpha=0.2, linewidth=0)
        plotted.append(members)
    plotted = pd.concat(plotted) if plotted else selected
    for name, label, style, colour in BASELINES:
        base_keys, note = _baseline_keys(plotted.columns, name, full)
        if base_keys:
            base_x = [k + 1 for k, _ in base_keys]
            means, band = mean_band(plotted[[k for _, k in base_keys]].astype(float).to_numpy())
            ax.plot(base_x, means, style, color=colour, label=label + note)
            if band is not None and name != "chance" and np.nanmax(band[1] - band[0]) > 0:
                ax.fill_between(base_x, *band, color=colour, alpha=0.12, linewidth=0)
    ax.set_xticks(x)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", title="band: 95% t-interval over seeds", title_fontsize=8)
    return fig


def plot_curves(epochs: pd.DataFrame, runs: pd.DataFrame, panels=CURVES, configs=None) -> Figure:
    """Training curves, one line per configuration (seed mean per epoch, ±std band) for each panel key.

    `runs` needs `run`, `status`, `config`; only finished runs are drawn. `configs`: the configuration labels
    to draw (default: all, in `runs` order)."""
    done = runs.loc[runs["status"] == "done", ["run", "config"]]
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
            _empty(ax, f"{key} not logged")
            continue
        stats = data.groupby(["config", "epoch"])[key].agg(["mean", "std", "count"]).dropna(subset=["mean"])
        stats["half"] = [t_quantile(c - 1) * sd / np.sqrt(c) if c > 1 else np.nan
                         for c, sd in zip(stats["count"], stats["std"], strict=True)]
        for config, colour in zip(configs, colours(len(configs)), strict=True):
            if config not in stats.index:
                continue
            line_stats = stats.loc[config]
            (line,) = ax.plot(line_stats.index, line_stats["mean"], color=colour, label=config)
            handles.setdefault(config, line)
            band = line_stats[line_stats["count"] > 1]
            ax.fill_between(band.index, band["mean"] - band["half"], band["mean"] + band["half"],
                            color=colour, alpha=0.2, linewidth=0)
        if key.startswith("train/") and (data[key].dropna() > 0).all():
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", fontsize=8,
                   ncol=min(3, len(handles)))
    fig.suptitle("Training curves per configuration (mean over seeds, band: 95% t-interval)")
    return fig
