"""The ETL's answer revenue (each known customer's NPS answer with the purchases after it):
the revenue page's numbers are the same from it as joined live from the sales, on the demo
and on a hand-made company counted by hand; a sales batch clears exactly the answers it
changes, and readers join live whenever a row is missing."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from etl import answer_revenue
from etl.config import load_config
from etl.run import run_sources
from queries import schema
from queries.links import revenue_after_survey, value_by_nps_group
from queries.periods import Month
from tests.sources_kit import ORG_SOURCE

# The demo's answers run from November 2025 to October 2026; answers whose 180 days are
# observed end in April 2026.
PERIODS = [(Month(2025, 11), Month(2026, 4)), (Month(2026, 1), Month(2026, 10))]
FILTERS = [{}, {"unit": "R-NORTH"}, {"segment": "Families"}, {"unit": "R-WEST",
                                                             "segment": "Trade"}]


def _same(a: object, b: object) -> None:
    """Two dataclass results equal, floats to 1e-9 (sums of sums on SQLite's doubles)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9)
    elif hasattr(a, "__dataclass_fields__"):
        for name in a.__dataclass_fields__:
            _same(getattr(a, name), getattr(b, name))
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    else:
        assert a == b


def test_the_demo_reads_the_same_from_the_table_as_from_the_sales(demo_engine) -> None:
    sr, cust, ar = schema.survey_response, schema.customer, schema.answer_revenue
    with demo_engine.connect() as conn:
        # Every NPS answer of a known customer has its row, counted with the configured
        # windows: the readers below use the table.
        counted = conn.execute(select(func.count()).select_from(
            sr.join(cust, cust.c.id == sr.c.customer_id)).where(sr.c.nps.is_not(None))
        ).scalar_one()
        assert counted > 1000
        assert conn.execute(select(func.count()).select_from(ar)).scalar_one() == counted
        assert answer_revenue.missing_count(conn, window_days=180, churn_days=90) == 0
        for first, last in PERIODS:
            for filters in FILTERS:
                kw = {"start": first.start, "end": last.end, **filters}
                fast = revenue_after_survey(conn, **kw)
                slow = revenue_after_survey(conn, **kw, stored=False)
                assert fast.n > 0
                _same(fast, slow)
                _same(value_by_nps_group(conn, basis="transactions", **kw),
                      value_by_nps_group(conn, basis="transactions", **kw, stored=False))


PEOPLE = "Member,Segment\nA,Gold\nB,Gold\nC,Silver\n"
ANSWERS = [  # id, customer, when, nps
    ("q1", "A", "2026-01-10 09:00:00", 10),
    ("q2", "B", "2026-01-20 09:00:00", 3),
    ("q3", "C", "2026-02-01 09:00:00", 8),
    ("q4", "", "2026-02-02 09:00:00", 9),  # no customer: never counted
]
SALES = [  # id, customer, store, when, amount
    ("t1", "A", "S01", "2026-01-15 12:00:00", 20.00),
    ("t2", "A", "S02", "2026-03-01 12:00:00", 30.50),
    ("t3", "B", "S01", "2026-01-19 12:00:00", 99.00),  # before B answered: not counted
    ("t4", "C", "S01", "2026-08-10 12:00:00", 15.00),  # 190 days after q3: outside 180
]


def _company(folder: Path) -> Path:
    (folder / "org.csv").write_text("Code,Name,Level,Parent\nACME,Acme,Company,\n"
                                    "R1,North,Region,ACME\nS01,Leeds,Store,R1\n"
                                    "S02,York,Store,R1\n")
    (folder / "members.csv").write_text(PEOPLE)
    (folder / "answers.csv").write_text("Id,Member,When,Store,NPS\n" + "".join(
        f"{i},{c},{w},S01,{n}\n" for i, c, w, n in ANSWERS))
    (folder / "sales").mkdir()
    _sales(folder, "a", SALES)
    path = folder / "sources.toml"
    path.write_text(ORG_SOURCE + textwrap.dedent("""
        [[source]]
        name = "members"
        kind = "loyalty"
        entity = "customers"
        adapter = "csv"
        location = "members.csv"
        [source.columns]
        id = "Member"
        segment = "Segment"

        [[source]]
        name = "sales"
        kind = "loyalty"
        entity = "transactions"
        adapter = "csv"
        location = "sales/*.csv"
        [source.columns]
        txn_id = "Id"
        customer_id = "Member"
        org_unit_id = "Store"
        occurred_at = "When"
        amount = "Amount"

        [[source]]
        name = "survey"
        kind = "survey"
        adapter = "csv"
        location = "answers.csv"
        [source.columns]
        response_id = "Id"
        customer_id = "Member"
        submitted_at = "When"
        org_unit_id = "Store"
        nps = "NPS"
    """))
    return path


def _sales(folder: Path, name: str, rows: list[tuple]) -> None:
    (folder / "sales" / f"{name}.csv").write_text("Id,Member,Store,When,Amount\n" + "".join(
        f"{i},{c},{s},{w},{a:.2f}\n" for i, c, s, w, a in rows))


def _rows(engine) -> dict[str, tuple]:
    sr, ar = schema.survey_response, schema.answer_revenue
    with engine.connect() as conn:
        return {r[0]: (float(r[1]), r[2], r[3]) for r in conn.execute(
            select(sr.c.response_id, ar.c.revenue, ar.c.purchases, ar.c.active)
            .select_from(ar.join(sr, sr.c.id == ar.c.response_pk)))}


def _run(engine, config: Path) -> None:
    results = run_sources(engine, load_config(config))
    assert all(r.ok for r in results), [(r.source, r.error) for r in results if not r.ok]


def test_counted_by_hand_and_kept_exact_as_sales_arrive(engine, tmp_path: Path) -> None:
    config = _company(tmp_path)
    _run(engine, config)
    # q1 (A, 10 Jan): t1 (5 days after) and t2 (50 days after), both within 180 and t1
    # within 90 days; q2 (B): nothing after it; q3 (C): t4 is 190 days after, outside.
    assert _rows(engine) == {"q1": (50.5, 2, 1), "q2": (0.0, 0, 0), "q3": (0.0, 0, 0)}

    # A late sale of B's, 100 days after q2: within 180 days, not within 90 (still churned).
    # Only B's answers are cleared and counted again; A's and C's rows are not touched.
    with engine.connect() as conn:
        before = dict(conn.execute(select(schema.answer_revenue.c.response_pk,
                                          schema.answer_revenue.c.revenue)).all())
    _sales(tmp_path, "b", [("t5", "B", "S02", "2026-04-30 09:00:00", 12.25)])
    _run(engine, config)
    assert _rows(engine) == {"q1": (50.5, 2, 1), "q2": (12.25, 1, 0), "q3": (0.0, 0, 0)}
    # The month sums the sales batch forgot were rebuilt by the completion. By hand:
    # January holds q1 and q2 (revenue 50.5 + 12.25, q2 churned), February q3 (nothing
    # in its window, churned) and q4 (no customer: an answer, not linked).
    am = schema.agg_answer_month
    with engine.connect() as conn:
        assert answer_revenue.stale_months(conn, window_days=180, churn_days=90) == []
        sums = conn.execute(select(am.c.month, func.sum(am.c.responses), func.sum(am.c.linked),
                                   func.sum(am.c.kept), func.sum(am.c.revenue_sum),
                                   func.sum(am.c.churned))
                            .group_by(am.c.month).order_by(am.c.month)).all()
    assert [tuple(r) for r in sums] == [("2026-01", 2, 2, 2, 62.75, 1),
                                        ("2026-02", 2, 1, 1, 0.0, 1)]

    kw = {"start": dt.datetime(2026, 1, 1), "end": dt.datetime(2026, 3, 1)}
    ar, am = schema.answer_revenue, schema.agg_answer_month
    with engine.begin() as conn:
        # The reader sums the month sums (one altered by hand shows), the live join does not.
        assert conn.execute(select(am.c.revenue_sum).where(
            am.c.month == "2026-01", am.c.nps >= 9)).scalar_one() == 50.5
        conn.execute(update(am).where(am.c.month == "2026-01", am.c.nps >= 9)
                     .values(revenue_sum=1000.0))
        assert revenue_after_survey(conn, **kw).promoter.total == 1000.0
        assert revenue_after_survey(conn, **kw, stored=False).promoter.total == 50.5
        conn.rollback()
    with engine.begin() as conn:
        # Without the month's sums it sums the per-answer table (a row altered by hand shows).
        answer_revenue.forget_months(conn, ["2026-01"])
        conn.execute(update(ar).where(ar.c.response_pk == select(schema.survey_response.c.id)
                                      .where(schema.survey_response.c.response_id == "q1")
                                      .scalar_subquery()).values(revenue=1000.0))
        assert revenue_after_survey(conn, **kw).promoter.total == 1000.0
        assert revenue_after_survey(conn, **kw, stored=False).promoter.total == 50.5
        conn.rollback()
    with engine.begin() as conn:
        # Cleared and not yet counted again (a run cut short): readers join the sales.
        when = dt.datetime(2026, 1, 1)
        assert answer_revenue.clear_span(conn, when, when + dt.timedelta(days=40), 0) == 3
        assert answer_revenue.missing_count(conn, window_days=180, churn_days=90) == 3
        live = revenue_after_survey(conn, **kw, stored=False)
        _same(revenue_after_survey(conn, **kw), live)
    assert answer_revenue.complete(engine, window_days=180, churn_days=90) == 3
    with engine.connect() as conn:
        after = dict(conn.execute(select(schema.answer_revenue.c.response_pk,
                                         schema.answer_revenue.c.revenue)).all())
    assert after.keys() == before.keys()

    # Other windows (CX_REVENUE_DAYS=30, CX_ACTIVE_DAYS=200): every row is counted again.
    assert answer_revenue.complete(engine, window_days=30, churn_days=200) == 3
    # q1: only t1 within 30 days; q2: t5 within 200 days; q3: t4 within 200 days (190).
    assert _rows(engine) == {"q1": (20.0, 1, 1), "q2": (0.0, 0, 1), "q3": (0.0, 0, 1)}


def test_etl_rollup_counts_answer_revenue_again(engine, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from queries.settings import ROOT

    _run(engine, _company(tmp_path))
    ar = schema.answer_revenue
    with engine.begin() as conn:
        conn.execute(update(ar).values(revenue=0, purchases=0))  # damaged by hand
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "CX_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "etl", "rollup"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _rows(engine) == {"q1": (50.5, 2, 1), "q2": (0.0, 0, 0), "q3": (0.0, 0, 0)}


def _state(engine) -> tuple:
    st = schema.summary_state
    with engine.connect() as conn:
        return tuple(conn.execute(select(st.c.version, st.c.done_version, st.c.params)
                                  .where(st.c.name == "answer_revenue")).one())


def test_a_run_with_nothing_new_skips_the_search_for_missing_rows(engine,
                                                                  tmp_path: Path) -> None:
    config = _company(tmp_path)
    _run(engine, config)
    version, done, params = _state(engine)
    assert (done, params) == (version, "180/90")
    # A row lost outside the ETL (by hand) is not searched for by a run with nothing new:
    # readers join that answer's sales live meanwhile, and the numbers stay right.
    ar, sr = schema.answer_revenue, schema.survey_response
    with engine.begin() as conn:
        conn.execute(ar.delete().where(ar.c.response_pk == select(sr.c.id).where(
            sr.c.response_id == "q1").scalar_subquery()))
    kw = {"start": dt.datetime(2026, 1, 1), "end": dt.datetime(2026, 3, 1)}
    with engine.connect() as conn:
        _same(revenue_after_survey(conn, **kw), revenue_after_survey(conn, **kw,
                                                                      stored=False))
    _run(engine, config)
    assert _state(engine) == (version, done, params)
    assert "q1" not in _rows(engine)
    assert answer_revenue.complete(engine, window_days=180, churn_days=90) == 0
    # Anything that may leave rows missing marks the state, in its own transaction; the
    # next completion then searches and counts the row again.
    with engine.begin() as conn:
        answer_revenue.mark_pending(conn)
    assert _state(engine)[0] == version + 1
    # One answer id per transaction: the walk over id ranges misses none.
    assert answer_revenue.complete(engine, window_days=180, churn_days=90, chunk=1) == 1
    assert _rows(engine)["q1"] == (50.5, 2, 1)
    assert _state(engine) == (version + 1, version + 1, "180/90")
    # New sales mark it too (and their run completes it).
    _sales(tmp_path, "more", [("t9", "A", "S01", "2026-03-01 10:00:00", 1.5)])
    _run(engine, config)
    after, done_after, _ = _state(engine)
    assert after > version + 1 and done_after == after


def test_the_completion_searches_only_the_months_batches_forgot(engine,
                                                                 tmp_path: Path) -> None:
    config = _company(tmp_path)
    _run(engine, config)
    ar, sr = schema.answer_revenue, schema.survey_response
    with engine.begin() as conn:
        # q3's row (February) lost by hand, silently: nothing forgot February.
        conn.execute(ar.delete().where(ar.c.response_pk == select(sr.c.id).where(
            sr.c.response_id == "q3").scalar_subquery()))
        # A batch's way: January's rows deleted and its sums forgotten.
        assert answer_revenue.clear_months(conn, ["2026-01"]) == 2
        assert answer_revenue.stale_months(conn, window_days=180, churn_days=90) \
            == ["2026-01"]
    # Only January is searched: q1 and q2 are counted again, q3 is not looked for.
    assert answer_revenue.complete(engine, window_days=180, churn_days=90) == 2
    assert set(_rows(engine)) == {"q1", "q2"}
    # Rows missing anywhere (mark_pending): every answer is walked, q3 found.
    with engine.begin() as conn:
        answer_revenue.mark_pending(conn)
    assert answer_revenue.complete(engine, window_days=180, churn_days=90) == 1
    assert _rows(engine) == {"q1": (50.5, 2, 1), "q2": (0.0, 0, 0), "q3": (0.0, 0, 0)}
    with engine.connect() as conn:
        assert answer_revenue.stale_months(conn, window_days=180, churn_days=90) == []
