"""The pivot table (rows key x columns key, one cell per configuration) and its Markdown, CSV and LaTeX.

Each cell is mean ± sample std (ddof=1) over the seeds of one configuration, its 95% interval (for AP/mAP the
t-interval on the logit scale, which stays inside [0, 1]: stats.metric_interval) and n. The
best cell is bold only when it beats every other cell of its grid (claims.best_test: paired over shared seeds,
else Welch, Holm over the comparisons: the rule of claim 1); otherwise it is marked † and a note names the
cells it is not separable from.
When the runs follow the published protocol, a cov_coeff x std_coeff cell also shows the published value.
When keys other than the rows and columns also vary, there is one grid per combination of them (a facet), each
with its own best cell.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.claims import best_test
from analysis.group import format_value, short_names, sort_values
from analysis.published import protocol_mismatches, published_cov_std
from analysis.stats import bounded, interval_text, metric_interval

SINGLE_SEED_NOTE = "± – [–]: a single seed (n=1), so no spread and no interval."
SPREAD_NOTE = ("Cells: mean ± sample standard deviation over seeds (ddof=1), [95% t-interval of the mean: "
               "mean ± t(n-1)·s/√n], n: number of seeds.")
BOUNDED_SPREAD_NOTE = ("Cells: mean ± sample standard deviation over seeds (ddof=1), [95% interval of the mean: the "
                       "t-interval of the seeds' logits, mapped back, so it stays inside [0, 1]], n: number of seeds.")
BEST_NOTE = ("Bold: the best mean, shown to beat every other cell of its grid (paired over shared seeds or else "
             "Welch, Holm's procedure over the comparisons at 5%). †: the best mean when it is not.")


@dataclass
class Grid:
    """One rows x columns grid; frames are indexed by row values, columns are column values."""

    facet: dict
    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame
    best: pd.DataFrame  # bool: the best mean of this grid (ties all marked)
    intervals: dict = field(default_factory=dict)  # (row, col) -> the cell's stats.metric_interval
    values: dict = field(default_factory=dict)  # (row, col) -> [(seed, value)]
    top: object = None  # claims.BestTest of the best cell against the others, None with fewer than two cells
    published: pd.DataFrame = None  # published value per cell when the runs follow the published protocol
    protocol: list = field(default_factory=list)  # how the runs differ from the published protocol

    @property
    def separable(self) -> bool:
        """Whether the best cell beats every other (a single cell never does)."""
        return bool(self.top is not None and self.top.separable and self.best.values.sum() == 1)


@dataclass
class PivotTable:
    rows: str
    cols: str
    metric: str
    select: str
    goal: str
    grids: list[Grid] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def pivot(selected: pd.DataFrame, rows: str, cols: str, metric: str, facet_keys=(), select: str = "final",
          goal: str = "max") -> PivotTable:
    """Build the grids from `select_records` output; runs lacking the rows or columns key are left out."""
    table = PivotTable(rows, cols, metric, select, goal)
    missing = [k for k in (rows, cols) if k not in selected]
    if missing or selected.empty:
        why = f"no run has {', '.join(missing)}" if missing else f"no finished run has {metric}"
        table.notes.append(f"No table: {why}.")
        return table
    lacking = selected[selected[rows].isna() | selected[cols].isna()]
    if len(lacking):
        table.notes.append(f"{len(lacking)} run(s) without {rows} or {cols} are not in the table: "
                           + _list(lacking.index))
    selected = selected.drop(lacking.index)
    facet_keys = [k for k in facet_keys if k not in (rows, cols)]
    seeds = selected["seed"] if "seed" in selected else pd.Series(list(selected.index), index=selected.index)
    cells: dict[tuple, dict[tuple, list]] = {}
    runs: dict[tuple, list] = {}
    for record, seed, run in zip(selected[[*facet_keys, rows, cols, metric]].itertuples(index=False), seeds,
                                 selected.index, strict=True):
        *facet, row, col, value = record
        row, col = (format_value(v) if isinstance(v, tuple) else v for v in (row, col))  # no MultiIndex
        cells.setdefault(tuple(facet), {}).setdefault((row, col), []).append((seed, value))
        runs.setdefault(tuple(facet), []).append(run)
    lookup = published_cov_std(rows, cols) if metric == "val/mAP" else None
    names = short_names([rows, cols])
    for facet in sort_values(cells):
        mismatches = protocol_mismatches(selected.loc[runs[facet]]) if lookup else []
        published = lookup if lookup and not mismatches else None
        labels = {key: f"{names[rows]}={format_value(key[0])}, {names[cols]}={format_value(key[1])}"
                  for key in cells[facet]}
        table.grids.append(_grid(dict(zip(facet_keys, facet, strict=True)), cells[facet], labels, goal, metric,
                                 published, mismatches))
    return table


def _grid(facet: dict, cells: dict, labels: dict, goal: str, metric: str, published=None, protocol=()) -> Grid:
    row_values = sort_values(r for r, _ in cells)
    col_values = sort_values(c for _, c in cells)
    names = ("mean", "std", "n")
    frames = {name: pd.DataFrame(np.nan, index=row_values, columns=col_values) for name in names}
    intervals = {key: metric_interval([v for _, v in pairs], metric) for key, pairs in cells.items()}
    for (row, col), iv in intervals.items():
        for name, number in zip(names, (iv.mean, iv.std, iv.n), strict=True):
            frames[name].loc[row, col] = number
    mean = frames["mean"]
    target = mean.max().max() if goal == "max" else mean.min().min()
    pub = None
    if published is not None:
        pub = pd.DataFrame([[published(r, c) for c in col_values] for r in row_values], index=row_values,
                           columns=col_values, dtype=float)
    return Grid(facet, mean, frames["std"], frames["n"].fillna(0).astype(int), mean == target, intervals,
                dict(cells), best_test(cells, labels, goal), pub, list(protocol))


def _list(index, limit: int = 5) -> str:
    names = list(index)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(f"`{n}`" for n in names[:limit]) + more


def facet_title(facet: dict) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in facet.items())


# How each format writes a cell: (plus-minus, bold, seed count, interval, not-separable mark, published);
# CSV reuses the Markdown style.
MARKDOWN = (" ± ", "**{}**", " (n={})", " {}", "†", " · pub {}")
LATEX = (" $\\pm$ ", "\\textbf{{{}}}", " {{\\scriptsize ({})}}", " {{\\scriptsize {}}}", "$^\\dagger$",
         " {{\\scriptsize pub {}}}")


def _cell_text(grid: Grid, row, col, digits: int, style) -> str:
    """'0.607 ± 0.012 [0.577, 0.637] (n=3)' in `style`, bold when the separable best, † when the best but not
    separable; the published value after it when the grid has one; '' for a configuration without runs."""
    n = grid.n.loc[row, col]
    if n == 0:
        return ""
    plus_minus, bold, count, interval, dagger, published = style
    std = grid.std.loc[row, col]
    value = f"{grid.mean.loc[row, col]:.{digits}f}{plus_minus}{'–' if math.isnan(std) else f'{std:.{digits}f}'}"
    text = bold.format(value) if grid.best.loc[row, col] and grid.separable else value
    if grid.best.loc[row, col] and not grid.separable and grid.top is not None:
        text += dagger
    text += interval.format(interval_text(grid.intervals[row, col], digits)) + count.format(n)
    if grid.published is not None and not math.isnan(grid.published.loc[row, col]):
        text += published.format(f"{grid.published.loc[row, col]:.{digits}f}")
    return text


def _lines(table: PivotTable, grid: Grid, digits: int, style) -> list[list[str]]:
    """Header then one list of cell texts per row value, in the published layout."""
    header = [_corner(table), *map(format_value, grid.mean.columns)]
    return [header] + [[format_value(row), *(_cell_text(grid, row, col, digits, style) for col in grid.mean.columns)]
                       for row in grid.mean.index]


def _corner(table: PivotTable) -> str:
    names = short_names([table.rows, table.cols])
    return f"{names[table.rows]} \\ {names[table.cols]}"


def caption(table: PivotTable) -> str:
    which = "at the final epoch" if table.select == "final" else f"at each run's best epoch ({table.goal})"
    interval = "95% logit-scale t-interval" if bounded(table.metric) else "95% t-interval"
    return (f"{table.metric} {which}; rows {table.rows}, columns {table.cols}; "
            f"mean ± std [{interval}] (n seeds); bold: the best, shown to beat every other cell; †: the best "
            f"mean, not shown to.")


def _has_single_seed(table: PivotTable) -> bool:
    return any((g.n == 1).any().any() for g in table.grids)


def to_markdown(table: PivotTable, digits: int = 3) -> str:
    """The grids as Markdown tables, a bold line per facet, then footnotes."""
    out = [caption(table), ""]
    for grid in table.grids:
        if grid.facet:
            out += [f"**{facet_title(grid.facet)}**", ""]
        header, *rows = _lines(table, grid, digits, MARKDOWN)
        out += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        out += ["| " + " | ".join(row) + " |" for row in rows] + [""]
    out += [f"- {note}" for note in _footnotes(table, digits)]
    return "\n".join(out) + "\n"


def _footnotes(table: PivotTable, digits: int = 3) -> list[str]:
    spread = BOUNDED_SPREAD_NOTE if bounded(table.metric) else SPREAD_NOTE
    notes = [spread, BEST_NOTE, "Empty cell: no finished run of that configuration."]
    notes += [SINGLE_SEED_NOTE] if _has_single_seed(table) else []
    notes += [separation_note(grid, table, digits) for grid in table.grids]
    notes += [published_note(grid) for grid in table.grids[:1] if published_note(grid)]
    return [n for n in notes if n] + table.notes


def separation_note(grid: Grid, table: PivotTable, digits: int = 3) -> str:
    """Whether the best cell of `grid` beats every other cell, with the numbers."""
    if grid.top is None:
        return ""
    where = f"{facet_title(grid.facet)}: " if grid.facet else ""
    text = grid.top.text(digits) + (" (the best mean is tied)" if grid.best.values.sum() > 1 else "")
    return where + text[0].upper() + text[1:]


def published_note(grid: Grid) -> str:
    if grid.published is not None:
        return "pub: the published value (the runs follow the published protocol)."
    if grid.protocol:
        return ("No published values beside the cells: the runs differ from the published protocol in "
                + "; ".join(grid.protocol[:6]) + ("; ..." if len(grid.protocol) > 6 else "") + ".")
    return ""


def to_csv(table: PivotTable, digits: int = 3) -> str:
    """The published layout as CSV: facet values, the row value, then one 'mean ± std (n=k)' cell per
    column value; the best cell is wrapped in ** as in the Markdown."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for grid in table.grids:
        header, *rows = _lines(table, grid, digits, MARKDOWN)
        writer.writerow([*grid.facet, *header])
        writer.writerows([*map(format_value, grid.facet.values()), *row] for row in rows)
    return buffer.getvalue()


def to_values_frame(table: PivotTable) -> pd.DataFrame:
    """Long form for machines: facet keys, rows key, columns key, mean, std, n, the 95% interval and its method, best
    (highest mean), separable (best and separable from the runner-up), published (full precision)."""
    records = []
    for grid in table.grids:
        for row in grid.mean.index:
            for col in grid.mean.columns:
                if grid.n.loc[row, col]:
                    best, iv = bool(grid.best.loc[row, col]), grid.intervals[row, col]
                    records.append({**grid.facet, table.rows: row, table.cols: col,
                                    "mean": grid.mean.loc[row, col], "std": grid.std.loc[row, col],
                                    "n": int(grid.n.loc[row, col]), "ci_low": iv.low, "ci_high": iv.high,
                                    "ci_method": iv.method,
                                    "best": best, "separable_best": best and grid.separable,
                                    "published": (grid.published.loc[row, col] if grid.published is not None
                                                  else math.nan)})
    return pd.DataFrame.from_records(records)


def _tex(text: str) -> str:
    return text.replace("\\", "$\\backslash$").replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")


def to_latex(table: PivotTable, digits: int = 3) -> str:
    """One booktabs tabular per grid; a comment line names the facet."""
    out = [f"% {caption(table)}", "% needs \\usepackage{booktabs}"]
    for grid in table.grids:
        if grid.facet:
            out.append(f"% {facet_title(grid.facet)}")
        header, *rows = _lines(table, grid, digits, LATEX)
        out += [f"\\begin{{tabular}}{{l{'r' * (len(header) - 1)}}}", "\\toprule",
                " & ".join(map(_tex, header)) + " \\\\", "\\midrule"]
        out += [" & ".join([_tex(row[0]), *row[1:]]) + " \\\\" for row in rows]
        out += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(out)
