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
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.sql import Select

from etl.load import fill
from queries import schema
from queries.links import answer_purchases
from queries.periods import Month

sr = schema.survey_response
cust = schema.customer
ar = schema.answer_revenue

CHUNK_ANSWERS = 200_000
"""Answers counted per statement by `complete` (each chunk its own transaction)."""


STATE = "answer_revenue"


def mark_pending(conn: Connection) -> None:
    """Record, in the caller's transaction, that rows may be missing (a batch deleted some or
    added answers, sales or customers): the next `complete` looks for them."""
    st = schema.summary_state
    bumped = conn.execute(update(st).where(st.c.name == STATE)
                          .values(version=st.c.version + 1, updated_at=dt.datetime.now()),
                          execution_options={"preserve_rowcount": True}).rowcount
    if not bumped:  # the migration seeds the row; a database built by create_all has none
        conn.execute(insert(st).values(name=STATE, version=1, updated_at=dt.datetime.now()))


def _delete_answers(conn: Connection, *conditions: object) -> int:
    mark_pending(conn)
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
                                            sr.c.submitted_at < m.end) for m in spans]))


def clear_span(conn: Connection, low: dt.datetime, high: dt.datetime, horizon_days: int, *,
               customers: Sequence[str] | None = None) -> int:
    """Delete the rows of answers whose windows may hold a sale made in [low, high]: those
    submitted from `horizon_days` before `low` up to `high`, of `customers` only when given
    (the customers of a sales batch). Returns rows deleted."""
    when = [sr.c.submitted_at >= low - dt.timedelta(days=horizon_days),
            sr.c.submitted_at <= high]
    if customers is None:
        return _delete_answers(conn, *when)
    keys = sorted({str(c) for c in customers if c is not None})
    if not keys:
        return 0
    if len(keys) <= 1000:
        return _delete_answers(conn, *when, sr.c.customer_id.in_(keys))
    # A sales batch of a million rows names hundreds of thousands of customers: a temporary
    # table rather than that many bound parameters.
    holder = Table("tmp_revenue_customers", MetaData(),
                   Column("customer_id", String(64), primary_key=True),
                   prefixes=["TEMPORARY"])
    holder.create(conn)
    try:
        fill(conn, holder, pd.DataFrame({"customer_id": keys}))
        return _delete_answers(conn, *when, sr.c.customer_id.in_(select(holder.c.customer_id)))
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
    alone takes seconds, and a run with nothing new must not pay it.
    """
    st = schema.summary_state
    params = f"{window_days}/{churn_days}"
    with engine.begin() as conn:
        state = conn.execute(select(st.c.version, st.c.done_version, st.c.params)
                             .where(st.c.name == STATE)).first()
        if state is not None and state.done_version == state.version \
                and state.params == params:
            return 0
        if state is None:  # the migration seeds the row; a database built by create_all not
            conn.execute(insert(st).values(name=STATE, version=0,
                                           updated_at=dt.datetime.now()))
        started_at = state.version if state is not None else 0
        conn.execute(delete(ar).where(or_(ar.c.window_days != window_days,
                                          ar.c.churn_days != churn_days)))
    written = _complete_chunks(engine, window_days=window_days, churn_days=churn_days,
                               chunk=chunk)
    with engine.begin() as conn:
        # Only if no batch marked rows missing meanwhile (it bumped the version): otherwise
        # the next run looks again.
        conn.execute(update(st).where(st.c.name == STATE, st.c.version == started_at)
                     .values(done_version=started_at, params=params,
                             updated_at=dt.datetime.now()))
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
            held = select(ar.c.response_pk).where(ar.c.response_pk == sr.c.id)
            each = answer_purchases(window_days, churn_days).where(
                sr.c.id >= first, sr.c.id < first + chunk, ~exists(held)).subquery()
            counted = select(each.c.response_pk, literal(window_days), literal(churn_days),
                             each.c.revenue, each.c.purchases, each.c.active)
            written += conn.execute(
                insert(ar).from_select(["response_pk", "window_days", "churn_days", "revenue",
                                        "purchases", "active"], counted),
                execution_options={"preserve_rowcount": True}).rowcount or 0
    return written
