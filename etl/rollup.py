"""Rollups: refresh the aggregate tables for the months a load touched, in SQL.

Each refresh deletes the aggregate rows of the touched months and re-inserts them with one
INSERT ... SELECT ... GROUP BY over the facts, inside the load's transaction: the database
does the work, and facts and aggregates are never seen out of step.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Iterable

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
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
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from queries import schema
from queries.kpis import SURVEY_DIMS, TXN_DIMS
from queries.links import DRIVER_RATING, pack_driver_moments
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
    written = conn.execute(insert(agg).from_select(columns, query),
                           execution_options={"preserve_rowcount": True}).rowcount
    return written + refresh_monthly(conn, "survey", months)


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
    written += refresh_monthly(conn, "sales", months)
    # Active members are counted from the same transactions: refreshed with them, so the
    # two never disagree.
    return written + (refresh_member_activity(conn, months) if activity else 0)


# Each fact's daily rollup, its monthly one (keys beyond the month and unit) and the
# dimensions whose values the filter bar offers.
MONTHLY = {
    "survey": (schema.agg_survey_daily, schema.agg_survey_monthly, (), SURVEY_DIMS),
    "sales": (schema.agg_txn_daily, schema.agg_txn_monthly, ("member",), TXN_DIMS),
}


def refresh_monthly(conn: Connection, fact: str, months: Iterable[str] | None = None) -> int:
    """Rebuild `fact`'s unit-month rollup and its dimension values for `months` (None = all)
    from its daily rollup, which must be current for those months. Returns rows written.

    Sums of sums: the daily table already grouped the facts, so this reads thousands of
    rows per month, not the facts again.
    """
    daily, monthly, extra, dims = MONTHLY[fact]
    wanted = None if months is None else sorted(set(months))
    where_daily = true() if wanted is None else daily.c.month.in_(wanted)
    conn.execute(delete(monthly).where(
        true() if wanted is None else monthly.c.month.in_(wanted)))
    dv = schema.agg_dim_value
    conn.execute(delete(dv).where(dv.c.fact == fact,
                                  true() if wanted is None else dv.c.month.in_(wanted)))
    keys = ["month", "org_unit_id", *extra]
    measures = [c.name for c in monthly.columns if c.name not in keys]
    written = conn.execute(insert(monthly).from_select(
        keys + measures,
        select(*[daily.c[k] for k in keys], *[func.sum(daily.c[m]) for m in measures])
        .where(where_daily).group_by(*[daily.c[k] for k in keys])),
        execution_options={"preserve_rowcount": True}).rowcount
    values = union_all(*[
        select(literal(fact, String(8)).label("fact"), literal(dim, String(16)).label("dim"),
               daily.c.month, daily.c[dim].label("value"))
        .where(where_daily, daily.c[dim].is_not(None)).distinct()
        for dim in dims])
    written += conn.execute(insert(dv).from_select(["fact", "dim", "month", "value"], values),
                            execution_options={"preserve_rowcount": True}).rowcount
    return written


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


def _key_text(length: int) -> String:
    # Sorting and grouping people by customer and unit ids is most of this work: on
    # PostgreSQL the database's locale collation makes each comparison far slower than the
    # byte order these ids need (SQLite compares bytes already).
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def _sales_span(conn: Connection) -> tuple[Month, Month] | None:
    """The months activity is counted for: from the first sale's month to the month after
    the last sale's (members stay active for a window after it); None without sales."""
    low, high = conn.execute(select(func.min(tx.c.occurred_at),
                                    func.max(tx.c.occurred_at))).one()
    if low is None:
        return None
    return Month.of(_as_datetime(low)), Month.of(_as_datetime(high)).shift(1)


def clear_member_activity(conn: Connection, months: Iterable[str] | None = None, *,
                          window_days: int = 90) -> int:
    """Delete the `agg_member_activity` rows that transactions of `months` (None = all)
    affect, inside the load's transaction: readers count those months from the facts until
    `refresh_member_activity(conn, missing=True)` counts them again after the load.
    Returns rows deleted."""
    agg = schema.agg_member_activity
    where = [agg.c.window_days == window_days]
    if months is not None:
        months = list(months)
        if not months:
            return 0
        keys = {str(Month.parse(m)) for m in months}
        span = _sales_span(conn)
        if span is not None:
            first = min(span[0], *map(Month.parse, keys))
            last = max(span[1], *map(Month.parse, keys))
            keys |= {str(m) for m in activity_months(months, first, last, window_days)}
        where.append(agg.c.month.in_(sorted(keys)))
    return conn.execute(delete(agg).where(*where),
                        execution_options={"preserve_rowcount": True}).rowcount


def missing_activity_months(conn: Connection, *, window_days: int = 90) -> list[str]:
    """Months from the first sale to the month after the last that `agg_member_activity`
    does not hold counted on the current org tree: cleared by a load, never counted, or
    counted on an org tree that has changed since."""
    from queries.kpis import org_tree_fingerprint

    agg = schema.agg_member_activity
    span = _sales_span(conn)
    if span is None:
        return []
    tree = org_tree_fingerprint(conn)
    held = set(conn.execute(select(agg.c.month).where(
        agg.c.window_days == window_days, agg.c.scope_unit == EVERY_UNIT,
        agg.c.segment == ANY, agg.c.channel == ANY, agg.c.org_tree == tree)).scalars())
    return [str(m) for m in activity_months(None, *span, window_days) if str(m) not in held]


def refresh_member_activity(conn: Connection, months: Iterable[str] | None = None, *,
                            window_days: int = 90, missing: bool = False) -> int:
    """Rebuild `agg_member_activity` for the months that transactions of `months` affect
    (None = all; `missing=True`: exactly the months `missing_activity_months` names): active
    members as of each month's end, active members as of the month before's end, those
    active at both and those who earned points during the month, for every unit's subtree
    and the whole company, by segment, by channel, by both and by neither. Returns rows
    written.

    Counted by two INSERT ... SELECT passes and two grouped reads; the window is
    `window_days` (CX_ACTIVE_DAYS, 90 by default: a dashboard set to another window counts
    from the facts instead).
    """
    from queries.kpis import org_tree_fingerprint

    agg = schema.agg_member_activity
    span = _sales_span(conn)
    if span is None:
        conn.execute(delete(agg).where(agg.c.window_days == window_days))
        return 0
    if missing:
        wanted = [Month.parse(m) for m in missing_activity_months(conn,
                                                                  window_days=window_days)]
    else:
        wanted = activity_months(None if months is None else list(months), *span,
                                 window_days)
    conn.execute(delete(agg).where(
        agg.c.window_days == window_days,
        true() if months is None and not missing
        else agg.c.month.in_([str(m) for m in wanted])))
    if not wanted:
        return 0
    if conn.dialect.name == "postgresql":
        # A few million short rows are sorted below: in memory rather than in temporary
        # files, and without JIT compiling (a quarter of a second per statement here).
        conn.execute(text("SET LOCAL work_mem = '128MB'"))
        conn.execute(text("SET LOCAL jit = off"))
    tree = org_tree_fingerprint(conn)
    instants = sorted({t for m in wanted for t in (m.end, m.shift(-1).end)})
    # Instants are numbered from 1: "the previous instant" of the first is 0, never a row.
    index = {t: i for i, t in enumerate(instants, start=1)}
    earn = {m: len(instants) + i for i, m in enumerate(wanted, start=1)}
    since = dt.timedelta(days=window_days)
    span_low = min(instants) - since
    span_high = max(instants)

    def numbered(name: str, column: Column, values: Iterable[object]
                 ) -> tuple[Table, dict[object, int]]:
        # A small table giving each value a number from 1 (the packed keys below are
        # numbers; 0 stands for none).
        ids = {v: i for i, v in enumerate(values, start=1)}
        table = Table(name, MetaData(), column, Column("i", Integer, nullable=False),
                      prefixes=["TEMPORARY"])
        table.create(conn)
        if ids:
            conn.execute(insert(table), [{column.name: v, "i": i} for v, i in ids.items()])
        return table, ids

    # Each unit with itself, every unit above it and the whole company: the subtrees a
    # transaction counts in.
    ou = schema.org_unit
    parent = dict(conn.execute(select(ou.c.id, ou.c.parent_id)).all())
    units, unit_ids = numbered("tmp_activity_units", Column("unit", _key_text(64)),
                               sorted(parent))
    ancestors = [EVERY_UNIT, *sorted(parent)]
    ancestor_id = {a: i for i, a in enumerate(ancestors)}
    scopes = Table("tmp_unit_scopes", MetaData(), Column("unit", Integer),
                   Column("ancestor", Integer), prefixes=["TEMPORARY"])
    scopes.create(conn)
    links = []
    for unit in parent:
        above, seen = unit, set()
        while above is not None and above not in seen:  # a cycle in bad data stops here
            seen.add(above)
            if above in ancestor_id:
                links.append({"unit": unit_ids[unit], "ancestor": ancestor_id[above]})
            above = parent.get(above)
        links.append({"unit": unit_ids[unit], "ancestor": ancestor_id[EVERY_UNIT]})
    if links:
        conn.execute(insert(scopes), links)
    segments_seen = sorted(conn.execute(select(cust.c.segment).where(
        cust.c.segment.is_not(None)).distinct()).scalars())
    segments, segment_ids = numbered("tmp_activity_segments",
                                     Column("segment", _key_text(64)), segments_seen)
    # The channels of the span's sales, from the daily sums of the same sales (kept equal to
    # them in every batch's transaction): whole months, a superset, which only numbers a
    # channel more. Read from the sales it was a 10 s scan of 30M rows at the large size.
    daily = schema.agg_txn_daily
    channels_seen = sorted(conn.execute(select(daily.c.channel).where(
        daily.c.channel.is_not(None), daily.c.month >= str(Month.of(span_low)),
        daily.c.month <= str(Month.of(span_high - dt.timedelta(microseconds=1))))
        .distinct()).scalars())
    channels, channel_ids = numbered("tmp_activity_channels",
                                     Column("channel", _key_text(32)), channels_seen)
    # Members numbered, with their segment's number (0: none).
    members = Table("tmp_activity_members", MetaData(),
                    Column("customer_id", _key_text(64), primary_key=True),
                    Column("n", Integer, nullable=False), Column("seg", Integer, nullable=False),
                    prefixes=["TEMPORARY"])
    members.create(conn)
    conn.execute(insert(members).from_select(
        ["customer_id", "n", "seg"],
        select(cust.c.id, func.row_number().over(), func.coalesce(segments.c.i, 0))
        .select_from(cust.outerjoin(segments, segments.c.segment == cust.c.segment))
        .where(cust.c.loyalty_member.is_(True))))
    member_count = conn.execute(select(func.count()).select_from(members)).scalar_one()
    # Who bought where and how, per instant, at the stores' grain: the range join runs once
    # and its distinct rows (members x stores x channels per window, not transactions)
    # feed both passes below.
    visits = Table("tmp_member_visits", MetaData(), Column("k", Integer),
                   Column("member", Integer), Column("seg", Integer), Column("unit", Integer),
                   Column("chan", Integer), prefixes=["TEMPORARY"])
    visits.create(conn)
    windows = [(k, t - since, t) for t, k in index.items()]
    # Members earning points during each month (the redemption rate's n) join the same
    # table under instants numbered after the windows' (their neighbours mean nothing).
    months_earning = [(k, m.start, m.end) for m, k in earn.items()]
    for rows_of, earning_only in ((windows, False), (months_earning, True)):
        spans = union_all(*[
            select(literal(k, Integer).label("k"), literal(low, DateTime).label("since"),
                   literal(high, DateTime).label("as_of")) for k, low, high in rows_of]
        ).cte("spans")
        conn.execute(insert(visits).from_select(
            ["k", "member", "seg", "unit", "chan"],
            select(spans.c.k, members.c.n, members.c.seg, units.c.i,
                   func.coalesce(channels.c.i, 0))
            .select_from(
                tx.join(members, members.c.customer_id == tx.c.customer_id)
                .join(units, units.c.unit == tx.c.org_unit_id)
                .join(spans, and_(tx.c.occurred_at >= spans.c.since,
                                  tx.c.occurred_at < spans.c.as_of))
                .outerjoin(channels, channels.c.channel == tx.c.channel))
            .where(tx.c.points_earned > 0 if earning_only else true())
            .distinct()))
    if conn.dialect.name == "postgresql":
        # Temporary tables have no statistics until analysed: the plans below need them.
        conn.execute(text("ANALYZE tmp_member_visits"))
        conn.execute(text("ANALYZE tmp_unit_scopes"))
    # Each person in a group at an instant is one number: segment, member, subtree,
    # channel and instant packed by mixed radix, so that distinct people and "the same
    # person's previous instant" are one sort of one integer column. A member has one
    # segment, so the segment adds no rows; it leads the number to be read back below.
    radix_k = len(instants) + len(wanted) + 1
    radix_c = len(channel_ids) + 1
    radix_a = len(ancestors)
    radix_m = member_count + 1
    if (len(segment_ids) + 1) * radix_m * radix_a * radix_c * radix_k >= 2 ** 62:
        raise ValueError("too many members, units, channels and months to count member "
                         "activity with 64-bit keys")
    totals: dict[tuple, int] = collections.Counter()
    kept: dict[tuple, int] = collections.Counter()

    def big(n: int) -> ColumnElement[int]:
        return literal(n, BigInteger)

    for by_channel in (False, True):
        chan = visits.c.chan if by_channel else big(0)
        packed = ((((cast(visits.c.seg, BigInteger) * big(radix_m) + visits.c.member)
                    * big(radix_a) + scopes.c.ancestor) * big(radix_c) + chan)
                  * big(radix_k) + visits.c.k)
        people = (select(packed.label("key"))
                  .select_from(visits.join(scopes, scopes.c.unit == visits.c.unit))
                  .where(visits.c.chan > 0 if by_channel else true())
                  .subquery("people"))
        ordered = select(
            people.c.key,
            func.lag(people.c.key).over(order_by=people.c.key).label("previous"),
        ).subquery("ordered")
        key = ordered.c.key
        parts = [key % big(radix_k), (key // big(radix_k)) % big(radix_c),
                 (key // big(radix_k * radix_c)) % big(radix_a),
                 key // big(radix_k * radix_c * radix_a * radix_m)]
        labels = [p.label(n) for p, n in zip(parts, ("k", "chan", "anc", "seg"), strict=True)]
        # Sorted, a person's repeats are neighbours: the first of each is the one whose
        # previous number differs, and only a first can follow the same person's instant
        # before (number - 1). No DISTINCT pass is needed.
        previous = ordered.c.previous
        counted = select(
            *labels,
            case((or_(previous.is_(None), previous != key), 1), else_=0).label("first"),
            case((previous == key - big(1), 1), else_=0).label("both"),
        ).subquery("counted")
        for k, chan_i, anc, seg, n, both in conn.execute(
                select(counted.c.k, counted.c.chan, counted.c.anc, counted.c.seg,
                       func.sum(counted.c.first), func.sum(counted.c.both))
                .group_by(counted.c.k, counted.c.chan, counted.c.anc, counted.c.seg)):
            totals_key = (int(k), int(anc), int(seg), int(chan_i))
            totals[totals_key] += int(n)
            kept[totals_key] += int(both)
    segment_name = {i: v for v, i in segment_ids.items()}
    channel_name = {i: v for v, i in channel_ids.items()}
    active: dict[tuple, int] = collections.Counter()
    retained: dict[tuple, int] = collections.Counter()
    for (k, anc, seg, chan_i), n in totals.items():
        chan_key = channel_name[chan_i] if chan_i else ANY
        names = [ANY] + ([segment_name[seg]] if seg else [])
        for seg_key in names:
            group = (k, ancestors[anc], seg_key, chan_key)
            active[group] += n
            retained[group] += kept[(k, anc, seg, chan_i)]
    groups_at: dict[int, set[tuple]] = collections.defaultdict(set)
    for key in active:
        groups_at[key[0]].add(key[1:])
    rows = []
    for m in wanted:
        cur, prev = index[m.end], index[m.shift(-1).end]
        groups = groups_at[cur] | groups_at[prev] | groups_at[earn[m]]
        # Every counted month has its company row, even at zero: readers take its
        # presence as "this month was counted".
        groups.add((EVERY_UNIT, ANY, ANY))
        rows += [{"month": str(m), "window_days": window_days, "scope_unit": g[0],
                  "segment": g[1], "channel": g[2], "active": active.get((cur, *g), 0),
                  "active_before": active.get((prev, *g), 0),
                  "retained": retained.get((cur, *g), 0),
                  "earning": active.get((earn[m], *g), 0), "org_tree": tree}
                 for g in sorted(groups)]
    for start in range(0, len(rows), 20_000):
        conn.execute(insert(agg), rows[start:start + 20_000])
    for table in (visits, members, scopes, units, segments, channels):
        table.drop(conn)
    return len(rows)


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
    return (refresh_survey(conn) + refresh_transactions(conn) + refresh_engagement(conn)
            + refresh_driver_moments(conn) + settle_topic_months(conn, force=True))


REFRESH = {
    "survey_responses": refresh_survey,
    "transactions": refresh_transactions,
    "engagement_responses": refresh_engagement,
}


DRIVER_OUTCOMES = ("nps", "csat")
# (k + 1) sums and (k + 1)(k + 2) / 2 products per statement: 40 attributes make 903.
MAX_DRIVER_ATTRIBUTES = 40


def refresh_driver_moments(conn: Connection, months: Iterable[str] | None = None) -> int:
    """Rebuild `agg_driver_moments` for `months` (None = all) from the answers and their
    ratings: per month, unit, outcome and set of rated attributes, n and the sums and
    cross-products the key-driver model needs. Returns rows written.

    One grouped statement per outcome: each answer is pivoted to one row (its outcome and
    one column per attribute, NULL where not rated), the rated set becomes a bit mask, and
    the database sums every variable and product per month, unit and mask.
    """
    wanted = None if months is None else sorted(set(months))
    agg = schema.agg_driver_moments
    conn.execute(delete(agg).where(true() if wanted is None else agg.c.month.in_(wanted)))
    rt = schema.survey_rating
    in_months = _in_months(sr.c.submitted_at, wanted)
    attributes = sorted(conn.execute(
        select(rt.c.attribute).distinct()
        .select_from(rt.join(sr, sr.c.id == rt.c.response_pk)).where(in_months)).scalars())
    if not attributes or len(attributes) > MAX_DRIVER_ATTRIBUTES:
        # Too many attributes for one statement's column list (PostgreSQL allows 1,664):
        # left empty, the drivers page counts those months from the ratings.
        return 0
    written = 0
    month = month_of(sr.c.submitted_at)
    for outcome in DRIVER_OUTCOMES:
        y = sr.c[outcome]
        pivot = (
            select(month.label("month"), sr.c.org_unit_id, y.label("v0"), *[
                func.max(case((rt.c.attribute == a, DRIVER_RATING))).label(f"v{i + 1}")
                for i, a in enumerate(attributes)])
            .select_from(sr.outerjoin(rt, rt.c.response_pk == sr.c.id))
            .where(in_months, y.is_not(None))
            .group_by(sr.c.id, month, sr.c.org_unit_id, y)
            .subquery("pivot")
        )
        v = [pivot.c[f"v{i}"] for i in range(len(attributes) + 1)]
        mask = sum((case((v[i + 1].is_(None), 0), else_=2 ** i)
                    for i in range(len(attributes))), literal(0, BigInteger))
        pairs = [(i, j) for i in range(len(v)) for j in range(i, len(v))]
        stmt = (select(pivot.c.month, pivot.c.org_unit_id, mask.label("mask"), func.count(),
                       *[func.sum(c) for c in v], *[func.sum(v[i] * v[j]) for i, j in pairs])
                .group_by(pivot.c.month, pivot.c.org_unit_id, mask))
        rows = []
        for row in conn.execute(stmt):
            bits = int(row[2])
            # Outcome first, then the rated attributes in name order: only their sums are
            # kept (the others are sums over nothing).
            idx = [0] + [i + 1 for i in range(len(attributes)) if bits >> i & 1]
            sums = row[4:4 + len(v)]
            cross = dict(zip(pairs, row[4 + len(v):], strict=True))
            pattern, moments = pack_driver_moments(
                [attributes[i - 1] for i in idx[1:]], [sums[i] or 0 for i in idx],
                [cross[(i, j)] or 0 for a, i in enumerate(idx) for j in idx[a:]])
            rows.append({"month": row[0], "org_unit_id": row[1], "outcome": outcome,
                         "pattern": pattern, "n": int(row[3]), "moments": moments})
        for start in range(0, len(rows), 20_000):
            conn.execute(insert(agg), rows[start:start + 20_000])
        written += len(rows)
    return written


def bump_summary(conn: Connection, name: str) -> None:
    """Record, in the caller's transaction, that summary `name` may be stale (see
    `summary_state`): readers stop trusting it until `settle_summary` runs after a rebuild."""
    st = schema.summary_state
    bumped = conn.execute(update(st).where(st.c.name == name)
                          .values(version=st.c.version + 1, updated_at=dt.datetime.now()),
                          execution_options={"preserve_rowcount": True}).rowcount
    if not bumped:  # migrations seed the rows; a database built by create_all has none
        conn.execute(insert(st).values(name=name, version=1, updated_at=dt.datetime.now()))


TOPIC_MONTH = "topic_month"
NO_TOPIC = 0
"""`agg_topic_month`'s topic of comments without one (not analysed yet, or no topic): kept so
the sums count every comment, which the comment list's total needs."""


def refresh_topic_months(conn: Connection, months: Iterable[str] | None = None) -> int:
    """Rebuild `agg_topic_month` for `months` (None = all) from the comments, their answers
    and the stored analyses: every comment (`queries.comments.commented`) summed per month,
    unit and own topic (`NO_TOPIC` without one). Returns rows written."""
    from queries.comments import commented, nps_group

    wanted = None if months is None else sorted(set(months))
    agg = schema.agg_topic_month
    conn.execute(delete(agg).where(true() if wanted is None else agg.c.month.in_(wanted)))
    ca = schema.comment_analysis
    month = month_of(sr.c.submitted_at)
    group = nps_group()
    topic = func.coalesce(ca.c.topic_id, NO_TOPIC)
    query = (
        select(month, sr.c.org_unit_id, topic, func.count(),
               func.count(ca.c.sentiment), func.coalesce(func.sum(ca.c.sentiment), 0.0),
               _count_if(ca.c.sentiment_label == "negative"), func.count(ca.c.sentiment_label),
               func.count(sr.c.nps), _count_if(group == "promoter"),
               _count_if(group == "detractor"))
        .select_from(sr.outerjoin(ca, ca.c.response_pk == sr.c.id))
        .where(*commented(), _in_months(sr.c.submitted_at, wanted))
        .group_by(month, sr.c.org_unit_id, topic)
    )
    columns = ["month", "org_unit_id", "topic_id", "comments", "sentiment_n", "sentiment_sum",
               "negative", "toned", "nps_n", "promoters", "detractors"]
    return conn.execute(insert(agg).from_select(columns, query),
                        execution_options={"preserve_rowcount": True}).rowcount or 0


def settle_topic_months(conn: Connection, *, force: bool = False,
                        months: Iterable[str] | None = None,
                        if_version: int | None = None) -> bool:
    """After the comment analysis: when it left `agg_topic_month` stale (or `force`), rebuild
    it and mark it current, in the caller's transaction. Returns whether it rebuilt.

    `months` with `if_version`: the writer knows every month it changed since the sums were
    last current, and that the stale mark then stood at `if_version`; when it still does
    (nobody else marked them stale meanwhile) only those months are rebuilt. Otherwise, or
    without them, every month."""
    st = schema.summary_state
    state = topic_months_state(conn)
    if state is not None and state[1] == state[0] and not force:
        return False
    if state is None:
        bump_summary(conn, TOPIC_MONTH)
        state = topic_months_state(conn)
        assert state is not None
    version = state[0]
    if conn.dialect.name == "postgresql":
        # The analysis just wrote these rows: without statistics the planner may take the
        # table for empty and join every comment to it by a nested loop.
        conn.exec_driver_sql("ANALYZE comment_analysis")
    partial = months is not None and version == if_version and not force
    refresh_topic_months(conn, sorted(set(months)) if partial else None)  # type: ignore[arg-type]
    # Only if nothing marked it stale meanwhile: otherwise the next analysis rebuilds again.
    conn.execute(update(st).where(st.c.name == TOPIC_MONTH, st.c.version == version)
                 .values(done_version=version, updated_at=dt.datetime.now()))
    return True


def topic_months_state(conn: Connection) -> tuple[int, int | None] | None:
    """`agg_topic_month`'s stale mark: (version, done_version), None before the first."""
    st = schema.summary_state
    row = conn.execute(select(st.c.version, st.c.done_version)
                       .where(st.c.name == TOPIC_MONTH)).first()
    return None if row is None else (int(row.version), row.done_version)
