"""The published study's four claims, tested with stated error control on whatever runs are loaded.

1. In the cov_coeff x std_coeff grid, cov 100 / std 10 is best.
2. AP falls as the prediction horizon grows.
3. Training with model.steps 4 and 8 beats steps 1 and 2 on mAP.
4. The gain saturates by steps 8.

Each claim applies only when its keys vary among the runs (claim 2: when runs log AP at two or more horizons),
and is checked within each combination of the other varying keys (a context); a claim checked in several
contexts is supported (or contradicted) only when every context says so. The rules (docs/statistics.md), each
built from one-sided t-tests at ALPHA / 2 = 2.5% (`analysis.stats`):

- `beats_every` (claim 1, the best cell of a table): the target minus each other cell; supported when Holm's
  procedure over these comparisons rejects every one with the target above, contradicted when it rejects one
  with the target below.
- `all_above` (claim 3: 4 and 8 each minus 1 and 2; claim 2: minus the slope of AP against horizon of each
  configuration that beats copy-last): an intersection-union test, supported when every comparison alone
  rejects at 2.5%; contradicted when Holm's procedure rejects one in the other direction.
- `equivalent` (claim 4, only where claim 3 holds): two one-sided tests (TOST) that steps 8 - steps 4 lies
  within ±margin; contradicted when it is shown above +margin.

The decision functions take arrays of (mean, se, df) so the calibration test runs them on simulated studies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.group import ap_keys, format_value, horizon_keys, short_names, sort_values
from analysis.published import COV, PUBLISHED_BEST, PUBLISHED_COV_STD, STD, STEPS
from analysis.stats import (
    ALPHA,
    Difference,
    difference_text,
    fmt,
    holm,
    p_above,
    p_below,
    p_text,
    p_two_sided,
    paired_difference,
    t_interval,
)

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_APPLICABLE = "supported", "contradicted", "inconclusive", \
    "not applicable"
MARGIN = 0.02  # claim 4's equivalence margin in mAP (--margin)
STATEMENTS = {
    1: "In the cov_coeff x std_coeff grid, cov 100 / std 10 is best.",
    2: "AP falls as the prediction horizon grows.",
    3: "Training with model.steps 4 and 8 beats steps 1 and 2 on mAP.",
    4: "The gain saturates by steps 8 (steps 8 is equivalent to steps 4).",
}


# --- the decision rules --------------------------------------------------------------------------------------

def _verdict(supported, contradicted):
    return np.where(supported, SUPPORTED, np.where(contradicted, CONTRADICTED, INCONCLUSIVE))


def beats_every(mean, se, df, alpha: float = ALPHA):
    """(verdicts, Holm-adjusted two-sided p) for target - other_j along the last axis [..., m]."""
    mean = np.asarray(mean, dtype=float)
    adjusted = holm(p_two_sided(mean, se, df))
    rejected = adjusted <= alpha
    return _verdict(np.all(rejected & (mean > 0), axis=-1), np.any(rejected & (mean < 0), axis=-1)), adjusted


def all_above(mean, se, df, alpha: float = ALPHA):
    """(verdicts, one-sided p of each > 0): every difference above zero at alpha / 2 (intersection-union);
    contradicted when Holm rejects one below zero."""
    mean = np.asarray(mean, dtype=float)
    p = p_above(mean, se, df)
    below = (holm(p_two_sided(mean, se, df)) <= alpha) & (mean < 0)
    return _verdict(np.all(p <= alpha / 2, axis=-1), np.any(below, axis=-1)), p


def equivalent(mean, se, df, margin: float = MARGIN, alpha: float = ALPHA):
    """Verdicts of TOST: |difference| < margin when both one-sided tests reject at alpha / 2, i.e. the 95%
    interval lies inside ±margin; contradicted when the difference is shown above +margin."""
    inside = (p_above(mean, se, df, -margin) <= alpha / 2) & (p_below(mean, se, df, margin) <= alpha / 2)
    return _verdict(inside, p_above(mean, se, df, margin) <= alpha / 2)


# --- what a check reports ------------------------------------------------------------------------------------

@dataclass
class Comparison:
    """One test of a check: `configs` the configuration labels involved (a, b), `diff` the interval of a - b
    (or of one configuration's slope), `p` the p-value the rule used, `decided` whether it rejected;
    `alpha` the one-sided level it is tested at and `margin` (TOST) for the planner."""

    label: str
    configs: tuple
    diff: Difference
    p: float
    decided: bool
    alpha: float = ALPHA / 2
    margin: float | None = None

    def text(self, digits: int = 3, p_name: str = "p") -> str:
        return f"{self.label}: {difference_text(self.diff, digits)}, {p_name} {p_text(self.p)[2:]}"


@dataclass
class Check:
    """One claim in one context (a combination of the other varying keys, '' when none vary)."""

    context: str
    verdict: str
    evidence: str
    comparisons: list[Comparison] = field(default_factory=list)


@dataclass
class Claim:
    number: int
    statement: str
    verdict: str
    summary: str
    checks: list[Check] = field(default_factory=list)


def combine(verdicts: list[str]) -> str:
    """One verdict from several contexts: unanimous supported/contradicted, else inconclusive."""
    verdicts = [v for v in verdicts if v != NOT_APPLICABLE]
    if not verdicts:
        return NOT_APPLICABLE
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    if all(v == CONTRADICTED for v in verdicts):
        return CONTRADICTED
    return INCONCLUSIVE


def _arrays(comparisons: list[Comparison] | list[Difference]):
    diffs = [getattr(c, "diff", c) for c in comparisons]
    return tuple(np.array([getattr(d, name) for d in diffs], dtype=float) for name in ("mean", "se", "df"))


# --- cells ---------------------------------------------------------------------------------------------------

def seed_values(frame: pd.DataFrame, metric: str) -> list[tuple]:
    """[(seed, value)] of the runs in `frame`; without a seed column each run is its own seed (no pairing)."""
    seeds = frame["seed"] if "seed" in frame else pd.Series(list(frame.index), index=frame.index)
    return [(s, float(v)) for s, v in zip(seeds, frame[metric], strict=True) if pd.notna(v)]


def mean_of(pairs) -> float:
    return float(np.mean([v for _, v in pairs])) if pairs else math.nan


def _contexts(selected: pd.DataFrame, keys: list[str], claim_keys: list[str]):
    """(context label, runs) for each combination of the varying keys other than `claim_keys`."""
    others = [k for k in keys if k not in claim_keys and k in selected]
    if not others:
        yield "", selected
        return
    names = short_names(others)
    for combo in sort_values(tuple(row) for row in selected[others].itertuples(index=False)):
        mask = np.ones(len(selected), dtype=bool)
        for key, value in zip(others, combo, strict=True):
            column = selected[key]
            mask &= column.isna().to_numpy() if pd.isna(value) else (column == value).to_numpy()
        yield ", ".join(f"{names[k]}={format_value(v)}" for k, v in zip(others, combo, strict=True)), selected[mask]


def _cells(runs: pd.DataFrame, keys: list[str], metric: str) -> tuple[dict, dict]:
    """({key values: [(seed, value)]}, {key values: configuration label}) over `runs` with a value of `metric`."""
    runs = runs[runs[metric].notna()]
    cells, labels = {}, {}
    for key, group in runs.groupby(keys if len(keys) > 1 else keys[0], sort=False):
        cells[key], labels[key] = seed_values(group, metric), group["config"].iloc[0]
    return cells, labels


# --- the best of a set of cells (claim 1, bold cells) ---------------------------------------------------------

@dataclass
class BestTest:
    """The target (by default the best mean) against every other cell, Holm-controlled."""

    best: object
    verdict: str
    comparisons: list[Comparison]

    @property
    def separable(self) -> bool:
        return self.verdict == SUPPORTED

    def text(self, digits: int = 3) -> str:
        m = len(self.comparisons)
        runner = self.comparisons[0]
        if self.separable:
            worst = max(c.p for c in self.comparisons)
            return (f"the best, {runner.configs[0]}, beats every other of the {m + 1} (Holm over {m} paired "
                    f"comparisons, largest adjusted p {p_text(worst)[2:]}); against the runner-up "
                    f"{runner.text(digits, 'Holm p').split(': ', 1)[1]}")
        open_ = [c for c in self.comparisons if not c.decided]
        listed = "; ".join(c.text(digits, "Holm p") for c in open_[:3]) + ("; ..." if len(open_) > 3 else "")
        return (f"the best mean, {runner.configs[0]}, is not separable from {len(open_)} of the other {m} at this n "
                f"(Holm over {m} comparisons): {listed}")


def best_test(cells: dict, labels: dict, goal: str = "max", target=None, names: dict | None = None) -> BestTest | None:
    """`target` (default: the best mean by `goal`) against every other cell of {key: [(seed, value)]}, ranked
    by mean; each difference is oriented so that positive favours the target. `labels`: each cell's
    configuration label; `names`: how the text names the cells (default: the labels)."""
    names = names or labels
    ranked = sorted((k for k in cells if cells[k]), key=lambda k: mean_of(cells[k]), reverse=goal == "max")
    target = ranked[0] if target is None and ranked else target
    others = [k for k in ranked if k != target]
    if target not in ranked or not others:
        return None
    sign = 1 if goal == "max" else -1
    diffs = [paired_difference(*((cells[target], cells[k])[::sign])) for k in others]
    verdict, adjusted = beats_every(*_arrays(diffs))
    comparisons = [Comparison(f"{names[target]} vs {names[k]}", (labels[target], labels[k]), d,
                              float(p) if d.defined else math.nan, bool(p <= ALPHA), ALPHA / 2 / len(others))
                   for k, d, p in zip(others, diffs, adjusted, strict=True)]
    return BestTest(labels[target], str(verdict), comparisons)


# --- claim 1 -----------------------------------------------------------------------------------------------

def _not_applicable(number: int, why: str) -> Claim:
    return Claim(number, STATEMENTS[number], NOT_APPLICABLE, f"Verdict: {why}")


def check_cov_std(selected: pd.DataFrame, keys: list[str], metric: str = "val/mAP", digits: int = 3) -> Claim:
    if COV not in keys or STD not in keys:
        return _not_applicable(1, "not applicable (loss.cov_coeff and loss.std_coeff do not both vary).")
    checks = []
    for context, runs in _contexts(selected, keys, [COV, STD]):
        cells, labels = _cells(runs, [COV, STD], metric)
        names = {k: f"cov {format_value(k[0])} / std {format_value(k[1])}" for k in cells}
        test = best_test(cells, labels, target=PUBLISHED_BEST, names=names) if PUBLISHED_BEST in cells else None
        if test is None:
            checks.append(Check(context, NOT_APPLICABLE, "needs runs of cov 100 / std 10 and of another cell"))
            continue
        ranked = sorted(cells, key=lambda k: mean_of(cells[k]), reverse=True)
        target = cells[PUBLISHED_BEST]
        evidence = (f"cov 100 / std 10: mean {fmt(mean_of(target), digits)} (n={len(target)}), rank "
                    f"{ranked.index(PUBLISHED_BEST) + 1} of {len(cells)}; against each other cell (Holm over "
                    f"{len(test.comparisons)}): "
                    + "; ".join(c.text(digits, "Holm p") for c in test.comparisons) + _published_order(cells, digits))
        checks.append(Check(context, test.verdict, evidence, [c for c in test.comparisons if not c.decided]))
    return _claim(1, checks)


def _published_order(cells: dict, digits: int) -> str:
    """Spearman rank correlation of the measured cell means with the published ones (shared cells)."""
    shared = [k for k in cells if k in PUBLISHED_COV_STD and cells[k]]
    if len(shared) < 3:
        return ""
    from scipy.stats import spearmanr

    rho = spearmanr([mean_of(cells[k]) for k in shared], [PUBLISHED_COV_STD[k] for k in shared]).statistic
    return f"; rank correlation of the {len(shared)} cell means with the published table: {fmt(rho, 2)}"


# --- claim 2 -----------------------------------------------------------------------------------------------

def _slopes(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of `values` [..., h] against `x` [h]."""
    centred = x - x.mean()
    return values @ centred / (centred @ centred)


def _one_sample(iv, sign: int = 1) -> Difference:
    """A one-sample t-interval as a Difference (of `sign` x the values) for the comparisons and the planner."""
    low, high = (iv.low, iv.high) if sign > 0 else (-iv.high, -iv.low)
    return Difference(sign * iv.mean, iv.std, iv.n, low, high, iv.method, se=iv.se, df=iv.df, n_a=iv.n, n_b=iv.n)


def check_horizon(selected: pd.DataFrame, keys: list[str], digits: int = 3, full: bool = False) -> Claim:
    """On the configurations that learn (mAP above copy-last's, one-sided 2.5%): the per-seed slope of AP
    against horizon over all horizons, then its t-interval over seeds; `all_above` on minus the slopes."""
    horizons = ap_keys(selected.columns, full)
    if len(horizons) < 2:
        return _not_applicable(2, "not applicable (the runs log AP at fewer than two horizons).")
    copy = dict(horizon_keys(selected.columns, "val/copy_last/AP_full_" if full else "val/copy_last/AP_"))
    x = np.array([k + 1 for k, _ in horizons], dtype=float)
    left_out, learning = [], []
    for config, runs in selected.groupby("config", sort=False):
        values = runs[[c for _, c in horizons]].astype(float).to_numpy()
        base = runs[[copy.get(k, c) for k, c in horizons]].astype(float).to_numpy() if copy else np.nan * values
        keep = np.isfinite(values).all(axis=1)
        if not keep.any():
            continue
        gain = t_interval(values[keep].mean(axis=1) - base[keep].mean(axis=1))
        slope = t_interval(_slopes(values[keep], x))
        evidence = (f"AP at horizon 1 {fmt(values[keep, 0].mean(), digits)}, at horizon {int(x[-1])} "
                    f"{fmt(values[keep, -1].mean(), digits)}; slope per step {fmt(slope.mean, 4, True)} "
                    f"[{fmt(slope.low, 4, True)}, {fmt(slope.high, 4, True)}] (n={slope.n}); mAP minus copy-last "
                    f"{fmt(gain.mean, digits, True)} [{fmt(gain.low, digits, True)}, {fmt(gain.high, digits, True)}]")
        p = float(p_above(gain.mean, gain.se, gain.df))
        if copy and not p <= ALPHA / 2:
            left_out.append((config, evidence, Comparison(f"{config}: mAP minus copy-last", (config,),
                                                          _one_sample(gain), p, False)))
            continue
        minus_slope = _one_sample(slope, -1)  # "above zero" is a fall
        learning.append((config, evidence, Comparison(f"{config}: minus slope", (config,), minus_slope, math.nan,
                                                      False)))
    # none shown to learn at this n: the claim cannot be tested yet, the plan says what would
    verdict, note = (NOT_APPLICABLE, ", left out") if learning else (INCONCLUSIVE, " at this n")
    checks = [Check(config, verdict, f"{evidence}: not shown to beat copy-last{note}", [comparison])
              for config, evidence, comparison in left_out]
    if learning:
        mean, se, df = _arrays([c for *_, c in learning])
        verdicts, p = all_above(mean, se, df)
        rises = (holm(p_two_sided(mean, se, df)) <= ALPHA) & (mean < 0)
        for (config, evidence, comparison), p_one, rise in zip(learning, p, rises, strict=True):
            comparison.p, comparison.decided = float(p_one), bool(p_one <= ALPHA / 2 or rise)
            own = SUPPORTED if p_one <= ALPHA / 2 else CONTRADICTED if rise else INCONCLUSIVE
            checks.append(Check(config, own, f"{evidence}; slope < 0: one-sided {p_text(p_one)}",
                                [] if comparison.decided else [comparison]))
    claim = _claim(2, checks, str(verdicts) if learning else None)
    claim.summary += (" No configuration is shown to beat copy-last at this n." if not learning else "")
    claim.summary += (" Only configurations whose mAP is shown above copy-last's count; each needs its slope of "
                      f"AP against horizon (least squares over the {len(x)} horizons, per seed) below zero.")
    return claim


# --- claims 3 and 4 ----------------------------------------------------------------------------------------

def _steps_contexts(selected: pd.DataFrame, keys: list[str], metric: str):
    for context, runs in _contexts(selected, keys, [STEPS]):
        cells, labels = _cells(runs, [STEPS], metric)
        yield context, {float(k): v for k, v in cells.items()}, {float(k): v for k, v in labels.items()}


def check_steps_gain(selected: pd.DataFrame, keys: list[str], metric: str = "val/mAP", digits: int = 3) -> Claim:
    """Steps 4 and 8 each minus steps 1 and 2, paired over seeds: `all_above` (intersection-union)."""
    if STEPS not in keys:
        return _not_applicable(3, "not applicable (model.steps does not vary).")
    checks = []
    for context, cells, labels in _steps_contexts(selected, keys, metric):
        pairs = [(h, lo) for h in (4.0, 8.0) for lo in (1.0, 2.0) if cells.get(h) and cells.get(lo)]
        if not pairs:
            checks.append(Check(context, NOT_APPLICABLE, "needs runs of steps 4 or 8 and of steps 1 or 2"))
            continue
        diffs = [paired_difference(cells[h], cells[lo]) for h, lo in pairs]
        verdict, p = all_above(*_arrays(diffs))
        comparisons = [Comparison(f"steps {format_value(h)} - steps {format_value(lo)}", (labels[h], labels[lo]), d,
                                  float(q), bool(q <= ALPHA / 2))
                       for (h, lo), d, q in zip(pairs, diffs, p, strict=True)]
        means = ", ".join(f"steps {format_value(s)}: {fmt(mean_of(cells[s]), digits)} (n={len(cells[s])})"
                          for s in sorted(cells))
        missing = 4 - len(pairs)
        evidence = (f"means {means}. Each must be above zero (one-sided p): "
                    + "; ".join(c.text(digits) for c in comparisons)
                    + (f"; {missing} of the 4 comparisons have no runs" if missing else ""))
        checks.append(Check(context, str(verdict) if not missing or verdict != SUPPORTED else INCONCLUSIVE, evidence,
                            [c for c in comparisons if not c.decided]))
    return _claim(3, checks)


def check_saturation(selected: pd.DataFrame, keys: list[str], metric: str = "val/mAP", digits: int = 3,
                     margin: float = MARGIN, gain: Claim | None = None) -> Claim:
    """steps 8 - steps 4 within ±margin (TOST), where claim 3 holds in the same context."""
    if STEPS not in keys:
        return _not_applicable(4, "not applicable (model.steps does not vary).")
    gain = gain or check_steps_gain(selected, keys, metric, digits)
    gained = {c.context: c.verdict for c in gain.checks}
    checks = []
    for context, cells, labels in _steps_contexts(selected, keys, metric):
        if not cells.get(4.0) or not cells.get(8.0):
            checks.append(Check(context, NOT_APPLICABLE, "needs runs of steps 4 and steps 8"))
            continue
        diff = paired_difference(cells[8.0], cells[4.0])
        evidence = f"steps 8 - steps 4: {difference_text(diff, digits)}; margin ±{fmt(margin, digits)}"
        if gained.get(context) != SUPPORTED:
            checks.append(Check(context, NOT_APPLICABLE, f"no gain to saturate (claim 3 is {gained.get(context)} "
                                                         f"here); {evidence}"))
            continue
        verdict = str(equivalent(diff.mean, diff.se, diff.df, margin))
        comparison = Comparison("steps 8 - steps 4 within the margin", (labels[8.0], labels[4.0]), diff, math.nan,
                                verdict != INCONCLUSIVE, margin=margin)
        checks.append(Check(context, verdict, evidence + " (TOST: the 95% interval must lie inside it)",
                            [] if comparison.decided else [comparison]))
    return _claim(4, checks)


def _claim(number: int, checks: list[Check], verdict: str | None = None) -> Claim:
    verdict = verdict or combine([c.verdict for c in checks])
    counts = {v: sum(c.verdict == v for c in checks) for v in (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_APPLICABLE)}
    summary = f"Verdict: {verdict}."
    if len(checks) > 1:
        summary = (f"Verdict: {verdict} (" + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
                   + f" of {len(checks)}).")
    return Claim(number, STATEMENTS[number], verdict, summary, checks)


def check_claims(selected: pd.DataFrame, keys: list[str], metric: str = "val/mAP", digits: int = 3,
                 margin: float = MARGIN) -> list[Claim]:
    """All four claims on `select_records` output with the varying config `keys` (`add_configs`).

    Claims 1, 3 and 4 are about mAP: with another metric they still use val/mAP when the runs have it."""
    metric = "val/mAP" if "val/mAP" in selected else metric
    gain = check_steps_gain(selected, keys, metric, digits)
    return [check_cov_std(selected, keys, metric, digits), check_horizon(selected, keys, digits), gain,
            check_saturation(selected, keys, metric, digits, margin, gain)]


def claims_markdown(claims: list[Claim]) -> list[str]:
    """The claims section's lines (without its heading)."""
    md = ["| # | claim | verdict |", "|---|---|---|"]
    md += [f"| {c.number} | {c.statement} | **{c.verdict}** |" for c in claims]
    md.append("")
    for c in claims:
        md += [f"**Claim {c.number}: {c.statement}** {c.summary}", ""]
        md += [f"- {check.context + ': ' if check.context else ''}**{check.verdict}**: {check.evidence}"
               for check in c.checks] + [""]
    return md
