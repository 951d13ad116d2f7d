"""The published study's four claims, checked on whatever runs are loaded.

1. In the cov_coeff x std_coeff grid, cov 100 / std 10 is best.
2. AP falls as the prediction horizon grows.
3. Training with model.steps 4 or 8 beats steps 1 and 2 on mAP.
4. The gain saturates by steps 8.

Each claim applies only when its keys vary among the runs (claim 2: when runs log AP at two or more horizons).
When other keys vary too, the claim is checked within each combination of them (a context). A check is
`supported`, `contradicted` or `inconclusive` from 95% intervals over seeds (`analysis.stats`): paired over
shared seeds, Welch otherwise; a single seed gives no interval and so is inconclusive. A claim checked in
several contexts is supported (or contradicted) only when every context says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.group import ap_keys, format_value, short_names, sort_values
from analysis.published import COV, PUBLISHED_BEST, PUBLISHED_COV_STD, STD, STEPS
from analysis.stats import (
    difference_text,
    fmt,
    interval_text,
    mean_of,
    needed_phrase,
    paired_difference,
    seeds_needed,
    t_interval,
    top_two,
)

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_APPLICABLE = "supported", "contradicted", "inconclusive", \
    "not applicable"
STATEMENTS = {
    1: "In the cov_coeff x std_coeff grid, cov 100 / std 10 is best.",
    2: "AP falls as the prediction horizon grows.",
    3: "Training with model.steps 4 or 8 beats steps 1 and 2 on mAP.",
    4: "The gain saturates by steps 8 (steps 8 is no better than steps 4).",
}


@dataclass
class Check:
    """One claim in one context (a combination of the other varying keys, '' when none vary)."""

    context: str
    verdict: str
    evidence: str


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


def seed_values(frame: pd.DataFrame, metric: str) -> list[tuple]:
    """[(seed, value)] of the runs in `frame`; without a seed column each run is its own seed (no pairing)."""
    seeds = frame["seed"] if "seed" in frame else pd.Series(list(frame.index), index=frame.index)
    return [(s, float(v)) for s, v in zip(seeds, frame[metric], strict=True) if pd.notna(v)]


def _contexts(selected: pd.DataFrame, keys: list[str], claim_keys: list[str]):
    """(context label, runs) for each combination of the varying keys other than `claim_keys`."""
    others = [k for k in keys if k not in claim_keys and k in selected]
    if not others:
        yield "", selected
        return
    names = short_names(others)
    combos = sort_values(tuple(row) for row in selected[others].itertuples(index=False))
    for combo in combos:
        mask = np.ones(len(selected), dtype=bool)
        for key, value in zip(others, combo, strict=True):
            column = selected[key]
            mask &= column.isna().to_numpy() if pd.isna(value) else (column == value).to_numpy()
        yield ", ".join(f"{names[k]}={format_value(v)}" for k, v in zip(others, combo, strict=True)), selected[mask]


def _cells(runs: pd.DataFrame, keys: list[str], metric: str) -> dict:
    """{tuple of key values: [(seed, value)]} over `runs` with a value of `metric`."""
    runs = runs[runs[metric].notna()]
    cells = {}
    for key, group in runs.groupby(keys if len(keys) > 1 else keys[0], sort=False):
        cells[key] = seed_values(group, metric)
    return cells


def _cov_std_label(key) -> str:
    return f"cov {format_value(key[0])} / std {format_value(key[1])}"


def _not_applicable(number: int, why: str) -> Claim:
    return Claim(number, STATEMENTS[number], NOT_APPLICABLE, f"Verdict: {why}")


def _prefix(context: str) -> str:
    return f"{context}: " if context else ""


# --- claim 1 -----------------------------------------------------------------------------------------------

def check_cov_std(selected: pd.DataFrame, keys: list[str], metric: str = "val/mAP", digits: int = 3) -> Claim:
    number = 1
    if COV not in keys or STD not in keys:
        return _not_applicable(number, "not applicable (loss.cov_coeff and loss.std_coeff do not both vary).")
    checks = []
    for context, runs in _contexts(selected, keys, [COV, STD]):
        cells = _cells(runs, [COV, STD], metric)
        if PUBLISHED_BEST not in cells:
            checks.append(Check(context, NOT_APPLICABLE, "no run with cov 100 / std 10"))
            continue
        top = top_two(cells, "max")
        if top is None:
            checks.append(Check(context, NOT_APPLICABLE, "a single cell"))
            continue
        ranked = sorted(cells, key=lambda k: mean_of(cells[k]), reverse=True)
        target = cells[PUBLISHED_BEST]
        rank = ranked.index(PUBLISHED_BEST) + 1
        means = f"cov 100 / std 10: mean {fmt(mean_of(target), digits)} (n={len(target)}), rank {rank} of {len(cells)}"
        if rank == 1:
            diff = top.difference
            runner_up = _cov_std_label(top.runner_up)
            evidence = f"{means}; against the runner-up {runner_up}: {difference_text(diff, digits)}"
            if top.separable:
                verdict = SUPPORTED
            else:
                verdict = INCONCLUSIVE
                evidence += f"; not separable at this n ({needed_phrase(top.seeds_needed)})"
        else:
            best = ranked[0]
            diff = paired_difference(target, cells[best])
            evidence = f"{means}; against the best {_cov_std_label(best)}: {difference_text(diff, digits)}"
            if diff.defined and diff.high < 0:
                verdict = CONTRADICTED
            else:
                verdict = INCONCLUSIVE
                evidence += f"; the best is not separable from it at this n ({needed_phrase(seeds_needed(diff))})"
        evidence += _published_order(cells, digits)
        checks.append(Check(context, verdict, evidence))
    return _claim(number, checks)


def _published_order(cells: dict, digits: int) -> str:
    """Spearman rank correlation of the measured cell means with the published ones (shared cells)."""
    shared = [k for k in cells if k in PUBLISHED_COV_STD and cells[k]]
    if len(shared) < 3:
        return ""
    from scipy.stats import spearmanr

    rho = spearmanr([mean_of(cells[k]) for k in shared], [PUBLISHED_COV_STD[k] for k in shared]).statistic
    return f"; rank correlation of the {len(shared)} cell means with the published table: {fmt(rho, 2)}"


# --- claim 2 -----------------------------------------------------------------------------------------------

def check_horizon(selected: pd.DataFrame, keys: list[str], digits: int = 3, full: bool = False) -> Claim:
    """Per configuration: AP at horizon 1 minus AP at the last horizon, per run (so paired over seeds), and
    the least-squares slope of AP against horizon per run; supported where the drop's interval is above 0."""
    number = 2
    horizons = ap_keys(selected.columns, full)
    if len(horizons) < 2:
        return _not_applicable(number, "not applicable (the runs log AP at fewer than two horizons).")
    first, last = horizons[0][1], horizons[-1][1]
    x = np.array([k + 1 for k, _ in horizons], dtype=float)
    checks = []
    for config, runs in selected.groupby("config", sort=False):
        values = runs[[k for _, k in horizons]].astype(float).to_numpy()
        values = values[np.isfinite(values).all(axis=1)]
        if not len(values):
            continue
        drop = t_interval(values[:, 0] - values[:, -1])
        slope = t_interval([np.polyfit(x, row, 1)[0] for row in values])
        if drop.defined and drop.low > 0:
            verdict = SUPPORTED
        elif drop.defined and drop.high < 0:
            verdict = CONTRADICTED
        else:
            verdict = INCONCLUSIVE
        evidence = (f"AP at horizon 1 {fmt(values[:, 0].mean(), digits)}, at horizon {int(x[-1])} "
                    f"{fmt(values[:, -1].mean(), digits)}; drop {fmt(drop.mean, digits, True)} "
                    f"{interval_text(drop, digits, True)}, slope per step {fmt(slope.mean, 4, True)} "
                    f"{interval_text(slope, 4, True)} (n={drop.n}"
                    + (", a single seed: no interval)" if drop.n == 1 else ")"))
        checks.append(Check(config, verdict, evidence))
    claim = _claim(number, checks)
    claim.summary += (f" Per configuration, over its seeds: AP at horizon 1 ({first}) minus AP at horizon "
                      f"{int(x[-1])} ({last}), and the least-squares slope of AP against horizon.")
    return claim


# --- claims 3 and 4 ----------------------------------------------------------------------------------------

def _steps_claim(number: int, selected: pd.DataFrame, keys: list[str], metric: str, check) -> Claim:
    """Claim `number` checked by `check(context, {steps: [(seed, value)]})` in each combination of the other
    varying keys; not applicable when model.steps does not vary."""
    if STEPS not in keys:
        return _not_applicable(number, "not applicable (model.steps does not vary).")
    checks = [check(context, {float(k): v for k, v in _cells(runs, [STEPS], metric).items()})
              for context, runs in _contexts(selected, keys, [STEPS])]
    return _claim(number, checks)


def check_steps_gain(selected: pd.DataFrame, keys: list[str], metric: str = "val/mAP", digits: int = 3) -> Claim:
    """The better (by mean) of steps 4 and 8 against the better of steps 1 and 2, paired over seeds."""

    def check(context: str, cells: dict) -> Check:
        high = [s for s in (4.0, 8.0) if cells.get(s)]
        low = [s for s in (1.0, 2.0) if cells.get(s)]
        if not high or not low:
            return Check(context, NOT_APPLICABLE, "needs runs of steps 4 or 8 and of steps 1 or 2")
        best_high = max(high, key=lambda s: mean_of(cells[s]))
        best_low = max(low, key=lambda s: mean_of(cells[s]))
        diff = paired_difference(cells[best_high], cells[best_low])
        verdict = (SUPPORTED if diff.defined and diff.low > 0 else
                   CONTRADICTED if diff.defined and diff.high < 0 else INCONCLUSIVE)
        means = ", ".join(f"steps {format_value(s)}: {fmt(mean_of(cells[s]), digits)} (n={len(cells[s])})"
                          for s in sorted(cells))
        pairs = "; ".join(f"{format_value(h)} - {format_value(lo)}: "
                          f"{difference_text(paired_difference(cells[h], cells[lo]), digits)}"
                          for h in high for lo in low)
        evidence = (f"means {means}. Best of 4/8 (steps {format_value(best_high)}) minus best of 1/2 (steps "
                    f"{format_value(best_low)}): {difference_text(diff, digits)}")
        if verdict == INCONCLUSIVE:
            evidence += f"; not separable at this n ({needed_phrase(seeds_needed(diff))})"
        return Check(context, verdict, f"{evidence}. Every pair: {pairs}")

    return _steps_claim(3, selected, keys, metric, check)


def check_saturation(selected: pd.DataFrame, keys: list[str], metric: str = "val/mAP", digits: int = 3) -> Claim:
    """steps 8 - steps 4: an interval including zero or below it supports saturation; above zero contradicts."""

    def check(context: str, cells: dict) -> Check:
        if not cells.get(4.0) or not cells.get(8.0):
            return Check(context, NOT_APPLICABLE, "needs runs of steps 4 and steps 8")
        diff = paired_difference(cells[8.0], cells[4.0])
        evidence = f"steps 8 - steps 4: {difference_text(diff, digits)}"
        if not diff.defined:
            return Check(context, INCONCLUSIVE, evidence)
        if diff.low > 0:
            return Check(context, CONTRADICTED, evidence)
        if diff.high > 0:
            evidence += (f"; no gain detected at this n, though the interval allows one of up to "
                         f"{fmt(diff.high, digits, True)}")
        return Check(context, SUPPORTED, evidence)

    return _steps_claim(4, selected, keys, metric, check)


def _claim(number: int, checks: list[Check]) -> Claim:
    verdict = combine([c.verdict for c in checks])
    counts = {v: sum(c.verdict == v for c in checks) for v in (SUPPORTED, CONTRADICTED, INCONCLUSIVE)}
    if len(checks) == 1:
        summary = f"Verdict: {verdict}."
    else:
        summary = (f"Verdict: {verdict} (" + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
                   + f" of {len(checks)} contexts).")
    return Claim(number, STATEMENTS[number], verdict, summary, checks)


def check_claims(selected: pd.DataFrame, keys: list[str], metric: str = "val/mAP", digits: int = 3) -> list[Claim]:
    """All four claims on `select_records` output with the varying config `keys` (`add_configs`).

    Claims 1, 3 and 4 are about mAP: with another metric they still use val/mAP when the runs have it."""
    metric = "val/mAP" if "val/mAP" in selected else metric
    return [check_cov_std(selected, keys, metric, digits), check_horizon(selected, keys, digits),
            check_steps_gain(selected, keys, metric, digits), check_saturation(selected, keys, metric, digits)]


def top_two_text(selected: pd.DataFrame, keys: list[str], metric: str, goal: str = "max", digits: int = 3) -> str:
    """'best X vs runner-up Y: ...' over the configurations of `selected`; '' with fewer than two."""
    if selected.empty or metric not in selected:
        return ""
    cells = {config: seed_values(group, metric) for config, group in selected.groupby("config", sort=False)}
    top = top_two(cells, goal)
    return top.text(digits=digits) if top else ""


def claims_markdown(claims: list[Claim]) -> list[str]:
    """The claims section's lines (without its heading)."""
    md = ["| # | claim | verdict |", "|---|---|---|"]
    md += [f"| {c.number} | {c.statement} | **{c.verdict}** |" for c in claims]
    md.append("")
    for c in claims:
        md += [f"**Claim {c.number}: {c.statement}** {c.summary}", ""]
        for check in c.checks:
            md.append(f"- {_prefix(check.context)}**{check.verdict}**: {check.evidence}")
        md.append("")
    return md
