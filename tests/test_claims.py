"""The four published claims as tests with error control, on hand-made run tables with known verdicts.

Each fixture is the frame `select_records` returns: one row per run with its config keys, seed, `config` label
and final metrics. t(0.975, 2) = 4.3027 in the hand computations.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis.claims import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    SUPPORTED,
    beats_every,
    best_test,
    check_claims,
    check_cov_std,
    check_horizon,
    check_saturation,
    check_steps_gain,
    claims_markdown,
    combine,
    equivalent,
)

COV, STD, STEPS = "loss.cov_coeff", "loss.std_coeff", "model.steps"


def runs(cells: dict, slopes=None, copy_last=None) -> pd.DataFrame:
    """cells: {(cov, std, steps): {seed: mAP}} -> a run frame. AP at horizon k (0..6) is
    mAP + slope * (3 - k), so the mean over horizons is the mAP; `slopes`: {seed: slope}, default 0.05;
    `copy_last`: the copy-last AP of every horizon of every run (not logged when None)."""
    rows = []
    for (cov, std, steps), by_seed in cells.items():
        for seed, value in by_seed.items():
            slope = (slopes or {}).get(seed, 0.05)
            row = {COV: float(cov), STD: float(std), STEPS: float(steps), "seed": float(seed), "val/mAP": value,
                   "config": f"cov_coeff={cov}, std_coeff={std}, steps={steps}"}
            row |= {f"val/AP_{k}": value + slope * (3 - k) for k in range(7)}
            if copy_last is not None:
                row |= {f"val/copy_last/AP_{k}": copy_last for k in range(7)}
            rows.append(row)
    return pd.DataFrame(rows, index=[f"run{i}" for i in range(len(rows))])


def varying(frame: pd.DataFrame) -> list[str]:
    return [k for k in (COV, STD, STEPS) if frame[k].nunique() > 1]


TOP = {1: 0.60, 2: 0.61, 3: 0.65}
CLOSE_BELOW = {1: 0.52, 2: 0.55, 3: 0.56}  # paired difference TOP - this: +0.0767 [+0.0387, +0.1146]
LOW = {1: 0.30, 2: 0.31, 3: 0.29}


def grid(**cells) -> pd.DataFrame:
    base = {(1, 1, 4): LOW, (1, 10, 4): LOW, (100, 1, 4): CLOSE_BELOW, (100, 10, 4): TOP}
    base.update({tuple(map(int, k.split("_"))) + (4,): v for k, v in cells.items()})
    return runs(base)


# --- claim 1 -----------------------------------------------------------------------------------------------

def claim1(frame: pd.DataFrame):
    return check_cov_std(frame, varying(frame))


@pytest.mark.parametrize("cells, verdict, says", [
    pytest.param({}, SUPPORTED,
                 ["rank 1 of 4", "vs cov 100 / std 1: +0.077 [+0.039, +0.115] (paired t over 3 seeds), Holm p = 0.01"],
                 id="beats-every-cell"),
    # TOST - runner-up per seed: 0.01, -0.02, 0.03: +0.007 [-0.056, +0.069]
    pytest.param({"100_1": {1: 0.59, 2: 0.63, 3: 0.62}}, INCONCLUSIVE, ["+0.007 [-0.056, +0.069]"],
                 id="runner-up-within-noise"),
    # beats the runner-up cleanly, but not a noisy third cell: per seed +0.40, -0.29, +0.10
    pytest.param({"1_10": {1: 0.20, 2: 0.90, 3: 0.55}}, INCONCLUSIVE,
                 ["vs cov 1 / std 10: +0.070 [-0.789, +0.929] (paired t over 3 seeds), Holm p = 0.76"],
                 id="not-separable-from-a-noisy-third-cell"),
    pytest.param({"1_1": {1: 0.80, 2: 0.82, 3: 0.85}}, CONTRADICTED, ["rank 2 of 4", "vs cov 1 / std 1: -0.203"],
                 id="another-cell-beats-it"),
    pytest.param({"100_1": dict(TOP)}, INCONCLUSIVE, ["+0.000 [+0.000, +0.000] (paired t over 3 seeds), Holm p = 1.00"],
                 id="tie-at-the-top"),
])
def test_cov_std_is_best_only_when_it_beats_every_other_cell_under_holm(cells, verdict, says):
    claim = claim1(grid(**cells))
    assert claim.verdict == verdict
    for text in says:
        assert text in claim.checks[0].evidence


def test_holm_over_the_comparisons_is_stricter_than_each_alone():
    # three comparisons, raw two-sided p 0.03, 0.001, 0.02: each alone rejects at 5%, Holm needs 0.001 <= 0.05/3,
    # 0.02 <= 0.05/2 and 0.03 <= 0.05 -> supported; with 0.03 -> 0.04 at the second step it is not
    se = np.ones(3)
    mean = scipy_stats.t.isf(np.array([0.03, 0.001, 0.02]) / 2, 2)
    verdict, adjusted = beats_every(mean, se, np.full(3, 2.0))
    assert verdict == SUPPORTED and adjusted == pytest.approx([0.04, 0.003, 0.04])
    verdict, _ = beats_every(scipy_stats.t.isf(np.array([0.03, 0.001, 0.03]) / 2, 2), se, np.full(3, 2.0))
    assert verdict == INCONCLUSIVE
    below = scipy_stats.t.isf(np.array([0.001, 0.3, 0.3]) / 2, 2) * np.array([-1, 1, 1])
    assert beats_every(below, se, np.full(3, 2.0))[0] == CONTRADICTED


def test_cov_std_with_one_seed_per_cell_is_inconclusive():
    claim = claim1(runs({(1, 1, 4): {1: 0.3}, (100, 10, 4): {1: 0.6}}))
    assert claim.verdict == INCONCLUSIVE
    assert "no interval: n = 1 and 1" in claim.checks[0].evidence


def test_cov_std_not_applicable_unless_both_keys_vary():
    claim = claim1(runs({(1, 10, 4): LOW, (100, 10, 4): TOP}))
    assert claim.verdict == NOT_APPLICABLE and "do not both vary" in claim.summary


def test_cov_std_is_checked_per_value_of_another_varying_key():
    claim = claim1(pd.concat([grid(), runs({(1, 1, 1): {1: 0.9, 2: 0.91, 3: 0.92}, (100, 10, 1): LOW})]))
    verdicts = {c.context: c.verdict for c in claim.checks}
    assert verdicts == {"steps=1": CONTRADICTED, "steps=4": SUPPORTED}
    assert claim.verdict == INCONCLUSIVE and "1 supported, 1 contradicted of 2" in claim.summary


def test_best_test_orients_differences_by_goal():
    cells = {"a": list(TOP.items()), "b": list(CLOSE_BELOW.items())}
    assert best_test(cells, {"a": "a", "b": "b"}).separable
    low = best_test(cells, {"a": "a", "b": "b"}, goal="min")
    assert low.best == "b" and low.comparisons[0].diff.mean == pytest.approx(0.076667, abs=1e-6) and low.separable
    assert best_test({"a": [(1, 0.5)]}, {"a": "a"}) is None


# --- claim 2 -----------------------------------------------------------------------------------------------

def test_horizon_slope_over_all_horizons_per_seed():
    # slopes -0.05, -0.04, -0.06 per step: mean -0.05, s = 0.01, half-width 4.3027 * 0.01 / sqrt(3) = 0.02484
    frame = runs({(100, 10, 4): TOP}, slopes={1: 0.05, 2: 0.04, 3: 0.06}, copy_last=0.1)
    claim = check_horizon(frame, [])
    assert claim.verdict == SUPPORTED
    assert "slope per step -0.0500 [-0.0748, -0.0252] (n=3)" in claim.checks[0].evidence


def test_horizon_rise_contradicts_and_mixed_slopes_are_inconclusive():
    rising = runs({(100, 10, 4): TOP}, slopes={1: -0.05, 2: -0.04, 3: -0.06})
    assert check_horizon(rising, []).verdict == CONTRADICTED
    mixed = runs({(100, 10, 4): TOP}, slopes={1: 0.05, 2: -0.05, 3: 0.01})
    assert check_horizon(mixed, []).verdict == INCONCLUSIVE
    assert check_horizon(runs({(100, 10, 4): {1: 0.6}}), []).verdict == INCONCLUSIVE


def test_horizon_leaves_out_a_configuration_that_does_not_beat_copy_last():
    frame = runs({(100, 10, 4): TOP, (1, 10, 4): {1: 0.20, 2: 0.21, 3: 0.19}}, slopes={1: 0.05, 2: 0.04, 3: 0.06},
                 copy_last=0.3)
    frame.loc[frame[COV] == 1.0, [f"val/AP_{k}" for k in range(7)]] = 0.2  # collapsed: flat, below copy-last
    claim = check_horizon(frame, [COV])
    assert [c.verdict for c in claim.checks] == [NOT_APPLICABLE, SUPPORTED]
    assert "not shown to beat copy-last, left out" in claim.checks[0].evidence
    assert claim.verdict == SUPPORTED
    assert check_horizon(frame[["config", "val/mAP", "val/AP_0"]], []).verdict == NOT_APPLICABLE


def test_horizon_is_inconclusive_and_plannable_when_no_configuration_is_shown_to_learn():
    frame = runs({(100, 10, 4): {1: 0.30, 2: 0.12, 3: 0.20}}, copy_last=0.15)  # mAP - copy-last +0.15, -0.03, +0.05
    claim = check_horizon(frame, [])
    assert claim.verdict == INCONCLUSIVE and "No configuration is shown to beat copy-last" in claim.summary
    assert claim.checks[0].evidence.endswith("not shown to beat copy-last at this n")
    comparison = claim.checks[0].comparisons[0]
    assert comparison.diff.mean == pytest.approx(0.056667, abs=1e-6) and not comparison.decided


# --- claims 3 and 4 ----------------------------------------------------------------------------------------

STEPS_CELLS = {(100, 10, 1): {1: 0.10, 2: 0.12, 3: 0.11}, (100, 10, 2): {1: 0.15, 2: 0.16, 3: 0.14},
               (100, 10, 4): {1: 0.25, 2: 0.27, 3: 0.26}, (100, 10, 8): {1: 0.26, 2: 0.28, 3: 0.25}}


def test_steps_4_and_8_far_above_1_and_2_support_claim_3_and_a_tight_8_minus_4_supports_claim_4():
    frame = runs(STEPS_CELLS)
    gain = check_steps_gain(frame, [STEPS])
    assert gain.verdict == SUPPORTED
    for pair in ("steps 4 - steps 1", "steps 4 - steps 2", "steps 8 - steps 1", "steps 8 - steps 2"):
        assert pair in gain.checks[0].evidence
    # steps 8 - steps 4 per seed: 0.01, 0.01, -0.01: +0.003 [-0.025, +0.032], inside ±0.05
    assert check_saturation(frame, [STEPS], margin=0.05).verdict == SUPPORTED
    # ... but not inside ±0.02: equivalence is not shown, whatever the point estimate
    assert check_saturation(frame, [STEPS]).verdict == INCONCLUSIVE


def test_a_noisy_steps_8_minus_4_does_not_support_saturation():
    cells = {(100, 10, 1): {1: 0.01, 2: 0.02, 3: 0.015}, (100, 10, 2): {1: 0.02, 2: 0.03, 3: 0.01},
             (100, 10, 4): {1: 0.25, 2: 0.27, 3: 0.26},
             (100, 10, 8): {1: 0.33, 2: 0.21, 3: 0.27}}  # 8 - 4 per seed: +0.08, -0.06, +0.01: +0.010 ± 0.174
    frame = runs(cells)
    assert check_steps_gain(frame, [STEPS]).verdict == SUPPORTED
    saturation = check_saturation(frame, [STEPS])
    assert saturation.verdict == INCONCLUSIVE and "margin ±0.020" in saturation.checks[0].evidence


def test_claim_3_needs_both_4_and_8_and_claim_4_needs_claim_3():
    cells = dict(STEPS_CELLS)
    cells[100, 10, 4] = {1: 0.14, 2: 0.17, 3: 0.13}  # steps 4 does not beat steps 2; steps 8 beats both
    frame = runs(cells)
    assert check_steps_gain(frame, [STEPS]).verdict == INCONCLUSIVE
    saturation = check_saturation(frame, [STEPS], margin=0.5)
    assert saturation.verdict == NOT_APPLICABLE
    assert "no gain to saturate (claim 3 is inconclusive here)" in saturation.checks[0].evidence


def test_steps_contradictions():
    cells = dict(STEPS_CELLS)
    cells[100, 10, 8] = {1: 0.35, 2: 0.38, 3: 0.36}  # 8 - 4 per seed: 0.10, 0.11, 0.10: beyond the margin
    assert check_saturation(runs(cells), [STEPS]).verdict == CONTRADICTED
    cells[100, 10, 1] = {1: 0.50, 2: 0.52, 3: 0.51}  # steps 1 beats both 4 and 8
    assert check_steps_gain(runs(cells), [STEPS]).verdict == CONTRADICTED


def test_equivalence_needs_the_interval_inside_the_margin():
    # mean 0, se 0.01, df 2: the 95% interval is ±0.043; inside ±0.05, not inside ±0.04
    assert equivalent(0.0, 0.01, 2.0, margin=0.05) == SUPPORTED
    assert equivalent(0.0, 0.01, 2.0, margin=0.04) == INCONCLUSIVE
    assert equivalent(0.2, 0.01, 2.0, margin=0.05) == CONTRADICTED


def test_steps_claims_inconclusive_or_not_applicable():
    one_seed = runs({k: {1: v[1]} for k, v in STEPS_CELLS.items()})
    assert check_steps_gain(one_seed, [STEPS]).verdict == INCONCLUSIVE
    assert check_saturation(one_seed, [STEPS]).verdict == NOT_APPLICABLE
    frame = grid()
    assert check_steps_gain(frame, varying(frame)).verdict == NOT_APPLICABLE
    assert "model.steps does not vary" in check_saturation(frame, varying(frame)).summary
    low_only = runs({k: v for k, v in STEPS_CELLS.items() if k[2] in (1, 2)})
    claim = check_saturation(low_only, [STEPS])
    assert claim.verdict == NOT_APPLICABLE and "steps 4 and steps 8" in claim.checks[0].evidence


# --- together ----------------------------------------------------------------------------------------------

def test_all_claims_and_their_markdown():
    frame = runs(STEPS_CELLS, slopes={1: 0.05, 2: 0.04, 3: 0.06})
    claims = check_claims(frame, [STEPS], margin=0.05)
    assert [c.verdict for c in claims] == [NOT_APPLICABLE, SUPPORTED, SUPPORTED, SUPPORTED]
    md = "\n".join(claims_markdown(claims))
    assert "| 1 | In the cov_coeff x std_coeff grid, cov 100 / std 10 is best. | **not applicable** |" in md
    assert "cov_coeff=100, std_coeff=10, steps=8: **supported**" in md


def test_combine():
    assert combine([SUPPORTED, SUPPORTED, NOT_APPLICABLE]) == SUPPORTED
    assert combine([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([CONTRADICTED]) == CONTRADICTED and combine([]) == NOT_APPLICABLE
