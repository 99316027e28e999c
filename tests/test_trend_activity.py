"""Active members and retention of the 13-month trend, now one set-based statement, against
the month-by-month definition (`member_activity`, one query per month) and against pandas on
the demo's source transactions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from queries.kpis import Filters, member_activity, member_activity_series
from queries.periods import Month
from queries.trends import kpi_trend
from tests import demo_truth as truth

END = Month(2026, 10)
SPAN = [END.shift(-i) for i in range(12, -1, -1)]


@pytest.fixture(scope="module")
def txns(demo_dir: Path) -> pd.DataFrame:
    members, txns = truth.loyalty(demo_dir)
    org = truth.org(demo_dir)
    txns = txns[txns["member_id"].notna()].copy()
    txns["segment"] = txns["member_id"].map(members.set_index("member_id")["segment"])
    txns["region"] = txns["store"].map(org.set_index("Code")["Parent"])
    txns["channel"] = txns["channel"].str.lower()
    return txns


def _pandas_activity(txns: pd.DataFrame, month: Month, days: int = 90) -> tuple[int, int, int]:
    def active(end) -> set[str]:
        end = pd.Timestamp(end)
        w = txns[(txns["occurred"] >= end - pd.Timedelta(days=days)) & (txns["occurred"] < end)]
        return set(w["member_id"])

    now, before = active(month.end), active(month.shift(-1).end)
    return len(now), len(before), len(now & before)


CASES = [
    (Filters(), lambda t: t),
    (Filters(unit="R-WEST"), lambda t: t[t["region"] == "R-WEST"]),
    (Filters(unit="S01", channel="web"), lambda t: t[(t["store"] == "S01")
                                                      & (t["channel"] == "web")]),
    (Filters(segment="Trade"), lambda t: t[t["segment"] == "Trade"]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_trend_matches_month_by_month_and_pandas(demo_engine, txns, case: int) -> None:
    filters, pick = CASES[case]
    rows = pick(txns)
    with demo_engine.connect() as conn:
        trend = kpi_trend(conn, end=END, months=13, filters=filters)
        old = [member_activity(conn, end=m.end, previous_end=m.shift(-1).end, window_days=90,
                               filters=filters) for m in SPAN]
    assert list(trend["month"]) == [str(m) for m in SPAN]
    for i, m in enumerate(SPAN):
        active, before, kept = _pandas_activity(rows, m)
        assert (old[i].active, old[i].active_before, old[i].retained) == (active, before, kept)
        got = trend.iloc[i]
        if active:
            assert got["active_members"] == active
        else:
            assert pd.isna(got["active_members"])
        if before:
            assert got["retention"] == pytest.approx(100 * kept / before)
        else:
            assert pd.isna(got["retention"])
    # The whole company keeps a few hundred members active each month: not a vacuous check.
    if case == 0:
        assert trend["active_members"].min() > 100


def test_series_takes_any_pairs(demo_engine) -> None:
    """Non-consecutive pairs and instants shared between pairs (the KPI set's current,
    comparison and year-ago months) give what `member_activity` gives pair by pair."""
    months = [END, END.shift(-1), END.shift(-12), END.shift(-1)]
    pairs = [(m.end, m.shift(-1).end) for m in months]
    filters = Filters(unit="R-SOUTH")
    with demo_engine.connect() as conn:
        got = member_activity_series(conn, pairs=pairs, window_days=30, filters=filters)
        want = [member_activity(conn, end=a, previous_end=b, window_days=30, filters=filters)
                for a, b in pairs]
        single = member_activity_series(conn, pairs=pairs[:1], window_days=30, filters=filters)
        assert member_activity_series(conn, pairs=[], filters=filters) == []
    assert got == want
    assert single == want[:1]
    assert got[0].active > 0 and got[0].retained > 0
