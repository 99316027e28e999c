"""queries.links on hand-built data (every expected value worked out here) and on the demo,
against an independent pandas reading of its source files."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from sqlalchemy import Connection, Engine, insert

from etl.rollup import refresh_all
from queries import schema
from queries.links import engagement_vs_cx, key_drivers, revenue_after_survey, unit_cx_revenue
from queries.periods import Month
from tests import demo_truth as truth

D = dt.datetime
LOADED = D(2026, 11, 1)
_ids = itertools.count(1)


# --------------------------------------------------------------------------
# Builders for hand-made data
# --------------------------------------------------------------------------


def _org(conn: Connection) -> None:
    """ACME > R1 (S1 > T1 team, S2, S4, S5, S6), R2 (S3)."""
    rows = [("ACME", "company", None), ("R1", "region", "ACME"), ("R2", "region", "ACME"),
            ("S1", "store", "R1"), ("S2", "store", "R1"), ("S3", "store", "R2"),
            ("S4", "store", "R1"), ("S5", "store", "R1"), ("S6", "store", "R1"),
            ("T1", "team", "S1")]
    for uid, kind, parent in rows:  # parents first: the foreign key is checked at once
        conn.execute(insert(schema.org_unit).values(id=uid, name=f"Unit {uid}", kind=kind,
                                                    parent_id=parent, source="t",
                                                    loaded_at=LOADED))


def _customers(conn: Connection, segments: dict[str, str]) -> None:
    conn.execute(insert(schema.customer), [
        {"id": cid, "segment": seg, "loyalty_member": True, "source": "t", "loaded_at": LOADED}
        for cid, seg in segments.items()])


def _response(conn: Connection, at: dt.datetime, *, unit: str = "S1",
              customer: str | None = None, nps: int | None = None, csat: int | None = None,
              ratings: dict[str, int] | None = None, channel: str | None = None) -> None:
    rid = next(_ids)
    pk = conn.execute(insert(schema.survey_response).values(
        source="t", response_id=f"R{rid}", submitted_at=at, customer_id=customer,
        org_unit_id=unit, survey_kind="transactional", channel=channel, nps=nps, csat=csat,
        loaded_at=LOADED).returning(schema.survey_response.c.id)).scalar_one()
    for attribute, rating in (ratings or {}).items():
        conn.execute(insert(schema.survey_rating).values(response_pk=pk, attribute=attribute,
                                                         rating=rating))


def _txn(conn: Connection, at: dt.datetime, amount: float, *, customer: str | None = None,
         unit: str = "S1") -> None:
    conn.execute(insert(schema.loyalty_transaction).values(
        source="t", txn_id=f"X{next(_ids)}", customer_id=customer, org_unit_id=unit,
        occurred_at=at, amount=amount, points_earned=0, points_redeemed=0, loaded_at=LOADED))


def _staff(conn: Connection, unit: str, wave: dt.date, answers: list[tuple[int | None, ...]]
           ) -> None:
    """One engagement respondent per tuple of item scores (items a, b; None = blank)."""
    for scores in answers:
        pk = conn.execute(insert(schema.engagement_response).values(
            source="t", respondent_key=f"E{next(_ids)}", wave=wave, org_unit_id=unit, enps=7,
            loaded_at=LOADED).returning(schema.engagement_response.c.id)).scalar_one()
        for item, score in zip("ab", scores, strict=True):
            if score is not None:
                conn.execute(insert(schema.engagement_score).values(response_pk=pk, item=item,
                                                                    score=score))


# --------------------------------------------------------------------------
# a. revenue_after_survey, by hand
# --------------------------------------------------------------------------

JAN = (D(2026, 1, 1), D(2026, 2, 1))


@pytest.fixture
def revenue_db(engine: Engine) -> Engine:
    """Window 30 days, churn 10 days; the latest transaction is 2026-02-20 00:00, so answers
    up to 2026-01-21 00:00 have their whole window observed."""
    with engine.begin() as conn:
        _org(conn)
        _customers(conn, {"A": "X", "B": "X", "C": "X", "D": "Y", "E": "Y", "F": "Y"})
        # A: one purchase just before the survey, then 50 (day 5), 30 on the last second of
        # the first answer's window, 1000 one minute after it.
        _txn(conn, D(2026, 1, 5, 9), 999, customer="A")
        _txn(conn, D(2026, 1, 10), 50, customer="A")
        _txn(conn, D(2026, 2, 4, 10), 30, customer="A")
        _txn(conn, D(2026, 2, 4, 10, 1), 1000, customer="A")
        _txn(conn, D(2026, 1, 20), 100, customer="B")
        _txn(conn, D(2026, 1, 9), 20, customer="D", unit="S3")  # any store counts
        _txn(conn, D(2026, 1, 25), 40, customer="E")
        _txn(conn, D(2026, 2, 20), 5)  # a guest: only sets the end of the observed data
        _response(conn, D(2026, 1, 5, 10), customer="A", nps=10)  # #1 80, active
        _response(conn, D(2026, 1, 6, 12), customer="B", nps=9)  # #2 100, churned
        _response(conn, D(2026, 1, 7), customer="C", nps=8)  # #3 0, churned
        _response(conn, D(2026, 1, 8), customer="D", nps=3)  # #4 20, active
        _response(conn, D(2026, 1, 9), customer="E", nps=6)  # #5 40, churned
        _response(conn, D(2026, 1, 10), customer="F", nps=0)  # #6 0, churned
        _response(conn, D(2026, 1, 12), customer="A", nps=9)  # #7 30 + 1000, churned
        _response(conn, D(2026, 1, 25), customer="B", nps=10)  # left out: window not over
        _response(conn, D(2026, 1, 5), customer="Z", nps=10)  # unknown customer
        _response(conn, D(2026, 1, 5), nps=2)  # no customer
        _response(conn, D(2026, 1, 6), customer="A", csat=5)  # no NPS answer
        _response(conn, D(2025, 12, 31, 23, 59), customer="C", nps=10)  # before the period
        _response(conn, D(2026, 1, 6), unit="S3", customer="D", nps=9)  # #13 20, active
    return engine


def test_revenue_after_survey_by_hand(revenue_db: Engine) -> None:
    with revenue_db.connect() as conn:
        res = revenue_after_survey(conn, start=JAN[0], end=JAN[1], window_days=30,
                                   churn_days=10)
    assert res.observed_until == D(2026, 2, 20)
    # 11 NPS answers in January; #9 and #10 have no known customer; #8 is too recent.
    assert (res.responses, res.unlinked, res.left_out, res.n) == (11, 2, 1, 8)

    pro = res.promoter  # #1 80, #2 100, #7 1030, #13 20
    assert (pro.n, pro.total, pro.churned) == (4, 1230, 2)
    assert pro.mean == pytest.approx(1230 / 4)
    var_p = sum((v - 307.5) ** 2 for v in (80, 100, 1030, 20)) / 3  # 699475 / 3
    assert pro.sd == pytest.approx(math.sqrt(var_p))
    moe = 3.182446305284263 * math.sqrt(var_p) / 2  # t(0.975, 3) x sd / sqrt(4)
    assert (pro.low, pro.high) == pytest.approx((307.5 - moe, 307.5 + moe))
    assert pro.churn == 0.5

    pas = res.passive  # #3 only
    assert (pas.n, pas.mean, pas.sd, pas.low, pas.total, pas.churned) == (1, 0, None, None, 0,
                                                                          1)
    det = res.detractor  # #4 20, #5 40, #6 0
    assert (det.n, det.total, det.churned, det.mean) == (3, 60, 2, 20)
    assert det.sd == pytest.approx(20)  # deviations 0, 20, -20: 800 / 2 = 400
    z = 1.959963984540054
    p = 2 / 3
    centre = (p + z**2 / 6) / (1 + z**2 / 3)
    half = z * math.sqrt(p * (1 - p) / 3 + z**2 / 36) / (1 + z**2 / 3)
    assert (det.churn_low, det.churn_high) == pytest.approx((centre - half, centre + half))

    # Gap: Welch on 307.5 (var 233158.3, n 4) against 20 (var 400, n 3).
    se = math.sqrt(var_p / 4 + 400 / 3)
    assert res.gap.diff == pytest.approx(287.5)
    assert res.gap.t == pytest.approx(287.5 / se)
    ref = sps.ttest_ind([80, 100, 1030, 20], [20, 40, 0], equal_var=False)
    assert res.gap.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert res.gap.significant is False  # four promoters prove nothing
    # Detractors spent 60; their churn gap 2/3 - 1/2 = 1/6 of it is the revenue at risk: 10.
    assert res.detractor_revenue == 60
    assert res.churn_gap.diff == pytest.approx(1 / 6)
    assert res.revenue_at_risk == pytest.approx(10)
    frame = res.frame()
    assert list(frame["group"]) == ["promoter", "passive", "detractor"]
    assert list(frame["n"]) == [4, 1, 3]


def test_revenue_after_survey_filters(revenue_db: Engine) -> None:
    with revenue_db.connect() as conn:
        region = revenue_after_survey(conn, start=JAN[0], end=JAN[1], window_days=30,
                                      churn_days=10, unit="R1")
        segment = revenue_after_survey(conn, start=JAN[0], end=JAN[1], window_days=30,
                                       churn_days=10, segment="Y")
        wider = revenue_after_survey(conn, start=JAN[0], end=JAN[1], window_days=30,
                                     churn_days=45)
        empty = revenue_after_survey(conn, start=D(2027, 1, 1), end=D(2027, 2, 1))
    # R1 drops #13 (store S3): promoters #1, #2, #7.
    assert region.responses == 10 and region.promoter.n == 3
    assert region.promoter.total == 1210
    # Segment Y: #4, #5, #6 and #13; answers without a customer have no segment.
    assert (segment.responses, segment.unlinked, segment.n) == (4, 0, 4)
    assert (segment.promoter.n, segment.detractor.n) == (1, 3)
    # A 45-day churn window is the longer one: answers after 2026-01-06 00:00 are left out
    # (#2 at 12:00 on the 6th, #3 to #7, #8); #1 and #13 remain, both bought within it.
    assert (wider.n, wider.left_out) == (2, 7)
    assert wider.promoter.churned == 0
    assert empty.n == 0 and empty.promoter.mean is None and empty.gap.diff is None
    assert empty.revenue_at_risk is None


def test_revenue_after_survey_without_transactions(engine: Engine) -> None:
    with engine.begin() as conn:
        _org(conn)
        _customers(conn, {"A": "X"})
        _response(conn, D(2026, 1, 5), customer="A", nps=10)
    with engine.connect() as conn:
        res = revenue_after_survey(conn, start=JAN[0], end=JAN[1])
    assert res.observed_until is None
    assert (res.responses, res.left_out, res.n) == (1, 1, 0)


# --------------------------------------------------------------------------
# b. unit_cx_revenue, by hand
# --------------------------------------------------------------------------


@pytest.fixture
def units_db(engine: Engine) -> Engine:
    nps = {  # (unit, month): NPS answers; one of S1's January answers comes from team T1
        ("S1", 1): [10, 10], ("T1", 1): [5], ("S1", 2): [10, 8], ("S1", 3): [0, 10],
        ("S2", 1): [6, 6], ("S2", 2): [9, 9, 9, 9], ("S2", 3): [7],
        ("S3", 1): [10], ("S3", 2): [3],
    }
    revenue = {("S1", 1): 100, ("S1", 2): 150, ("S1", 3): 120,
               ("S2", 1): 200, ("S2", 2): 100, ("S2", 3): 300,
               ("S3", 1): 50, ("S3", 2): 75, ("S3", 3): 75}
    with engine.begin() as conn:
        _org(conn)
        for (unit, month), scores in nps.items():
            for score in scores:
                _response(conn, D(2026, month, 10, 12), unit=unit, nps=score)
        _response(conn, D(2026, 2, 11), unit="S1", csat=5)
        _response(conn, D(2026, 2, 11), unit="S1", csat=3)
        for (unit, month), amount in revenue.items():
            _txn(conn, D(2026, month, 15), amount * 0.4, unit=unit)
            _txn(conn, D(2026, month, 16), amount * 0.6, unit=unit)
        refresh_all(conn)
    return engine


def test_unit_cx_revenue_by_hand(units_db: Engine) -> None:
    feb, mar = Month(2026, 2), Month(2026, 3)
    with units_db.connect() as conn:
        lag0 = unit_cx_revenue(conn, months=[feb, mar])
        lag1 = unit_cx_revenue(conn, months=[mar, feb], lag=1)
        by_dates = unit_cx_revenue(conn, start=D(2026, 2, 1), end=D(2026, 4, 1))
        regions = unit_cx_revenue(conn, months=[feb, mar], level="region")
        csat = unit_cx_revenue(conn, months=[feb], metric="csat")
        r1_only = unit_cx_revenue(conn, months=[feb, mar], unit="R1")
    pts = lag0.points.set_index(["unit", "month"])
    # NPS: S1 Feb (10, 8) 50; S1 Mar (0, 10) 0; S2 Feb four 9s 100; S2 Mar (7) 0;
    # S3 Feb (3) -100. Growth: S1 150/100, 120/150; S2 100/200, 300/100; S3 75/50.
    expected = {("S1", "2026-02"): (50, 0.5), ("S1", "2026-03"): (0, -0.2),
                ("S2", "2026-02"): (100, -0.5), ("S2", "2026-03"): (0, 2.0),
                ("S3", "2026-02"): (-100, 0.5)}
    assert set(pts.index) == set(expected)
    for key, (score, growth) in expected.items():
        assert pts.loc[key, "score"] == pytest.approx(score)
        assert pts.loc[key, "growth"] == pytest.approx(growth)
    assert pts.loc[("S2", "2026-03"), "revenue"] == pytest.approx(300)
    assert pts.loc[("S1", "2026-02"), "n"] == 2
    assert lag0.excluded == 1  # S3 March: no answers
    # r by hand: x 50, 0, 100, 0, -100 (mean 10); y .5, -.2, -.5, 2, .5 (mean .46).
    # dx 40, -10, 90, -10, -110; dy .04, -.66, -.96, 1.54, .04.
    sxy = 40 * .04 + -10 * -.66 + 90 * -.96 + -10 * 1.54 + -110 * .04  # -98
    sxx = 40**2 + 10**2 + 90**2 + 10**2 + 110**2  # 22000
    syy = .04**2 + .66**2 + .96**2 + 1.54**2 + .04**2  # 3.732
    c = lag0.correlation
    assert c.n == 5
    assert c.r == pytest.approx(sxy / math.sqrt(sxx * syy))
    assert c.slope == pytest.approx(sxy / sxx)
    assert c.intercept == pytest.approx(0.46 - sxy / sxx * 10)
    assert c.low < c.r < c.high
    pd.testing.assert_frame_equal(by_dates.points, lag0.points)

    # Lag 1: S1's January NPS counts T1's answer (2 promoters, 1 detractor of 3): 33.3.
    pts1 = lag1.points.set_index(["unit", "month"])
    expected1 = {("S1", "2026-02"): (100 / 3, 0.5), ("S1", "2026-03"): (50, -0.2),
                 ("S2", "2026-02"): (-100, -0.5), ("S2", "2026-03"): (100, 2.0),
                 ("S3", "2026-02"): (100, 0.5), ("S3", "2026-03"): (-100, 0.0)}
    assert set(pts1.index) == set(expected1)
    for key, (score, growth) in expected1.items():
        assert pts1.loc[key, "score"] == pytest.approx(score)
        assert pts1.loc[key, "growth"] == pytest.approx(growth)
    assert pts1.loc[("S1", "2026-02"), "score_month"] == "2026-01"
    assert pts1.loc[("S1", "2026-02"), "n"] == 3
    assert lag1.excluded == 0

    # Regions: R1 Feb = S1 (10, 8) + S2 (9, 9, 9, 9): 5 promoters of 6, 83.3; revenue
    # 300 -> 250 -> 420. R1 Mar (0, 10, 7): 0. R2 Feb -100, growth 0.5; R2 Mar no answers.
    reg = regions.points.set_index(["unit", "month"])
    assert reg.loc[("R1", "2026-02"), "score"] == pytest.approx(500 / 6)
    assert reg.loc[("R1", "2026-02"), "growth"] == pytest.approx(250 / 300 - 1)
    assert reg.loc[("R1", "2026-03"), "growth"] == pytest.approx(420 / 250 - 1)
    assert reg.loc[("R2", "2026-02"), "score"] == -100
    assert len(reg) == 3 and regions.excluded == 1
    assert regions.correlation.r is None  # three points: no interval, no r
    assert regions.correlation.slope is not None

    # CSAT: only S1 has answers in February, 5 and 3: 50% top-2.
    assert list(csat.points["unit"]) == ["S1"]
    assert csat.points["score"].iloc[0] == pytest.approx(50)
    assert csat.points["n"].iloc[0] == 2
    assert set(r1_only.points["unit"]) == {"S1", "S2"}


def test_unit_cx_revenue_rejects_bad_arguments(units_db: Engine) -> None:
    with units_db.connect() as conn:
        for kwargs in ({}, {"months": [Month(2026, 2)], "metric": "ces"},
                       {"months": [Month(2026, 2)], "lag": -1},
                       {"months": [Month(2026, 2)], "level": "country"}):
            with pytest.raises(ValueError):
                unit_cx_revenue(conn, **kwargs)


# --------------------------------------------------------------------------
# c. engagement_vs_cx, by hand
# --------------------------------------------------------------------------

W1, W2 = dt.date(2026, 3, 1), dt.date(2026, 6, 1)


@pytest.fixture
def engagement_db(engine: Engine) -> Engine:
    with engine.begin() as conn:
        _org(conn)
        # Item a then b; 4-5 is favourable.
        _staff(conn, "S1", W1, [(5, 4), (5, 4), (4, 4), (2, 4), (1, None)])  # 3/5, 4/4: 80
        _staff(conn, "S1", W2, [(5, 5), (5, 5)])  # 2 respondents: never used
        _staff(conn, "S2", W1, [(1, 1), (2, 1), (3, 2), (4, 2), (5, 5)])  # 2/5, 1/5: 30
        _staff(conn, "S3", W1, [(4, 3), (4, 3), (4, 3), (4, 3), (4, 4)])  # 5/5, 1/5: 60
        _staff(conn, "S4", W1, [(5, 5), (5, 5), (5, 5), (1, 5), (1, 1), (1, 1)])  # 3/6, 4/6
        _staff(conn, "S5", W1, [(5, 5), (5, 5), (5, 5)])  # 3 respondents: suppressed
        # 2 more: hidden too. Together the hidden stores have 5, so no visible sibling has
        # to be hidden to stop R1's total revealing them by subtraction.
        _staff(conn, "S6", W1, [(5, 5), (5, 5)])
        csat = {"S1": [5, 5, 4, 1], "S2": [2, 3, 4], "S3": [4, 4, 2], "S4": [5, 1],
                "S5": [5]}
        for unit, scores in csat.items():
            for score in scores:
                _response(conn, D(2026, 4, 2), unit=unit, csat=score, nps=score * 2)
        _response(conn, D(2026, 4, 2), unit="S1", csat=1, nps=2, channel="phone")
        _response(conn, D(2025, 12, 2), unit="S2", csat=5)  # outside the period
        refresh_all(conn)
    return engine


def test_engagement_vs_cx_by_hand(engagement_db: Engine) -> None:
    period = {"start": D(2026, 1, 1), "end": D(2027, 1, 1)}
    with engagement_db.connect() as conn:
        link = engagement_vs_cx(conn, **period, channel=None)
        by_nps = engagement_vs_cx(conn, **period, outcome="nps")
        only_w2 = engagement_vs_cx(conn, waves=[W2], start=D(2026, 1, 1), end=D(2027, 1, 1))
        strict = engagement_vs_cx(conn, **period, min_respondents=6)
        phone = engagement_vs_cx(conn, **period, channel="phone")
    pts = link.points.set_index("unit")
    assert list(pts.index) == ["S1", "S2", "S3", "S4"]
    eng = {"S1": (3 / 5 + 4 / 4) / 2, "S2": (2 / 5 + 1 / 5) / 2, "S3": (5 / 5 + 1 / 5) / 2,
           "S4": (3 / 6 + 4 / 6) / 2}
    # CSAT top-2: S1 3 of 5 (the phone answer counts), S2 1 of 3, S3 2 of 3, S4 1 of 2.
    csat = {"S1": 3 / 5, "S2": 1 / 3, "S3": 2 / 3, "S4": 1 / 2}
    for unit in pts.index:
        assert pts.loc[unit, "engagement"] == pytest.approx(100 * eng[unit])
        assert pts.loc[unit, "score"] == pytest.approx(100 * csat[unit])
    # S1's second wave (2 respondents) is left out, not merged: 5 respondents, one wave.
    assert (pts.loc["S1", "respondents"], pts.loc["S1", "waves"]) == (5, 1)
    assert pts.loc["S1", "n"] == 5
    assert (link.excluded, link.suppressed) == (2, 2)  # S5, S6
    assert {"S5", "S6"}.isdisjoint(link.points["unit"])
    x = [100 * eng[u] for u in pts.index]
    y = [100 * csat[u] for u in pts.index]
    mx, my = sum(x) / 4, sum(y) / 4
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    assert link.correlation.r == pytest.approx(sxy / math.sqrt(sxx * syy))
    assert link.correlation.n == 4

    # NPS = 2 x CSAT here: S1 10, 10, 8, 2 and 2 (phone) -> 2 promoters, 2 detractors of 5.
    assert by_nps.points.set_index("unit").loc["S1", "score"] == pytest.approx(0)
    # Only the small wave: every store is below the threshold or has no staff answers.
    assert only_w2.points.empty and only_w2.suppressed == 1
    assert only_w2.correlation.r is None
    # At 6: region R2 (S3's 5) is hidden, and then R1 with it, since the company total
    # minus R1 would reveal R2; under a hidden region every store is hidden.
    assert strict.points.empty and strict.suppressed == 6
    # Customer filters narrow the customer side only; stores without such answers drop out.
    assert list(phone.points["unit"]) == ["S1"]
    assert phone.points["score"].iloc[0] == 0
    assert phone.excluded == 5


# --------------------------------------------------------------------------
# d. key_drivers, by hand
# --------------------------------------------------------------------------


def test_key_drivers_by_hand(engine: Engine) -> None:
    with engine.begin() as conn:
        _org(conn)
        # Complete cases: x1 and x2 orthogonal, nps = 1.5 x1 + x2 - 2.5 exactly.
        for x1, x2 in [(1, 1), (1, 5), (5, 1), (5, 5)]:
            _response(conn, D(2026, 1, 5), nps=int(1.5 * x1 + x2 - 2.5),
                      ratings={"x1": x1, "x2": x2})
        _response(conn, D(2026, 1, 6), nps=7, ratings={"x1": 3})  # incomplete
        _response(conn, D(2026, 1, 6), nps=8, ratings={"x3": 2})  # x3: 1 of 6, dropped
        _response(conn, D(2026, 1, 6), csat=4, ratings={"x1": 5, "x2": 5})  # no NPS
        _response(conn, D(2026, 2, 6), nps=0, ratings={"x1": 1, "x2": 5})  # next month
    with engine.connect() as conn:
        drv = key_drivers(conn, start=JAN[0], end=JAN[1])
        by_csat = key_drivers(conn, start=JAN[0], end=JAN[1], outcome="csat")
        loose = key_drivers(conn, start=JAN[0], end=JAN[1], min_coverage=0.1)
    assert (drv.responses, drv.n, drv.dropped) == (6, 4, ("x3",))
    f = drv.frame.set_index("attribute")
    assert list(f.index) == ["x1", "x2"]
    # dx1 = -2, -2, 2, 2; dx2 = -2, 2, -2, 2; nps 0, 4, 6, 10 (mean 5): dy -5, -1, 1, 5.
    # r1 = 24 / sqrt(16 x 52), r2 = 16 / sqrt(16 x 52); orthogonal: weights r^2, R^2 = 1.
    r1, r2 = 24 / math.sqrt(16 * 52), 16 / math.sqrt(16 * 52)
    assert (f.loc["x1", "r"], f.loc["x2", "r"]) == pytest.approx((r1, r2))
    assert drv.r_squared == pytest.approx(1.0)
    assert (f.loc["x1", "weight"], f.loc["x2", "weight"]) == pytest.approx((r1**2, r2**2))
    assert (f.loc["x1", "importance"], f.loc["x2", "importance"]) == pytest.approx(
        (100 * 576 / 832, 100 * 256 / 832))
    # Performance over every rating in the selection: x1 1, 1, 5, 5, 3; x2 1, 5, 1, 5.
    assert (f.loc["x1", "performance"], f.loc["x1", "n"]) == (3, 5)
    assert (f.loc["x2", "performance"], f.loc["x2", "n"]) == (3, 4)
    assert (f.loc["x1", "coverage"], f.loc["x2", "coverage"]) == pytest.approx((5 / 6, 4 / 6))
    # CSAT: one response, no model.
    assert by_csat.responses == 1 and by_csat.n == 1 and by_csat.r_squared is None
    assert by_csat.frame["importance"].isna().all()
    # With x3 in the model no response is complete.
    assert loose.n == 0 and loose.r_squared is None and len(loose.frame) == 3


# --------------------------------------------------------------------------
# The demo, against the source files
# --------------------------------------------------------------------------

DEMO_START, DEMO_END = D(2025, 10, 1), D(2026, 4, 1)


def _demo_revenue(demo: Path, window: int = 180, churn: int = 90) -> tuple[pd.DataFrame, int]:
    s = truth.surveys(demo)
    members, txns = truth.loyalty(demo)
    s = s[s["loadable"] & s["nps"].notna() & (s["submitted"] >= DEMO_START)
          & (s["submitted"] < DEMO_END) & s["Member number"].isin(set(members["member_id"]))]
    latest = txns["occurred"].max()
    observed = s["submitted"] + pd.Timedelta(days=max(window, churn)) <= latest
    left_out = int((~observed).sum())
    s = s[observed]
    m = s[["Response ID", "Member number", "submitted", "nps"]].merge(
        txns[["member_id", "occurred", "amount"]], how="left", left_on="Member number",
        right_on="member_id")
    after = m["occurred"] > m["submitted"]
    m["rev"] = m["amount"].where(after & (m["occurred"] <= m["submitted"]
                                          + pd.Timedelta(days=window)), 0.0)
    m["act"] = after & (m["occurred"] <= m["submitted"] + pd.Timedelta(days=churn))
    per = m.groupby(["Response ID", "nps"], as_index=False).agg(rev=("rev", "sum"),
                                                                act=("act", "any"))
    per["group"] = np.where(per["nps"] >= 9, "promoter",
                            np.where(per["nps"] >= 7, "passive", "detractor"))
    return per, left_out


def test_revenue_after_survey_matches_the_source_files(demo_engine: Engine,
                                                       demo_dir: Path) -> None:
    with demo_engine.connect() as conn:
        res = revenue_after_survey(conn, start=DEMO_START, end=DEMO_END, window_days=180)
    per, left_out = _demo_revenue(demo_dir)
    assert res.left_out == left_out
    assert res.n == len(per)
    for name in ("promoter", "passive", "detractor"):
        grp = getattr(res, name)
        rows = per[per["group"] == name]
        assert grp.n == len(rows), name
        assert grp.mean == pytest.approx(rows["rev"].mean(), abs=1e-6), name
        assert grp.sd == pytest.approx(rows["rev"].std(ddof=1), abs=1e-6), name
        assert grp.total == pytest.approx(rows["rev"].sum(), abs=1e-6), name
        assert grp.churned == int((~rows["act"]).sum()), name
    pro, det = per[per["group"] == "promoter"]["rev"], per[per["group"] == "detractor"]["rev"]
    ref = sps.ttest_ind(pro, det, equal_var=False)
    assert res.gap.t == pytest.approx(ref.statistic, rel=1e-9)
    # The demo's built-in story: promoters are worth more, beyond doubt.
    assert res.promoter.mean > res.passive.mean > res.detractor.mean
    assert res.gap.significant and res.gap.low > 0
    assert res.detractor.churn > res.promoter.churn
    assert res.detractor_revenue == pytest.approx(det.sum(), abs=1e-6)
    churn_gap = (~per[per["group"] == "detractor"]["act"]).mean() - (
        ~per[per["group"] == "promoter"]["act"]).mean()
    assert res.revenue_at_risk == pytest.approx(churn_gap * det.sum(), rel=1e-9)


def test_engagement_vs_cx_matches_the_source_files(demo_engine: Engine, demo_dir: Path) -> None:
    start, end = D(2025, 10, 1), D(2026, 11, 1)
    with demo_engine.connect() as conn:
        link = engagement_vs_cx(conn, start=start, end=end, outcome="csat")
    eng = truth.engagement(demo_dir)
    eng = eng[(eng["wave"] >= start) & (eng["wave"] < end)]
    # Anonymity, written out independently: stores under 5 respondents are hidden, and then
    # the smallest visible siblings (same region, same wave) until the hidden group has 5.
    org = truth.org(demo_dir).set_index("Code")["Parent"]
    counts = eng.groupby(["wave", "Store"]).size()
    hidden_pairs = set()
    for (wave, _region), group in counts.groupby(
            [counts.index.get_level_values(0), counts.index.get_level_values(1).map(org)]):
        per_store = {store: int(n) for (_, store), n in group.items()}
        hidden = {st for st, n in per_store.items() if n < 5}
        visible = sorted((n, st) for st, n in per_store.items() if n >= 5)
        while hidden and sum(per_store[st] for st in hidden) < 5 and visible:
            hidden.add(visible.pop(0)[1])
        hidden_pairs |= {(wave, st) for st in hidden}
    keep = [(w, st) not in hidden_pairs for w, st in zip(eng["wave"], eng["Store"], strict=True)]
    shown = eng[keep]
    expected_eng = {
        store: 100 * np.mean([(g[item] >= 4).sum() / g[item].notna().sum()
                              for item in truth.ITEMS])
        for store, g in shown.groupby("Store")}
    s = truth.surveys(demo_dir)
    s = s[s["loadable"] & (s["submitted"] >= start) & (s["submitted"] < end)
          & s["csat"].notna()]
    expected_csat = (100 * (s["csat"] >= 4).groupby(s["Store"]).mean()).to_dict()

    pts = link.points.set_index("unit")
    assert sorted(pts.index) == sorted(expected_eng) and len(pts) == 12
    for store, value in expected_eng.items():
        assert pts.loc[store, "engagement"] == pytest.approx(value, abs=1e-9), store
        assert pts.loc[store, "score"] == pytest.approx(expected_csat[store], abs=1e-9), store
        assert pts.loc[store, "respondents"] == int((shown["Store"] == store).sum())
    ref = sps.pearsonr([expected_eng[u] for u in pts.index],
                       [expected_csat[u] for u in pts.index])
    assert link.correlation.r == pytest.approx(ref.statistic, rel=1e-9)
    ci = ref.confidence_interval()
    assert (link.correlation.low, link.correlation.high) == pytest.approx((ci.low, ci.high))
    # The service-profit chain the demo builds in.
    assert link.correlation.r > 0.5 and link.correlation.significant
    # Cardiff (S12) has a wave below 5 respondents: it is left out of its average.
    small = eng[eng["Store"] == "S12"].groupby("wave").size()
    assert (small < 5).any()
    assert pts.loc["S12", "waves"] == int(shown[shown["Store"] == "S12"]["wave"].nunique())
    assert any(st != "S12" for _, st in hidden_pairs)  # a sibling was hidden with Cardiff


def test_unit_cx_revenue_matches_the_source_files(demo_engine: Engine, demo_dir: Path) -> None:
    months = [Month(2026, m) for m in range(1, 11)]
    with demo_engine.connect() as conn:
        lag0 = unit_cx_revenue(conn, months=months)
        lag1 = unit_cx_revenue(conn, months=months, lag=1)
    s = truth.surveys(demo_dir)
    s = s[s["loadable"] & s["nps"].notna()]
    s["month"] = s["submitted"].dt.strftime("%Y-%m")
    g = s.groupby(["Store", "month"])["nps"]
    nps = (100 * (g.apply(lambda v: (v >= 9).mean() - (v <= 6).mean()))).to_dict()
    _members, txns = truth.loyalty(demo_dir)
    txns["month"] = txns["occurred"].dt.strftime("%Y-%m")
    rev = txns.groupby(["store", "month"])["amount"].sum().to_dict()
    for link, lag in ((lag0, 0), (lag1, 1)):
        assert len(link.points) == 12 * len(months) and link.excluded == 0
        for row in link.points.itertuples():
            prev = str(Month.parse(row.month).shift(-1))
            assert row.score == pytest.approx(nps[(row.unit, row.score_month)], abs=1e-9)
            assert row.growth == pytest.approx(
                rev[(row.unit, row.month)] / rev[(row.unit, prev)] - 1, abs=1e-9)
            assert row.score_month == str(Month.parse(row.month).shift(-lag))
        c = link.correlation
        assert c.n == len(link.points) and c.low <= c.r <= c.high


def test_key_drivers_match_ols_on_the_source_files(demo_engine: Engine, demo_dir: Path) -> None:
    start, end = D(2025, 10, 1), D(2026, 11, 1)
    names = {"Staff friendliness": "staff_friendliness", "Speed of service": "speed_of_service",
             "Product availability": "product_availability",
             "Value for money": "value_for_money", "Ease of website/app": "digital_ease"}
    s = truth.surveys(demo_dir)
    s = s[s["loadable"] & (s["submitted"] >= start) & (s["submitted"] < end)].copy()
    for column in names:
        s[column] = pd.to_numeric(s[column], errors="coerce")
    for outcome in ("nps", "csat"):
        with demo_engine.connect() as conn:
            drv = key_drivers(conn, start=start, end=end, outcome=outcome)
        sel = s[s[outcome].notna()]
        coverage = sel[list(names)].notna().mean()
        kept = [c for c in names if coverage[c] >= 0.5]
        assert sorted(drv.frame["attribute"]) == sorted(names[c] for c in kept)
        complete = sel.dropna(subset=[*kept, outcome])
        fit = sm.OLS(complete[outcome].astype(float),
                     sm.add_constant(complete[kept].astype(float))).fit()
        assert drv.responses == len(sel)
        assert drv.n == len(complete)
        assert drv.r_squared == pytest.approx(fit.rsquared, rel=1e-9)
        assert drv.frame["weight"].sum() == pytest.approx(fit.rsquared, rel=1e-9)
        assert drv.frame["importance"].sum() == pytest.approx(100)
        f = drv.frame.set_index("attribute")
        for column in kept:
            assert f.loc[names[column], "performance"] == pytest.approx(sel[column].mean())
            assert f.loc[names[column], "n"] == sel[column].notna().sum()
            assert f.loc[names[column], "r"] == pytest.approx(
                complete[column].astype(float).corr(complete[outcome].astype(float)))
        # The demo's weights: staff friendliness and speed of service matter most.
        assert set(drv.frame["attribute"][:2]) == {"staff_friendliness", "speed_of_service"}


def test_revenue_after_survey_with_filters_on_the_demo(demo_engine: Engine,
                                                       demo_dir: Path) -> None:
    with demo_engine.connect() as conn:
        res = revenue_after_survey(conn, start=D(2025, 10, 1), end=D(2026, 11, 1),
                                   unit="R-WEST", channel=["store", "web"])
    s = truth.surveys(demo_dir)
    s = s[s["loadable"] & s["nps"].notna() & (s["region"] == "R-WEST")
          & s["Channel"].isin(["Store", "Web"])]
    assert res.responses == len(s)
    assert res.unlinked == int((s["Member number"] == "").sum())
    # The last six months' windows are not over yet.
    assert res.left_out > 0 and res.n == res.responses - res.unlinked - res.left_out
