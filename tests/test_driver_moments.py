"""The key-driver model re-aggregated from the ETL's per-month sums equals the model counted
from the ratings, for any window of whole months, scope, outcome and coverage threshold;
the page reads the sums when they hold every answer and counts otherwise."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from sqlalchemy import Engine, delete, func, select, update

from etl.rollup import refresh_driver_moments
from queries import schema
from queries.links import key_drivers

dm = schema.agg_driver_moments


def _months(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(dm.c.month).distinct()).scalars())


def _region(engine: Engine) -> str:
    ou = schema.org_unit
    with engine.connect() as conn:
        return conn.execute(select(ou.c.id).where(ou.c.kind == "region").order_by(ou.c.id)
                            .limit(1)).scalar_one()


def _same(a, b) -> None:
    assert (a.n, a.responses, a.dropped) == (b.n, b.responses, b.dropped)
    assert b.r_squared is not None
    assert a.r_squared == pytest.approx(b.r_squared, rel=1e-9)
    pd.testing.assert_frame_equal(a.frame, b.frame, rtol=1e-9)


@pytest.mark.parametrize(("months", "outcome", "scope", "coverage"), [
    (12, "nps", "company", 0.5),
    (3, "csat", "company", 0.5),
    (3, "nps", "region", 0.5),
    (12, "nps", "store", 0.5),
    (12, "nps", "company", 0.9),  # fewer attributes kept: other complete cases
])
def test_stored_sums_give_the_model_counted_from_the_ratings(
        demo_engine: Engine, months: int, outcome: str, scope: str, coverage: float) -> None:
    last = dt.datetime.strptime(_months(demo_engine)[-1], "%Y-%m")
    end = (last + dt.timedelta(days=32)).replace(day=1)
    start = end
    for _ in range(months):
        start = (start - dt.timedelta(days=1)).replace(day=1)
    unit = {"company": None, "region": _region(demo_engine), "store": "S01"}[scope]
    with demo_engine.connect() as conn:
        stored = key_drivers(conn, start=start, end=end, outcome=outcome, unit=unit,
                             min_coverage=coverage)
        live = key_drivers(conn, start=start, end=end, outcome=outcome, unit=unit,
                           min_coverage=coverage, stored=False)
    assert live.n > 0 and len(live.frame) >= 1
    _same(stored, live)


def test_the_page_reads_the_sums_and_counts_when_a_month_is_missing(
        demo_engine: Engine) -> None:
    month = _months(demo_engine)[-2]
    start = dt.datetime.strptime(month, "%Y-%m")
    end = (start + dt.timedelta(days=32)).replace(day=1)
    # One transaction, rolled back: the shared demo database is left as it was.
    with demo_engine.connect() as conn, conn.begin() as trans:
        live = key_drivers(conn, start=start, end=end, stored=False)
        # A planted change in one stored sum shows up: the reader used the table.
        row = conn.execute(select(dm.c.org_unit_id, dm.c.pattern, dm.c.moments).where(
            dm.c.month == month, dm.c.outcome == "nps").order_by(dm.c.n.desc()).limit(1)).one()
        planted = json.loads(row.moments)
        planted["ss"][0] += 500.0
        conn.execute(update(dm).where(dm.c.month == month, dm.c.outcome == "nps",
                                      dm.c.org_unit_id == row.org_unit_id,
                                      dm.c.pattern == row.pattern)
                     .values(moments=json.dumps(planted)))
        changed = key_drivers(conn, start=start, end=end)
        assert changed.responses == live.responses
        assert changed.r_squared != pytest.approx(live.r_squared, rel=1e-6)
        # A month without its sums (not counted yet) is counted from the ratings instead.
        conn.execute(delete(dm).where(dm.c.month == month,
                                      dm.c.org_unit_id == row.org_unit_id))
        _same(key_drivers(conn, start=start, end=end), live)
        # Rebuilding the month restores exactly what the ratings give.
        written = refresh_driver_moments(conn, [month])
        assert written == conn.execute(select(func.count()).select_from(dm)
                                       .where(dm.c.month == month)).scalar_one()
        _same(key_drivers(conn, start=start, end=end), live)
        trans.rollback()


def test_too_many_attributes_leave_the_sums_empty_and_the_page_counts(
        demo_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import etl.rollup

    month = _months(demo_engine)[-2]
    start = dt.datetime.strptime(month, "%Y-%m")
    end = (start + dt.timedelta(days=32)).replace(day=1)
    monkeypatch.setattr(etl.rollup, "MAX_DRIVER_ATTRIBUTES", 2)  # the demo rates five
    with demo_engine.connect() as conn, conn.begin() as trans:
        assert refresh_driver_moments(conn, [month]) == 0
        assert conn.execute(select(func.count()).select_from(dm)
                            .where(dm.c.month == month)).scalar_one() == 0
        _same(key_drivers(conn, start=start, end=end),
              key_drivers(conn, start=start, end=end, stored=False))
        trans.rollback()


def test_stored_moments_add_up_per_pattern_by_hand() -> None:
    """The reader parses each pattern's moments at once; rows written in another JSON form
    (keys reordered, spaced) are read as JSON. Sums by hand."""
    import numpy as np

    from queries.links import _sum_driver_moments, pack_driver_moments

    ab = pack_driver_moments(["a", "b"], [1, 2, 3], [1, 2, 3, 4, 5, 6])
    ab2 = pack_driver_moments(["a", "b"], [10, 20, 30], [10, 20, 30, 40, 50, 60])
    a = pack_driver_moments(["a"], [5, 7], [25, 35, 49])
    other = ("a", 3, '{"ss": [1e2, 2.5, 3], "s": [4, -0.5]}')
    got = _sum_driver_moments([(ab[0], 2, ab[1]), (a[0], 1, a[1]), (ab2[0], 4, ab2[1]),
                               other])
    n, sums, upper = got[("a", "b")]
    assert n == 6
    assert sums.tolist() == [11.0, 22.0, 33.0]
    assert upper.tolist() == [11.0, 22.0, 33.0, 44.0, 55.0, 66.0]
    n, sums, upper = got[("a",)]
    assert n == 4
    assert np.allclose(sums, [9.0, 6.5]) and np.allclose(upper, [125.0, 37.5, 52.0])
