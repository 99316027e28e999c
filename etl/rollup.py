"""Rollups: refresh the aggregate tables for the months a load touched, in SQL.

Each refresh deletes the aggregate rows of the touched months and re-inserts them with one
INSERT ... SELECT ... GROUP BY over the facts, inside the load's transaction: the database
does the work, and facts and aggregates are never seen out of step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    union_all,
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


def refresh_transactions(conn: Connection, months: Iterable[str] | None = None, *,
                         activity: bool = True) -> int:
    """Rebuild `agg_txn_daily` and the member activity counts for `months` (None = all).
    Returns rows written.

    `activity=False` leaves the activity counts to the caller: a load of many batches can
    then call `refresh_member_activity` once with every month it touched (the counts of a
    month read three months of transactions, so once per batch costs more than the load).
    """
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
    written = conn.execute(insert(agg).from_select(columns, query),
                           execution_options={"preserve_rowcount": True}).rowcount
    # Active members are counted from the same transactions: refreshed with them, so the
    # two never disagree.
    return written + (refresh_member_activity(conn, months) if activity else 0)


ANY = ""
"""The segment or channel of activity counts made without that filter."""
EVERY_UNIT = "*"
"""The scope unit of activity counts over the whole company."""


def activity_months(months: Iterable[str] | None, first: Month, last: Month,
                    window_days: int) -> list[Month]:
    """The months whose activity counts change when transactions of `months` change (None:
    every month from `first` to `last`).

    A member is active as of a month's end with a transaction in the `window_days` before
    it, and each month's retention also looks at the month before: a transaction in month
    T moves the counts of T up to the month whose end lies `window_days` after T's end,
    and of the month after that. Kept within `first`..`last`.
    """
    if months is None:
        wanted = {first}
        while max(wanted) < last:
            wanted.add(max(wanted).shift(1))
        return sorted(wanted)
    out: set[Month] = set()
    for key in set(months):
        touched = Month.parse(key)
        reach = Month.of((touched.end + dt.timedelta(days=window_days)).date()).shift(1)
        m = max(touched, first)
        while m <= min(reach, last):
            out.add(m)
            m = m.shift(1)
    return sorted(out)


def refresh_member_activity(conn: Connection, months: Iterable[str] | None = None, *,
                            window_days: int = 90) -> int:
    """Rebuild `agg_member_activity` for the months that transactions of `months` affect
    (None = all): active members as of each month's end, active members as of the month
    before's end, those active at both and those who earned points during the month, for
    every unit's subtree and the whole company,
    by segment, by channel, by both and by neither. Returns rows written.

    Counted with one INSERT ... SELECT per grouping; the window is `window_days`
    (CX_ACTIVE_DAYS, 90 by default: a dashboard set to another window counts from the
    facts instead).
    """
    from queries.kpis import org_tree_fingerprint

    agg = schema.agg_member_activity
    low, high = conn.execute(select(func.min(tx.c.occurred_at),
                                    func.max(tx.c.occurred_at))).one()
    if low is None:
        conn.execute(delete(agg).where(agg.c.window_days == window_days))
        return 0
    first = Month.of(_as_datetime(low))
    # Members stay active after the last sale for a window: the month after it still counts.
    last = Month.of(_as_datetime(high)).shift(1)
    wanted = activity_months(None if months is None else list(months), first, last,
                             window_days)
    conn.execute(delete(agg).where(
        agg.c.window_days == window_days,
        true() if months is None else agg.c.month.in_([str(m) for m in wanted])))
    if not wanted:
        return 0
    tree = org_tree_fingerprint(conn)
    instants = sorted({t for m in wanted for t in (m.end, m.shift(-1).end)})
    index = {t: i for i, t in enumerate(instants)}
    since = dt.timedelta(days=window_days)
    ends = union_all(*[
        select(literal(i, Integer).label("k"), literal(t - since, DateTime).label("since"),
               literal(t, DateTime).label("as_of")) for t, i in index.items()]).cte("ends")
    # Each unit with itself, every unit above it and the whole company: the subtrees a
    # transaction counts in. A small table made here (a recursive CTE inside the big join
    # left PostgreSQL without row estimates).
    ou = schema.org_unit
    parent = dict(conn.execute(select(ou.c.id, ou.c.parent_id)).all())
    scopes = Table("tmp_unit_scopes", MetaData(), Column("unit", String(64)),
                   Column("ancestor", String(64)), Index("ix_tmp_unit_scopes", "unit"),
                   prefixes=["TEMPORARY"])
    scopes.create(conn)
    links = []
    for unit in parent:
        above, seen = unit, set()
        while above is not None and above not in seen:  # a cycle in bad data stops here
            seen.add(above)
            links.append({"unit": unit, "ancestor": above})
            above = parent.get(above)
        links.append({"unit": unit, "ancestor": EVERY_UNIT})
    if links:
        conn.execute(insert(scopes), links)
    # Who bought where and how, per instant, at the stores' grain: the range join runs once
    # and its few distinct rows (members x stores x channels per window, not transactions)
    # feed every grouping below.
    visits = Table("tmp_member_visits", MetaData(), Column("k", Integer),
                   Column("customer_id", String(64)), Column("org_unit_id", String(64)),
                   Column("segment", String(64)), Column("channel", String(32)),
                   prefixes=["TEMPORARY"])
    visits.create(conn)
    conn.execute(insert(visits).from_select(
        ["k", "customer_id", "org_unit_id", "segment", "channel"],
        select(ends.c.k, tx.c.customer_id, tx.c.org_unit_id, cust.c.segment, tx.c.channel)
        .select_from(tx.join(cust, cust.c.id == tx.c.customer_id)
                     .join(ends, and_(tx.c.occurred_at >= ends.c.since,
                                      tx.c.occurred_at < ends.c.as_of)))
        .where(cust.c.loyalty_member.is_(True), tx.c.customer_id.is_not(None))
        .distinct()))
    # Members earning points during each month (the redemption rate's n) join the same
    # table under instants numbered after the windows' (their neighbours mean nothing).
    earn = {m: len(instants) + i for i, m in enumerate(wanted)}
    months_cte = union_all(*[
        select(literal(k, Integer).label("k"), literal(m.start, DateTime).label("since"),
               literal(m.end, DateTime).label("as_of")) for m, k in earn.items()]).cte("months")
    conn.execute(insert(visits).from_select(
        ["k", "customer_id", "org_unit_id", "segment", "channel"],
        select(months_cte.c.k, tx.c.customer_id, tx.c.org_unit_id, cust.c.segment,
               tx.c.channel)
        .select_from(tx.join(cust, cust.c.id == tx.c.customer_id)
                     .join(months_cte, and_(tx.c.occurred_at >= months_cte.c.since,
                                            tx.c.occurred_at < months_cte.c.as_of)))
        .where(cust.c.loyalty_member.is_(True), tx.c.customer_id.is_not(None),
               tx.c.points_earned > 0)
        .distinct()))
    if conn.dialect.name == "postgresql":
        # Temporary tables have no statistics until analysed: the plans below need them.
        conn.execute(text("ANALYZE tmp_member_visits"))
        conn.execute(text("ANALYZE tmp_unit_scopes"))
    written = 0
    for by_segment, by_channel in ((False, False), (True, False), (False, True), (True, True)):
        segment = visits.c.segment if by_segment else literal(ANY, String)
        channel = visits.c.channel if by_channel else literal(ANY, String)
        conds = []
        if by_segment:
            conds.append(visits.c.segment.is_not(None))
        if by_channel:
            conds.append(visits.c.channel.is_not(None))
        people = (select(visits.c.k, visits.c.customer_id, scopes.c.ancestor,
                         segment.label("segment"), channel.label("channel"))
                  .select_from(visits.join(scopes, scopes.c.unit == visits.c.org_unit_id))
                  .where(*conds)
                  .distinct()
                  .subquery("people"))
        group = [people.c.ancestor, people.c.segment, people.c.channel]
        # Each person's instants in order: one sort instead of a self-join. A month's two
        # instants are neighbours in `instants` (month starts, sorted), so "active the
        # month before too" is "the person's previous instant is k - 1".
        ordered = select(
            people.c.k, *group,
            func.lag(people.c.k).over(partition_by=[people.c.customer_id, *group],
                                      order_by=people.c.k).label("previous"),
        ).subquery("ordered")
        keys = [ordered.c.k, ordered.c.ancestor, ordered.c.segment, ordered.c.channel]
        active: dict[tuple, int] = {}
        kept: dict[tuple, int] = {}
        for k, ancestor, seg, chan, n, both in conn.execute(
                select(*keys, func.count(),
                       func.coalesce(func.sum(case((ordered.c.previous == ordered.c.k - 1, 1),
                                                   else_=0)), 0))
                .group_by(*keys)):
            active[(k, ancestor, seg, chan)] = int(n)
            kept[(k, ancestor, seg, chan)] = int(both)
        rows = []
        for m in wanted:
            cur, prev = index[m.end], index[m.shift(-1).end]
            groups = {key[1:] for key in active if key[0] in (cur, prev, earn[m])}
            if not (by_segment or by_channel):
                # Every counted month has its company row, even at zero: readers take its
                # presence as "this month was counted".
                groups.add((EVERY_UNIT, ANY, ANY))
            rows += [{"month": str(m), "window_days": window_days, "scope_unit": g[0],
                      "segment": g[1], "channel": g[2], "active": active.get((cur, *g), 0),
                      "active_before": active.get((prev, *g), 0),
                      "retained": kept.get((cur, *g), 0),
                      "earning": active.get((earn[m], *g), 0), "org_tree": tree}
                     for g in sorted(groups)]
        if rows:
            conn.execute(insert(agg), rows)
        written += len(rows)
    for table in (visits, scopes):
        table.drop(conn)
    return written


def _as_datetime(value: object) -> dt.date:
    # SQLite hands back MIN()/MAX() of a timestamp as text.
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value).date()
    return value.date() if isinstance(value, dt.datetime) else value  # type: ignore[union-attr]


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
