"""The four published claims as checks, on hand-made run tables with known verdicts.

Each fixture is the frame `select_records` returns: one row per run with its config keys, seed, `config` label
and final metrics. t(0.975, 2) = 4.3027 in the hand computations.
"""

import math

import pandas as pd
import pytest

from analysis.claims import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    SUPPORTED,
    check_claims,
    check_cov_std,
    check_horizon,
    check_saturation,
    check_steps_gain,
    claims_markdown,
    combine,
    top_two,
)

COV, STD, STEPS = "loss.cov_coeff", "loss.std_coeff", "model.steps"


def runs(cells: dict, slopes=None) -> pd.DataFrame:
    """cells: {(cov, std, steps): {seed: mAP}} -> a run frame. AP at horizon k (0..6) is
    mAP + slope * (3 - k), so the mean over horizons is the mAP; `slopes`: {seed: slope}, default 0.05."""
    rows = []
    for (cov, std, steps), by_seed in cells.items():
        for seed, value in by_seed.items():
            slope = (slopes or {}).get(seed, 0.05)
            row = {COV: float(cov), STD: float(std), STEPS: float(steps), "seed": float(seed), "val/mAP": value,
                   "config": f"cov_coeff={cov}, std_coeff={std}, steps={steps}"}
            row |= {f"val/AP_{k}": value + slope * (3 - k) for k in range(7)}
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
                 ["rank 1 of 4", "cov 100 / std 1", "+0.077 [+0.039, +0.115] (paired t over 3 seeds)"],
                 id="separably-best"),
    # TOP - runner-up per seed: 0.01, -0.02, 0.03: mean +0.0067, s = 0.0252, interval +0.0067 ± 0.0626.
    # Seeds needed: t(n-1) * 0.025166 / sqrt(n) < 0.006667: n = 57 gives 2.0032 * 0.025166 / 7.5498 = 0.006677,
    # n = 58 gives 2.0025 * 0.025166 / 7.6158 = 0.006617 -> 58
    pytest.param({"100_1": {1: 0.59, 2: 0.63, 3: 0.62}}, INCONCLUSIVE,
                 ["+0.007 [-0.056, +0.069]", "not separable at this n", "about 58 seeds each"],
                 id="runner-up-within-noise"),
    pytest.param({"1_1": {1: 0.80, 2: 0.82, 3: 0.85}}, CONTRADICTED,
                 ["rank 2 of 4", "against the best cov 1 / std 1"], id="another-cell-separably-better"),
    # the runner-up equals cov 100 / std 10 on every seed
    pytest.param({"100_1": dict(TOP)}, INCONCLUSIVE, ["+0.000 [+0.000, +0.000]"], id="tie-at-the-top"),
])
def test_cov_std_verdict_follows_the_paired_interval_against_the_runner_up(cells, verdict, says):
    claim = claim1(grid(**cells))
    assert claim.verdict == verdict
    for text in says:
        assert text in claim.checks[0].evidence


def test_cov_std_with_one_seed_per_cell_is_inconclusive():
    claim = claim1(runs({(1, 1, 4): {1: 0.3}, (100, 10, 4): {1: 0.6}}))
    assert claim.verdict == INCONCLUSIVE
    assert "no interval: n = 1 and 1" in claim.checks[0].evidence
    assert "not estimable" in claim.checks[0].evidence


def test_cov_std_not_applicable_unless_both_keys_vary():
    claim = claim1(runs({(1, 10, 4): LOW, (100, 10, 4): TOP}))
    assert claim.verdict == NOT_APPLICABLE and "do not both vary" in claim.summary


def test_cov_std_is_checked_per_value_of_another_varying_key():
    claim = claim1(pd.concat([grid(), runs({(1, 1, 1): {1: 0.9, 2: 0.91, 3: 0.92}, (100, 10, 1): LOW})]))
    verdicts = {c.context: c.verdict for c in claim.checks}
    assert verdicts == {"steps=1": CONTRADICTED, "steps=4": SUPPORTED}
    assert claim.verdict == INCONCLUSIVE and "1 supported, 1 contradicted of 2 contexts" in claim.summary


# --- claim 2 -----------------------------------------------------------------------------------------------

def test_horizon_drop_supported_with_per_seed_slopes():
    # drop AP_0 - AP_6 = 6 * slope per seed: 0.30, 0.24, 0.36; mean 0.30, s = 0.06,
    # half-width 4.3027 * 0.06 / sqrt(3) = 0.14905 -> [+0.151, +0.449]
    frame = runs({(100, 10, 4): TOP}, slopes={1: 0.05, 2: 0.04, 3: 0.06})
    claim = check_horizon(frame, [])
    assert claim.verdict == SUPPORTED
    assert "drop +0.300 [+0.151, +0.449]" in claim.checks[0].evidence
    assert "slope per step -0.0500" in claim.checks[0].evidence


def test_horizon_rise_contradicts_and_mixed_slopes_are_inconclusive():
    rising = runs({(100, 10, 4): TOP}, slopes={1: -0.05, 2: -0.04, 3: -0.06})
    assert check_horizon(rising, []).verdict == CONTRADICTED
    mixed = runs({(100, 10, 4): TOP}, slopes={1: 0.05, 2: -0.05, 3: 0.01})
    assert check_horizon(mixed, []).verdict == INCONCLUSIVE
    single = runs({(100, 10, 4): {1: 0.6}})
    claim = check_horizon(single, [])
    assert claim.verdict == INCONCLUSIVE and "a single seed: no interval" in claim.checks[0].evidence


def test_horizon_needs_every_configuration_to_agree():
    frame = runs({(100, 10, 4): TOP, (1, 10, 4): LOW}, slopes={1: 0.05, 2: 0.04, 3: 0.06})
    frame.loc[frame[COV] == 1.0, [f"val/AP_{k}" for k in range(7)]] = 0.3  # flat: drop 0 on every seed
    claim = check_horizon(frame, [COV])
    assert [c.verdict for c in claim.checks] == [SUPPORTED, INCONCLUSIVE]
    assert claim.verdict == INCONCLUSIVE
    assert check_horizon(frame[["config", "val/mAP", "val/AP_0"]], []).verdict == NOT_APPLICABLE


# --- claims 3 and 4 ----------------------------------------------------------------------------------------

STEPS_CELLS = {(100, 10, 1): {1: 0.10, 2: 0.12, 3: 0.11}, (100, 10, 2): {1: 0.15, 2: 0.16, 3: 0.14},
               (100, 10, 4): {1: 0.25, 2: 0.27, 3: 0.26}, (100, 10, 8): {1: 0.26, 2: 0.28, 3: 0.25}}


def test_steps_gain_supported_and_saturation_supported():
    frame = runs(STEPS_CELLS)
    gain = check_steps_gain(frame, [STEPS])
    # best of 4/8: steps 8 (mean 0.263); best of 1/2: steps 2 (0.150); per seed 0.11, 0.12, 0.11
    assert gain.verdict == SUPPORTED
    assert "Best of 4/8 (steps 8) minus best of 1/2 (steps 2): +0.113" in gain.checks[0].evidence
    assert "4 - 1:" in gain.checks[0].evidence and "8 - 2:" in gain.checks[0].evidence
    saturation = check_saturation(frame, [STEPS])
    # steps 8 - steps 4 per seed: 0.01, 0.01, -0.01: mean +0.0033, interval includes zero
    assert saturation.verdict == SUPPORTED
    assert "steps 8 - steps 4: +0.003" in saturation.checks[0].evidence
    assert "no gain detected at this n" in saturation.checks[0].evidence


def test_steps_contradictions():
    cells = dict(STEPS_CELLS)
    cells[100, 10, 8] = {1: 0.35, 2: 0.38, 3: 0.36}  # 8 - 4 per seed: 0.10, 0.11, 0.10
    assert check_saturation(runs(cells), [STEPS]).verdict == CONTRADICTED
    cells[100, 10, 1] = {1: 0.50, 2: 0.52, 3: 0.51}  # steps 1 beats both 4 and 8
    assert check_steps_gain(runs(cells), [STEPS]).verdict == CONTRADICTED


def test_steps_claims_inconclusive_or_not_applicable():
    one_seed = runs({k: {1: v[1]} for k, v in STEPS_CELLS.items()})
    assert check_steps_gain(one_seed, [STEPS]).verdict == INCONCLUSIVE
    assert check_saturation(one_seed, [STEPS]).verdict == INCONCLUSIVE
    frame = grid()
    assert check_steps_gain(frame, varying(frame)).verdict == NOT_APPLICABLE
    assert "model.steps does not vary" in check_saturation(frame, varying(frame)).summary
    low_only = runs({k: v for k, v in STEPS_CELLS.items() if k[2] in (1, 2)})
    claim = check_saturation(low_only, [STEPS])
    assert claim.verdict == NOT_APPLICABLE and "steps 4 and steps 8" in claim.checks[0].evidence


# --- together ----------------------------------------------------------------------------------------------

def test_all_claims_and_their_markdown():
    frame = runs(STEPS_CELLS, slopes={1: 0.05, 2: 0.04, 3: 0.06})
    claims = check_claims(frame, [STEPS])
    assert [c.verdict for c in claims] == [NOT_APPLICABLE, SUPPORTED, SUPPORTED, SUPPORTED]
    md = "\n".join(claims_markdown(claims))
    assert "| 1 | In the cov_coeff x std_coeff grid, cov 100 / std 10 is best. | **not applicable** |" in md
    assert "- steps=8: **supported**" not in md and "cov_coeff=100, std_coeff=10, steps=8: **supported**" in md


def test_combine_and_top_two():
    assert combine([SUPPORTED, SUPPORTED, NOT_APPLICABLE]) == SUPPORTED
    assert combine([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([CONTRADICTED]) == CONTRADICTED and combine([]) == NOT_APPLICABLE
    top = top_two({"a": list(TOP.items()), "b": list(CLOSE_BELOW.items())})
    assert (top.best, top.runner_up, top.separable) == ("a", "b", True)
    low = top_two({"a": list(TOP.items()), "b": list(CLOSE_BELOW.items())}, goal="min")
    assert low.best == "b" and low.difference.mean == pytest.approx(0.076667, abs=1e-6) and low.separable
    assert top_two({"a": [(1, 0.5)]}) is None
    assert math.isnan(top_two({"a": [(1, 0.5)], "b": [(1, 0.4)]}).difference.low)
