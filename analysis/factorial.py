"""The factorial view of a rows x columns grid whose cells share seeds: a cell + seed-block linear model.

    value = cell(row, column) + block(seed) + error,  error ~ N(0, sigma²) independent

fitted by least squares on the complete blocks (the seeds every cell has). The seed block takes out what a
seed does to every configuration alike (its initial weights, data order), so the cells are compared against
the residual spread, with N - cells - (blocks - 1) degrees of freedom instead of the n - 1 of one paired
comparison. F tests (nested models against the full one): all cells equal; each main effect, adjusted for the
other, in the additive model; the interaction (the full model against the additive one). Main-effect
contrasts: the marginal mean of each level minus the first level's, averaged over the other factor's levels,
with its t-interval on the residual df (unadjusted for the several contrasts; their number is stated), and
beside it the p-value of the same contrast against its own seed-to-seed spread (a paired t over the blocks,
df blocks - 1), which does not assume every contrast varies across seeds alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as _scipy

from analysis.group import format_value, short_names, sort_values
from analysis.stats import LEVEL, fmt, p_text, p_two_sided, t_interval, t_quantile


@dataclass
class FTest:
    name: str
    df1: int
    df2: int
    f: float
    p: float


@dataclass
class Contrast:
    key: str
    level: object
    base: object
    estimate: float
    se: float
    df: int
    low: float
    high: float
    p: float
    p_seeds: float  # the contrast per seed, paired t over the blocks


@dataclass
class Factorial:
    rows: str
    cols: str
    seeds: list
    tests: list[FTest] = field(default_factory=list)
    contrasts: list[Contrast] = field(default_factory=list)
    note: str = ""


def _one_hot(index: np.ndarray, drop_first: bool) -> np.ndarray:
    levels = np.unique(index)
    out = (index[:, None] == levels[None, :]).astype(float)
    return out[:, 1:] if drop_first else out


def _rss(y: np.ndarray, *blocks: np.ndarray) -> float:
    design = np.column_stack([np.ones(len(y)), *blocks])
    residual = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return float(residual @ residual)


def factorial(selected: pd.DataFrame, rows: str, cols: str, metric: str) -> Factorial | None:
    """The model on the runs of `selected` (`select_records` output); None when the grid is not factorial
    (a key missing, one level of a factor, no seed column); a `note` when it has too few complete blocks."""
    if not {rows, cols, "seed", metric} <= set(selected.columns):
        return None
    data = selected[[rows, cols, "seed", metric]].dropna()
    row_levels, col_levels = sort_values(data[rows]), sort_values(data[cols])
    if len(row_levels) < 2 or len(col_levels) < 2:
        return None
    result = Factorial(rows, cols, [])
    if data.duplicated([rows, cols, "seed"]).any():
        result.note = "a seed repeats within a cell"
        return result
    counts = data.groupby("seed").size()
    result.seeds = sorted(counts.index[counts == len(row_levels) * len(col_levels)])
    if len(result.seeds) < 2:
        result.note = "fewer than two seeds shared by every cell of a complete grid"
        return result
    data = data[data["seed"].isin(result.seeds)]
    y = data[metric].to_numpy(float)
    a = np.array([row_levels.index(v) for v in data[rows]])
    b = np.array([col_levels.index(v) for v in data[cols]])
    block = _one_hot(data["seed"].to_numpy(), drop_first=True)
    ra, rb, cell = _one_hot(a, True), _one_hot(b, True), _one_hot(a * len(col_levels) + b, True)
    full, additive = _rss(y, cell, block), _rss(y, ra, rb, block)
    df2 = len(y) - cell.shape[1] - 1 - block.shape[1]
    mse = full / df2
    names = short_names([rows, cols])

    def test(name: str, reduced: float, larger: float, df1: int) -> FTest:
        f = (reduced - larger) / df1 / mse
        return FTest(name, df1, df2, f, float(_scipy.f.sf(f, df1, df2)))

    result.tests = [test("cells (all equal)", _rss(y, block), full, cell.shape[1]),
                    test(f"{names[rows]} main effect", _rss(y, rb, block), additive, ra.shape[1]),
                    test(f"{names[cols]} main effect", _rss(y, ra, block), additive, rb.shape[1]),
                    test("interaction", additive, full, ra.shape[1] * rb.shape[1])]
    per_seed = data.groupby([rows, cols, "seed"])[metric].mean()
    for key, levels, other in ((rows, row_levels, len(col_levels)), (cols, col_levels, len(row_levels))):
        by_seed = per_seed.groupby(level=[key, "seed"]).mean().unstack("seed")  # level x seed marginal means
        marginal = by_seed.mean(axis=1)
        se = float(np.sqrt(2 * mse / (other * len(result.seeds))))
        half = float(t_quantile(df2, LEVEL)) * se
        for level in levels[1:]:
            estimate = float(marginal[level] - marginal[levels[0]])
            p = float(2 * _scipy.t.sf(abs(estimate) / se, df2))
            seeds = t_interval(by_seed.loc[level] - by_seed.loc[levels[0]])
            result.contrasts.append(Contrast(key, level, levels[0], estimate, se, df2, estimate - half,
                                             estimate + half, p, float(p_two_sided(seeds.mean, seeds.se, seeds.df))))
    return result


def factorial_markdown(result: Factorial | None, digits: int = 3) -> list[str]:
    """The report's lines for the factorial view (without heading); [] when there is none."""
    if result is None:
        return []
    if result.note:
        return [f"No factorial view: {result.note}.", ""]
    names = short_names([result.rows, result.cols])
    md = [f"Cell + seed-block model over the {len(result.seeds)} seeds every cell shares "
          f"({', '.join(format_value(s) for s in result.seeds)}); F tests against the full model's residual "
          f"(df {result.tests[0].df2}):", "", "| effect | F | p |", "|---|---:|---:|"]
    md += [f"| {t.name} | F({t.df1}, {t.df2}) = {t.f:.2f} | {p_text(t.p)[2:].removeprefix('= ')} |"
           for t in result.tests]
    md += ["", f"Main-effect contrasts (marginal means averaged over the other factor; 95% t-intervals, "
               f"{len(result.contrasts)} contrasts, not adjusted for their number):", ""]
    md += [f"- {names[c.key]} {format_value(c.level)} - {names[c.key]} {format_value(c.base)}: "
           f"{fmt(c.estimate, digits, True)} [{fmt(c.low, digits, True)}, {fmt(c.high, digits, True)}], "
           f"{p_text(c.p)} (against its own spread over the {len(result.seeds)} seeds, df "
           f"{len(result.seeds) - 1}: {p_text(c.p_seeds)})" for c in result.contrasts]
    return md + [""]


def factorial_frame(result: Factorial | None) -> pd.DataFrame:
    """The tests and contrasts for factorial.csv."""
    rows = [] if result is None or result.note else (
        [{"effect": t.name, "df1": t.df1, "df2": t.df2, "F": t.f, "p": t.p} for t in result.tests]
        + [{"effect": f"{c.key} {format_value(c.level)} - {format_value(c.base)}", "estimate": c.estimate,
            "se": c.se, "df2": c.df, "ci_low": c.low, "ci_high": c.high, "p": c.p, "p_seeds": c.p_seeds}
           for c in result.contrasts])
    return pd.DataFrame(rows, columns=["effect", "df1", "df2", "F", "estimate", "se", "ci_low", "ci_high", "p",
                                       "p_seeds"])
