"""The seed planner: for each comparison a claim left undecided, its power now, the seeds that reach the target
power, and the sweep command that adds them (`python -m analysis DIR --plan [--power 0.8]`).

Power is that of the test the claim applies to the comparison (analysis.stats.power / equivalence_power, with
the one-sided level of the rule: 2.5%, or Bonferroni's 2.5%/m for the m comparisons of a best-cell claim, a
conservative stand-in for Holm), taking the observed difference and spread as the truth. A spread from few
seeds is itself uncertain: its 95% chi-square interval and the seed counts at either end are given too.
Runs that follow the published protocol are also planned for the published difference between the two cells.
The command reuses the study's own overrides from its manifest.json; the projected hours use
jepa.studies.cost.run_hours at the throughput given (--seq-per-s) or, without it, at the throughput the
study's own runs achieved (training sequences x epochs / wall time, so evaluation is included).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import optimize

from analysis.claims import NOT_APPLICABLE, Claim, Comparison
from analysis.group import format_value, sort_values
from analysis.published import COV, PUBLISHED_COV_STD, STD, protocol_mismatches
from analysis.stats import (
    MAX_SEEDS,
    POWER,
    detectable_effect,
    equivalence_power,
    fmt,
    power,
    seeds_for,
    std_interval,
)


@dataclass
class PlanItem:
    claim: int
    comparison: Comparison
    power_now: float
    needed: int | None
    needed_range: tuple
    detectable: float
    published_needed: int | None
    commands: list[str]
    hours: float


def _power_at(c: Comparison, effect: float, std: float):
    """Power as a function of n; `std`: of the per-seed differences (paired) or of side a (Welch)."""
    std_b = c.diff.std_b if c.diff.method == "Welch" else None
    if c.margin is not None:
        return lambda n, margin=c.margin: equivalence_power(effect, std, n, margin, c.alpha, std_b)
    return lambda n: power(effect, std, n, c.alpha, std_b)


def _needed(c: Comparison, effect: float, std: float, target: float) -> int | None:
    if math.isnan(effect) or math.isnan(std) or (c.margin is None and effect == 0):
        return None
    return seeds_for(_power_at(c, effect, std), target)


def _runs_of(selected: pd.DataFrame, config: str) -> pd.DataFrame:
    return selected[selected["config"] == config]


def _published_effect(c: Comparison, selected: pd.DataFrame) -> float:
    """The published difference of the two cov x std cells, when their runs follow the published protocol."""
    runs = [_runs_of(selected, config) for config in c.configs]
    if len(runs) != 2 or any(r.empty or COV not in r or STD not in r for r in runs):
        return math.nan
    if protocol_mismatches(pd.concat(runs)):
        return math.nan
    cells = [PUBLISHED_COV_STD.get((r[COV].iloc[0], r[STD].iloc[0])) for r in runs]
    return cells[0] - cells[1] if None not in cells else math.nan


def _new_seeds(selected: pd.DataFrame, count: int) -> list[int]:
    used = set(pd.to_numeric(selected.get("seed", pd.Series(dtype=float)), errors="coerce").dropna().astype(int))
    seeds, candidate = [], 1
    while len(seeds) < count:
        if candidate not in used:
            seeds.append(candidate)
        candidate += 1
    return seeds


def _overrides(run_path: Path, keys: list[str]) -> tuple[list[str], str]:
    """The run's own overrides from its study's manifest.json without the varying keys and the seed, and
    its study folder; without a manifest, none."""
    try:
        entry = json.loads((run_path.parent / "manifest.json").read_text())["runs"][run_path.name]
        fixed = [o for o in entry["overrides"] if o.split("=", 1)[0].lstrip("+~") not in (*keys, "seed")]
        launcher = entry.get("launcher")
        fixed += [f"hydra/launcher={launcher}"] if launcher and launcher != "local" else []
    except (OSError, ValueError, KeyError, TypeError):
        fixed = []
    return fixed, str(run_path.parent)


def commands(selected: pd.DataFrame, sweep_runs: pd.DataFrame, configs: tuple, keys: list[str], seeds: list[int],
             display=str) -> list[str]:
    """One `python -m jepa.train` line per configuration (one for both when they differ in a single key). Run
    again, a sweep skips the runs it finished, so commands that share a configuration add its seeds once."""
    rows = [_runs_of(selected, config).iloc[0] for config in configs]
    paths = sweep_runs.set_index("run")["path"]
    lines = []
    differ = [k for k in keys if len({format_value(r.get(k)) for r in rows}) > 1]
    groups = [rows] if len(differ) <= 1 else [[r] for r in rows]
    for group in groups:
        fixed, study = _overrides(Path(paths[group[0].name]), keys)
        values = [f"{k}={','.join(format_value(v) for v in sort_values(r.get(k) for r in group))}" for k in keys]
        where = f"hydra.sweep.dir={display(study)}" if fixed else "(add the study's own overrides: no manifest.json)"
        lines.append(" ".join(["python -m jepa.train", *fixed, *values, f"seed={seed_list(seeds)}", where]))
    return lines


def seed_list(seeds: list[int]) -> str:
    """Hydra's sweep value for `seeds`: range(a,b) when they run on without a gap (more than three), else a list."""
    if len(seeds) > 3 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"range({seeds[0]},{seeds[-1] + 1})"
    return ",".join(map(str, seeds))


def run_hours_of(selected: pd.DataFrame, sweep_runs: pd.DataFrame, config: str, seq_per_s: float | None) -> float:
    """Projected hours of one more run of `config` (jepa.studies.cost.run_hours)."""
    from omegaconf import OmegaConf

    from jepa.data import epoch_sequences
    from jepa.studies.cost import run_hours

    paths = sweep_runs.set_index("run")["path"]
    hours = []
    for run in _runs_of(selected, config).index:
        try:
            cfg = OmegaConf.create(_yaml(Path(paths[run]) / "config.yaml"))
            rate = seq_per_s
            if rate is None:
                results = json.loads((Path(paths[run]) / "results.json").read_text())
                rate = cfg.training.epochs * epoch_sequences(cfg.data) / float(results["wall_time_s"])
            hours.append(run_hours(cfg, rate))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ZeroDivisionError):  # not a full config
            continue
    return float(pd.Series(hours).median()) if hours else math.nan


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def make_plan(claims: list[Claim], selected: pd.DataFrame, sweep_runs: pd.DataFrame, keys: list[str],
              target: float = POWER, seq_per_s: float | None = None, display=str) -> list[PlanItem]:
    """A PlanItem per comparison that an inconclusive check of `claims` left undecided."""
    items = []
    for claim in claims:
        for check in claim.checks:
            if check.verdict == NOT_APPLICABLE:
                continue
            for c in check.comparisons:
                d = c.diff
                std = d.std_a if d.method == "Welch" else d.std
                needed = _needed(c, d.mean, std, target)
                low, high = std_interval(std, d.n)
                span = tuple(_needed(c, d.mean, s, target) for s in (low, high))
                add = max(0, (needed or 0) - d.n) if needed and needed <= MAX_SEEDS else 0
                seeds = _new_seeds(selected, add)
                hours = sum(run_hours_of(selected, sweep_runs, config, seq_per_s) for config in c.configs) * add
                published = _published_effect(c, selected)
                items.append(PlanItem(
                    claim.number, c, float(_power_at(c, d.mean, std)(d.n)) if d.n >= 2 else math.nan, needed,
                    span, _detectable(c, std, target),
                    _needed(c, published, std, target) if not math.isnan(published) else None,
                    commands(selected, sweep_runs, c.configs, keys, seeds, display) if add else [], hours))
    return items


def _detectable(c: Comparison, std: float, target: float) -> float:
    """The smallest difference the test shows with `target` power at the current n; for an equivalence, the
    smallest margin it shows when there is no difference."""
    d = c.diff
    if c.margin is None:
        return detectable_effect(std, d.n, target, c.alpha, d.std_b if d.method == "Welch" else None)
    if d.n < 2 or not std > 0:
        return math.nan
    return optimize.brentq(lambda m: float(_power_at(c, 0.0, std)(d.n, m)) - target, 1e-9, 1e3 * std)


def _count(n: int | None) -> str:
    return "not estimable" if n is None else f"more than {MAX_SEEDS}" if n > MAX_SEEDS else str(n)


def plan_markdown(items: list[PlanItem], target: float = POWER, digits: int = 3) -> list[str]:
    """The planner's lines: one paragraph per undecided comparison with its command(s)."""
    if not items:
        return ["No claim has an undecided comparison to plan for."]
    ns = sorted({item.comparison.diff.n for item in items if item.comparison.diff.n >= 2})
    spread = "; ".join(f"from {n} seeds the true spread lies between {low:.2f} and {high:.2f} times the estimate"
                       for n, (low, high) in ((n, std_interval(1.0, n)) for n in ns))
    md = [f"Seeds per configuration for {target:.0%} power at the observed difference and spread (noncentral t). "
          f"A spread estimated from few seeds is itself uncertain ({spread}: 95% chi-square interval), so each "
          "count comes with the range of counts over that interval.", ""]
    for item in items:
        c, d = item.comparison, item.comparison.diff
        what = f"equivalence within ±{fmt(c.margin, digits)}" if c.margin is not None else f"one-sided {c.alpha:.3g}"
        against = " (below zero: against the claim; the power is to show that)" if c.margin is None and d.mean < 0 \
            else ""
        line = (f"- claim {item.claim}, {c.label}: {fmt(d.mean, digits, True)}{against} (n={d.n}, {d.method}, {what}); "
                f"power now {fmt(item.power_now, 2)}; seeds for {target:.0%}: {_count(item.needed)} "
                f"(spread interval: {_count(item.needed_range[0])} to {_count(item.needed_range[1])}); "
                + (f"smallest margin shown at n={d.n} when there is no difference" if c.margin is not None
                   else f"smallest difference detectable at n={d.n}") + f": {fmt(item.detectable, digits)}")
        if item.published_needed is not None:
            line += f"; for the published difference: {_count(item.published_needed)}"
        md.append(line)
        if item.commands:
            hours = f"projected {item.hours:.2f} hours" if not math.isnan(item.hours) else "hours not known"
            md += [f"  add {item.needed - d.n} seed(s) to each configuration involved ({hours}):",
                   *[f"  `{cmd}`" for cmd in item.commands]]
    return md
