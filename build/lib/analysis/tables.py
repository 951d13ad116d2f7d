"""The pivot table (rows key x columns key, one cell per configuration) and its Markdown, CSV and LaTeX.

Each cell is mean ± sample std (ddof=1) over the seeds of one configuration, with n. When keys other than the
rows and columns also vary, there is one grid per combination of them (a facet), each with its own best cell.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.group import format_value, short_names, sort_values, spread

SINGLE_SEED_NOTE = "± –: a single seed (n=1), so no spread."
SPREAD_NOTE = "Spread: sample standard deviation over seeds (ddof=1); n: number of seeds."


@dataclass
class Grid:
    """One rows x columns grid; frames are indexed by row values, columns are column values."""

    facet: dict
    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame
    best: pd.DataFrame  # bool: the best mean of this grid (ties all marked)


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
    cells: dict[tuple, dict[tuple, list]] = {}
    for record in selected[[*facet_keys, rows, cols, metric]].itertuples(index=False):
        *facet, row, col, value = record
        row, col = (format_value(v) if isinstance(v, tuple) else v for v in (row, col))  # no MultiIndex
        cells.setdefault(tuple(facet), {}).setdefault((row, col), []).append(value)
    for facet in sort_values(cells):
        table.grids.append(_grid(dict(zip(facet_keys, facet)), cells[facet], goal))
    return table


def _grid(facet: dict, cells: dict, goal: str) -> Grid:
    row_values = sort_values(r for r, _ in cells)
    col_values = sort_values(c for _, c in cells)
    frames = {name: pd.DataFrame(np.nan, index=row_values, columns=col_values) for name in ("mean", "std", "n")}
    for (row, col), values in cells.items():
        for name, number in zip(("mean", "std", "n"), spread(values)):
            frames[name].loc[row, col] = number
    mean = frames["mean"]
    target = mean.max().max() if goal == "max" else mean.min().min()
    return Grid(facet, mean, frames["std"], frames["n"].fillna(0).astype(int), mean == target)


def _list(index, limit: int = 5) -> str:
    names = list(index)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(f"`{n}`" for n in names[:limit]) + more


def facet_title(facet: dict) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in facet.items())


# How each format writes a cell: (plus-minus, bold, seed count); CSV reuses the Markdown style.
MARKDOWN = (" ± ", "**{}**", " (n={})")
LATEX = (" $\\pm$ ", "\\textbf{{{}}}", " {{\\scriptsize ({})}}")


def _cell_text(grid: Grid, row, col, digits: int, style) -> str:
    """'0.607 ± 0.012 (n=3)' in `style`, bold when best; '' for a configuration without runs."""
    n = grid.n.loc[row, col]
    if n == 0:
        return ""
    plus_minus, bold, count = style
    std = grid.std.loc[row, col]
    value = f"{grid.mean.loc[row, col]:.{digits}f}{plus_minus}{'–' if math.isnan(std) else f'{std:.{digits}f}'}"
    return (bold.format(value) if grid.best.loc[row, col] else value) + count.format(n)


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
    return (f"{table.metric} {which}; rows {table.rows}, columns {table.cols}; "
            f"mean ± std over seeds (n); best in bold.")


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
    out += [f"- {note}" for note in _footnotes(table)]
    return "\n".join(out) + "\n"


def _footnotes(table: PivotTable) -> list[str]:
    notes = [SPREAD_NOTE, "Empty cell: no finished run of that configuration."]
    return notes + ([SINGLE_SEED_NOTE] if _has_single_seed(table) else []) + table.notes


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
    """Long form for machines: facet keys, rows key, columns key, mean, std, n, best (full precision)."""
    records = []
    for grid in table.grids:
        for row in grid.mean.index:
            for col in grid.mean.columns:
                if grid.n.loc[row, col]:
                    records.append({**grid.facet, table.rows: row, table.cols: col,
                                    "mean": grid.mean.loc[row, col], "std": grid.std.loc[row, col],
                                    "n": int(grid.n.loc[row, col]), "best": bool(grid.best.loc[row, col])})
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
