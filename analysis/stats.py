"""Confidence intervals over seeds, paired differences between configurations, and seeds needed.

Methods (named in every result, so the report can say which one it used):

- one configuration: a two-sided t-interval of the mean over its n seeds,
  mean ± t(1 - (1 - level) / 2, n - 1) · s / √n with the sample std s (ddof=1). With `method="auto"` a
  percentile bootstrap of the mean (fixed resampling seed) replaces it once n ≥ BOOTSTRAP_MIN_N; below that a
  bootstrap of 2-9 values only has a handful of distinct resamples and is too narrow. n = 1: no interval.
- two configurations: when they share at least two seeds (same seed, hence the same initial weights and data
  order), the paired t-interval of the per-seed differences a - b over the shared seeds; otherwise Welch's
  interval (unequal variances, Welch-Satterthwaite degrees of freedom). Fewer values: no interval.
- seeds needed: the smallest n at which the t-interval's half-width at the observed spread of the difference
  falls below the observed |mean difference|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy

LEVEL = 0.95
BOOTSTRAP_MIN_N = 10
BOOTSTRAP_RESAMPLES = 10_000
MAX_SEEDS = 10_000  # seeds_needed gives up beyond this


@dataclass(frozen=True)
class Interval:
    """mean, sample std, n and the two-sided interval [low, high] of the mean; NaN where undefined."""

    mean: float
    std: float
    n: int
    low: float
    high: float
    method: str  # "t", "bootstrap", or "none" (no interval: n < 2)
    level: float = LEVEL

    @property
    def defined(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2 if self.defined else math.nan

    def excludes_zero(self) -> bool:
        return self.defined and (self.low > 0 or self.high < 0)


@dataclass(frozen=True)
class Difference(Interval):
    """An interval of the mean difference a - b. method: "paired t", "Welch", or "none"; `seeds`: the seeds
    the pairing used (empty for Welch); `n_a`, `n_b`: the values on each side."""

    seeds: tuple = ()
    n_a: int = 0
    n_b: int = 0
    note: str = ""

    @property
    def paired(self) -> bool:
        return self.method == "paired t"


def finite(values) -> np.ndarray:
    """The finite values of `values` as floats (None and NaN dropped)."""
    out = np.asarray([v for v in values if v is not None], dtype=float)
    return out[np.isfinite(out)]


def t_quantile(df: float, level: float = LEVEL) -> float:
    """The two-sided t critical value for `level` with `df` degrees of freedom."""
    return float(_scipy.t.ppf(0.5 + level / 2, df))


def t_interval(values, level: float = LEVEL) -> Interval:
    """t-interval of the mean of the finite `values`; n < 2: mean (if any) and no interval."""
    x = finite(values)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, 0, math.nan, math.nan, "none", level)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, math.nan, 1, math.nan, math.nan, "none", level)
    std = float(x.std(ddof=1))
    half = t_quantile(n - 1, level) * std / math.sqrt(n)
    return Interval(mean, std, n, mean - half, mean + half, "t", level)


def bootstrap_interval(values, level: float = LEVEL, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0) -> Interval:
    """Percentile bootstrap interval of the mean (resampling seed fixed, so reports are reproducible)."""
    x = finite(values)
    n = len(x)
    if n < 2:
        return t_interval(x, level)
    means = np.random.default_rng(seed).choice(x, size=(resamples, n), replace=True).mean(axis=1)
    low, high = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(float(x.mean()), float(x.std(ddof=1)), n, float(low), float(high), "bootstrap", level)


def interval(values, level: float = LEVEL, method: str = "t") -> Interval:
    """`method` "t" (always the t-interval), "bootstrap", or "auto" (bootstrap from BOOTSTRAP_MIN_N seeds)."""
    if method == "t":
        return t_interval(values, level)
    if method == "bootstrap" or (method == "auto" and len(finite(values)) >= BOOTSTRAP_MIN_N):
        return bootstrap_interval(values, level)
    if method == "auto":
        return t_interval(values, level)
    raise ValueError(f"method must be t, bootstrap or auto, not {method!r}")


def _pairs(values) -> list[tuple]:
    """(seed, value) pairs from a mapping or an iterable of pairs."""
    return list(values.items()) if isinstance(values, dict) else list(values)


def _by_seed(values) -> dict | None:
    """{seed: value} from a mapping or (seed, value) pairs, finite values only; None when a seed repeats."""
    out = {}
    for seed, value in _pairs(values):
        if value is None or not np.isfinite(value):
            continue
        if seed in out:
            return None
        out[seed] = float(value)
    return out


def paired_difference(a, b, level: float = LEVEL) -> Difference:
    """Interval of mean(a) - mean(b). `a`, `b`: {seed: value} (or (seed, value) pairs).

    Paired t over the shared seeds when there are at least two (values of unshared seeds are left out and
    said so in `note`); otherwise, or when a seed repeats on one side, Welch's interval over all values.
    """
    sa, sb = _by_seed(a), _by_seed(b)
    if sa is not None and sb is not None:
        shared = sorted(set(sa) & set(sb), key=str)
        if len(shared) >= 2:
            d = np.array([sa[s] - sb[s] for s in shared])
            base = t_interval(d, level)
            left_out = len(sa) + len(sb) - 2 * len(shared)
            note = f"{left_out} value(s) of unshared seeds left out" if left_out else ""
            return Difference(base.mean, base.std, base.n, base.low, base.high, "paired t", level,
                              tuple(shared), len(sa), len(sb), note)
        note = "fewer than two shared seeds"
    else:
        note = "a seed repeats within a configuration"
    xa = finite(sa.values() if sa is not None else [v for _, v in _pairs(a)])
    xb = finite(sb.values() if sb is not None else [v for _, v in _pairs(b)])
    return welch_difference(xa, xb, level, note)


def welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch-Satterthwaite degrees of freedom."""
    qa, qb = var_a / n_a, var_b / n_b
    if qa + qb == 0:
        return float(n_a + n_b - 2)
    return (qa + qb) ** 2 / (qa**2 / (n_a - 1) + qb**2 / (n_b - 1))


def welch_difference(a, b, level: float = LEVEL, note: str = "") -> Difference:
    """Welch's interval of mean(a) - mean(b) over the finite values; needs two values on each side.
    `std` is sqrt(s_a² + s_b²): the spread of a difference of one value from each side."""
    xa, xb = finite(a), finite(b)
    na, nb = len(xa), len(xb)
    if na == 0 or nb == 0:
        return Difference(math.nan, math.nan, 0, math.nan, math.nan, "none", level, (), na, nb, note)
    mean = float(xa.mean() - xb.mean())
    if na < 2 or nb < 2:
        return Difference(mean, math.nan, min(na, nb), math.nan, math.nan, "none", level, (), na, nb,
                          note or "a side with a single value")
    va, vb = float(xa.var(ddof=1)), float(xb.var(ddof=1))
    half = t_quantile(welch_df(va, na, vb, nb), level) * math.sqrt(va / na + vb / nb)
    return Difference(mean, math.sqrt(va + vb), min(na, nb), mean - half, mean + half, "Welch", level, (), na, nb,
                      note)


def seeds_needed(diff: Difference | Interval, level: float = LEVEL, max_n: int = MAX_SEEDS) -> int | None:
    """Seeds per configuration at which the interval of the difference would exclude zero, were the observed
    mean difference and spread the true ones: the smallest n ≥ 2 with t(n - 1) · s / √n < |mean| (paired:
    s is the std of the per-seed differences; Welch: sqrt(s_a² + s_b²), equal n on both sides, df 2n - 2).

    None: not estimable (no difference, or its spread undefined); max_n + 1: more than `max_n`."""
    mean, std = diff.mean, diff.std
    if math.isnan(mean) or math.isnan(std) or mean == 0:
        return None
    if std == 0:
        return 2
    welch = getattr(diff, "method", "") == "Welch"
    for n in range(2, max_n + 1):
        df = 2 * n - 2 if welch else n - 1
        if t_quantile(df, level) * std / math.sqrt(n) < abs(mean):
            return n
    return max_n + 1


def seeds_text(n: int | None, max_n: int = MAX_SEEDS) -> str:
    if n is None:
        return "not estimable"
    return f"more than {max_n}" if n > max_n else str(n)


def needed_phrase(n: int | None, max_n: int = MAX_SEEDS) -> str:
    """'about 12 seeds each would separate them at the observed spread', or why that cannot be said."""
    if n is None:
        return "the seeds needed to separate them are not estimable (no spread of the difference, or no difference)"
    if n > max_n:
        return f"more than {max_n} seeds each would be needed at the observed spread"
    return f"about {n} seeds each would separate them at the observed spread"


def fmt(value: float, digits: int = 3, sign: bool = False) -> str:
    """A number, '–' for NaN; `sign` writes + for positives."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if round(value, digits) == 0:
        value = 0.0  # no '-0.000'
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def interval_text(iv: Interval, digits: int = 3, sign: bool = False) -> str:
    """'[0.555, 0.685]', or '[–]' without an interval."""
    if not iv.defined:
        return "[–]"
    return f"[{fmt(iv.low, digits, sign)}, {fmt(iv.high, digits, sign)}]"


def difference_text(diff: Difference, digits: int = 3) -> str:
    """'+0.042 [+0.010, +0.074] (paired t over 3 seeds)'."""
    if diff.method == "paired t":
        how = f"paired t over {diff.n} seeds"
    elif diff.method == "Welch":
        how = f"Welch, n = {diff.n_a} and {diff.n_b}"
    else:
        how = f"no interval: n = {diff.n_a} and {diff.n_b}"
    if diff.note:
        how += f"; {diff.note}"
    return f"{fmt(diff.mean, digits, sign=True)} {interval_text(diff, digits, sign=True)} ({how})"


def method_text(level: float = LEVEL) -> str:
    """One paragraph for reports: how the intervals are computed."""
    pct = f"{level:.0%}"
    return (f"Intervals are two-sided {pct} confidence intervals over seeds. One configuration: the t-interval "
            f"mean ± t(n-1) · s/√n (s: sample std, ddof=1); with a single seed there is no interval ([–]). "
            f"Two configurations: when they share seeds (same seed: same initial weights and data order), the "
            f"paired t-interval of the per-seed differences; otherwise Welch's interval. A difference whose "
            f"interval excludes zero is called separable. Seeds needed: the n at which the t-interval of the "
            f"difference, at the observed spread, would exclude zero if the observed mean difference were the "
            f"true one.")


@dataclass
class TopTwo:
    """The best and runner-up configurations of a set, their difference and the seeds that would separate them."""

    best: object
    runner_up: object
    difference: Difference
    separable: bool
    seeds_needed: int | None

    def text(self, label=str, digits: int = 3) -> str:
        d = self.difference
        head = (f"best {label(self.best)} vs runner-up {label(self.runner_up)}: {difference_text(d, digits)}")
        if self.separable:
            return head + "; separable at this n."
        return head + f"; not separable at this n ({needed_phrase(self.seeds_needed)})."


def mean_of(pairs) -> float:
    values = [v for _, v in pairs]
    return float(np.mean(values)) if values else math.nan


def top_two(cells: dict, goal: str = "max", level: float = LEVEL) -> TopTwo | None:
    """The best and runner-up of {key: [(seed, value)]} by mean (`goal`), and their paired difference
    (best - runner-up for max, runner-up - best for min, so a positive difference favours the best)."""
    ranked = sorted((k for k in cells if cells[k]), key=lambda k: mean_of(cells[k]), reverse=goal == "max")
    if len(ranked) < 2:
        return None
    best, runner = ranked[:2]
    a, b = (cells[best], cells[runner]) if goal == "max" else (cells[runner], cells[best])
    diff = paired_difference(a, b, level)
    separable = diff.defined and diff.low > 0
    return TopTwo(best, runner, diff, separable, seeds_needed(diff, level))
