"""Intervals over seeds, paired and Welch differences, Holm and power, against numbers worked out by hand.

t quantiles used below (two-sided 95%): t(0.975, 1) = 12.7062, t(0.975, 2) = 4.3027.
"""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.stats import (
    detectable_effect,
    difference_text,
    equivalence_power,
    holm,
    interval_text,
    logit_interval,
    metric_interval,
    p_above,
    paired_difference,
    power,
    seeds_for,
    std_interval,
    t_interval,
    welch_difference,
)


def test_t_interval_of_three_seeds():
    # mean 0.3, s = 0.1, half-width 4.3027 * 0.1 / sqrt(3) = 0.24841 -> [0.05159, 0.54841]
    iv = t_interval([0.2, 0.3, 0.4])
    assert (iv.mean, iv.std, iv.n, iv.method) == (pytest.approx(0.3), pytest.approx(0.1), 3, "t")
    assert iv.low == pytest.approx(0.05159, abs=1e-5) and iv.high == pytest.approx(0.54841, abs=1e-5)
    assert iv.se == pytest.approx(0.1 / math.sqrt(3)) and iv.df == 2
    assert interval_text(iv) == "[0.052, 0.548]"


def test_t_interval_of_two_seeds_is_wide():
    # mean 0.5, s = sqrt(0.005) = 0.070711, half-width 12.7062 * 0.070711 / sqrt(2) = 0.63531
    iv = t_interval([0.45, 0.55])
    assert iv.low == pytest.approx(0.5 - 0.63531, abs=1e-5) and iv.high == pytest.approx(0.5 + 0.63531, abs=1e-5)


def test_one_seed_has_a_mean_and_no_interval():
    iv = t_interval([0.52])
    assert iv.mean == 0.52 and iv.n == 1 and iv.method == "none"
    assert math.isnan(iv.std) and not iv.defined
    assert interval_text(iv) == "[–]"
    empty = t_interval([None, float("nan")])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_tied_seeds_give_a_zero_width_interval():
    iv = t_interval([0.5, 0.5, 0.5])
    assert iv.std == 0 and iv.low == iv.high == 0.5


def test_logit_interval_stays_inside_0_1_where_the_t_interval_does_not():
    values = [0.02, 0.03, 0.2]
    assert t_interval(values).low < 0
    low, high = logit_interval(values)
    # logits -3.8918, -3.4761, -1.3863: mean -2.9181, s = 1.3428, half 4.3027 * 1.3428 / sqrt(3) = 3.3357
    assert low == pytest.approx(1 / (1 + math.exp(2.9181 + 3.3357)), abs=1e-4)
    assert high == pytest.approx(1 / (1 + math.exp(2.9181 - 3.3357)), abs=1e-4)
    assert 0 < low < np.mean(values) < high < 1
    assert all(math.isnan(v) for v in logit_interval([0.5]))


def test_tables_take_the_logit_interval_for_ap_and_the_t_interval_otherwise():
    """One rule for a configuration's interval in tables, configs.csv and figures: AP/mAP on the logit scale."""
    values = [0.02, 0.03, 0.2]
    for metric in ("val/mAP", "val/AP_3", "val/mAP_full"):
        iv = metric_interval(values, metric)
        assert (iv.low, iv.high) == logit_interval(values) and iv.method == "logit t" and iv.mean == np.mean(values)
    plain = metric_interval(values, "train/loss")
    assert (plain.low, plain.high, plain.method) == (t_interval(values).low, t_interval(values).high, "t")
    assert metric_interval([0.5], "val/mAP").method == "none"


def test_paired_difference_over_shared_seeds():
    # per-seed differences 0.08, 0.06, 0.09: mean 0.076667, s = 0.015275,
    # half-width 4.3027 * 0.015275 / sqrt(3) = 0.037946 -> [0.038721, 0.114612]
    a = {1: 0.60, 2: 0.61, 3: 0.65}
    b = {1: 0.52, 2: 0.55, 3: 0.56}
    d = paired_difference(a, b)
    assert d.paired and d.n == 3 and d.seeds == (1, 2, 3)
    assert d.mean == pytest.approx(0.076667, abs=1e-6) and d.std == pytest.approx(0.015275, abs=1e-6)
    assert d.low == pytest.approx(0.038721, abs=1e-6) and d.high == pytest.approx(0.114612, abs=1e-6)
    assert difference_text(d) == "+0.077 [+0.039, +0.115] (paired t over 3 seeds)"
    # The same values unpaired: Welch, se = sqrt(0.0007/3 + 0.000433/3) = 0.019437, df = 3.79,
    # t(0.975, 3.79) = 2.8381, half-width 0.055163: wider than the paired interval.
    w = welch_difference(a.values(), b.values())
    assert w.method == "Welch" and w.mean == pytest.approx(0.076667, abs=1e-6)
    assert (w.high - w.low) / 2 == pytest.approx(0.055163, abs=1e-5) and w.high - w.low > d.high - d.low
    assert w.df == pytest.approx(3.79, abs=0.01) and w.se == pytest.approx(0.019437, abs=1e-6)


def test_unshared_seeds_fall_back_to_welch_and_partial_overlap_pairs_the_shared():
    welch = paired_difference({1: 0.60, 2: 0.61, 3: 0.65}, {4: 0.52, 5: 0.55, 6: 0.56})
    assert welch.method == "Welch" and welch.note == "fewer than two shared seeds"
    assert (welch.high - welch.low) / 2 == pytest.approx(0.055163, abs=1e-5)
    partial = paired_difference({1: 0.60, 2: 0.61, 3: 0.65}, {1: 0.52, 2: 0.55})
    assert partial.paired and partial.n == 2 and partial.mean == pytest.approx(0.07)  # (0.08 + 0.06) / 2
    assert partial.note == "1 value(s) of unshared seeds left out"
    repeated = paired_difference([(1, 0.6), (1, 0.7), (2, 0.5)], {1: 0.5, 2: 0.4})
    assert repeated.method == "Welch" and repeated.note == "a seed repeats within a configuration"


def test_difference_with_a_single_seed_has_no_interval():
    d = paired_difference({1: 0.60}, {1: 0.52})  # one shared seed: Welch with n = 1 on each side
    assert d.method == "none" and d.mean == pytest.approx(0.08) and not d.defined
    assert not p_above(d.mean, d.se, d.df) <= 0.025  # no interval, no test: never a verdict
    assert "no interval: n = 1 and 1" in difference_text(d)


def test_tied_configurations_have_a_zero_width_interval_and_no_test():
    d = paired_difference({1: 0.5, 2: 0.6, 3: 0.7}, {1: 0.5, 2: 0.6, 3: 0.7})
    assert d.mean == 0 and d.low == d.high == 0
    assert math.isnan(float(p_above(d.mean, d.se, d.df)))


def test_holm_adjusts_along_the_last_axis():
    # sorted 0.01, 0.03, 0.04: x3, x2, x1 = 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03])), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm(np.array([[0.01, np.nan], [0.2, 0.6]])), [[0.02, 1.0], [0.4, 0.6]])


def test_power_of_the_paired_t_test_from_the_noncentral_t():
    # d = 0.5: 34 seeds for 80% (one-sided 2.5%, df 33, ncp 0.5 * sqrt(34) = 2.9155); 18 seeds give 52%
    assert power(0.5, 1.0, 34) == pytest.approx(
        scipy_stats.nct.sf(scipy_stats.t.isf(0.025, 33), 33, 0.5 * math.sqrt(34)))
    assert power(0.5, 1.0, 34) == pytest.approx(0.8078, abs=1e-4) and power(0.5, 1.0, 33) < 0.8
    assert power(-0.5, 1.0, 18) == pytest.approx(0.5163, abs=1e-4)
    assert seeds_for(lambda n: power(0.5, 1.0, n)) == 34
    assert seeds_for(lambda n: power(1e-4, 1.0, n)) == 1001  # beyond the search: "more than 1000"
    assert seeds_for(lambda n: power(0.5, math.nan, n)) is None


def test_power_of_welchs_test_with_equal_seeds_on_each_side():
    # equal spreads: Welch's df is 2n - 2 and the ncp d * sqrt(n / 2): 17 per side for d = 1 (the textbook 80%)
    assert power(1.0, 1.0, 17, std_b=1.0) == pytest.approx(0.8070, abs=1e-4)
    assert seeds_for(lambda n: power(1.0, 1.0, n, std_b=1.0)) == 17
    # unequal spreads: the Satterthwaite df is below 2n - 2, so it needs more than the pooled test would
    assert power(1.0, 0.5, 10, std_b=1.5) < scipy_stats.nct.sf(scipy_stats.t.isf(0.025, 18), 18,
                                                               1.0 / math.sqrt((0.25 + 2.25) / 10))


def test_detectable_effect_equivalence_power_and_the_uncertain_spread():
    assert detectable_effect(1.0, 34) == pytest.approx(0.4950, abs=1e-4)
    assert power(detectable_effect(0.05, 3), 0.05, 3) == pytest.approx(0.8)
    assert math.isnan(detectable_effect(1.0, 1))
    # TOST, true difference 0, margin 0.5 sd: 44 seeds for 80%
    assert seeds_for(lambda n: equivalence_power(0.0, 1.0, n, 0.5)) == 44
    # chi-square interval of a 3-seed spread: s * sqrt(2 / 7.3778) to s * sqrt(2 / 0.050636)
    low, high = std_interval(1.0, 3)
    assert (low, high) == (pytest.approx(0.52066, abs=1e-5), pytest.approx(6.28473, abs=1e-5))
