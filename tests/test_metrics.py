"""Metric formulas: hand-computed cases (the arithmetic is written out), edge cases,
cross-checks against scipy/statsmodels, and properties that must hold for any data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import t as t_dist
from statsmodels.stats.proportion import proportions_ztest

from queries import metrics
from queries.employees import suppress


def _adjusted_wald(n: int, p: int, d: int) -> tuple[float, float]:
    """Rocks (2016), written out: add 3/4 promoter, 3/4 detractor, 3/2 passive."""
    nt = n + 3
    tp, td = (p + 0.75) / nt, (d + 0.75) / nt
    c = tp - td
    half = 1.959964 * math.sqrt((tp + td - c * c) / nt)
    obs = (p - d) / n
    return 100 * min(max(-1.0, c - half), obs), 100 * max(min(1.0, c + half), obs)


def test_nps_by_hand() -> None:
    # 10 answers: 5 promoters, 3 passives, 2 detractors -> 100 * (5 - 2) / 10 = 30
    est = metrics.nps(10, 5, 2)
    assert est.value == pytest.approx(30.0)
    # Adjusted Wald: n~ = 13, p~P = 5.75/13 = .44231, p~D = 2.75/13 = .21154, NPS~ = .23077;
    # V~ = .44231 + .21154 - .23077^2 = .60059; half = 1.96 sqrt(.60059 / 13) = .42128
    assert (est.low, est.high) == (pytest.approx(-19.051, abs=1e-3),
                                   pytest.approx(65.205, abs=1e-3))
    assert est.moe == pytest.approx(42.128, abs=1e-3)
    # The z-test still uses the observed variance: .5 + .2 - .3^2 = .61 (x 100^2).
    assert est.variance == pytest.approx(6100.0)


@pytest.mark.parametrize(
    ("n", "p", "d", "value"),
    [
        (20, 20, 0, 100.0),  # all promoters: the Wald margin would be 0
        (20, 0, 20, -100.0),  # all detractors
        (1, 1, 0, 100.0),  # one response
        (4, 2, 2, 0.0),  # ties
    ],
)
def test_nps_edges(n: int, p: int, d: int, value) -> None:
    est = metrics.nps(n, p, d)
    assert est.value == pytest.approx(value)
    low, high = _adjusted_wald(n, p, d)
    assert (est.low, est.high) == (pytest.approx(low, abs=1e-4), pytest.approx(high, abs=1e-4))
    assert est.moe == pytest.approx((high - low) / 2, abs=1e-4)
    assert est.moe > 5  # never the false "±0.0" of a sample
    assert est.low <= est.value <= est.high


def test_nps_without_answers_has_no_value() -> None:
    est = metrics.nps(0, 0, 0)
    assert est.value is None and est.moe is None


def test_csat_share_and_wilson_by_hand() -> None:
    # 8 of 10 satisfied: p = .8; Wilson: centre = (.8 + z²/20) / (1 + z²/10),
    # half = z * sqrt(.8 * .2 / 10 + z² / 400) / (1 + z²/10)
    z = 1.959964
    centre = (0.8 + z**2 / 20) / (1 + z**2 / 10)
    half = z * math.sqrt(0.16 / 10 + z**2 / 400) / (1 + z**2 / 10)
    lo, hi = metrics.wilson(10, 8)
    assert (lo, hi) == (pytest.approx(centre - half, abs=1e-6), pytest.approx(centre + half,
                                                                              abs=1e-6))
    assert (lo, hi) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    est = metrics.share(10, 8)
    assert est.value == pytest.approx(80.0)
    assert est.moe == pytest.approx(100 * half, abs=1e-4)
    assert metrics.share(0, 0).value is None


def test_ces_mean_with_t_margin_by_hand() -> None:
    # scores 5, 6, 7: mean 6, s² = ((5-6)² + 0 + (7-6)²) / 2 = 1; moe = t(.975, 2) * 1 / sqrt 3
    est = metrics.mean_t(3, 18, 25 + 36 + 49)
    assert est.value == pytest.approx(6.0)
    assert est.moe == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    one = metrics.mean_t(1, 4, 16)
    assert one.value == 4 and one.moe is None  # one answer: a value, no margin
    assert metrics.mean_t(0, 0, 0).value is None


def test_engagement_is_the_mean_of_item_favourable_shares() -> None:
    # items 50% and 70% favourable -> 60%
    assert metrics.engagement(20, [0.5, 0.7]).value == pytest.approx(60.0)
    assert metrics.engagement(0, []).value is None


def test_nps_change_z_by_hand() -> None:
    # period 1: n=100, 50 P, 20 D -> NPS 30, V = .5+.2-.09 = .61 -> 6100 pts²
    # period 2: n=100, 40 P, 30 D -> NPS 10, V = .4+.3-.01 = .69 -> 6900 pts²
    # z = (30 - 10) / sqrt(6100/100 + 6900/100) = 20 / sqrt(130) = 1.7541
    chg = metrics.change(metrics.nps(100, 50, 20), metrics.nps(100, 40, 30))
    assert chg.delta == pytest.approx(20.0)
    assert chg.z == pytest.approx(20 / math.sqrt(130), rel=1e-9)
    assert chg.significant is False  # 1.75 < 1.96


def test_share_change_matches_statsmodels() -> None:
    a, b = metrics.share(400, 320), metrics.share(380, 270)
    chg = metrics.change_share(a, b)
    z, _ = proportions_ztest([320, 270], [400, 380])
    assert chg.z == pytest.approx(z, rel=1e-9)
    assert chg.significant is bool(abs(z) >= 1.96) is True


def test_mean_change_matches_welch_z() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.integers(1, 8, 300), rng.integers(2, 8, 250)
    ex = metrics.mean_t(len(x), x.sum(), (x**2).sum())
    ey = metrics.mean_t(len(y), y.sum(), (y**2).sum())
    chg = metrics.change(ex, ey)
    se = math.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
    assert chg.z == pytest.approx((x.mean() - y.mean()) / se, rel=1e-9)
    assert ex.moe == pytest.approx(t_dist.ppf(0.975, len(x) - 1) * x.std(ddof=1)
                                   / math.sqrt(len(x)), rel=1e-9)


scores = st.lists(st.integers(0, 10), min_size=1, max_size=300)


def _nps_of(values: list[int]) -> metrics.Estimate:
    return metrics.nps(len(values), sum(v >= 9 for v in values), sum(v <= 6 for v in values))


@given(scores)
def test_nps_lies_in_range(values: list[int]) -> None:
    est = _nps_of(values)
    assert -100 <= est.value <= 100
    assert est.moe > 0  # a sample's margin is never 0
    assert -100 <= est.low <= est.value <= est.high <= 100


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 10)), min_size=1, max_size=400))
def test_reaggregating_any_split_of_units_equals_the_whole(rows) -> None:
    whole = _nps_of([score for _, score in rows])
    units: dict[int, list[int]] = {}
    for unit, score in rows:
        units.setdefault(unit, []).append(score)
    # Counts add up; averaging the units' NPS would not.
    parts = [(len(v), sum(s >= 9 for s in v), sum(s <= 6 for s in v)) for v in units.values()]
    rolled = metrics.nps(*(sum(p[i] for p in parts) for i in range(3)))
    assert rolled.value == pytest.approx(whole.value)
    assert rolled.moe == pytest.approx(whole.moe)


@given(st.integers(1, 50), st.integers(0, 50), st.integers(0, 50), st.integers(2, 20))
def test_margin_shrinks_as_n_grows(p: int, d: int, passives: int, k: int) -> None:
    n = p + d + passives
    small, large = metrics.nps(n, p, d), metrics.nps(n * k, p * k, d * k)
    assert large.value == pytest.approx(small.value)
    assert 0 < large.moe <= small.moe + 1e-9


@given(scores, scores)
@settings(max_examples=200)
def test_significance_is_symmetric_in_the_two_periods(a: list[int], b: list[int]) -> None:
    ea, eb = _nps_of(a), _nps_of(b)
    ab, ba = metrics.change(ea, eb), metrics.change(eb, ea)
    assert ab.significant == ba.significant
    if ab.z is not None and math.isfinite(ab.z):
        assert ab.z == pytest.approx(-ba.z)


def test_suppression_hides_the_next_smallest_sibling() -> None:
    # S3 has 3 respondents: hidden; the parent total minus S1 and S2 would reveal it, so the
    # next-smallest (S2, 6) is hidden too: the hidden group (9) is now large enough.
    assert suppress({"S1": 20, "S2": 6, "S3": 3}, 5) == {"S2", "S3"}
    # Two small ones that together reach the minimum: nothing more to hide.
    assert suppress({"S1": 20, "S2": 3, "S3": 2}, 5) == {"S2", "S3"}
    assert suppress({"S1": 20, "S2": 2, "S3": 1, "S4": 9}, 5) == {"S2", "S3", "S4"}
    assert suppress({"S1": 20, "S2": 8}, 5) == set()
    assert suppress({"S1": 20, "S2": 0}, 5) == set()  # no respondents: nothing to protect


# --------------------------------------------------------------------------------------
# The one significance rule (issue 11): no test on tiny samples, never a margin of 0


def test_one_answer_against_six_is_not_tested_and_has_real_margins() -> None:
    # Cardiff + Chat: October 1 answer (a detractor, NPS -100), November 6 answers
    # (4 promoters, 1 passive, 1 detractor: NPS 100 * (4 - 1) / 6 = +50).
    october, november = metrics.nps(1, 0, 1), metrics.nps(6, 4, 1)
    assert (october.value, november.value) == (-100.0, pytest.approx(50.0))
    chg = metrics.change(november, october, min_n=30)
    assert chg.delta == pytest.approx(150.0)
    assert chg.significant is None and chg.z is None and chg.reason == metrics.TOO_FEW
    # October's interval: n~ = 4, p~P = .75/4 = .1875, p~D = 1.75/4 = .4375, NPS~ = -.25,
    # half = 1.96 x sqrt((.625 - .0625) / 4) = 1.96 x .375 = .73499: -98.5 to +48.5, widened
    # to include the observed -100. Half-width (48.50 + 100) / 2 = 74.25, not "±0.0".
    assert (october.low, october.high) == (-100.0, pytest.approx(48.4986, abs=1e-4))
    assert october.moe == pytest.approx(74.2493, abs=1e-4)
    # November: n~ = 9, p~P = 4.75/9, p~D = 1.75/9, NPS~ = 3/9 = .33333,
    # half = 1.96 x sqrt((6.5/9 - 1/9) / 9) = 1.96 x .26058 = .51073: -17.74 to +84.41.
    assert (november.low, november.high) == (pytest.approx(-17.739, abs=1e-3),
                                             pytest.approx(84.406, abs=1e-3))


def test_ten_promoters_have_a_margin_and_no_significant_change() -> None:
    # Segments' Delivery: 10 answers, all promoters (+100), against 35 answers with
    # 25 promoters and 5 detractors (+57.1): a change of +42.9 on n = 10 is not tested.
    est = metrics.nps(10, 10, 0)
    # n~ = 13, p~P = 10.75/13 = .82692, p~D = .75/13 = .05769, NPS~ = .76923,
    # half = 1.96 x sqrt((.88462 - .59172) / 13) = .29419: +47.50 to +100 (clipped).
    assert (est.low, est.high) == (pytest.approx(47.504, abs=1e-3), 100.0)
    assert est.moe == pytest.approx((100 - 47.504) / 2, abs=1e-3)
    chg = metrics.change(est, metrics.nps(35, 25, 5), min_n=30)
    assert chg.significant is None and chg.reason == metrics.TOO_FEW
    # The CSAT top-2 share of 10 out of 10: Wilson 72.25% to 100%, never ±0.
    share = metrics.share(10, 10)
    assert (share.low, share.high) == (pytest.approx(72.2467, abs=1e-3), pytest.approx(100.0))


def test_expected_counts_below_five_allow_no_test_even_above_min_n() -> None:
    # 40 answers all promoters against 40 with 2 detractors: n >= 30 in both, but the
    # detractors expected in each period under no change are 40 x 2 / 80 = 1 < 5.
    a, b = metrics.nps(40, 40, 0), metrics.nps(40, 30, 2)
    assert metrics.untestable(a, b, 30) == metrics.TOO_FEW
    assert metrics.change(a, b, min_n=30).significant is None
    # With 10 detractors in the second period: 40 x 10 / 80 = 5 expected: tested.
    c = metrics.nps(40, 20, 10)
    assert metrics.untestable(a, c, 30) is None
    chg = metrics.change(a, c, min_n=30)
    # z = (100 - 25) / sqrt(0 / 40 + V2 / 40), V2 = (.5 + .25 - .0625) x 100^2 = 6875
    assert chg.z == pytest.approx(75 / math.sqrt(6875 / 40), rel=1e-9)
    assert chg.significant is True
    assert (chg.low, chg.high) == (pytest.approx(75 - 1.959964 * math.sqrt(6875 / 40),
                                                 rel=1e-6),
                                   pytest.approx(75 + 1.959964 * math.sqrt(6875 / 40),
                                                 rel=1e-6))


def test_ces_answers_that_do_not_vary_still_have_a_margin() -> None:
    # 10 answers of 7 on the 1-7 scale: s = 0, so the t margin would be 0. Rescaled to
    # 0-1 the mean is 1; Wilson(10 of 10) = .72247 to 1 -> 1 + 6 x .72247 = 5.335 to 7.
    est = metrics.mean_t(10, 70, 490, (1.0, 7.0))
    assert est.value == 7.0
    assert (est.low, est.high) == (pytest.approx(5.3348, abs=1e-4), pytest.approx(7.0))
    assert est.moe == pytest.approx((7 - 5.3348) / 2, abs=1e-4)
    # Money has no bounds: one answer has no margin at all rather than a made-up one.
    assert metrics.mean_t(1, 40.0, 1600.0).moe is None
