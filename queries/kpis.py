"""Read functions behind the executive overview: the KPI set for a period and a scope.

Every function takes a connection and keyword filters and aggregates in the database;
only counts and sums come back to Python, where `queries.metrics` turns them into values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

from sqlalchemy import Connection, and_, case, distinct, func, literal, select
from sqlalchemy.sql import Select

from queries import metrics, schema
from queries.metrics import Change, Estimate
from queries.periods import Month

ou = schema.org_unit
sr = schema.survey_response
tx = schema.loyalty_transaction
cust = schema.customer
er = schema.engagement_response
es = schema.engagement_score


def unit_scope(unit: str | None) -> Select | None:
    """Ids of `unit` and every unit below it (recursive CTE); None means the whole company."""
    if unit is None:
        return None
    tree = select(ou.c.id).where(ou.c.id == unit).cte("unit_tree", recursive=True)
    child = ou.alias("child")
    tree = tree.union_all(select(child.c.id).where(child.c.parent_id == tree.c.id))
    return select(tree.c.id)


def _in_scope(column, unit: str | None):
    scope = unit_scope(unit)
    return literal(True) if scope is None else column.in_(scope)


@dataclass(frozen=True)
class Kpi:
    """One KPI card: value, sample, margin and change against the comparison period."""

    key: str
    label: str
    unit: str
    period: str
    value: float | None
    n: int
    moe: float | None
    compare_period: str | None = None
    previous: float | None = None
    previous_n: int = 0
    delta: float | None = None
    z: float | None = None
    significant: bool | None = None
    low_sample: bool = False
    hidden: bool = False
    note: str | None = None
    flags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (the same numbers the dashboard shows)."""
        return asdict(self)


def survey_counts(conn: Connection, *, start: dt.datetime, end: dt.datetime,
                  unit: str | None = None) -> dict[str, float]:
    """Counts and sums of survey scores submitted in [start, end) within `unit`."""
    stmt = select(
        func.count(sr.c.nps).label("nps_n"),
        func.coalesce(func.sum(case((sr.c.nps >= 9, 1), else_=0)), 0).label("promoters"),
        func.coalesce(func.sum(case((sr.c.nps <= 6, 1), else_=0)), 0).label("detractors"),
        func.count(sr.c.csat).label("csat_n"),
        func.coalesce(func.sum(case((sr.c.csat >= 4, 1), else_=0)), 0).label("csat_top2"),
        func.count(sr.c.ces).label("ces_n"),
        func.coalesce(func.sum(sr.c.ces), 0).label("ces_sum"),
        func.coalesce(func.sum(sr.c.ces * sr.c.ces), 0).label("ces_sumsq"),
    ).where(sr.c.submitted_at >= start, sr.c.submitted_at < end, _in_scope(sr.c.org_unit_id, unit))
    return dict(conn.execute(stmt).mappings().one())


def revenue_counts(conn: Connection, *, start: dt.datetime, end: dt.datetime,
                   unit: str | None = None) -> tuple[float, int]:
    """Revenue (sum of amounts) and number of transactions in [start, end) within `unit`."""
    stmt = select(func.coalesce(func.sum(tx.c.amount), 0), func.count()).where(
        tx.c.occurred_at >= start, tx.c.occurred_at < end, _in_scope(tx.c.org_unit_id, unit)
    )
    total, count = conn.execute(stmt).one()
    return float(total), int(count)


def active_members(conn: Connection, *, as_of: dt.datetime, window_days: int = 90,
                   unit: str | None = None) -> int:
    """Loyalty members with a transaction in the `window_days` before `as_of` (exclusive)."""
    stmt = (
        select(func.count(distinct(tx.c.customer_id)))
        .select_from(tx.join(cust, cust.c.id == tx.c.customer_id))
        .where(
            cust.c.loyalty_member.is_(True),
            tx.c.occurred_at >= as_of - dt.timedelta(days=window_days),
            tx.c.occurred_at < as_of,
            _in_scope(tx.c.org_unit_id, unit),
        )
    )
    return int(conn.execute(stmt).scalar_one())


def latest_wave(conn: Connection, *, before: dt.datetime, unit: str | None = None,
                exclude_after: dt.date | None = None) -> dt.date | None:
    """Most recent engagement wave dated before `before` (and before `exclude_after`)."""
    cond = [er.c.wave < before.date(), _in_scope(er.c.org_unit_id, unit)]
    if exclude_after is not None:
        cond.append(er.c.wave < exclude_after)
    value = conn.execute(select(func.max(er.c.wave)).where(and_(*cond))).scalar()
    if isinstance(value, str):  # SQLite hands back text for MAX() over a DATE
        value = dt.date.fromisoformat(value)
    return value


def engagement(conn: Connection, *, wave: dt.date, unit: str | None = None) -> tuple[float | None,
                                                                                   int]:
    """Engagement of a wave: favourable share (4-5) per item, averaged over items; respondents."""
    per_item = (
        select(
            es.c.item,
            func.count().label("n"),
            func.sum(case((es.c.score >= 4, 1), else_=0)).label("fav"),
        )
        .select_from(es.join(er, er.c.id == es.c.response_pk))
        .where(er.c.wave == wave, _in_scope(er.c.org_unit_id, unit))
        .group_by(es.c.item)
    )
    rows = conn.execute(per_item).all()
    respondents = conn.execute(
        select(func.count()).where(er.c.wave == wave, _in_scope(er.c.org_unit_id, unit))
    ).scalar_one()
    if not rows:
        return None, int(respondents)
    value = 100 * sum(r.fav / r.n for r in rows) / len(rows)
    return value, int(respondents)


def latest_full_month(conn: Connection, *, today: dt.date | None = None) -> Month | None:
    """The last complete calendar month that has survey or transaction data."""
    today = today or dt.date.today()
    newest = max(
        (v for v in (
            conn.execute(select(func.max(sr.c.submitted_at))).scalar(),
            conn.execute(select(func.max(tx.c.occurred_at))).scalar(),
        ) if v is not None),
        default=None,
    )
    if newest is None:
        return None
    if isinstance(newest, str):
        newest = dt.datetime.fromisoformat(newest)
    last_complete = Month.of(today).shift(-1)
    return min(Month.of(newest), last_complete)


def _kpi(key: str, label: str, unit: str, period: Month, compare: Month, cur: Estimate,
         prev: Estimate, chg: Change, min_n: int) -> Kpi:
    low = cur.n < min_n
    return Kpi(
        key=key, label=label, unit=unit, period=str(period), value=cur.value, n=cur.n,
        moe=cur.moe, compare_period=str(compare), previous=prev.value, previous_n=prev.n,
        delta=chg.delta, z=chg.z, significant=chg.significant, low_sample=low,
        flags=["low_sample"] if low else [],
    )


def overview_kpis(
    conn: Connection,
    *,
    period: Month,
    compare: Month | None = None,
    unit: str | None = None,
    min_n: int = 30,
    anonymity_min: int = 5,
    active_days: int = 90,
) -> list[Kpi]:
    """The executive KPI set for `period` against `compare` (default: the month before)."""
    compare = compare or period.shift(-1)
    cur = survey_counts(conn, start=period.start, end=period.end, unit=unit)
    prev = survey_counts(conn, start=compare.start, end=compare.end, unit=unit)
    out: list[Kpi] = []

    nps_c = metrics.nps(cur["nps_n"], cur["promoters"], cur["detractors"])
    nps_p = metrics.nps(prev["nps_n"], prev["promoters"], prev["detractors"])
    out.append(_kpi("nps", "NPS", "pts", period, compare, nps_c, nps_p,
                    metrics.change(nps_c, nps_p), min_n))
    csat_c = metrics.share(cur["csat_n"], cur["csat_top2"])
    csat_p = metrics.share(prev["csat_n"], prev["csat_top2"])
    out.append(_kpi("csat", "CSAT", "%", period, compare, csat_c, csat_p,
                    metrics.change(csat_c, csat_p, pooled_share=True), min_n))
    ces_c = metrics.mean(cur["ces_n"], cur["ces_sum"], cur["ces_sumsq"])
    ces_p = metrics.mean(prev["ces_n"], prev["ces_sum"], prev["ces_sumsq"])
    out.append(_kpi("ces", "CES", "/7", period, compare, ces_c, ces_p,
                    metrics.change(ces_c, ces_p), min_n))

    act_c = active_members(conn, as_of=period.end, window_days=active_days, unit=unit)
    act_p = active_members(conn, as_of=compare.end, window_days=active_days, unit=unit)
    out.append(Kpi(key="active_members", label="Active members", unit="members",
                   period=str(period), value=float(act_c), n=act_c, moe=None,
                   compare_period=str(compare), previous=float(act_p), previous_n=act_p,
                   delta=float(act_c - act_p), note=f"transaction in the last {active_days} days"))

    wave = latest_wave(conn, before=period.end, unit=unit)
    prev_wave = (latest_wave(conn, before=period.end, unit=unit, exclude_after=wave)
                 if wave else None)
    eng_c, eng_n = engagement(conn, wave=wave, unit=unit) if wave else (None, 0)
    eng_p, eng_pn = engagement(conn, wave=prev_wave, unit=unit) if prev_wave else (None, 0)
    hidden = 0 < eng_n < anonymity_min
    out.append(Kpi(
        key="engagement", label="Employee engagement", unit="%", period=str(period),
        value=None if hidden else eng_c, n=eng_n, moe=None,
        compare_period=str(prev_wave)[:7] if prev_wave else None,
        previous=None if hidden or eng_pn < anonymity_min else eng_p, previous_n=eng_pn,
        delta=None if hidden or eng_c is None or eng_p is None or eng_pn < anonymity_min
        else eng_c - eng_p,
        hidden=hidden, note=f"wave of {wave:%B %Y}" if wave else "no engagement wave yet",
        flags=["hidden"] if hidden else [],
    ))

    rev_c, rev_n = revenue_counts(conn, start=period.start, end=period.end, unit=unit)
    rev_p, rev_pn = revenue_counts(conn, start=compare.start, end=compare.end, unit=unit)
    out.append(Kpi(key="revenue", label="Revenue", unit="£", period=str(period), value=rev_c,
                   n=rev_n, moe=None, compare_period=str(compare), previous=rev_p,
                   previous_n=rev_pn, delta=rev_c - rev_p, note="transactions"))
    return out


def org_units(conn: Connection) -> list[dict[str, object]]:
    """All org units (id, name, kind, parent_id), parents before children."""
    order = case({"company": 0, "region": 1, "store": 2, "team": 3}, value=ou.c.kind)
    rows = conn.execute(select(ou.c.id, ou.c.name, ou.c.kind, ou.c.parent_id)
                        .order_by(order, ou.c.name)).mappings().all()
    return [dict(r) for r in rows]
