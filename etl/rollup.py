"""Rollups: refresh the aggregate tables for the months a load touched, in SQL.

Each refresh deletes the aggregate rows of the touched months and re-inserts them with one
INSERT ... SELECT ... GROUP BY over the facts, inside the load's transaction: the database
does the work, and facts and aggregates are never seen out of step.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import (
    Boolean,
    Connection,
    and_,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement

from queries import schema
from queries.periods import Month
from queries.sqlfuncs import day_of, month_of, rescaled

sr = schema.survey_response
tx = schema.loyalty_transaction
cust = schema.customer
er = schema.engagement_response
es = schema.engagement_score


def _in_months(column: ColumnElement, months: Iterable[str] | None, *, dates: bool = False
               ) -> ColumnElement[bool]:
    """`column` falls in one of `months`; `dates` for DATE columns (SQLite compares text, and
    '2026-03-01' sorts before '2026-03-01 00:00:00')."""
    if months is None:
        return true()
    ranges = [Month.parse(m) for m in sorted(set(months))]
    if not ranges:
        return false()
    if dates:
        return or_(*[and_(column >= m.start.date(), column < m.end.date()) for m in ranges])
    return or_(*[and_(column >= m.start, column < m.end) for m in ranges])


def _count_if(cond: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def refresh_survey(conn: Connection, months: Iterable[str] | None = None) -> int:
    """Rebuild `agg_survey_daily` for `months` ('YYYY-MM'; None = all). Returns rows written."""
    months = None if months is None else list(months)
    agg = schema.agg_survey_daily
    conn.execute(delete(agg).where(
        true() if months is None else agg.c.month.in_(sorted(set(months)))))
    dims = [sr.c.org_unit_id, cust.c.segment, sr.c.survey_kind, sr.c.touchpoint, sr.c.channel,
            sr.c.device, sr.c.interaction]
    day = day_of(sr.c.submitted_at)
    month = month_of(sr.c.submitted_at)
    # Each answer is counted favourable by its own scale's rule; sums are rescaled onto the
    # reference scales (CSAT 1-5, CES 1-7) so sources on different scales share one mean.
    csat = rescaled(sr.c.csat, sr.c.csat_min, sr.c.csat_max, (1, 5), (1, 5))
    ces = rescaled(sr.c.ces, sr.c.ces_min, sr.c.ces_max, (1, 7), (1, 7))
    query = (
        select(
            day, month, *dims,
            func.count(),
            func.count(sr.c.nps), _count_if(sr.c.nps >= 9), _count_if(sr.c.nps <= 6),
            func.count(sr.c.csat), _count_if(sr.c.csat >= func.coalesce(sr.c.csat_top, 4)),
            func.coalesce(func.sum(csat), 0.0),
            func.count(sr.c.ces), func.coalesce(func.sum(ces), 0.0),
            func.coalesce(func.sum(ces * ces), 0.0),
            _count_if(sr.c.ces >= func.coalesce(sr.c.ces_top, 5)),
            func.count(sr.c.spend), func.coalesce(func.sum(sr.c.spend), 0.0),
        )
        .select_from(sr.outerjoin(cust, cust.c.id == sr.c.customer_id))
        .where(_in_months(sr.c.submitted_at, months))
        .group_by(day, month, *dims)
    )
    columns = ["day", "month", "org_unit_id", "segment", "survey_kind", "touchpoint", "channel",
               "device", "interaction", "responses", "nps_n", "nps_promoters", "nps_detractors",
               "csat_n", "csat_top2", "csat_sum", "ces_n", "ces_sum", "ces_sumsq", "ces_agree",
               "spend_n", "spend_sum"]
    return conn.execute(insert(agg).from_select(columns, query),
                        execution_options={"preserve_rowcount": True}).rowcount


def refresh_transactions(conn: Connection, months: Iterable[str] | None = None) -> int:
    """Rebuild `agg_txn_daily` for `months` (None = all). Returns rows written."""
    months = None if months is None else list(months)
    agg = schema.agg_txn_daily
    conn.execute(delete(agg).where(
        true() if months is None else agg.c.month.in_(sorted(set(months)))))
    member = cast(case((tx.c.customer_id.is_not(None), True), else_=False), Boolean)
    day = day_of(tx.c.occurred_at)
    month = month_of(tx.c.occurred_at)
    query = (
        select(
            day, month, tx.c.org_unit_id, cust.c.segment, tx.c.channel, member,
            func.count(), func.coalesce(func.sum(tx.c.amount), 0.0),
            func.coalesce(func.sum(tx.c.amount * tx.c.amount), 0.0),
            func.coalesce(func.sum(tx.c.points_earned), 0),
            func.coalesce(func.sum(tx.c.points_redeemed), 0),
        )
        .select_from(tx.outerjoin(cust, cust.c.id == tx.c.customer_id))
        .where(_in_months(tx.c.occurred_at, months))
        .group_by(day, month, tx.c.org_unit_id, cust.c.segment, tx.c.channel, member)
    )
    columns = ["day", "month", "org_unit_id", "segment", "channel", "member", "txns", "revenue",
               "revenue_sumsq", "points_earned", "points_redeemed"]
    return conn.execute(insert(agg).from_select(columns, query),
                        execution_options={"preserve_rowcount": True}).rowcount


def refresh_engagement(conn: Connection, months: Iterable[str] | None = None) -> int:
    """Rebuild the engagement aggregates for waves in `months` (None = all)."""
    months = None if months is None else list(months)
    items, units = schema.agg_engagement, schema.agg_engagement_unit
    in_months = _in_months(er.c.wave, months, dates=True)
    for agg in (items, units):
        conn.execute(delete(agg).where(_in_months(agg.c.wave, months, dates=True)))
    # Favourable by each answer's own scale (a 1-4 item is favourable at 3 and 4, not at 4
    # only); means rescaled onto 1-5.
    score = rescaled(es.c.score, es.c.scale_min, es.c.scale_max, (1, 5), (1, 5))
    by_item = (
        select(er.c.wave, er.c.org_unit_id, es.c.item, func.count(),
               _count_if(es.c.score >= func.coalesce(es.c.favourable, 4)),
               func.sum(score), func.sum(score * score))
        .select_from(es.join(er, er.c.id == es.c.response_pk))
        .where(in_months)
        .group_by(er.c.wave, er.c.org_unit_id, es.c.item)
    )
    written = conn.execute(
        insert(items).from_select(
            ["wave", "org_unit_id", "item", "n", "favourable", "score_sum", "score_sumsq"], by_item
        ),
        execution_options={"preserve_rowcount": True},
    ).rowcount
    by_unit = (
        select(er.c.wave, er.c.org_unit_id, func.count(), func.count(er.c.enps),
               _count_if(er.c.enps >= 9), _count_if(er.c.enps <= 6))
        .where(in_months)
        .group_by(er.c.wave, er.c.org_unit_id)
    )
    written += conn.execute(
        insert(units).from_select(
            ["wave", "org_unit_id", "respondents", "enps_n", "enps_promoters", "enps_detractors"],
            by_unit,
        ),
        execution_options={"preserve_rowcount": True},
    ).rowcount
    return written


def refresh_all(conn: Connection) -> int:
    """Rebuild every aggregate from the facts (after a customer load changes segments)."""
    return refresh_survey(conn) + refresh_transactions(conn) + refresh_engagement(conn)


REFRESH = {
    "survey_responses": refresh_survey,
    "transactions": refresh_transactions,
    "engagement_responses": refresh_engagement,
}
