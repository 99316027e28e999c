"""queries.stats: hand-worked cases, cross-checks against scipy/statsmodels, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.proportion import proportions_ztest

from queries.stats import (
    correlation_from_sums,
    mean_ci,
    pearson,
    relative_weights,
    t_margin,
    two_proportion_z,
    welch_t,
    wilson,
)

Z = 1.959963984540054
T3 = 3.182446305284263  # t(0.975, 3), the textbook table value
T7 = 2.364624251592785  # t(0.975, 7)

# --------------------------------------------------------------------------
# Hand-worked cases
# --------------------------------------------------------------------------


def test_t_margin_by_hand() -> None:
    assert t_margin(0, 1.0) is None
    assert t_margin(1, 1.0) is None
    assert t_margin(5, None) is None
    # n = 4, sd = 2: t(0.975, 3) x 2 / sqrt(4) = 3.1824...
    assert t_margin(4, 2.0) == pytest.approx(T3 * 2 / 2, rel=1e-12)
    assert t_margin(4, 0.0) == 0.0
    assert t_margin(4, 2.0, confidence=0.9) == pytest.approx(2.353363434801823, rel=1e-12)
    with pytest.raises(ValueError):
        t_margin(4, 2.0, confidence=1.0)


def test_mean_ci_by_hand() -> None:
    # 2, 4, 4, 4, 5, 5, 7, 9: n 8, sum 40, sum of squares 4+16+16+16+25+25+49+81 = 232.
    ci = mean_ci(8, 40, 232)
    sd = math.sqrt((232 - 8 * 5**2) / 7)  # sqrt(32 / 7)
    assert ci.mean == 5
    assert ci.sd == pytest.approx(sd, rel=1e-12)
    assert ci.moe == pytest.approx(T7 * sd / math.sqrt(8), rel=1e-12)
    assert (ci.low, ci.high) == pytest.approx((5 - ci.moe, 5 + ci.moe))
    assert ci.n == 8


def test_mean_ci_degenerate() -> None:
    assert mean_ci(0, 0, 0) == mean_ci(0, 0.0, 0.0)
    empty = mean_ci(0, 0, 0)
    assert (empty.mean, empty.sd, empty.n, empty.moe, empty.low, empty.high) == (
        None, None, 0, None, None, None)
    one = mean_ci(1, 7.5, 56.25)
    assert (one.mean, one.sd, one.moe, one.low, one.high) == (7.5, None, None, None, None)
    # All equal (5, 5, 5): sum 15, squares 75, no spread: the interval is the point.
    flat = mean_ci(3, 15, 75)
    assert (flat.mean, flat.sd, flat.moe, flat.low, flat.high) == (5, 0, 0, 5, 5)
    # Large equal values whose sums lose a bit to rounding never give a negative variance.
    big = mean_ci(3, 3 * 1234567.89, 3 * 1234567.89**2)
    assert big.sd is not None and big.sd < 1e-3


def test_wilson_by_hand() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    # 0 of 10: centre = (z^2/20) / (1 + z^2/10) = half, so low 0 and high (z^2/10)/(1 + z^2/10).
    lo, hi = wilson(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx((Z**2 / 10) / (1 + Z**2 / 10), rel=1e-12)
    # 5 of 10 is symmetric about 1/2.
    lo, hi = wilson(5, 10)
    assert lo + hi == pytest.approx(1.0)
    half = Z * math.sqrt(0.25 / 10 + Z**2 / 400) / (1 + Z**2 / 10)
    assert hi - lo == pytest.approx(2 * half, rel=1e-12)


def test_two_proportion_z_by_hand() -> None:
    # 60/100 against 40/100: pooled 0.5, se = sqrt(0.25 x 0.02) = 0.0707..., z = 2.828...
    res = two_proportion_z(60, 100, 40, 100)
    assert res.diff == pytest.approx(0.2)
    assert res.z == pytest.approx(0.2 / math.sqrt(0.25 * 0.02), rel=1e-12)
    assert res.p == pytest.approx(2 * sps.norm.sf(0.2 / math.sqrt(0.005)), rel=1e-9)
    assert res.significant is True
    # Ties: same share in both groups.
    tie = two_proportion_z(3, 10, 6, 20)
    assert tie.diff == 0 and tie.z == 0 and tie.p == pytest.approx(1.0)
    assert tie.significant is False
    # No variance at all (0% and 0%): no z, not significant.
    none = two_proportion_z(0, 10, 0, 20)
    assert (none.diff, none.z, none.p, none.significant) == (0.0, None, None, False)
    empty = two_proportion_z(0, 0, 1, 2)
    assert (empty.diff, empty.z, empty.significant) == (None, None, None)


def test_welch_t_by_hand() -> None:
    # Means 10 and 7, variances 4 and 9, n 5 and 10: v/n = 0.8 and 0.9, se = sqrt(1.7),
    # df = 1.7^2 / (0.8^2/4 + 0.9^2/9) = 2.89 / 0.25 = 11.56.
    res = welch_t(10, 4, 5, 7, 9, 10)
    se = math.sqrt(1.7)
    assert res.diff == 3
    assert res.t == pytest.approx(3 / se, rel=1e-12)
    assert res.df == pytest.approx(11.56, rel=1e-12)
    assert res.statistic == res.t
    tcrit = sps.t.ppf(0.975, 11.56)
    assert (res.low, res.high) == pytest.approx((3 - tcrit * se, 3 + tcrit * se), rel=1e-12)
    assert res.p == pytest.approx(2 * sps.t.sf(3 / se, 11.56), rel=1e-9)
    assert res.significant is True


def test_welch_t_degenerate() -> None:
    assert welch_t(1.0, 0.0, 1, 2.0, 1.0, 5).p is None  # one observation: no variance
    assert welch_t(1.0, None, 1, 2.0, 1.0, 5).diff == -1.0
    assert welch_t(None, None, 0, 2.0, 1.0, 5).diff is None
    # All-equal groups: an exact difference, or none.
    exact = welch_t(5.0, 0.0, 3, 3.0, 0.0, 4)
    assert exact.t == math.inf and exact.p == 0.0 and exact.significant is True
    same = welch_t(5.0, 0.0, 3, 5.0, 0.0, 4)
    assert same.t is None and same.significant is False


def test_pearson_by_hand() -> None:
    # x 1..5, y 2,4,5,4,5: dx -2..2, dy -2,0,1,0,1: Sxy = 4+0+0+0+2 = 6, Sxx = 10, Syy = 6.
    c = pearson([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])
    r = 6 / math.sqrt(10 * 6)
    assert c.n == 5
    assert c.r == pytest.approx(r, rel=1e-12)
    assert c.slope == pytest.approx(0.6) and c.intercept == pytest.approx(4 - 0.6 * 3)
    half = Z / math.sqrt(5 - 3)
    assert c.low == pytest.approx(math.tanh(math.atanh(r) - half), rel=1e-9)
    assert c.high == pytest.approx(math.tanh(math.atanh(r) + half), rel=1e-9)
    t = r * math.sqrt(3 / (1 - r * r))
    assert c.p == pytest.approx(2 * sps.t.sf(t, 3), rel=1e-9)
    assert c.significant is False


def test_pearson_degenerate() -> None:
    assert pearson([], []).r is None and pearson([], []).n == 0
    three = pearson([1, 2, 3], [1, 2, 4])  # a line but no interval below 4 points
    assert three.r is None and three.low is None and three.slope == pytest.approx(1.5)
    flat_y = pearson([1, 2, 3, 4], [3, 3, 3, 3])
    assert flat_y.r is None and flat_y.slope == 0 and flat_y.intercept == 3
    flat_x = pearson([2, 2, 2, 2], [1, 2, 3, 4])
    assert flat_x.r is None and flat_x.slope is None
    perfect = pearson([1, 2, 3, 4], [2, 4, 6, 8])
    assert (perfect.r, perfect.low, perfect.high, perfect.p) == (1.0, 1.0, 1.0, 0.0)
    # Missing values drop their pair: back to the hand case above.
    gaps = pearson([1, 2, 3, np.nan, 4, 5, 6], [2, 4, 5, 1, 4, 5, np.nan])
    assert gaps.n == 5 and gaps.r == pytest.approx(6 / math.sqrt(60))
    with pytest.raises(ValueError):
        pearson([1, 2], [1, 2, 3])


def test_correlation_from_sums_by_hand() -> None:
    # Columns x = 1, 2, 3 and y = 2, 2, 5: sums 6 and 9; Sxx 14, Sxy 2+4+15 = 21, Syy 33.
    m = correlation_from_sums(3, [6, 9], [[14, 21], [21, 33]])
    assert m.mean == pytest.approx([2, 3])
    # cov = (S_ij - S_i S_j / n) / (n - 1): (14-12)/2 = 1, (21-18)/2 = 1.5, (33-27)/2 = 3.
    assert m.cov == pytest.approx(np.array([[1, 1.5], [1.5, 3]]))
    assert m.corr[0, 1] == pytest.approx(1.5 / math.sqrt(3))
    assert np.diag(m.corr) == pytest.approx([1, 1])
    constant = correlation_from_sums(3, [6, 3], [[14, 6], [6, 3]])  # y = 1, 1, 1
    assert np.isnan(constant.corr[0, 1]) and np.isnan(constant.corr[1, 1])
    with pytest.raises(ValueError):
        correlation_from_sums(1, [1], [[1]])


def test_relative_weights_by_hand() -> None:
    # Orthogonal predictors: Lambda = I, weights = squared correlations.
    rw = relative_weights(np.eye(3), [0.5, 0.3, -0.1])
    assert rw.weights == pytest.approx((0.25, 0.09, 0.01))
    assert rw.r_squared == pytest.approx(0.35)
    assert rw.rescaled == pytest.approx((0.25 / 0.35 * 100, 0.09 / 0.35 * 100, 0.01 / 0.35 * 100))
    # Two predictors correlated 0.5, each correlated 0.6 with y:
    # R^2 = (a^2 + b^2 - 2 rho a b) / (1 - rho^2) = (0.36 + 0.36 - 0.36) / 0.75 = 0.48,
    # split evenly by symmetry.
    rw = relative_weights([[1, 0.5], [0.5, 1]], [0.6, 0.6])
    assert rw.r_squared == pytest.approx(0.48)
    assert rw.weights == pytest.approx((0.24, 0.24))
    assert rw.rescaled == pytest.approx((50, 50))
    # The same pair with unequal correlations: R^2 = (0.36 + 0.09 - 0.18) / 0.75 = 0.36.
    rw = relative_weights([[1, 0.5], [0.5, 1]], [0.6, 0.3])
    assert rw.r_squared == pytest.approx(0.36)
    assert rw.weights[0] > rw.weights[1] > 0
    assert relative_weights(np.zeros((0, 0)), []).weights == ()
    with pytest.raises(ValueError):
        relative_weights([[1, np.nan], [np.nan, 1]], [0.1, 0.2])


# --------------------------------------------------------------------------
# Cross-checks against scipy and statsmodels
# --------------------------------------------------------------------------


def test_welch_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for n1, n2 in [(5, 8), (30, 12), (200, 150)]:
        a = rng.normal(10, 3, n1)
        b = rng.normal(9, 6, n2)
        ref = sps.ttest_ind(a, b, equal_var=False)
        ci = ref.confidence_interval()
        res = welch_t(a.mean(), a.var(ddof=1), n1, b.mean(), b.var(ddof=1), n2)
        assert res.t == pytest.approx(ref.statistic, rel=1e-9)
        assert res.df == pytest.approx(ref.df, rel=1e-9)
        assert res.p == pytest.approx(ref.pvalue, rel=1e-7)
        assert (res.low, res.high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_two_proportion_z_matches_statsmodels() -> None:
    for h1, n1, h2, n2 in [(60, 100, 40, 100), (7, 31, 19, 44), (120, 400, 95, 410)]:
        z, p = proportions_ztest([h1, h2], [n1, n2])
        res = two_proportion_z(h1, n1, h2, n2)
        assert res.z == pytest.approx(z, rel=1e-9)
        assert res.p == pytest.approx(p, rel=1e-9)


def test_mean_ci_matches_scipy() -> None:
    x = np.random.default_rng(5).lognormal(3, 0.7, 57)
    ci = mean_ci(len(x), x.sum(), (x * x).sum())
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert (ci.low, ci.high) == pytest.approx((lo, hi), rel=1e-9)
    assert ci.sd == pytest.approx(x.std(ddof=1), rel=1e-9)


def test_wilson_matches_statsmodels() -> None:
    from statsmodels.stats.proportion import proportion_confint

    for hits, n in [(0, 10), (3, 17), (250, 260), (40, 40)]:
        ref = proportion_confint(hits, n, alpha=0.05, method="wilson")
        assert wilson(hits, n) == pytest.approx(ref, abs=1e-12)


def test_pearson_matches_scipy() -> None:
    rng = np.random.default_rng(7)
    for n in (4, 12, 300):
        x = rng.normal(size=n)
        y = 0.5 * x + rng.normal(size=n)
        ref = sps.pearsonr(x, y)
        ci = ref.confidence_interval()
        c = pearson(x, y)
        assert c.r == pytest.approx(ref.statistic, rel=1e-9)
        assert c.p == pytest.approx(ref.pvalue, rel=1e-6)
        assert (c.low, c.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
        slope, intercept = np.polyfit(x, y, 1)
        assert (c.slope, c.intercept) == pytest.approx((slope, intercept), rel=1e-9)
    assert pearson(x, y, confidence=0.9).high < c.high


def test_correlation_from_sums_matches_numpy() -> None:
    data = np.random.default_rng(9).normal(size=(50, 4)) @ np.array(
        [[1, 0.3, 0, 0], [0, 1, 0.5, 0], [0, 0, 1, 0.2], [0, 0, 0, 1]])
    m = correlation_from_sums(50, data.sum(axis=0), data.T @ data)
    assert m.cov == pytest.approx(np.cov(data, rowvar=False), rel=1e-9)
    assert m.corr == pytest.approx(np.corrcoef(data, rowvar=False), rel=1e-9)
    assert m.sd == pytest.approx(data.std(axis=0, ddof=1), rel=1e-9)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_relative_weights_sum_to_ols_r_squared(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 400, 5
    mix = rng.normal(size=(k, k)) * 0.6 + np.eye(k)
    x = rng.normal(size=(n, k)) @ mix  # correlated predictors
    y = x @ rng.normal(size=k) + rng.normal(scale=2.0, size=n)
    corr = np.corrcoef(np.column_stack([y, x]), rowvar=False)
    rw = relative_weights(corr[1:, 1:], corr[1:, 0])
    r2 = sm.OLS(y, sm.add_constant(x)).fit().rsquared
    assert rw.r_squared == pytest.approx(r2, rel=1e-9)
    assert sum(rw.weights) == pytest.approx(r2, rel=1e-9)
    assert sum(rw.rescaled) == pytest.approx(100)
    assert min(rw.weights) >= 0


def test_relative_weights_orthogonal_predictors_are_squared_correlations() -> None:
    rng = np.random.default_rng(11)
    # QR of centred columns: the columns of Q are combinations of centred columns (so
    # centred) and orthogonal, i.e. exactly uncorrelated.
    z = rng.normal(size=(200, 3))
    x, _ = np.linalg.qr(z - z.mean(axis=0))
    y = x @ np.array([2.0, -1.0, 0.5]) + rng.normal(size=200)
    corr = np.corrcoef(np.column_stack([y, x]), rowvar=False)
    assert np.abs(corr[1:, 1:] - np.eye(3)).max() < 1e-9
    rw = relative_weights(corr[1:, 1:], corr[1:, 0])
    assert rw.weights == pytest.approx(tuple(corr[1:, 0] ** 2), rel=1e-6)
    assert rw.r_squared == pytest.approx(sm.OLS(y, sm.add_constant(x)).fit().rsquared,
                                         rel=1e-6)


def test_relative_weights_collinear_predictors() -> None:
    rng = np.random.default_rng(13)
    a = rng.normal(size=100)
    x = np.column_stack([a, a, rng.normal(size=100)])  # the first two are one predictor
    y = a + x[:, 2] + rng.normal(size=100)
    corr = np.corrcoef(np.column_stack([y, x]), rowvar=False)
    rw = relative_weights(corr[1:, 1:], corr[1:, 0])
    r2 = sm.OLS(y, sm.add_constant(x[:, [0, 2]])).fit().rsquared
    assert rw.r_squared == pytest.approx(r2, rel=1e-6)
    assert rw.weights[0] == pytest.approx(rw.weights[1], rel=1e-6)


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 1_000_000), data=st.data())
def test_wilson_within_unit_interval_and_contains_share(n: int, data: st.DataObject) -> None:
    hits = data.draw(st.integers(0, n))
    lo, hi = wilson(hits, n)
    assert 0.0 <= lo <= hits / n + 1e-12
    assert hits / n - 1e-12 <= hi <= 1.0


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 100_000), sd=st.floats(0.01, 1e6))
def test_margin_shrinks_as_n_grows(n: int, sd: float) -> None:
    small, large = t_margin(n, sd), t_margin(n + 1, sd)
    assert small is not None and large is not None
    assert large < small


@settings(max_examples=100, deadline=None)
@given(n1=st.integers(1, 5000), n2=st.integers(1, 5000), data=st.data())
def test_z_is_antisymmetric(n1: int, n2: int, data: st.DataObject) -> None:
    h1, h2 = data.draw(st.integers(0, n1)), data.draw(st.integers(0, n2))
    a, b = two_proportion_z(h1, n1, h2, n2), two_proportion_z(h2, n2, h1, n1)
    assert a.diff == pytest.approx(-b.diff, abs=1e-15)
    if a.z is None:
        assert b.z is None
    else:
        assert a.z == pytest.approx(-b.z, rel=1e-12, abs=1e-12)
        assert a.p == pytest.approx(b.p, rel=1e-9)
        assert a.significant == b.significant


@settings(max_examples=100, deadline=None)
@given(m1=st.floats(-1e4, 1e4), m2=st.floats(-1e4, 1e4), v1=st.floats(1e-3, 1e6),
       v2=st.floats(1e-3, 1e6), n1=st.integers(2, 10_000), n2=st.integers(2, 10_000))
def test_t_is_antisymmetric(m1: float, m2: float, v1: float, v2: float, n1: int,
                            n2: int) -> None:
    a, b = welch_t(m1, v1, n1, m2, v2, n2), welch_t(m2, v2, n2, m1, v1, n1)
    assert a.t == pytest.approx(-b.t, rel=1e-12, abs=1e-12)
    assert a.df == pytest.approx(b.df, rel=1e-12)
    assert a.p == pytest.approx(b.p, rel=1e-9, abs=1e-300)
    assert (a.low, a.high) == pytest.approx((-b.high, -b.low), rel=1e-9, abs=1e-9)
    assert a.low <= a.diff <= a.high


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=4,
                max_size=200))
def test_correlation_interval_contains_r(points: list[tuple[float, float]]) -> None:
    x, y = zip(*points, strict=True)
    c = pearson(x, y)
    assume(c.r is not None)
    assert -1.0 <= c.low <= c.r <= c.high <= 1.0
    assert 0.0 <= c.p <= 1.0
