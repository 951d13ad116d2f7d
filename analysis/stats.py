"""Intervals over seeds, differences between configurations, the tests behind every verdict, and power.

Every verdict is a one-sided t-test at ALPHA / 2 = 2.5% (the side a 95% two-sided interval excludes); the
claims combine such tests with stated family-wise control (analysis.claims, docs/statistics.md).

- one configuration: the t-interval of the mean over its n seeds, mean ± t(n-1) · s/√n (s: ddof=1);
  n = 1: no interval. For AP/mAP, tables and figures show the same interval on the logit scale
  (`metric_interval`), which stays inside [0, 1].
- two configurations: sharing at least two seeds (same seed: same initial weights and data order), the
  paired t-test of the per-seed differences over the shared seeds (df n-1); otherwise Welch's test (unequal
  variances, Welch-Satterthwaite df).
- power: the noncentral t distribution (scipy.stats.nct): paired, a one-sample t-test of the differences;
  unpaired, Welch's test with equal seeds on both sides and its Satterthwaite df. Seeds for a target power,
  the smallest effect detectable at a given n, and the chi-square interval of a spread estimated from few seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize
from scipy import stats as _scipy

LEVEL = 0.95
ALPHA = 1 - LEVEL  # two-sided; each directional verdict is tested at ALPHA / 2
POWER = 0.8
MAX_SEEDS = 1000  # power searches give up beyond this


@dataclass(frozen=True)
class Interval:
    """mean, sample std, n, the two-sided interval [low, high] of the mean and the test's standard error
    and degrees of freedom; NaN where undefined."""

    mean: float
    std: float
    n: int
    low: float
    high: float
    method: str  # "t", "logit t" (AP/mAP of one configuration), "paired t", "Welch", or "none" (no interval)
    level: float = LEVEL
    se: float = math.nan
    df: float = math.nan

    @property
    def defined(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))


@dataclass(frozen=True)
class Difference(Interval):
    """An interval of the mean difference a - b; `seeds`: the seeds the pairing used (empty for Welch);
    `n_a`, `n_b`, `std_a`, `std_b`: each side's values."""

    seeds: tuple = ()
    n_a: int = 0
    n_b: int = 0
    note: str = ""
    std_a: float = math.nan
    std_b: float = math.nan

    @property
    def paired(self) -> bool:
        return self.method == "paired t"


def finite(values) -> np.ndarray:
    """The finite values of `values` as floats (None and NaN dropped)."""
    out = np.asarray([v for v in values if v is not None], dtype=float)
    return out[np.isfinite(out)]


def t_quantile(df, level: float = LEVEL):
    """The two-sided t critical value for `level` with `df` degrees of freedom (arrays too)."""
    return _scipy.t.ppf(0.5 + level / 2, df)


def t_stats(values: np.ndarray) -> tuple:
    """(mean, std, se, df) of a one-sample t along the last axis of `values` [..., n], n >= 2: the one
    computation behind every interval and test (the calibration test calls it on simulated arrays)."""
    values = np.asarray(values, dtype=float)
    n = values.shape[-1]
    std = values.std(axis=-1, ddof=1)
    return values.mean(axis=-1), std, std / math.sqrt(n), np.full(std.shape, n - 1.0)


def p_above(mean, se, df, margin=0.0):
    """One-sided p-value of H0: true mean <= margin against > margin (NaN where undefined; se = 0 gives
    0 or 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _scipy.t.sf((np.asarray(mean) - margin) / np.asarray(se), df)


def p_below(mean, se, df, margin=0.0):
    """One-sided p-value of H0: true mean >= margin against < margin."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _scipy.t.cdf((np.asarray(mean) - margin) / np.asarray(se), df)


def p_two_sided(mean, se, df):
    return np.minimum(1.0, 2 * np.minimum(p_above(mean, se, df), p_below(mean, se, df)))


def holm(p) -> np.ndarray:
    """Holm-adjusted p-values along the last axis of `p` [..., m]: reject where adjusted <= alpha controls
    the family-wise error at alpha. NaN (an untestable comparison) counts as p = 1."""
    p = np.where(np.isnan(p), 1.0, np.asarray(p, dtype=float))
    m = p.shape[-1]
    order = np.argsort(p, axis=-1)
    ranked = np.take_along_axis(p, order, axis=-1) * (m - np.arange(m))
    adjusted = np.minimum(1.0, np.maximum.accumulate(ranked, axis=-1))
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return out


def t_interval(values, level: float = LEVEL) -> Interval:
    """t-interval of the mean of the finite `values`; n < 2: mean (if any) and no interval."""
    x = finite(values)
    n = len(x)
    if n < 2:
        return Interval(float(x.mean()) if n else math.nan, math.nan, n, math.nan, math.nan, "none", level)
    mean, std, se, df = (float(v) for v in t_stats(x))
    half = float(t_quantile(df, level)) * se
    return Interval(mean, std, n, mean - half, mean + half, "t", level, se, df)


def logit_interval(values, level: float = LEVEL, eps: float = 1e-4) -> tuple[float, float]:
    """The t-interval of the seed mean computed on the logit scale and mapped back: inside (0, 1) for
    values in [0, 1] (clipped to [eps, 1 - eps]); (NaN, NaN) for fewer than two values."""
    x = np.clip(finite(values), eps, 1 - eps)
    iv = t_interval(np.log(x / (1 - x)), level)
    expit = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    return (expit(iv.low), expit(iv.high)) if iv.defined else (math.nan, math.nan)


def bounded(metric: str) -> bool:
    """AP and mAP live in [0, 1]."""
    return "AP" in metric


def metric_interval(values, metric: str, level: float = LEVEL) -> Interval:
    """The interval of a configuration's seed mean of `metric`, as tables, configs.csv and figures show it:
    for AP/mAP the t-interval on the logit scale mapped back (method "logit t": inside [0, 1]), else the
    t-interval."""
    iv = t_interval(values, level)
    if not bounded(metric) or not iv.defined:
        return iv
    low, high = logit_interval(values, level)
    return replace(iv, low=low, high=high, method="logit t")


def _by_seed(values) -> dict | None:
    """{seed: value} from a mapping or (seed, value) pairs, finite values only; None when a seed repeats."""
    out = {}
    for seed, value in values.items() if isinstance(values, dict) else values:
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
            base = t_interval([sa[s] - sb[s] for s in shared], level)
            left_out = len(sa) + len(sb) - 2 * len(shared)
            note = f"{left_out} value(s) of unshared seeds left out" if left_out else ""
            return Difference(base.mean, base.std, base.n, base.low, base.high, "paired t", level, base.se, base.df,
                              tuple(shared), len(sa), len(sb), note)
        note = "fewer than two shared seeds"
    else:
        note = "a seed repeats within a configuration"
    pairs = lambda v: v.items() if isinstance(v, dict) else v  # noqa: E731
    xa = finite(sa.values() if sa is not None else [v for _, v in pairs(a)])
    xb = finite(sb.values() if sb is not None else [v for _, v in pairs(b)])
    return welch_difference(xa, xb, level, note)


def welch_df(var_a, n_a, var_b, n_b):
    """Welch-Satterthwaite degrees of freedom (arrays too)."""
    qa, qb = np.asarray(var_a) / n_a, np.asarray(var_b) / n_b
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (qa + qb) ** 2 / (qa**2 / (n_a - 1) + qb**2 / (n_b - 1))
    return np.where(qa + qb == 0, n_a + n_b - 2.0, df)


def welch_difference(a, b, level: float = LEVEL, note: str = "") -> Difference:
    """Welch's interval of mean(a) - mean(b) over the finite values; needs two values on each side.
    `std` is sqrt(s_a² + s_b²): the spread of a difference of one value from each side."""
    xa, xb = finite(a), finite(b)
    na, nb = len(xa), len(xb)
    mean = float(xa.mean() - xb.mean()) if na and nb else math.nan
    if na < 2 or nb < 2:
        return Difference(mean, math.nan, min(na, nb), math.nan, math.nan, "none", level, math.nan, math.nan, (),
                          na, nb, note or ("a side with a single value" if na and nb else ""))
    va, vb = float(xa.var(ddof=1)), float(xb.var(ddof=1))
    se, df = math.sqrt(va / na + vb / nb), float(welch_df(va, na, vb, nb))
    half = float(t_quantile(df, level)) * se
    return Difference(mean, math.sqrt(va + vb), min(na, nb), mean - half, mean + half, "Welch", level, se, df, (),
                      na, nb, note, math.sqrt(va), math.sqrt(vb))


# --- power -------------------------------------------------------------------------------------------------

def _se_df(n, std: float, std_b: float | None):
    """Standard error and df of the test with n seeds (a side): paired when `std_b` is None (std: of the
    per-seed differences), else Welch with n seeds on each side."""
    n = np.asarray(n, dtype=float)
    if std_b is None:
        return std / np.sqrt(n), n - 1
    return np.sqrt((std**2 + std_b**2) / n), welch_df(std**2, n, std_b**2, n)


def power(effect: float, std: float, n, alpha: float = ALPHA / 2, std_b: float | None = None):
    """Probability that the one-sided t-test at `alpha` shows a true difference `effect` (> 0 or < 0, in the
    direction of its sign) with n seeds: 1 - F_nct(t_crit; df, |effect| / se)."""
    se, df = _se_df(n, std, std_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _scipy.nct.sf(_scipy.t.isf(alpha, df), df, abs(effect) / se)


def equivalence_power(effect: float, std: float, n, margin: float, alpha: float = ALPHA / 2,
                      std_b: float | None = None):
    """Power of the two one-sided tests (TOST) at `alpha` each to show |true difference| < margin when it is
    `effect`: P(both reject) >= P(lower rejects) + P(upper rejects) - 1 (the usual bound, tight where the power
    is worth having)."""
    se, df = _se_df(n, std, std_b)
    crit = _scipy.t.isf(alpha, df)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = _scipy.nct.sf(crit, df, (effect + margin) / se)
        upper = _scipy.nct.cdf(-crit, df, (effect - margin) / se)
    return np.maximum(0.0, lower + upper - 1)


def seeds_for(power_at, target: float = POWER, max_n: int = MAX_SEEDS) -> int | None:
    """The smallest n in 2..max_n with power_at(n) >= target; max_n + 1 beyond; None when the power is
    undefined (no spread or no effect to detect)."""
    n = np.arange(2, max_n + 1)
    achieved = np.nan_to_num(power_at(n), nan=-1.0)
    if achieved[-1] < 0:
        return None
    hit = np.flatnonzero(achieved >= target)
    return int(n[hit[0]]) if len(hit) else max_n + 1


def detectable_effect(std: float, n: int, target: float = POWER, alpha: float = ALPHA / 2,
                      std_b: float | None = None) -> float:
    """The smallest true difference the one-sided test at `alpha` shows with probability `target` at n seeds."""
    if not (n >= 2 and std > 0):
        return math.nan
    se, _ = _se_df(n, std, std_b)
    return optimize.brentq(lambda e: power(e, std, n, alpha, std_b) - target, 1e-12 * se, 100 * float(se))


def std_interval(std: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The chi-square interval of a standard deviation estimated from n values: the true one lies between
    s·sqrt((n-1)/chi2(1-a/2)) and s·sqrt((n-1)/chi2(a/2)) with probability `level` (normal values)."""
    if n < 2 or math.isnan(std):
        return math.nan, math.nan
    a = 1 - level
    return (std * math.sqrt((n - 1) / _scipy.chi2.ppf(1 - a / 2, n - 1)),
            std * math.sqrt((n - 1) / _scipy.chi2.ppf(a / 2, n - 1)))


# --- text --------------------------------------------------------------------------------------------------

def fmt(value: float, digits: int = 3, sign: bool = False) -> str:
    """A number, '–' for NaN; `sign` writes + for positives."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if round(value, digits) == 0:
        value = 0.0  # no '-0.000'
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def p_text(p: float) -> str:
    if p is None or math.isnan(p):
        return "p –"
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}" if p < 0.01 else f"p = {p:.2f}"


def interval_text(iv: Interval, digits: int = 3, sign: bool = False) -> str:
    """'[0.555, 0.685]', or '[–]' without an interval."""
    if not iv.defined:
        return "[–]"
    return f"[{fmt(iv.low, digits, sign)}, {fmt(iv.high, digits, sign)}]"


def difference_text(diff: Difference, digits: int = 3) -> str:
    """'+0.042 [+0.010, +0.074] (paired t over 3 seeds)'."""
    if diff.method in ("paired t", "t"):
        how = f"{diff.method} over {diff.n} seeds"
    elif diff.method == "Welch":
        how = f"Welch, n = {diff.n_a} and {diff.n_b}"
    else:
        how = f"no interval: n = {diff.n_a} and {diff.n_b}"
    if diff.note:
        how += f"; {diff.note}"
    return f"{fmt(diff.mean, digits, sign=True)} {interval_text(diff, digits, sign=True)} ({how})"


def method_text(level: float = LEVEL) -> str:
    """One paragraph for reports: how the intervals and tests are computed."""
    pct = f"{level:.0%}"
    return (f"Intervals are two-sided {pct} confidence intervals over seeds. One configuration: the t-interval "
            f"mean ± t(n-1) · s/√n (s: sample std, ddof=1); with a single seed there is no interval ([–]); "
            f"for AP/mAP, tables and figures show the same interval computed on the logit scale and mapped back, "
            f"which stays inside [0, 1]. "
            f"Two configurations: when they share seeds (same seed: same initial weights and data order), the "
            f"paired t-interval of the per-seed differences; otherwise Welch's interval. Every verdict is a "
            f"one-sided test at {(1 - level) / 2:.1%} with the family-wise control its claim states; power "
            f"from the noncentral t distribution (docs/statistics.md).")
