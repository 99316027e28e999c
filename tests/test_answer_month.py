"""The revenue page's month sums (`agg_answer_month`): revenue after the survey and value by
NPS group read from them equal the same figures counted per answer from the sales (and, for
one window, by pandas over the facts); a month the ETL has not summed again since a batch
changed it counts live. (That a whole run leaves them current, and the completion rebuilds
exactly what lags: tests/test_load_demo.py, on its one load of the demo.)"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, update

from etl import answer_revenue
from queries import schema
from queries.links import revenue_after_survey, value_by_nps_group
from tests.test_driver_moments import _region

am = schema.agg_answer_month
sr = schema.survey_response
tx = schema.loyalty_transaction
cust = schema.customer


def _window(engine: Engine, months: int) -> tuple[dt.datetime, dt.datetime]:
    """`months` whole months ending with the last month that has answers."""
    with engine.connect() as conn:
        last = conn.execute(select(func.max(sr.c.submitted_at))).scalar()
    if isinstance(last, str):
        last = dt.datetime.fromisoformat(last)
    end = (last.replace(day=1) + dt.timedelta(days=32)).replace(day=1, hour=0, minute=0,
                                                                second=0, microsecond=0)
    start = end
    for _ in range(months):
        start = (start - dt.timedelta(days=1)).replace(day=1)
    return start, end


def _same_revenue(a, b) -> None:
    assert (a.responses, a.unlinked, a.left_out, a.n) == (b.responses, b.unlinked,
                                                           b.left_out, b.n)
    for g in ("promoter", "passive", "detractor"):
        x, y = getattr(a, g), getattr(b, g)
        assert (x.n, x.churned) == (y.n, y.churned)
        assert x.total == pytest.approx(y.total, rel=1e-9, abs=1e-6)
        for f in ("mean", "sd", "low", "high"):
            if getattr(y, f) is None:
                assert getattr(x, f) is None
            else:
                assert getattr(x, f) == pytest.approx(getattr(y, f), rel=1e-7)
    if b.revenue_at_risk is None:
        assert a.revenue_at_risk is None
    else:
        assert a.revenue_at_risk == pytest.approx(b.revenue_at_risk, rel=1e-7)


def _same_value(a, b) -> None:
    assert (a.basis, a.window_days, a.driver) == (b.basis, b.window_days, b.driver)
    pd.testing.assert_frame_equal(a.frame(), b.frame(), rtol=1e-7)
    assert a.sentence == b.sentence


@pytest.mark.parametrize(("months", "scope"), [
    (24, "company"), (12, "region"), (6, "store"), (3, "company")])
def test_month_sums_give_the_figures_counted_per_answer(
        demo_engine: Engine, months: int, scope: str) -> None:
    start, end = _window(demo_engine, months)
    unit = {"company": None, "region": _region(demo_engine), "store": "S01"}[scope]
    kw = {"start": start, "end": end, "unit": unit}
    with demo_engine.connect() as conn:
        live = revenue_after_survey(conn, **kw, stored=False)
        _same_revenue(revenue_after_survey(conn, **kw), live)
        # Other windows than the ETL's: the sums cannot serve them, the answers do.
        _same_revenue(revenue_after_survey(conn, **kw, window_days=30, churn_days=30),
                      revenue_after_survey(conn, **kw, window_days=30, churn_days=30,
                                           stored=False))
        for basis in ("transactions", "survey"):
            _same_value(value_by_nps_group(conn, **kw, basis=basis),
                        value_by_nps_group(conn, **kw, basis=basis, stored=False))
        _same_value(value_by_nps_group(conn, **kw), value_by_nps_group(conn, **kw,
                                                                       stored=False))
    if months >= 12:
        assert live.n > 0 and live.left_out > 0


def test_revenue_after_survey_equals_pandas_over_the_facts(demo_engine: Engine) -> None:
    """A second method: each linked answer's purchases found by pandas, not SQL."""
    start, end = _window(demo_engine, 24)
    with demo_engine.connect() as conn:
        got = revenue_after_survey(conn, start=start, end=end)
        answers = pd.read_sql(select(sr.c.id, sr.c.customer_id, sr.c.submitted_at, sr.c.nps)
                              .where(sr.c.nps.is_not(None), sr.c.submitted_at >= start,
                                     sr.c.submitted_at < end), conn)
        known = set(conn.execute(select(cust.c.id)).scalars())
        sales = pd.read_sql(select(tx.c.customer_id, tx.c.occurred_at, tx.c.amount)
                            .where(tx.c.customer_id.is_not(None)), conn)
    for frame, col in ((answers, "submitted_at"), (sales, "occurred_at")):
        frame[col] = pd.to_datetime(frame[col])
    latest = sales["occurred_at"].max()
    linked = answers[answers["customer_id"].isin(known)]
    observed = linked[linked["submitted_at"] <= latest - pd.Timedelta(days=180)]
    pairs = observed.merge(sales, on="customer_id", how="left")
    after = pairs["occurred_at"] > pairs["submitted_at"]
    pairs["in_window"] = after & (pairs["occurred_at"]
                                  <= pairs["submitted_at"] + pd.Timedelta(days=180))
    pairs["in_churn"] = after & (pairs["occurred_at"]
                                 <= pairs["submitted_at"] + pd.Timedelta(days=90))
    pairs["revenue"] = pairs["amount"].where(pairs["in_window"], 0.0).fillna(0.0)
    per = pairs.groupby(["id", "nps"], as_index=False).agg(
        revenue=("revenue", "sum"), active=("in_churn", "any"))
    per["group"] = pd.cut(per["nps"], [-1, 6, 8, 10],
                          labels=["detractor", "passive", "promoter"]).astype(str)
    assert got.responses == len(answers)
    assert got.unlinked == len(answers) - len(linked)
    assert got.left_out == len(linked) - len(observed)
    for g, part in per.groupby("group"):
        mine = getattr(got, g)
        assert mine.n == len(part)
        assert mine.total == pytest.approx(part["revenue"].sum(), rel=1e-9)
        assert mine.churned == int((~part["active"]).sum())
        assert mine.sd == pytest.approx(part["revenue"].std(ddof=1), rel=1e-6)
    assert got.n == len(per) > 100


def test_a_changed_month_counts_live_until_the_completion_sums_it_again(
        demo_engine: Engine) -> None:
    start, end = _window(demo_engine, 24)
    kw = {"start": start, "end": end}
    with demo_engine.connect() as conn, conn.begin() as trans:
        live = revenue_after_survey(conn, **kw, stored=False)
        value_live = value_by_nps_group(conn, **kw, basis="transactions", stored=False)
        month = conn.execute(select(am.c.month).where(
            am.c.month >= f"{start:%Y-%m}", am.c.kept > 0).order_by(am.c.month)
            .limit(1)).scalar_one()
        # A planted change in one month's sum shows: the reader used the table.
        rows = conn.execute(update(am).where(am.c.month == month, am.c.nps == 10)
                            .values(revenue_sum=am.c.revenue_sum + 1e6)).rowcount
        planted = revenue_after_survey(conn, **kw)
        assert rows >= 1
        assert planted.promoter.total == pytest.approx(live.promoter.total + rows * 1e6,
                                                       rel=1e-9)
        # A sales batch reaching that month forgets its sums: the readers count it live.
        first = dt.datetime.strptime(month, "%Y-%m")
        answer_revenue.clear_span(conn, first + dt.timedelta(days=40),
                                  first + dt.timedelta(days=41), 40)
        assert conn.execute(select(func.count()).select_from(am)
                            .where(am.c.month == month)).scalar_one() == 0
        _same_revenue(revenue_after_survey(conn, **kw), live)
        _same_value(value_by_nps_group(conn, **kw, basis="transactions"), value_live)
        assert month in answer_revenue.stale_months(conn, window_days=180, churn_days=90)
        # Rebuilt (as the completion does once the rows are counted again) it is exact.
        answer_revenue.refresh_months(conn, [month], window_days=180, churn_days=90)
        # The month's answers lost their rows above: its sums say so and it is not used.
        assert month in answer_revenue.stale_months(conn, window_days=180, churn_days=90)
        _same_revenue(revenue_after_survey(conn, **kw), live)
        trans.rollback()
