"""The factorial view (cell + seed-block model) against a real grid and a hand-made one."""

import numpy as np
import pandas as pd
import pytest

from analysis.factorial import factorial, factorial_frame, factorial_markdown

COV, STD = "loss.cov_coeff", "loss.std_coeff"
# Final val/mAP of the cov x std worked example run on 2026-12-04 (3 seeds, experiment=quick,
# data.num_train=1000, 2 epochs): (cov, std, seed, mAP).
WORKED = [(1, 1, 1, 0.154178), (1, 1, 1000, 0.183576), (1, 1, 10000, 0.231348), (10, 1, 1, 0.037218),
          (10, 1, 1000, 0.16787), (10, 1, 10000, 0.117206), (100, 1, 1, 0.175745), (100, 1, 1000, 0.135155),
          (100, 1, 10000, 0.115455), (1, 10, 1, 0.128366), (1, 10, 1000, 0.243385), (1, 10, 10000, 0.165003),
          (10, 10, 1, 0.021517), (10, 10, 1000, 0.098454), (10, 10, 10000, 0.050205), (100, 10, 1, 0.114298),
          (100, 10, 1000, 0.028232), (100, 10, 10000, 0.103613), (1, 100, 1, 0.143865), (1, 100, 1000, 0.189997),
          (1, 100, 10000, 0.147656), (10, 100, 1, 0.019632), (10, 100, 1000, 0.070546), (10, 100, 10000, 0.01909),
          (100, 100, 1, 0.022862), (100, 100, 1000, 0.01805), (100, 100, 10000, 0.018564)]


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame([{COV: float(c), STD: float(s), "seed": float(seed), "val/mAP": v} for c, s, seed, v in rows])


def test_the_worked_grid():
    result = factorial(frame(WORKED), COV, STD, "val/mAP")
    cells, cov, std, interaction = result.tests
    # 27 runs - 9 cells - 2 seed blocks = 16 residual degrees of freedom
    assert (cells.df1, cells.df2) == (8, 16)
    assert cells.f == pytest.approx(7.52, abs=0.005) and cells.p == pytest.approx(0.00034, abs=0.000005)
    assert (interaction.df1, interaction.f) == (4, pytest.approx(1.09, abs=0.005))
    contrast = next(c for c in result.contrasts if c.key == STD and c.level == 10.0)
    assert contrast.estimate == pytest.approx(-0.0405, abs=0.00005)
    # against the model's residual (df 16) p = 0.05; against its own spread over the 3 seeds (a paired t of the
    # per-seed marginal differences -0.0343, -0.0388, -0.0484, df 2) p = 0.01
    assert contrast.p == pytest.approx(0.0465, abs=0.0005) and contrast.p_seeds == pytest.approx(0.0103, abs=0.0005)
    md = "\n".join(factorial_markdown(result))
    assert "| cells (all equal) | F(8, 16) = 7.52 | 0.00034 |" in md
    assert "std_coeff 10 - std_coeff 1: -0.041 [-0.080, -0.001], p = 0.05" in md
    assert len(factorial_frame(result)) == 4 + 4


def test_a_hand_made_grid_without_noise():
    # value = cell effect + seed effect exactly: the residual is zero, every contrast exact
    rows = [(c, s, seed, 0.1 * (c == 10) + 0.05 * (s == 10) + 0.01 * seed) for c in (1, 10) for s in (1, 10)
            for seed in (1, 2, 3)]
    rng = np.random.default_rng(0)
    noisy = [(c, s, seed, v + rng.normal(0, 1e-4)) for c, s, seed, v in rows]
    result = factorial(frame(noisy), COV, STD, "val/mAP")
    estimates = {(c.key, c.level): c.estimate for c in result.contrasts}
    assert estimates == {(COV, 10.0): pytest.approx(0.1, abs=1e-3), (STD, 10.0): pytest.approx(0.05, abs=1e-3)}
    assert result.tests[3].p > 0.01  # no interaction was put in


def test_grids_that_are_not_factorial():
    assert factorial(frame(WORKED[:3]), COV, STD, "val/mAP") is None  # one cell
    unshared = frame([(c, s, seed + 10 * (c == 10), 0.1) for c in (1, 10) for s in (1, 10) for seed in (1, 2)])
    result = factorial(unshared, COV, STD, "val/mAP")
    assert result.note == "fewer than two seeds shared by every cell of a complete grid"
    assert factorial_markdown(result) == [f"No factorial view: {result.note}.", ""]
