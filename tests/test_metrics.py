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


def test_nps_by_hand() -> None:
    # 10 answers: 5 promoters, 3 passives, 2 detractors -> 100 * (5 - 2) / 10 = 30
    est = metrics.nps(10, 5, 2)
    assert est.value == pytest.approx(30.0)
    # pP = .5, pD = .2: V = .5 + .2 - (.5 - .2)^2 = .61; moe = 1.96 * 100 * sqrt(.61 / 10)
    assert est.moe == pytest.approx(1.959964 * 100 * math.sqrt(0.61 / 10), rel=1e-6)
    assert est.moe == pytest.approx(48.407, abs=1e-3)


@pytest.mark.parametrize(
    ("n", "p", "d", "value", "moe"),
    [
        (0, 0, 0, None, None),  # no answers: no value, never zero
        (20, 20, 0, 100.0, 0.0),  # all promoters: V = 1 + 0 - 1 = 0
        (20, 0, 20, -100.0, 0.0),  # all detractors
        (1, 1, 0, 100.0, 0.0),  # one response
        (4, 2, 2, 0.0, 1.959964 * 100 * math.sqrt(1.0 / 4)),  # ties: V = .5 + .5 - 0 = 1
    ],
)
def test_nps_edges(n: int, p: int, d: int, value, moe) -> None:
    est = metrics.nps(n, p, d)
    assert est.value == (None if value is None else pytest.approx(value))
    assert est.moe == (None if moe is None else pytest.approx(moe, rel=1e-6))


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
    assert est.moe >= 0


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
    assert large.moe <= small.moe
    if small.moe > 0:
        assert large.moe == pytest.approx(small.moe / math.sqrt(k))


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
