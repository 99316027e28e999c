"""Loading the demo sources: exact row counts, month sums current and equal to a rebuild,
and a second load changes nothing and settles sums left stale."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, func, select

from etl import answer_revenue
from etl.config import load_config
from etl.rollup import TOPIC_MONTH, bump_summary, refresh_topic_months
from etl.run import run_sources
from queries import schema
from tests import demo_truth as truth

sr = schema.survey_response
st = schema.summary_state


def _count(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _dump(engine: Engine) -> dict[str, list[tuple]]:
    out = {}
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            if table.name in ("etl_run", "quarantine"):
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
    return out


def _sums(engine: Engine, table) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(select(table).order_by(*table.primary_key.columns), conn)


def test_a_load_gives_exact_counts_and_current_sums_and_a_second_changes_nothing(
        engine: Engine, demo_dir: Path) -> None:
    """One load per backend serves every check of what a whole run leaves behind: each
    load of the demo costs CI about half a minute."""
    config = load_config(demo_dir / "sources.toml")
    results = run_sources(engine, config)
    _exact_counts(engine, results, demo_dir)
    _topic_sums_current(engine)
    _answer_sums_current(engine)

    # A second run changes nothing, and settles month sums left stale meanwhile (as right
    # after the upgrades that add them: tables empty, state behind).
    before = _dump(engine)
    with engine.begin() as conn:
        conn.execute(schema.agg_topic_month.delete())
        bump_summary(conn, TOPIC_MONTH)
        answer_revenue.forget_months(conn)
        assert answer_revenue.stale_months(conn, window_days=180, churn_days=90)
    again = run_sources(engine, config)
    assert all(r.ok for r in again), [r.error for r in again]
    assert sum(r.inserted for r in again) == 0
    assert sum(r.updated for r in again) == 0
    with engine.connect() as conn:
        assert answer_revenue.stale_months(conn, window_days=180, churn_days=90) == []
        state = conn.execute(select(st.c.version, st.c.done_version)
                             .where(st.c.name == TOPIC_MONTH)).one()
    assert state.version == state.done_version
    after = _dump(engine)
    # Only the stale mark's version number moved.
    assert {k: v for k, v in after.items() if k != "summary_state"} == \
        {k: v for k, v in before.items() if k != "summary_state"}


def _exact_counts(engine: Engine, results: list, demo_dir: Path) -> None:
    assert [r.status for r in results] == ["success"] * 6, [r.error for r in results]
    members, txns = truth.loyalty(demo_dir)
    surveys = truth.surveys(demo_dir)
    loadable = surveys[surveys["loadable"]]
    eng = truth.engagement(demo_dir)

    assert _count(engine, schema.org_unit) == len(truth.org(demo_dir)) == 16
    assert _count(engine, schema.customer) == len(members)
    assert _count(engine, schema.loyalty_transaction) == len(txns)
    assert _count(engine, schema.survey_response) == len(loadable)
    ratings = sum(int((loadable[a] != "").sum()) for a in truth.ATTRIBUTES)
    assert _count(engine, schema.survey_rating) == ratings
    assert _count(engine, schema.engagement_response) == len(eng)
    assert _count(engine, schema.engagement_score) == int(eng[truth.ITEMS].notna().sum().sum())
    assert _count(engine, schema.headcount) == len(truth.headcount(demo_dir))
    # Responses with no score at all are quarantined with their line, not dropped silently.
    by_source = {r.source: r for r in results}
    assert by_source["customer_survey"].quarantined == int((~surveys["loadable"]).sum())
    with engine.connect() as conn:
        rows = conn.execute(select(schema.quarantine.c.field, schema.quarantine.c.reason)).all()
    assert len(rows) == int((~surveys["loadable"]).sum())
    assert all(r.field == "nps|csat|ces" and r.reason.startswith("no score") for r in rows)


def _topic_sums_current(engine: Engine) -> None:
    """The comment sums: current, equal to a rebuild, every analysed comment once."""
    tm = schema.agg_topic_month
    with engine.begin() as conn:
        state = conn.execute(select(st.c.version, st.c.done_version)
                             .where(st.c.name == TOPIC_MONTH)).one()
        assert state.version == state.done_version
    kept = _sums(engine, tm)
    with engine.begin() as conn:
        assert refresh_topic_months(conn) == len(kept) > 0
    pd.testing.assert_frame_equal(_sums(engine, tm), kept)
    ca = schema.comment_analysis
    with engine.connect() as conn:
        assert kept["comments"].sum() == conn.execute(
            select(func.count()).select_from(ca.join(sr, sr.c.id == ca.c.response_pk))
            .where(ca.c.topic_id.is_not(None), sr.c.comment.is_not(None))).scalar_one()


def _answer_sums_current(engine: Engine) -> None:
    """The answer-month sums: none stale, every NPS answer once, and the completion
    rebuilds exactly them from nothing (as right after the upgrade that adds the table)."""
    am = schema.agg_answer_month
    with engine.connect() as conn:
        assert answer_revenue.stale_months(conn, window_days=180, churn_days=90) == []
        nps_answers = conn.execute(select(func.count(sr.c.nps))).scalar_one()
        spend = conn.execute(select(func.count(sr.c.spend), func.sum(sr.c.spend))
                             .where(sr.c.nps.is_not(None))).one()
    before = _sums(engine, am)
    assert before["responses"].sum() == nps_answers > 0
    assert before["kept"].sum() == before["linked"].sum() > 0
    with engine.begin() as conn:
        answer_revenue.forget_months(conn)
        assert len(answer_revenue.stale_months(conn, window_days=180, churn_days=90)) \
            == before["month"].nunique()
    assert answer_revenue.complete(engine, window_days=180, churn_days=90) == 0
    after = _sums(engine, am)
    pd.testing.assert_frame_equal(after, before)
    # Survey-basis sums: spend and visits as the answers carry them.
    assert after["spend_n"].sum() == spend[0]
    assert math.isclose(after["spend_sum"].sum(), float(spend[1] or 0), rel_tol=1e-9)
