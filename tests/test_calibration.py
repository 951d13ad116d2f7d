"""Calibration: simulated studies with known effects run through the claims' own decision rules
(analysis.claims: beats_every, all_above, equivalent; analysis.stats: t_stats, power), vectorised over
REPLICATES studies at once.

False supported / contradicted rates must stay at or below their nominal 2.5% within Monte-Carlo error
(3 standard errors), and the seeds the power analysis plans must achieve its target power within 3 points.
`python -m tests.test_calibration` prints the table quoted in docs/statistics.md.
"""

import math

import numpy as np
import pytest

from analysis.claims import CONTRADICTED, SUPPORTED, all_above, beats_every, equivalent
from analysis.stats import ALPHA, POWER, equivalence_power, p_above, power, seeds_for, t_stats, welch_df

REPLICATES = 4000
NOMINAL = ALPHA / 2
TOLERANCE = 3 * math.sqrt(NOMINAL * (1 - NOMINAL) / REPLICATES)  # 3 Monte-Carlo standard errors: 0.0074
SEEDS = (3, 5, 10)
CELLS = 9  # the cov x std grid


def rng(n: int) -> np.random.Generator:
    return np.random.default_rng(1000 + n)


def grid_study(means, n: int, seed_sd: float = 1.0) -> np.ndarray:
    """[REPLICATES, cells, n] values: cell mean + a seed effect shared by every cell + noise (sd 1)."""
    g = rng(n)
    shared = g.normal(0, seed_sd, (REPLICATES, 1, n))
    return np.asarray(means, dtype=float)[None, :, None] + shared + g.normal(0, 1, (REPLICATES, len(means), n))


def best_verdicts(values: np.ndarray, target=0) -> np.ndarray:
    """The claim-1 rule on simulated grids; `target` an index, or None for each study's best mean (the table)."""
    if target is None:
        target = values.mean(axis=2).argmax(axis=1)
    else:
        target = np.full(len(values), target)
    chosen = np.take_along_axis(values, target[:, None, None], axis=1)
    others = np.arange(values.shape[1])[None, :] != target[:, None]
    diffs = (chosen - values)[others].reshape(len(values), values.shape[1] - 1, -1)
    mean, _, se, df = t_stats(diffs)
    return beats_every(mean, se, df)[0]


def paired_verdicts(rule, effects, n: int, **kwargs) -> np.ndarray:
    """`rule` on [REPLICATES, len(effects)] paired comparisons with true differences `effects` (sd 1)."""
    d = np.asarray(effects, dtype=float)[None, :, None] + rng(n).normal(0, 1, (REPLICATES, len(effects), n))
    mean, _, se, df = t_stats(d)
    verdict = rule(mean, se, df, **kwargs)
    return verdict[0] if isinstance(verdict, tuple) else verdict


def rate(verdicts: np.ndarray, which: str) -> float:
    return float(np.mean(verdicts == which))


def false_claim_rates(n: int) -> dict[str, float]:
    """Each rule's false verdict rate at the least favourable truth for it."""
    return {
        "claim 1 contradicted, all cells equal": rate(best_verdicts(grid_study([0.0] * CELLS, n)), CONTRADICTED),
        "claim 1 supported, target tied with one cell, others 10 sd below": rate(
            best_verdicts(grid_study([0.0, 0.0] + [-10.0] * (CELLS - 2), n)), SUPPORTED),
        "table bold (best chosen by its mean), all cells equal": rate(
            best_verdicts(grid_study([0.0] * CELLS, n), target=None), SUPPORTED),
        "claim 3 supported, one of 4 comparisons null, three 10 sd": rate(
            paired_verdicts(all_above, [0.0, 10.0, 10.0, 10.0], n), SUPPORTED),
        "claim 3 contradicted, all 4 comparisons null": rate(
            paired_verdicts(all_above, [0.0] * 4, n), CONTRADICTED),
        "claim 4 supported, true difference at the margin (1 sd)": rate(
            paired_verdicts(lambda *a: equivalent(*a, margin=1.0), [1.0], n), SUPPORTED),
        "claim 4 contradicted, true difference at the margin": rate(
            paired_verdicts(lambda *a: equivalent(*a, margin=1.0), [1.0], n), CONTRADICTED),
    }


@pytest.mark.parametrize("n", SEEDS)
def test_false_claims_stay_at_or_below_nominal(n):
    for what, observed in false_claim_rates(n).items():
        assert observed <= NOMINAL + TOLERANCE, f"{what}, {n} seeds: {observed:.4f}"


def test_the_claims_do_find_real_effects():
    """The same rules are not merely silent: a large effect is found at 10 seeds."""
    assert rate(best_verdicts(grid_study([3.0] + [0.0] * (CELLS - 1), 10)), SUPPORTED) > 0.9
    assert rate(paired_verdicts(all_above, [2.0] * 4, 10), SUPPORTED) > 0.9
    assert rate(paired_verdicts(lambda *a: equivalent(*a, margin=1.0), [0.0], 10), SUPPORTED) > 0.4


def achieved_power(effect: float = 1.0, target: float = POWER) -> dict[str, tuple[int, float, float]]:
    """(planned seeds, predicted power, achieved power) of each test the planner plans, for an effect of
    `effect` sd."""
    alpha = NOMINAL
    paired_n = seeds_for(lambda n: power(effect, 1.0, n, alpha), target)
    d = effect + rng(paired_n).normal(0, 1, (REPLICATES, paired_n))
    mean, _, se, df = t_stats(d)
    out = {"paired t": (paired_n, float(power(effect, 1.0, paired_n, alpha)),
                        float(np.mean(p_above(mean, se, df) <= alpha)))}
    welch_n = seeds_for(lambda n: power(effect, 1.0, n, alpha, std_b=2.0), target)
    g = rng(welch_n + 1)
    a, b = effect + g.normal(0, 1, (REPLICATES, welch_n)), g.normal(0, 2, (REPLICATES, welch_n))
    va, vb = a.var(axis=1, ddof=1), b.var(axis=1, ddof=1)
    p = p_above(a.mean(1) - b.mean(1), np.sqrt((va + vb) / welch_n), welch_df(va, welch_n, vb, welch_n))
    out["Welch, sd 1 and 2"] = (welch_n, float(power(effect, 1.0, welch_n, alpha, std_b=2.0)),
                                float(np.mean(p <= alpha)))
    tost_n = seeds_for(lambda n: equivalence_power(0.0, 1.0, n, margin=effect), target)
    verdicts = paired_verdicts(lambda *x: equivalent(*x, margin=effect), [0.0], tost_n)
    out["TOST, true difference 0"] = (tost_n, float(equivalence_power(0.0, 1.0, tost_n, margin=effect)),
                                      rate(verdicts, SUPPORTED))
    return out


def test_the_planned_seeds_achieve_the_target_power():
    for what, (n, predicted, achieved) in achieved_power().items():
        assert POWER <= predicted < POWER + 0.05, f"{what}: {n} seeds, predicted {predicted:.3f}"
        assert abs(achieved - predicted) <= 0.02 and abs(achieved - POWER) <= 0.03, f"{what}: {achieved:.3f}"


if __name__ == "__main__":
    print(f"{REPLICATES} simulated studies per line; nominal {NOMINAL:.1%}, Monte-Carlo standard error "
          f"{TOLERANCE / 3:.4f}")
    for n in SEEDS:
        for what, observed in false_claim_rates(n).items():
            print(f"{n:2d} seeds  {observed:.4f}  {what}")
    for what, (n, predicted, achieved) in achieved_power().items():
        print(f"power  {what}: {n} seeds planned for {POWER:.0%} at 1 sd, predicted {predicted:.3f}, "
              f"achieved {achieved:.3f}")
