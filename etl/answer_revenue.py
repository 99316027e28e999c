"""Answer revenue: each known customer's NPS answer with that customer's purchases after it.

The revenue page compares promoters' and detractors' purchases in the days after they
answered. Joined live, every answer in a year meets its customer's sales: millions of index
lookups at a large company's scale, on every cold view. The ETL keeps the result per answer
instead (`answer_revenue`), in two steps that keep it exact:

- inside each batch's transaction, the rows that batch may change are deleted: the answers
  of the months a survey batch wrote, the answers of the customers a sales batch touched
  whose windows reach those sales (readers then join those answers live);
- after the run, `complete` counts every missing row again, a chunk of answers at a time.

Readers (queries/links.py) use the table only when it holds a row for every answer they
count, with their windows; otherwise they join the sales themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import pandas as pd
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from etl.load import fill
from etl.rollup import _in_months, bump_summary
from queries import schema
from queries.links import answer_purchases
from queries.periods import Month
from queries.sqlfuncs import month_of

sr = schema.survey_response
cust = schema.customer
ar = schema.answer_revenue
am = schema.agg_answer_month

CHUNK_ANSWERS = 200_000
"""Answers counted per statement by `complete` (each chunk its own transaction)."""


STATE = "answer_revenue"


def mark_pending(conn: Connection) -> None:
    """Record, in the caller's transaction, that rows may be missing anywhere (rows deleted
    by hand, a repair): the next `complete` walks every answer. Batches that know which
    months they touched forget those months' sums instead (`_delete_answers`), and the
    completion searches only those."""
    bump_summary(conn, STATE)
    st = schema.summary_state
    conn.execute(update(st).where(st.c.name == STATE).values(params=None))


def _delete_answers(conn: Connection, *conditions: object,
                    months: Iterable[str] | None = None) -> int:
    """Delete the rows of the answers matching `conditions` and the month sums of `months`
    (None: every month), which the completion after the run rebuilds."""
    bump_summary(conn, STATE)
    forget_months(conn, months)
    answers = select(sr.c.id).where(*conditions)  # type: ignore[arg-type]
    return conn.execute(delete(ar).where(ar.c.response_pk.in_(answers)),
                        execution_options={"preserve_rowcount": True}).rowcount or 0


def clear_months(conn: Connection, months: Iterable[str]) -> int:
    """Delete the rows of answers submitted in `months` ('YYYY-MM'): a survey batch wrote
    them (their score, customer or time may have changed). Returns rows deleted."""
    spans = [Month.parse(m) for m in sorted(set(months))]
    if not spans:
        return 0
    return _delete_answers(conn, or_(*[and_(sr.c.submitted_at >= m.start,
                                            sr.c.submitted_at < m.end) for m in spans]),
                           months=[str(m) for m in spans])


def clear_span(conn: Connection, low: dt.datetime, high: dt.datetime, horizon_days: int, *,
               customers: Sequence[str] | None = None) -> int:
    """Delete the rows of answers whose windows may hold a sale made in [low, high]: those
    submitted from `horizon_days` before `low` up to `high`, of `customers` only when given
    (the customers of a sales batch). Returns rows deleted."""
    first = low - dt.timedelta(days=horizon_days)
    when = [sr.c.submitted_at >= first, sr.c.submitted_at <= high]
    months = _months_between(first, high)
    if customers is None:
        return _delete_answers(conn, *when, months=months)
    keys = sorted({str(c) for c in customers if c is not None})
    if not keys:
        return 0
    if len(keys) <= 1000:
        return _delete_answers(conn, *when, sr.c.customer_id.in_(keys), months=months)
    # A sales batch of a million rows names hundreds of thousands of customers: a temporary
    # table rather than that many bound parameters.
    holder = Table("tmp_revenue_customers", MetaData(),
                   Column("customer_id", String(64), primary_key=True),
                   prefixes=["TEMPORARY"])
    holder.create(conn)
    try:
        fill(conn, holder, pd.DataFrame({"customer_id": keys}))
        return _delete_answers(conn, *when, sr.c.customer_id.in_(select(holder.c.customer_id)),
                               months=months)
    finally:
        holder.drop(conn)


def _missing() -> Select:
    """Answers that count (an NPS score, a customer the loyalty programme knows) without a
    row (`complete` first deletes the rows of other windows)."""
    return (select(sr.c.id)
            .select_from(sr.join(cust, cust.c.id == sr.c.customer_id)
                         .outerjoin(ar, ar.c.response_pk == sr.c.id))
            .where(sr.c.nps.is_not(None), ar.c.response_pk.is_(None)))


def missing_count(conn: Connection, *, window_days: int, churn_days: int) -> int:
    """How many counted answers have no row (or one made with other windows)."""
    stale = conn.execute(select(func.count()).select_from(ar).where(
        or_(ar.c.window_days != window_days, ar.c.churn_days != churn_days))).scalar_one()
    missing = _missing().subquery()
    return int(stale) + int(conn.execute(select(func.count()).select_from(missing))
                            .scalar_one())


def complete(engine: Engine, *, window_days: int, churn_days: int,
             chunk: int = CHUNK_ANSWERS) -> int:
    """Count the row of every counted answer that has none (rows made with other windows
    are replaced), `chunk` answers per transaction: a large first load never holds one
    transaction for hours, and what is done stays done. Returns rows written.

    Skipped, without a scan, when no batch marked rows missing (`mark_pending`) since the
    last completion with these windows: at ten million answers the search for missing rows
    alone takes seconds, and a run with nothing new must not pay it. With the windows of
    the last completion, only the answers of months whose sums are stale are searched.

    Then rebuilds the month sums (`agg_answer_month`) that batches forgot or that lag (not
    in the count returned).
    """
    st = schema.summary_state
    params = f"{window_days}/{churn_days}"
    with engine.begin() as conn:
        state = conn.execute(select(st.c.version, st.c.done_version, st.c.params)
                             .where(st.c.name == STATE)).first()
        if state is not None and state.done_version == state.version \
                and state.params == params:
            # The month sums may still lag (a fresh upgrade, answers removed elsewhere):
            # finding which reads two small tables, not the answers.
            refresh_months(conn, stale_months(conn, window_days=window_days,
                                              churn_days=churn_days),
                           window_days=window_days, churn_days=churn_days)
            return 0
        if state is None:  # the migration seeds the row; a database built by create_all not
            conn.execute(insert(st).values(name=STATE, version=0,
                                           updated_at=dt.datetime.now()))
        started_at = state.version if state is not None else 0
        replaced = conn.execute(delete(ar).where(or_(ar.c.window_days != window_days,
                                                     ar.c.churn_days != churn_days)),
                                execution_options={"preserve_rowcount": True}).rowcount
        # Every batch that deletes rows forgets its months' sums in the same transaction,
        # so rows can only be missing in months whose sums are stale: a day's sales reach
        # half a year of answers, not ten million. Other windows (or none recorded yet)
        # leave no such guide: then every answer is walked.
        months = (None if state is None or state.params != params or replaced
                  else stale_months(conn, window_days=window_days, churn_days=churn_days))
    if months is None:
        written = _complete_chunks(engine, window_days=window_days, churn_days=churn_days,
                                   chunk=chunk)
    else:
        written = _complete_months(engine, months, window_days=window_days,
                                   churn_days=churn_days)
    if written and engine.dialect.name == "postgresql":
        # The month sums below join every answer to these rows: on a table autovacuum has
        # not analysed since a first load the planner expects it empty, and its nested loop
        # took 540 s for 130,000 answers (0.6 s once analysed).
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE answer_revenue")
    with engine.begin() as conn:
        # Only if no batch marked rows missing meanwhile (it bumped the version): otherwise
        # the next run looks again.
        conn.execute(update(st).where(st.c.name == STATE, st.c.version == started_at)
                     .values(done_version=started_at, params=params,
                             updated_at=dt.datetime.now()))
        refresh_months(conn, stale_months(conn, window_days=window_days,
                                          churn_days=churn_days),
                       window_days=window_days, churn_days=churn_days)
    return written


def _insert_missing(conn: Connection, *where: ColumnElement[bool], window_days: int,
                    churn_days: int) -> int:
    """Count, in one statement, the rows of the answers matching `where` that have none."""
    held = select(ar.c.response_pk).where(ar.c.response_pk == sr.c.id)
    each = answer_purchases(window_days, churn_days).where(*where, ~exists(held)).subquery()
    counted = select(each.c.response_pk, literal(window_days), literal(churn_days),
                     each.c.revenue, each.c.purchases, each.c.active)
    return conn.execute(
        insert(ar).from_select(["response_pk", "window_days", "churn_days", "revenue",
                                "purchases", "active"], counted),
        execution_options={"preserve_rowcount": True}).rowcount or 0


def _complete_months(engine: Engine, months: Iterable[str], *, window_days: int,
                     churn_days: int) -> int:
    """The missing rows of the answers submitted in `months`, a month per transaction (an
    index range over the answers' submission time)."""
    written = 0
    for month in map(Month.parse, sorted(set(months))):
        with engine.begin() as conn:
            written += _insert_missing(conn, sr.c.submitted_at >= month.start,
                                       sr.c.submitted_at < month.end,
                                       window_days=window_days, churn_days=churn_days)
    return written


def _complete_chunks(engine: Engine, *, window_days: int, churn_days: int, chunk: int) -> int:
    """Walk the answers' ids `chunk` at a time, each range's missing rows counted in one
    statement of its own transaction. Walking ranges instead of asking for the next
    missing ids: that search is an anti-join over every answer, 10 s per call at ten
    million answers, where a range's is an index range scan."""
    with engine.connect() as conn:
        low, high = conn.execute(select(func.min(sr.c.id), func.max(sr.c.id))).one()
    written = 0
    if low is None:
        return written
    for first in range(int(low), int(high) + 1, chunk):
        with engine.begin() as conn:
            written += _insert_missing(conn, sr.c.id >= first, sr.c.id < first + chunk,
                                       window_days=window_days, churn_days=churn_days)
    return written


def _months_between(low: dt.datetime, high: dt.datetime) -> list[str]:
    first, last = Month.of(low.date()), Month.of(high.date())
    count = (last.year - first.year) * 12 + last.month - first.month + 1
    return [str(first.shift(i)) for i in range(max(count, 0))]


def forget_months(conn: Connection, months: Iterable[str] | None = None) -> None:
    """Delete the month sums (`agg_answer_month`) of `months` (None: all), in the caller's
    transaction: readers count those months from the answers until `complete` rebuilds
    them. Called by anything that changes which answers count or what they bought."""
    wanted = None if months is None else sorted(set(months))
    if wanted is not None and not wanted:
        return
    conn.execute(delete(am).where(true() if wanted is None else am.c.month.in_(wanted)))


def refresh_months(conn: Connection, months: Iterable[str] | None = None, *,
                   window_days: int, churn_days: int) -> int:
    """Rebuild the month sums of `months` (None: all) from the answers, their customers and
    `answer_revenue`'s rows counted with these windows. Returns rows written."""
    wanted = None if months is None else sorted(set(months))
    if wanted is not None and not wanted:
        return 0
    forget_months(conn, wanted)
    month = month_of(sr.c.submitted_at)
    linked = cust.c.id.is_not(None)
    value = sr.c.spend * sr.c.visits
    held = ar.c.response_pk.is_not(None)
    ticket = case((ar.c.purchases > 0, ar.c.revenue / ar.c.purchases), else_=None)

    def moments(expr: ColumnElement) -> list[ColumnElement]:
        return [func.count(expr), func.coalesce(func.sum(expr), 0),
                func.coalesce(func.sum(expr * expr), 0)]

    query = (
        select(month, sr.c.org_unit_id, sr.c.nps, func.count(),
               func.coalesce(func.sum(case((linked, 1), else_=0)), 0),
               *moments(sr.c.spend), *moments(sr.c.visits), *moments(value),
               literal(window_days), literal(churn_days),
               func.count(ar.c.response_pk),
               func.coalesce(func.sum(case((held, 1 - ar.c.active), else_=0)), 0),
               *moments(ar.c.revenue), *moments(ar.c.purchases), *moments(ticket))
        # Only rows of linked answers count: a row left from before a customer was removed
        # must not make a month look complete.
        .select_from(sr.outerjoin(cust, cust.c.id == sr.c.customer_id)
                     .outerjoin(ar, and_(ar.c.response_pk == sr.c.id, linked,
                                         ar.c.window_days == window_days,
                                         ar.c.churn_days == churn_days)))
        .where(sr.c.nps.is_not(None), _in_months(sr.c.submitted_at, wanted))
        .group_by(month, sr.c.org_unit_id, sr.c.nps)
    )
    columns = [c.name for c in am.columns]
    return conn.execute(insert(am).from_select(columns, query),
                        execution_options={"preserve_rowcount": True}).rowcount or 0


def stale_months(conn: Connection, *, window_days: int, churn_days: int) -> list[str]:
    """Months whose sums are missing, lag the survey's monthly rollup, lack rows or were
    counted with other windows: what `complete` rebuilds. Reads the two small tables."""
    asm = schema.agg_survey_monthly
    want = dict(conn.execute(select(asm.c.month, func.sum(asm.c.nps_n))
                             .group_by(asm.c.month)).all())
    have = {r[0]: r[1:] for r in conn.execute(
        select(am.c.month, func.sum(am.c.responses), func.sum(am.c.linked),
               func.sum(am.c.kept), func.min(am.c.window_days), func.max(am.c.window_days),
               func.min(am.c.churn_days), func.max(am.c.churn_days))
        .group_by(am.c.month)).all()}
    stale = []
    for month in sorted(set(want) | set(have)):
        n = int(want.get(month) or 0)
        got = have.get(month)
        if got is None:
            if n:
                stale.append(month)
            continue
        responses, linked, kept, w_lo, w_hi, c_lo, c_hi = got
        if (int(responses) != n or int(kept) != int(linked)
                or (w_lo, w_hi, c_lo, c_hi) != (window_days,) * 2 + (churn_days,) * 2):
            stale.append(month)
    return stale
