"""vaebench.report.stats: hand-computed intervals, the probability of improvement, Bartlett's test, the t
quantile, refused inputs, and the intervals' coverage in simulation.

The expected numbers are worked out in the tests themselves (fractions where they are exact), not taken
from the module. Tables of t: t_{0.975, df} for df = 1, 2, 4, 6, 10, 16, 30, inf are the standard
two-sided 5 % critical values. Where a test says "both backends" it runs once with scipy (when
installed) and once with the module's own special functions (scipy hidden by monkeypatching).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from vaebench.report import special, stats
from vaebench.report.stats import aggregate, compare, compare_to_reference, homogeneity, p_improve, pooled_sd

try:
    import scipy.stats as sps
except ImportError:  # pragma: no cover
    sps = None

needs_scipy = pytest.mark.skipif(sps is None, reason="scipy not installed")


@pytest.fixture(params=["scipy", "own"])
def backend(request, monkeypatch):
    """Run the test with the module's own special functions (what the report uses), then through scipy's."""
    if request.param == "scipy":
        if sps is None:
            pytest.skip("scipy not installed")
        monkeypatch.setattr(special, "_scipy_stats", sps)
    else:
        monkeypatch.setattr(special, "_scipy_stats", None)
    return request.param


# --- t quantile ----------------------------------------------------------------------------------

T_TABLE = [(1, 12.706205), (2, 4.302653), (4, 2.776445), (6, 2.446912), (10, 2.228139), (16, 2.119905),
           (30, 2.042272), (math.inf, 1.959964)]


@pytest.mark.parametrize("df, expected", T_TABLE)
def test_t_quantile_table(backend, df, expected):
    assert stats.t_quantile(0.975, df) == pytest.approx(expected, abs=1e-6)
    assert stats.t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-6)  # symmetry


@needs_scipy
def test_own_t_quantile_and_chi2_sf_match_scipy():
    """Fractional df (Welch's) and both tails, against scipy to 1e-9 relative."""
    for df in (1.0, 1.7, 2.0, 50 / 17, 4.0, 10.0, 30.0, 200.0, 1e4):
        for p in (0.005, 0.025, 0.3, 0.6, 0.9, 0.975, 0.995):
            assert special._t_quantile_own(p, df) == pytest.approx(sps.t.ppf(p, df), rel=1e-9), (p, df)
    for df in (1, 2, 3, 7, 20):
        for x in (0.01, 0.5, 1.0, 2.0, 5.0, 15.0, 40.0):
            assert special._chi2_sf_own(x, df) == pytest.approx(sps.chi2.sf(x, df), rel=1e-9, abs=1e-300), (x, df)


def test_t_quantile_refuses_bad_arguments():
    for p, df in ((0.0, 3), (1.0, 3), (0.975, 0)):
        with pytest.raises(ValueError):
            stats.t_quantile(p, df)


# --- one cell ------------------------------------------------------------------------------------


def test_aggregate_by_hand():
    agg = aggregate([90.0, 91.0, 92.5])
    mean = 273.5 / 3  # 91.1666...
    # deviations from the mean: -7/6, -1/6, +8/6; sum of squares (49 + 1 + 64)/36 = 19/6; / (n - 1) = 19/12
    sd = math.sqrt(19 / 12)
    half = 4.302653 * sd / math.sqrt(3)  # t_{0.975, 2} sd / sqrt(n) = 4.302653 sqrt(19)/6 = 3.125800...
    assert agg.n == 3
    assert agg.mean == pytest.approx(mean, abs=1e-12)
    assert agg.sd == pytest.approx(sd, abs=1e-12)
    assert agg.lo == pytest.approx(mean - half, abs=1e-6)
    assert agg.hi == pytest.approx(mean + half, abs=1e-6)
    assert agg.method == "t, 2 df"
    assert agg.text() == "91.17 ± 1.26 [88.04, 94.29] (n = 3)"


def test_aggregate_level_changes_quantile():
    agg = aggregate([90.0, 91.0, 92.5], level=0.90)
    half = 2.919986 * math.sqrt(19 / 12) / math.sqrt(3)  # t_{0.95, 2} = 2.919986
    assert agg.hi - agg.mean == pytest.approx(half, abs=1e-6)


def test_aggregate_one_seed_has_no_interval():
    agg = aggregate([95.0])
    assert agg.mean == 95.0 and agg.n == 1
    assert math.isnan(agg.sd) and math.isnan(agg.lo) and math.isnan(agg.hi)
    assert agg.method == "n = 1: no interval"
    assert agg.text() == "95.00 (n = 1)"


# --- refused inputs ------------------------------------------------------------------------------


def test_nan_and_empty_are_refused_with_their_position():
    with pytest.raises(ValueError, match=r"values\[1\] = nan"):
        aggregate([90.0, float("nan"), 91.0])
    with pytest.raises(ValueError, match=r"values\[0\] = inf"):
        aggregate([float("inf"), 1.0])
    with pytest.raises(ValueError, match="empty"):
        aggregate([])
    with pytest.raises(ValueError, match=r"cvae z=2\[2\] = nan"):
        compare([1.0, 2.0, 3.0], [1.0, 2.0, float("nan")], "vae z=2", "cvae z=2")
    with pytest.raises(ValueError, match=r"vae z=2 is empty"):
        compare([], [1.0, 2.0], "vae z=2", "cvae z=2")
    with pytest.raises(ValueError, match=r"groups\[1\]\[0\] = nan"):
        pooled_sd([[1.0, 2.0], [float("nan"), 2.0]])
    with pytest.raises(ValueError, match=r"groups\[0\] is empty"):
        homogeneity([[], [1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match=r"reference"):
        compare_to_reference([1.0, 2.0], float("nan"), "vae", "thesis")


def test_paired_needs_equal_lengths_and_excludes_pooled():
    with pytest.raises(ValueError, match="same seeds"):
        compare([1.0, 2.0, 3.0], [1.0, 2.0], "a", "b", paired=True)
    with pytest.raises(ValueError, match="not both"):
        compare([1.0, 2.0], [1.0, 2.0], "a", "b", paired=True, pooled=(1.0, 4))


# --- comparisons by hand -------------------------------------------------------------------------


def test_welch_equal_variances_by_hand():
    c = compare([1.0, 2.0, 3.0], [5.0, 6.0, 7.0], "A", "B")
    # variances 1 and 1; se^2 = 1/3 + 1/3 = 2/3; df = (2/3)^2 / ((1/3)^2/2 + (1/3)^2/2) = (4/9)/(1/9) = 4
    half = 2.776445 * math.sqrt(2 / 3)  # 2.266953...
    assert c.diff == pytest.approx(-4.0)
    assert c.df == pytest.approx(4.0, abs=1e-12)
    assert (c.lo, c.hi) == pytest.approx((-4.0 - half, -4.0 + half), abs=1e-6)
    assert c.method == "Welch"
    assert c.verdict == "A lower by 4.00 (resolved at n = 3)"
    assert c.p_improve == 1.0


def test_welch_unequal_variances_by_hand():
    c = compare([1.0, 2.0, 3.0], [4.0, 6.0, 8.0], "A", "B")
    # variances 1 and 4; se^2 = 1/3 + 4/3 = 5/3
    # df = (5/3)^2 / ((1/3)^2/2 + (4/3)^2/2) = (25/9) / (17/18) = 50/17 = 2.941176...
    # t_{0.975, 50/17} = 3.218758614532882 (scipy.stats.t.ppf(0.975, 50/17), scipy 1.17.1)
    half = 3.2187586145 * math.sqrt(5 / 3)  # 4.155399...
    assert c.df == pytest.approx(50 / 17, abs=1e-12)
    assert (c.lo, c.hi) == pytest.approx((-4.0 - half, -4.0 + half), abs=1e-6)
    assert c.verdict == "not resolved at n = 3: the interval includes 0"


def test_pooled_by_hand():
    family = [[1.0, 2.0, 3.0], [5.0, 6.0, 7.0], [4.0, 6.0, 8.0]]
    # within-cell sums of squares 2, 2, 8 over 2 + 2 + 2 df: s_p^2 = 12/6 = 2
    sd, df = pooled_sd(family)
    assert sd == pytest.approx(math.sqrt(2.0), abs=1e-12) and df == 6
    c = compare(family[0], family[2], "A", "B", pooled=(sd, df))
    # se = sqrt(2) sqrt(1/3 + 1/3) = sqrt(4/3); t_{0.975, 6} = 2.446912
    half = 2.446912 * math.sqrt(4 / 3)  # 2.825451...
    assert (c.lo, c.hi) == pytest.approx((-4.0 - half, -4.0 + half), abs=1e-6)
    assert c.df == 6 and c.method == "pooled (family sd, 6 df)"
    # the same two cells are not resolved by Welch (previous test): pooling bought the df
    assert c.verdict == "A lower by 4.00 (resolved at n = 3)"


def test_pooled_sd_one_seed_cells_add_no_df():
    sd, df = pooled_sd([[1.0, 2.0, 3.0], [10.0]])
    assert (sd, df) == (pytest.approx(1.0), 2)
    with pytest.raises(ValueError, match="degrees of freedom"):
        pooled_sd([[1.0], [2.0]])


def test_paired_by_hand():
    a, b = [10.0, 12.0, 11.0], [9.0, 11.2, 10.1]
    c = compare(a, b, "A", "B", paired=True)
    # differences 1.0, 0.8, 0.9: mean 0.9; deviations 0.1, -0.1, 0: sum of squares 0.02 / 2 = 0.01, sd 0.1
    half = 4.302653 * 0.1 / math.sqrt(3)  # 0.248414...
    assert c.diff == pytest.approx(0.9, abs=1e-12)
    assert (c.lo, c.hi) == pytest.approx((0.9 - half, 0.9 + half), abs=1e-6)
    assert c.df == 2 and c.method == "paired by seed"
    assert c.verdict == "B lower by 0.90 (resolved at n = 3)"
    assert c.p_improve == 0.0  # B lower on every seed
    # unpaired, the seed-to-seed spread (sd 1 and 1.1) swamps the 0.9: pairing is what resolves it
    assert compare(a, b, "A", "B").verdict == "not resolved at n = 3: the interval includes 0"


def test_compare_to_reference_by_hand():
    c = compare_to_reference([98.5, 98.0, 99.1], 98.5, "vae z=2", "thesis")
    # mean 295.6/3 = 98.5333...; deviations -1/30, -16/30, 17/30: sum of squares 546/900, variance 273/900
    mean = 295.6 / 3
    half = 4.302653 * (math.sqrt(273) / 30) / math.sqrt(3)
    assert c.diff == pytest.approx(mean - 98.5, abs=1e-12)
    assert (c.lo, c.hi) == pytest.approx((mean - 98.5 - half, mean - 98.5 + half), abs=1e-6)
    assert c.p_improve == pytest.approx(0.5)  # 98.5 ties (1/2), 98.0 better (1), 99.1 worse (0)
    assert c.b == "thesis" and c.method == "one-sample t"
    pooled = compare_to_reference([98.5, 98.0, 99.1], 98.5, "vae z=2", "thesis", pooled=(0.5, 16))
    half_pooled = 2.119905 * 0.5 / math.sqrt(3)  # t_{0.975, 16} s_p / sqrt(n)
    assert pooled.hi - pooled.diff == pytest.approx(half_pooled, abs=1e-6)


def test_one_seed_sides():
    c = compare([1.0], [2.0, 3.0, 4.0], "A", "B")
    assert math.isnan(c.lo) and math.isnan(c.hi) and math.isnan(c.df)
    assert c.verdict == "not resolved (n = 1)"
    # with the family's sd an interval exists: se = 1 * sqrt(1/1 + 1/3)
    c = compare([1.0], [2.0, 3.0, 4.0], "A", "B", pooled=(1.0, 16))
    assert c.hi - c.diff == pytest.approx(2.119905 * math.sqrt(4 / 3), abs=1e-6)
    assert compare([1.0], [2.0], "A", "B", paired=True).verdict == "not resolved (n = 1)"


def test_zero_spread_gives_the_point():
    c = compare([1.0, 1.0, 1.0], [2.0, 2.0, 2.0], "A", "B")
    assert (c.lo, c.hi, c.df) == (-1.0, -1.0, math.inf)
    assert c.verdict == "A lower by 1.00 (resolved at n = 3)"


def test_higher_is_better_names_the_winner():
    c = compare([1.0, 2.0, 3.0], [5.0, 6.0, 7.0], "A", "B", lower_is_better=False)
    assert c.verdict == "B higher by 4.00 (resolved at n = 3)"
    assert c.p_improve == 0.0


def test_p_improve_hand_counted_with_a_tie():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0]
    # lower is better: (1,2) 1, (1,4) 1, (2,2) tie 1/2, (2,4) 1, (3,2) 0, (3,4) 1 -> 4.5 / 6
    assert p_improve(a, b) == pytest.approx(0.75)
    # higher is better: (1,2) 0, (1,4) 0, (2,2) 1/2, (2,4) 0, (3,2) 1, (3,4) 0 -> 1.5 / 6
    assert p_improve(a, b, lower_is_better=False) == pytest.approx(0.25)
    # paired, per seed: 1 < 1.5 (1), 2 = 2 (1/2), 3 > 2.5 (0) -> 1.5 / 3
    assert p_improve(a, [1.5, 2.0, 2.5], paired=True) == pytest.approx(0.5)
    assert compare(a, b, "A", "B").p_improve == pytest.approx(0.75)


# --- homogeneity ---------------------------------------------------------------------------------


def test_bartlett_by_hand(backend):
    h = homogeneity([[1.0, 2.0, 3.0], [5.0, 6.0, 7.0], [4.0, 6.0, 8.0]])
    # variances 1, 1, 4; k = 3, N - k = 6, s_p^2 = 2
    # numerator 6 ln 2 - (2 ln 1 + 2 ln 1 + 2 ln 4) = 2 ln 2
    # correction 1 + (3 * 1/2 - 1/6) / (3 * 2) = 11/9  ->  T = 18 ln 2 / 11
    # chi-square with 2 df: P(X > T) = exp(-T/2) = 2^(-9/11)
    assert h.statistic == pytest.approx(18 * math.log(2) / 11, rel=1e-12)
    assert h.p_value == pytest.approx(2 ** (-9 / 11), rel=1e-9)
    assert h.df == 2 and h.passed and h.sd_ratio == pytest.approx(2.0)
    assert h.method == "Bartlett, 2 df, 3 cells; largest/smallest sd = 2.00"


def test_bartlett_equal_variances_pass(backend):
    h = homogeneity([[0.0, 1.0, 2.0], [10.0, 11.0, 12.0], [5.0, 6.0, 7.0], [3.0, 4.0, 5.0]])
    assert h.statistic == pytest.approx(0.0, abs=1e-9)
    assert h.p_value == pytest.approx(1.0, abs=1e-6) and h.passed


def test_bartlett_unequal_variances_fail(backend):
    groups = [[0.0, 0.1, 0.2]] * 4 + [[0.0, 3.0, 6.0]] * 4  # sds 0.1 and 3.0
    h = homogeneity(groups)
    assert h.p_value < 1e-4 and not h.passed  # T = 36.5 on 7 df, p ~ 6e-6
    assert type(h.passed) is bool and type(h.p_value) is float
    assert h.sd_ratio == pytest.approx(30.0)


@needs_scipy
def test_own_bartlett_matches_scipy():
    rng = np.random.default_rng(7)
    for _ in range(20):
        groups = [rng.normal(0.0, s, 3) for s in rng.uniform(0.2, 3.0, 6)]
        ref = sps.bartlett(*groups)
        assert stats._bartlett_own(groups) == pytest.approx(ref.statistic, rel=1e-10)
        assert special._chi2_sf_own(ref.statistic, 5) == pytest.approx(ref.pvalue, rel=1e-9)


def test_bartlett_zero_spread_and_one_seed_cells():
    h = homogeneity([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
    assert h.statistic == math.inf and h.p_value == 0.0 and not h.passed
    h = homogeneity([[1.0, 2.0, 3.0], [5.0], [4.0, 6.0, 8.0]])  # the one-seed cell is left out
    assert h.df == 1
    with pytest.raises(ValueError, match="two or more cells"):
        homogeneity([[1.0, 2.0, 3.0], [5.0]])


# --- coverage in simulation ----------------------------------------------------------------------

REPS, N = 2000, 3


def _welch_case(rng):
    """Unequal true sds (1 and 3), true difference -1."""
    return compare(rng.normal(0.0, 1.0, N), rng.normal(1.0, 3.0, N), "a", "b"), -1.0


def _pooled_case(rng):
    """A family of 8 cells with different means and one sd (2); cells 0 and 2 compared; true difference -2."""
    means = np.arange(8.0)
    family = rng.normal(means[:, None], 2.0, (8, N))
    return compare(family[0], family[2], "a", "b", pooled=pooled_sd(family)), -2.0


def _paired_case(rng):
    """A shared seed effect (sd 3) plus independent noise (sd 0.5, 0.7): correlation ~0.96; true difference 0.4."""
    seed_effect = rng.normal(0.0, 3.0, N)
    a = 0.4 + seed_effect + rng.normal(0.0, 0.5, N)
    b = seed_effect + rng.normal(0.0, 0.7, N)
    return compare(a, b, "a", "b", paired=True), 0.4


def _reference_case(rng):
    """One cell (sd 1.5) against an exact published number; true difference 0.3."""
    return compare_to_reference(rng.normal(98.8, 1.5, N), 98.5, "a", "ref"), 0.3


CASES = {"welch": _welch_case, "pooled": _pooled_case, "paired": _paired_case, "reference": _reference_case}


def _coverage(case) -> float:
    rng = np.random.default_rng(20240601)
    hits = 0
    for _ in range(REPS):
        c, truth = case(rng)
        hits += c.lo <= truth <= c.hi
    return hits / REPS


@pytest.mark.parametrize("name", list(CASES))
def test_coverage_is_nominal(name):
    cov = _coverage(CASES[name])
    print(f"coverage {name}: {cov:.4f}")
    assert 0.93 <= cov <= 0.97, cov


@pytest.mark.parametrize("name", ["welch", "paired", "reference"])
def test_naive_normal_quantile_undercovers(name, monkeypatch):
    """1.96 in place of t at n = 3 covers ~81-88 %: the coverage test can tell a wrong quantile apart."""
    monkeypatch.setattr(stats, "t_quantile", lambda p, df: NormalDist().inv_cdf(p))
    cov = _coverage(CASES[name])
    print(f"naive coverage {name}: {cov:.4f}")
    assert cov < 0.90, cov


def test_pooled_with_the_cells_own_df_overcovers(monkeypatch):
    """Pooling with 1.96 would cover ~93 % (16 df is near normal), so the pooled case is checked for the
    other mistake: the cells' own n_a + n_b - 2 = 4 df in place of the family's 16 covers ~99 %."""
    true_quantile = stats.t_quantile
    monkeypatch.setattr(stats, "t_quantile", lambda p, df: true_quantile(p, 4))
    cov = _coverage(CASES["pooled"])
    print(f"pooled with 4 df: {cov:.4f}")
    assert cov > 0.97, cov
