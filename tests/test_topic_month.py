"""The topics chart's month sums (`agg_topic_month`): topic summaries read from them equal the
summaries counted from the comments, merges included; while a comment analysis has left
them stale the reader counts from the comments. (That the ETL leaves them current and a
run with nothing new settles them: tests/test_load_demo.py, on its one load of the demo.)"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, update

from etl.rollup import TOPIC_MONTH, bump_summary, settle_topic_months
from queries import schema
from queries.comment_topics import topic_summary
from queries.kpis import Filters
from tests.test_driver_moments import _region

tm = schema.agg_topic_month
sr = schema.survey_response


def _window(engine: Engine, months: int, back: int = 0) -> tuple[dt.datetime, dt.datetime]:
    with engine.connect() as conn:
        last = conn.execute(select(func.max(tm.c.month))).scalar_one()
    end = dt.datetime.strptime(last, "%Y-%m")
    for _ in range(back):
        end = (end - dt.timedelta(days=1)).replace(day=1)
    end = (end + dt.timedelta(days=32)).replace(day=1)
    start = end
    for _ in range(months):
        start = (start - dt.timedelta(days=1)).replace(day=1)
    return start, end


def _same(a, b) -> None:
    assert (a.comments, a.detractor_comments, a.promoter_comments, a.previous_comments) == (
        b.comments, b.detractor_comments, b.promoter_comments, b.previous_comments)
    pd.testing.assert_frame_equal(a.frame, b.frame, rtol=1e-9)


@pytest.mark.parametrize(("months", "scope"), [(12, "company"), (3, "region"), (1, "store")])
def test_summed_topics_equal_topics_counted_from_the_comments(
        demo_engine: Engine, months: int, scope: str) -> None:
    start, end = _window(demo_engine, months)
    prev_start, prev_end = _window(demo_engine, months, back=months)
    unit = {"company": None, "region": _region(demo_engine), "store": "S01"}[scope]
    kw = {"start": start, "end": end, "filters": Filters(unit=unit),
          "compare_start": prev_start, "compare_end": prev_end}
    with demo_engine.connect() as conn:
        live = topic_summary(conn, **kw, stored=False)
        _same(topic_summary(conn, **kw), live)
        # A dimension filter is not in the sums: counted from the comments, same answer.
        channel = conn.execute(select(sr.c.channel).where(sr.c.channel.is_not(None))
                               .limit(1)).scalar_one()
        kw["filters"] = Filters(unit=unit, channel=channel)
        _same(topic_summary(conn, **kw), topic_summary(conn, **kw, stored=False))
    assert live.comments > 0 and len(live.frame) >= 2


def test_the_reader_uses_the_sums_only_while_current(demo_engine: Engine) -> None:
    start, end = _window(demo_engine, 3)
    kw = {"start": start, "end": end, "filters": Filters()}
    with demo_engine.connect() as conn, conn.begin() as trans:
        live = topic_summary(conn, **kw, stored=False)
        top = int(live.frame["topic_id"].iloc[0])
        # A planted change in the sums shows: the reader used them (a merged topic's own
        # rows count under the topic it was merged into).
        planted = conn.execute(
            update(tm).where(tm.c.month == f"{start:%Y-%m}", tm.c.topic_id.in_(
                select(schema.comment_topic.c.id).where(func.coalesce(
                    schema.comment_topic.c.merged_into, schema.comment_topic.c.id) == top)))
            .values(comments=tm.c.comments + 1000)).rowcount
        assert planted >= 1
        got = topic_summary(conn, **kw)
        assert got.comments == live.comments + 1000 * planted
        # An analysis writing (stale sums): counted from the comments again.
        bump_summary(conn, TOPIC_MONTH)
        _same(topic_summary(conn, **kw), live)
        # Settled: rebuilt from the comments, exact, and used again.
        assert settle_topic_months(conn)
        _same(topic_summary(conn, **kw), live)
        assert not settle_topic_months(conn)
        trans.rollback()


@pytest.mark.parametrize("group", [None, "promoter", "passive", "detractor"])
def test_the_comment_count_from_the_sums_equals_a_count_of_the_answers(
        demo_engine: Engine, group: str | None) -> None:
    from queries.comments import comments, summed_months

    start, end = _window(demo_engine, 12)
    region = _region(demo_engine)
    ou = schema.org_unit
    with demo_engine.connect() as conn:
        assert summed_months(conn, start, end, Filters(unit=region)) is not None
        got = comments(conn, start=start, end=end, filters=Filters(unit=region), group=group,
                       limit=5)
        frame = pd.read_sql(select(sr.c.comment, sr.c.nps, sr.c.org_unit_id, ou.c.parent_id)
                            .select_from(sr.join(ou, ou.c.id == sr.c.org_unit_id))
                            .where(sr.c.submitted_at >= start, sr.c.submitted_at < end), conn)
    # The demo's stores sit directly under their region.
    frame = frame[(frame["parent_id"] == region) | (frame["org_unit_id"] == region)]
    frame = frame[frame["comment"].fillna("").str.strip().str.len() > 0]
    nps = frame["nps"]
    keep = {None: nps.notna() | nps.isna(), "promoter": nps >= 9,
            "passive": (nps >= 7) & (nps <= 8), "detractor": nps <= 6}[group]
    assert got.total == int(keep.sum()) > 0
    assert len(got.rows) == 5
