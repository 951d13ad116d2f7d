"""Intervals over seeds, paired and Welch differences and seeds needed, against numbers worked out by hand.

t quantiles used below (two-sided 95%): t(0.975, 1) = 12.7062, t(0.975, 2) = 4.3027.
"""

import math

import pytest

from analysis.stats import (
    Difference,
    bootstrap_interval,
    difference_text,
    interval,
    interval_text,
    paired_difference,
    seeds_needed,
    t_interval,
    welch_difference,
)


def test_t_interval_of_three_seeds():
    # mean 0.3, s = 0.1, half-width 4.3027 * 0.1 / sqrt(3) = 0.24841 -> [0.05159, 0.54841]
    iv = t_interval([0.2, 0.3, 0.4])
    assert (iv.mean, iv.std, iv.n, iv.method) == (pytest.approx(0.3), pytest.approx(0.1), 3, "t")
    assert iv.low == pytest.approx(0.05159, abs=1e-5) and iv.high == pytest.approx(0.54841, abs=1e-5)
    assert iv.half_width == pytest.approx(0.24841, abs=1e-5)
    assert interval_text(iv) == "[0.052, 0.548]" and iv.excludes_zero()


def test_t_interval_of_two_seeds_is_wide():
    # mean 0.5, s = sqrt(0.005) = 0.070711, half-width 12.7062 * 0.070711 / sqrt(2) = 0.63531
    iv = t_interval([0.45, 0.55])
    assert iv.low == pytest.approx(0.5 - 0.63531, abs=1e-5) and iv.high == pytest.approx(0.5 + 0.63531, abs=1e-5)
    assert not iv.excludes_zero()


def test_one_seed_has_a_mean_and_no_interval():
    iv = t_interval([0.52])
    assert iv.mean == 0.52 and iv.n == 1 and iv.method == "none"
    assert math.isnan(iv.std) and not iv.defined and not iv.excludes_zero()
    assert interval_text(iv) == "[–]"
    empty = t_interval([None, float("nan")])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_tied_seeds_give_a_zero_width_interval():
    iv = t_interval([0.5, 0.5, 0.5])
    assert iv.std == 0 and iv.low == iv.high == 0.5


def test_bootstrap_only_from_ten_seeds_in_auto_mode():
    assert interval([0.2, 0.3, 0.4], method="auto").method == "t"
    values = [0.1 * k for k in range(10)]
    boot = interval(values, method="auto")
    assert boot.method == "bootstrap" and boot.low < 0.45 < boot.high
    assert boot == bootstrap_interval(values)  # fixed resampling seed: reproducible
    with pytest.raises(ValueError):
        interval(values, method="jackknife")


def test_paired_difference_over_shared_seeds():
    # per-seed differences 0.08, 0.06, 0.09: mean 0.076667, s = 0.015275,
    # half-width 4.3027 * 0.015275 / sqrt(3) = 0.037946 -> [0.038721, 0.114612]
    a = {1: 0.60, 2: 0.61, 3: 0.65}
    b = {1: 0.52, 2: 0.55, 3: 0.56}
    d = paired_difference(a, b)
    assert d.paired and d.n == 3 and d.seeds == (1, 2, 3)
    assert d.mean == pytest.approx(0.076667, abs=1e-6) and d.std == pytest.approx(0.015275, abs=1e-6)
    assert d.low == pytest.approx(0.038721, abs=1e-6) and d.high == pytest.approx(0.114612, abs=1e-6)
    assert d.excludes_zero()
    assert difference_text(d) == "+0.077 [+0.039, +0.115] (paired t over 3 seeds)"
    # The same values unpaired: Welch, se = sqrt(0.0007/3 + 0.000433/3) = 0.019437, df = 3.79,
    # t(0.975, 3.79) = 2.8381, half-width 0.055163: wider than the paired interval.
    w = welch_difference(a.values(), b.values())
    assert w.method == "Welch" and w.mean == pytest.approx(0.076667, abs=1e-6)
    assert w.half_width == pytest.approx(0.055163, abs=1e-5) and w.half_width > d.half_width


def test_unshared_seeds_fall_back_to_welch_and_partial_overlap_pairs_the_shared():
    welch = paired_difference({1: 0.60, 2: 0.61, 3: 0.65}, {4: 0.52, 5: 0.55, 6: 0.56})
    assert welch.method == "Welch" and welch.note == "fewer than two shared seeds"
    assert welch.half_width == pytest.approx(0.055163, abs=1e-5)
    partial = paired_difference({1: 0.60, 2: 0.61, 3: 0.65}, {1: 0.52, 2: 0.55})
    assert partial.paired and partial.n == 2 and partial.mean == pytest.approx(0.07)  # (0.08 + 0.06) / 2
    assert partial.note == "1 value(s) of unshared seeds left out"
    repeated = paired_difference([(1, 0.6), (1, 0.7), (2, 0.5)], {1: 0.5, 2: 0.4})
    assert repeated.method == "Welch" and repeated.note == "a seed repeats within a configuration"


def test_difference_with_a_single_seed_has_no_interval():
    d = paired_difference({1: 0.60}, {1: 0.52})  # one shared seed: Welch with n = 1 on each side
    assert d.method == "none" and d.mean == pytest.approx(0.08) and not d.defined
    assert seeds_needed(d) is None
    assert "no interval: n = 1 and 1" in difference_text(d)


def test_tied_configurations_are_not_separable_and_need_no_seed_count():
    d = paired_difference({1: 0.5, 2: 0.6, 3: 0.7}, {1: 0.5, 2: 0.6, 3: 0.7})
    assert d.mean == 0 and d.low == d.high == 0 and not d.excludes_zero()
    assert seeds_needed(d) is None


def test_seeds_needed_at_the_observed_spread():
    # paired: smallest n with t(n-1) * 0.05 / sqrt(n) < 0.02, i.e. t(n-1)/sqrt(n) < 0.4:
    # n = 26: 2.0595 / 5.0990 = 0.4039; n = 27: 2.0555 / 5.1962 = 0.3956 -> 27
    d = Difference(0.02, 0.05, 3, -0.1, 0.14, "paired t")
    assert seeds_needed(d) == 27
    assert seeds_needed(Difference(-0.02, 0.05, 3, -0.14, 0.1, "paired t")) == 27  # the sign does not matter
    assert seeds_needed(Difference(0.02, 0.0, 3, 0.02, 0.02, "paired t")) == 2  # no spread: two seeds
    assert seeds_needed(Difference(1e-6, 1.0, 3, -1, 1, "paired t"), max_n=50) == 51  # beyond the limit
    assert seeds_needed(Difference(0.02, math.nan, 1, math.nan, math.nan, "none")) is None
