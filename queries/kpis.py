"""The KPI set: every number of the overview, for a period, a scope and filters.

Survey and sales KPIs read the rollups (`agg_*` tables) with one aggregate query each;
active members and retention need distinct customers, which only the facts know, so they
count in SQL over the indexed transaction table. Only counts and sums come back to Python,
where `queries.metrics` turns them into values, margins and tests of change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from sqlalchemy import (
    Connection,
    DateTime,
    Integer,
    Table,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql import ColumnElement, Select

from queries import metrics, schema
from queries.metrics import Estimate
from queries.periods import Month
from queries.sqlfuncs import month_of

ou = schema.org_unit
tx = schema.loyalty_transaction
cust = schema.customer
asd = schema.agg_survey_daily
atd = schema.agg_txn_daily
asm = schema.agg_survey_monthly
atm = schema.agg_txn_monthly
adv = schema.agg_dim_value
aeu = schema.agg_engagement_unit
aei = schema.agg_engagement
hc = schema.headcount


@dataclass(frozen=True)
class Filters:
    """Where a KPI is computed: an org unit (with everything below it) and survey dimensions.

    Transactions know segment and channel; engagement knows only the unit: a filter a metric
    cannot honour is reported on the KPI (`ignored_filters`), never silently dropped.
    """

    unit: str | tuple[str, ...] | None = None
    segment: str | None = None
    channel: str | None = None
    device: str | None = None
    interaction: str | None = None
    touchpoint: str | None = None

    def active(self) -> dict[str, str]:
        """The filters that are set, by name (several units joined with commas)."""
        out = {k: v for k, v in asdict(self).items() if v}
        if isinstance(self.unit, tuple):
            out["unit"] = ",".join(self.unit)
        return out


def unit_scope(unit: str | tuple[str, ...] | None) -> Select | None:
    """Ids of `unit` (or of several units) and every unit below them (recursive CTE).

    None means the whole company; an empty tuple means no unit at all (an empty scope).
    """
    if unit is None:
        return None
    units = (unit,) if isinstance(unit, str) else tuple(unit)
    # Unnamed: one statement may scope several tables, each needs its own CTE.
    tree = select(ou.c.id).where(ou.c.id.in_(units)).cte(recursive=True)
    child = ou.alias("child")
    tree = tree.union_all(select(child.c.id).where(child.c.parent_id == tree.c.id))
    return select(tree.c.id)


def in_scope(column: ColumnElement, unit: str | tuple[str, ...] | None) -> ColumnElement[bool]:
    """`column` (an org unit id) lies in `unit`'s subtree."""
    scope = unit_scope(unit)
    return literal(True) if scope is None else column.in_(scope)


def _dims(table, filters: Filters, names: tuple[str, ...]) -> list[ColumnElement[bool]]:
    conds = [in_scope(table.c.org_unit_id, filters.unit)]
    for name in names:
        value = getattr(filters, name)
        if value:
            conds.append(table.c[name] == value)
    return conds


SURVEY_DIMS = ("segment", "channel", "device", "interaction", "touchpoint")
TXN_DIMS = ("segment", "channel")


def survey_rollup(filters: Filters) -> Table:
    """The survey rollup for a month-grain question within `filters`: the unit-month table
    when no survey dimension is filtered (it has none), the daily one otherwise."""
    return asd if any(getattr(filters, d) for d in SURVEY_DIMS) else asm


def sales_rollup(filters: Filters) -> Table:
    """The sales rollup for a month-grain question within `filters` (see `survey_rollup`)."""
    return atd if any(getattr(filters, d) for d in TXN_DIMS) else atm


@dataclass(frozen=True)
class Comparison:
    """A KPI's value in another period and the test of the difference."""

    period: str
    value: float | None
    n: int
    delta: float | None
    z: float | None
    significant: bool | None
    low: float | None = None
    high: float | None = None
    reason: str | None = None  # why no test: metrics.TOO_FEW


@dataclass(frozen=True)
class Kpi:
    """One KPI: value, sample size, 95% interval, flags, and changes against other periods.

    `n` counts people or answers (`n_unit` says which: "answers", "respondents", "members",
    "transactions"); `sampled` False marks a complete count (no margin, no test).
    `not_applicable` gives the reason a KPI cannot be computed for the filters (value None).
    `yoy` is the second comparison: the same month a year earlier, or the month before when
    the first comparison is already a year back (`second_comparison`).
    """

    key: str
    label: str
    unit: str
    period: str
    value: float | None
    n: int
    moe: float | None
    compare: Comparison | None = None
    yoy: Comparison | None = None
    low_sample: bool = False
    hidden: bool = False
    note: str | None = None
    ignored_filters: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    n_unit: str = "answers"
    sampled: bool = True
    not_applicable: str | None = None

    # Shortcuts used by cards and text: the change against the comparison period.
    @property
    def delta(self) -> float | None:
        """Change against the comparison period."""
        return self.compare.delta if self.compare else None

    @property
    def significant(self) -> bool | None:
        """Whether that change is significant at 95% (None: not a sample, no data, or too
        few answers to test)."""
        return self.compare.significant if self.compare else None

    @property
    def untested(self) -> str | None:
        """Why the change against the comparison period is not tested (None when it is)."""
        return self.compare.reason if self.compare else None

    @property
    def compare_period(self) -> str | None:
        """The comparison period."""
        return self.compare.period if self.compare else None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form: the same numbers the dashboard and the PDF show."""
        out = asdict(self)
        out["ignored_filters"] = list(self.ignored_filters)
        out["flags"] = list(self.flags)
        return out


# ---------------------------------------------------------------------------- raw counts


def survey_counts(conn: Connection, *, months: list[Month], filters: Filters) -> dict[str, float]:
    """Counts and sums of survey scores over `months` within `filters` (from the rollup)."""
    cols = ("responses", "nps_n", "nps_promoters", "nps_detractors", "csat_n", "csat_top2",
            "ces_n", "ces_sum", "ces_sumsq", "ces_agree", "spend_n", "spend_sum")
    agg = survey_rollup(filters)
    stmt = select(*[func.coalesce(func.sum(agg.c[c]), 0).label(c) for c in cols]).where(
        agg.c.month.in_([str(m) for m in months]), *_dims(agg, filters, SURVEY_DIMS))
    return dict(conn.execute(stmt).mappings().one())


def sales_counts(conn: Connection, *, months: list[Month], filters: Filters) -> dict[str, float]:
    """Revenue, transactions and points over `months` (members and not) within `filters`."""
    atd = sales_rollup(filters)
    member = atd.c.member.is_(True)
    stmt = select(
        func.coalesce(func.sum(atd.c.revenue), 0.0).label("revenue"),
        func.coalesce(func.sum(atd.c.txns), 0).label("txns"),
        func.coalesce(func.sum(atd.c.revenue_sumsq), 0.0).label("revenue_sumsq"),
        func.coalesce(func.sum(case((member, atd.c.revenue), else_=0.0)), 0.0).label("m_rev"),
        func.coalesce(func.sum(case((member, atd.c.txns), else_=0)), 0).label("m_txns"),
        func.coalesce(func.sum(case((member, atd.c.revenue_sumsq), else_=0.0)), 0.0
                      ).label("m_sumsq"),
        func.coalesce(func.sum(atd.c.points_earned), 0).label("earned"),
        func.coalesce(func.sum(atd.c.points_redeemed), 0).label("redeemed"),
    ).where(atd.c.month.in_([str(m) for m in months]), *_dims(atd, filters, TXN_DIMS))
    return dict(conn.execute(stmt).mappings().one())


def _txn_filter(filters: Filters) -> list[ColumnElement[bool]]:
    conds = [in_scope(tx.c.org_unit_id, filters.unit), tx.c.customer_id.is_not(None)]
    if filters.channel:
        conds.append(tx.c.channel == filters.channel)
    return conds


def _member_filter(filters: Filters) -> list[ColumnElement[bool]]:
    conds = [cust.c.loyalty_member.is_(True)]
    if filters.segment:
        conds.append(cust.c.segment == filters.segment)
    return conds


def _active_set(as_of: dt.datetime, window_days: int, filters: Filters):
    return (
        select(tx.c.customer_id)
        .select_from(tx.join(cust, cust.c.id == tx.c.customer_id))
        .where(tx.c.occurred_at >= as_of - dt.timedelta(days=window_days),
               tx.c.occurred_at < as_of, *_txn_filter(filters), *_member_filter(filters))
        .distinct()
    )


def active_members(conn: Connection, *, as_of: dt.datetime, window_days: int = 90,
                   filters: Filters | None = None) -> int:
    """Members with a transaction in the `window_days` before `as_of` (exclusive)."""
    active = _active_set(as_of, window_days, filters or Filters()).subquery()
    return int(conn.execute(select(func.count()).select_from(active)).scalar_one())


@dataclass(frozen=True)
class MemberActivity:
    """Active members at the end of a period and of the period before, and the overlap."""

    active: int
    active_before: int
    retained: int


def member_activity(conn: Connection, *, end: dt.datetime, previous_end: dt.datetime,
                    window_days: int = 90, filters: Filters | None = None) -> MemberActivity:
    """Active members as of `end` and `previous_end`, and how many of the earlier ones are
    still active: retention = retained / active_before (one query, two index range scans)."""
    filters = filters or Filters()
    now = _active_set(end, window_days, filters).cte()
    before = _active_set(previous_end, window_days, filters).cte()
    kept = select(func.count()).select_from(
        before.join(now, now.c.customer_id == before.c.customer_id))
    row = conn.execute(select(
        select(func.count()).select_from(now).scalar_subquery(),
        select(func.count()).select_from(before).scalar_subquery(),
        kept.scalar_subquery(),
    )).one()
    return MemberActivity(int(row[0]), int(row[1]), int(row[2]))


def org_tree_fingerprint(conn: Connection) -> str:
    """SHA-1 of the org tree (every unit and its parent): what per-subtree counts made by
    the ETL were made on."""
    rows = conn.execute(select(ou.c.id, ou.c.parent_id).order_by(ou.c.id)).all()
    text = "\n".join(f"{unit}>{parent or ''}" for unit, parent in rows)
    return hashlib.sha1(text.encode()).hexdigest()


def _summary_month(end: dt.datetime, previous_end: dt.datetime) -> Month | None:
    """The month whose (end, end of the month before) is this pair, if it is one."""
    month = Month.of((end - dt.timedelta(days=1)).date())
    return month if (month.end, month.shift(-1).end) == (end, previous_end) else None


def _from_summary(conn: Connection, months: list[Month], window_days: int,
                  filters: Filters) -> dict[Month, tuple[MemberActivity, int]]:
    """Activity of `months` read from `agg_member_activity` (those it holds, counted on the
    current org tree), for filters it can answer (one unit or none, segment, channel)."""
    unit = filters.unit
    if isinstance(unit, tuple):
        if len(unit) != 1:
            return {}  # several subtrees may share members: not a sum of rows
        unit = unit[0]
    ama = schema.agg_member_activity
    keys = [str(m) for m in months]
    rows = conn.execute(
        select(ama.c.month, ama.c.scope_unit, ama.c.segment, ama.c.channel, ama.c.active,
               ama.c.active_before, ama.c.retained, ama.c.earning, ama.c.org_tree)
        .where(ama.c.window_days == window_days, ama.c.month.in_(keys),
               or_(and_(ama.c.scope_unit == (unit or "*"),
                        ama.c.segment == (filters.segment or ""),
                        ama.c.channel == (filters.channel or "")),
                   and_(ama.c.scope_unit == "*", ama.c.segment == "", ama.c.channel == "")))
    ).all()
    if not rows:
        return {}
    tree = org_tree_fingerprint(conn)
    counted = {r.month for r in rows if r.scope_unit == "*" and r.segment == ""
               and r.channel == "" and r.org_tree == tree}
    found = {r.month: (MemberActivity(int(r.active), int(r.active_before), int(r.retained)),
                       int(r.earning))
             for r in rows if r.scope_unit == (unit or "*")
             and r.segment == (filters.segment or "") and r.channel == (filters.channel or "")}
    # A counted month without the filter's row had no such member at either end.
    return {m: found.get(str(m), (MemberActivity(0, 0, 0), 0)) for m in months
            if str(m) in counted}


def member_activity_series(
    conn: Connection,
    *,
    pairs: Sequence[tuple[dt.datetime, dt.datetime]],
    window_days: int = 90,
    filters: Filters | None = None,
    summary: bool = True,
) -> list[MemberActivity]:
    """`member_activity` for each (end, previous_end) of `pairs`, in at most two statements.

    Month-end pairs (a month's end and the month before's) come from the ETL's counts
    (`agg_member_activity`) when it holds them for these filters; the rest is counted from
    the facts in one statement: each distinct instant's active set (members with a
    transaction in the `window_days` before it) is found once, by one range join of a small
    table of instants with the indexed transactions, and retained members are the overlap
    of a pair's two sets. Either way the numbers are those of `member_activity` called pair
    by pair. `summary=False` always counts from the facts.
    """
    filters = filters or Filters()
    if not pairs:
        return []
    known: dict[int, MemberActivity] = {}
    if summary:
        months = {p: _summary_month(*pair) for p, pair in enumerate(pairs)}
        stored = _from_summary(conn, sorted({m for m in months.values() if m}), window_days,
                               filters)
        known = {p: stored[m][0] for p, m in months.items() if m in stored}
    rest = [pair for p, pair in enumerate(pairs) if p not in known]
    counted = iter(_count_activity(conn, rest, window_days, filters) if rest else [])
    return [known[p] if p in known else next(counted) for p in range(len(pairs))]


def _count_activity(conn: Connection, pairs: Sequence[tuple[dt.datetime, dt.datetime]],
                    window_days: int, filters: Filters) -> list[MemberActivity]:
    instants = sorted({t for pair in pairs for t in pair})
    index = {t: i for i, t in enumerate(instants)}
    since = dt.timedelta(days=window_days)
    ends = union_all(*[
        select(literal(i, Integer).label("k"), literal(t - since, DateTime).label("since"),
               literal(t, DateTime).label("as_of")) for t, i in index.items()
    ]).cte("ends") if len(instants) > 1 else select(
        literal(0, Integer).label("k"), literal(instants[0] - since, DateTime).label("since"),
        literal(instants[0], DateTime).label("as_of")).cte("ends")
    active = (
        select(ends.c.k, tx.c.customer_id)
        .select_from(tx.join(cust, cust.c.id == tx.c.customer_id)
                     .join(ends, and_(tx.c.occurred_at >= ends.c.since,
                                      tx.c.occurred_at < ends.c.as_of)))
        .where(*_txn_filter(filters), *_member_filter(filters))
        .distinct()
        .cte("active")
    )
    wanted = union_all(*[
        select(literal(p, Integer).label("p"), literal(index[end], Integer).label("cur"),
               literal(index[prev], Integer).label("prev"))
        for p, (end, prev) in enumerate(pairs)
    ]).cte("wanted") if len(pairs) > 1 else select(
        literal(0, Integer).label("p"), literal(index[pairs[0][0]], Integer).label("cur"),
        literal(index[pairs[0][1]], Integer).label("prev")).cte("wanted")
    now, before = active.alias("now"), active.alias("before")
    sizes = select(literal(0, Integer).label("what"), active.c.k.label("key"),
                   func.count().label("n")).group_by(active.c.k)
    kept = (select(literal(1, Integer).label("what"), wanted.c.p.label("key"),
                   func.count().label("n"))
            .select_from(wanted.join(now, now.c.k == wanted.c.cur)
                         .join(before, and_(before.c.k == wanted.c.prev,
                                            before.c.customer_id == now.c.customer_id)))
            .group_by(wanted.c.p))
    counts: dict[tuple[int, int], int] = {
        (int(what), int(key)): int(n) for what, key, n in conn.execute(union_all(sizes, kept))}
    return [MemberActivity(counts.get((0, index[end]), 0), counts.get((0, index[prev]), 0),
                           counts.get((1, p), 0)) for p, (end, prev) in enumerate(pairs)]


def latest_wave(conn: Connection, *, before: dt.datetime, unit: str | None = None,
                exclude_from: dt.date | None = None) -> dt.date | None:
    """Most recent engagement wave dated before `before` (and before `exclude_from`)."""
    cond = [aeu.c.wave < before.date(), in_scope(aeu.c.org_unit_id, unit)]
    if exclude_from is not None:
        cond.append(aeu.c.wave < exclude_from)
    value = conn.execute(select(func.max(aeu.c.wave)).where(and_(*cond))).scalar()
    if isinstance(value, str):  # SQLite hands back text for MAX() over a DATE
        value = dt.date.fromisoformat(value)
    return value


@dataclass(frozen=True)
class WaveCounts:
    """Engagement counts of one wave in a scope."""

    wave: dt.date | None
    respondents: int
    item_shares: dict[str, float]
    enps_n: int
    enps_promoters: int
    enps_detractors: int
    headcount: int | None


def wave_counts(conn: Connection, *, wave: dt.date, unit: str | None = None) -> WaveCounts:
    """Respondents, favourable share per item, eNPS counts and headcount of a wave."""
    resp, n, pro, det = conn.execute(select(
        func.coalesce(func.sum(aeu.c.respondents), 0), func.coalesce(func.sum(aeu.c.enps_n), 0),
        func.coalesce(func.sum(aeu.c.enps_promoters), 0),
        func.coalesce(func.sum(aeu.c.enps_detractors), 0),
    ).where(aeu.c.wave == wave, in_scope(aeu.c.org_unit_id, unit))).one()
    items = conn.execute(
        select(aei.c.item, func.sum(aei.c.n), func.sum(aei.c.favourable))
        .where(aei.c.wave == wave, in_scope(aei.c.org_unit_id, unit)).group_by(aei.c.item)
    ).all()
    heads = conn.execute(select(func.sum(hc.c.headcount), func.count()).where(
        hc.c.wave == wave, in_scope(hc.c.org_unit_id, unit))).one()
    return WaveCounts(wave, int(resp), {i: fav / k for i, k, fav in items if k},
                      int(n), int(pro), int(det), int(heads[0]) if heads[1] else None)


def latest_full_month(conn: Connection, *, today: dt.date | None = None) -> Month | None:
    """The last complete calendar month that has survey or sales data."""
    today = today or dt.date.today()
    newest = [conn.execute(select(func.max(t.c.month))).scalar() for t in (asm, atm)]
    newest = [Month.parse(m) for m in newest if m]
    if not newest:
        return None
    return min(max(newest), Month.of(today).shift(-1))


# ------------------------------------------------------------------------------ the KPIs

MONEY = "money"
"""Unit of money KPIs: written in CX_CURRENCY / CX_LOCALE by `queries.formatting.money`."""

LABELS = {
    "nps": ("NPS", "pts"), "csat": ("CSAT", "%"), "ces": ("CES", "/7"),
    "ces_agree": ("CES % easy", "%"), "active_members": ("Active members", "members"),
    "retention": ("Retention", "%"), "churn": ("Churn", "%"),
    "redemption": ("Redemption rate", "%"), "spend_per_member": ("Spend per member", MONEY),
    "member_ticket": ("Member ticket", MONEY), "non_member_ticket": ("Non-member ticket", MONEY),
    "engagement": ("Employee engagement", "%"), "enps": ("eNPS", "pts"),
    "participation": ("Participation", "%"), "revenue": ("Revenue", MONEY),
}
CES_SCALE = (1.0, 7.0)
# Higher is better for all but churn: the direction a change must take to be good news.
LOWER_IS_BETTER = {"churn"}


@dataclass(frozen=True)
class Settings:
    """The thresholds a KPI computation needs (from queries.settings in the apps)."""

    min_n: int = metrics.DEFAULT_MIN_N
    anonymity_min: int = 5
    active_days: int = 90


def _comparison(period: Month, cur: Estimate, prev: Estimate, kind: str,
                min_n: int) -> Comparison:
    if kind in ("nps", "mean"):
        chg = metrics.change(cur, prev, min_n=min_n)
    elif kind == "share":
        chg = metrics.change_share(cur, prev, min_n=min_n)
    else:  # census counts: a difference, no sampling error to test
        delta = None if cur.value is None or prev.value is None else cur.value - prev.value
        return Comparison(str(period), prev.value, prev.n, delta, None, None)
    return Comparison(str(period), prev.value, prev.n, chg.delta, chg.z, chg.significant,
                      chg.low, chg.high, chg.reason)


def _kpi(key: str, period: Month, est: Estimate, *, kind: str, cfg: Settings,
         compare: tuple[Month, Estimate] | None = None, yoy: tuple[Month, Estimate] | None = None,
         note: str | None = None, ignored: tuple[str, ...] = (), sampled: bool = True,
         n_unit: str = "answers") -> Kpi:
    label, unit = LABELS[key]
    low = sampled and est.n < cfg.min_n
    return Kpi(
        key=key, label=label, unit=unit, period=str(period), value=est.value, n=est.n,
        moe=est.moe if sampled else None, note=note, ignored_filters=ignored, low_sample=low,
        flags=("low_sample",) if low else (),
        compare=_comparison(compare[0], est, compare[1], kind, cfg.min_n) if compare else None,
        yoy=_comparison(yoy[0], est, yoy[1], kind, cfg.min_n) if yoy else None,
        low=est.low if sampled else None, high=est.high if sampled else None,
        n_unit=n_unit, sampled=sampled,
    )


def second_comparison(period: Month, compare: Month) -> Month:
    """The second period every KPI is compared with: the same month a year earlier, or, when
    the first comparison already is that month, the month before (never the same one twice)."""
    year_ago = period.shift(-12)
    return period.shift(-1) if compare == year_ago else year_ago


def missing_txn_values(conn: Connection, filters: Filters) -> dict[str, str]:
    """Transaction filters (segment, channel) whose value no transaction carries, by name.

    With such a filter the loyalty KPIs are not applicable (sales cannot be cut that way),
    which is not the same as a counted zero.
    """
    out: dict[str, str] = {}
    for dim in TXN_DIMS:
        value = getattr(filters, dim)
        if not value:
            continue
        found = conn.execute(select(adv.c.value).where(
            adv.c.fact == "sales", adv.c.dim == dim, adv.c.value == value).limit(1)).first()
        if found is None:
            out[dim] = value
    return out


def not_applicable_reason(missing: dict[str, str]) -> str | None:
    """'transactions have no chat channel' for the filters `missing_txn_values` found."""
    if not missing:
        return None
    return "transactions have no " + " and no ".join(
        f"{v.replace('_', ' ').lower()} {k}" for k, v in missing.items())


def members_earning(conn: Connection, *, months: list[Month], filters: Filters) -> int:
    """Loyalty members who earned points in `months` within `filters`: the people behind a
    redemption rate."""
    stmt = (select(func.count(func.distinct(tx.c.customer_id)))
            .select_from(tx.join(cust, cust.c.id == tx.c.customer_id))
            .where(tx.c.occurred_at >= min(m.start for m in months),
                   tx.c.occurred_at < max(m.end for m in months), tx.c.points_earned > 0,
                   *_txn_filter(filters), *_member_filter(filters)))
    return int(conn.execute(stmt).scalar_one())


def members_earning_by_month(conn: Connection, *, months: list[Month],
                             filters: Filters, window_days: int = 90,
                             summary: bool = True) -> dict[Month, int]:
    """`members_earning` of each of `months` on its own (not over their union): from the
    ETL's counts (`agg_member_activity`, stored beside the activity of `window_days`) where
    it holds them, the rest in one statement counting distinct members per month."""
    if not months:
        return {}
    stored = _from_summary(conn, sorted(set(months)), window_days, filters) if summary \
        else {}
    if all(m in stored for m in months):
        return {m: stored[m][1] for m in months}
    month = month_of(tx.c.occurred_at)
    stmt = (select(month, func.count(func.distinct(tx.c.customer_id)))
            .select_from(tx.join(cust, cust.c.id == tx.c.customer_id))
            .where(or_(*[and_(tx.c.occurred_at >= m.start, tx.c.occurred_at < m.end)
                         for m in sorted(set(months))]),
                   tx.c.points_earned > 0, *_txn_filter(filters), *_member_filter(filters))
            .group_by(month))
    counts = {str(key): int(n) for key, n in conn.execute(stmt)}
    return {m: stored[m][1] if m in stored else counts.get(str(m), 0) for m in months}


def _ignored(filters: Filters, supported: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for k in filters.active() if k != "unit" and k not in supported)


def kpis(
    conn: Connection,
    *,
    period: Month,
    compare: Month | None = None,
    filters: Filters | None = None,
    settings: Settings | None = None,
    with_yoy: bool = True,
) -> list[Kpi]:
    """Every overview KPI for `period` in `filters`, against `compare` (default: the month
    before) and, with `with_yoy`, a second period (`second_comparison`: the same month a year
    earlier, or the month before when `compare` is already that month)."""
    filters = filters or Filters()
    cfg = settings or Settings()
    compare = compare or period.shift(-1)
    periods = {"cur": period, "cmp": compare}
    if with_yoy:
        periods["yoy"] = second_comparison(period, compare)
    out: list[Kpi] = []

    sv = {k: survey_counts(conn, months=[m], filters=filters) for k, m in periods.items()}
    ests = {k: {
        "nps": metrics.nps(c["nps_n"], c["nps_promoters"], c["nps_detractors"]),
        "csat": metrics.share(c["csat_n"], c["csat_top2"]),
        "ces": metrics.mean_t(c["ces_n"], c["ces_sum"], c["ces_sumsq"], CES_SCALE),
        "ces_agree": metrics.share(c["ces_n"], c["ces_agree"]),
    } for k, c in sv.items()}
    kinds = {"nps": "nps", "csat": "share", "ces": "mean", "ces_agree": "share"}
    for key, kind in kinds.items():
        out.append(_kpi(key, period, ests["cur"][key], kind=kind, cfg=cfg,
                        compare=(compare, ests["cmp"][key]),
                        yoy=(periods["yoy"], ests["yoy"][key]) if with_yoy else None))

    out.extend(_loyalty_kpis(conn, periods, filters, cfg))
    out.extend(_employee_kpis(conn, period, filters, cfg))
    return out


def _loyalty_kpis(conn: Connection, periods: dict[str, Month], filters: Filters,
                  cfg: Settings) -> list[Kpi]:
    ignored = _ignored(filters, TXN_DIMS)
    period, compare = periods["cur"], periods["cmp"]
    yoy = periods.get("yoy")
    days = cfg.active_days
    series = member_activity_series(
        conn, pairs=[(m.end, m.shift(-1).end) for m in periods.values()], window_days=days,
        filters=filters)
    activity = dict(zip(periods, series, strict=True))
    active = {k: a.active for k, a in activity.items()}
    sales = {k: sales_counts(conn, months=[m], filters=filters) for k, m in periods.items()}

    def census(v: float | None, n: int) -> Estimate:
        return Estimate(v, n, None, None)

    def pair(key: str, build) -> dict:
        return {k: build(k) for k in periods}

    act = pair("active", lambda k: census(float(active[k]), active[k]))
    retention = pair("retention", lambda k: metrics.share(activity[k].active_before,
                                                          activity[k].retained))
    churn = {k: (Estimate(None if e.value is None else 100 - e.value, e.n, e.moe, e.variance))
             for k, e in retention.items()}
    earning_by_month = members_earning_by_month(
        conn, months=[m for k, m in periods.items() if sales[k]["earned"]], filters=filters,
        window_days=days)
    earning = {k: earning_by_month.get(m, 0) if sales[k]["earned"] else 0
               for k, m in periods.items()}
    redemption = pair("redemption", lambda k: census(
        100 * sales[k]["redeemed"] / sales[k]["earned"] if sales[k]["earned"] else None,
        earning[k]))
    spend = pair("spend", lambda k: census(
        sales[k]["m_rev"] / active[k] if active[k] else None, active[k]))
    member_ticket = pair("mt", lambda k: metrics.mean_t(
        int(sales[k]["m_txns"]), sales[k]["m_rev"], sales[k]["m_sumsq"]))
    non_member_ticket = pair("nt", lambda k: metrics.mean_t(
        int(sales[k]["txns"] - sales[k]["m_txns"]), sales[k]["revenue"] - sales[k]["m_rev"],
        sales[k]["revenue_sumsq"] - sales[k]["m_sumsq"]))
    revenue = pair("revenue", lambda k: census(float(sales[k]["revenue"]), int(sales[k]["txns"])))

    # (key, estimates, test kind, note, sampled, what n counts)
    specs = [
        ("active_members", act, "census", f"transaction in the last {days} days", False,
         "members"),
        ("retention", retention, "share", f"members active {days} days before, still active",
         True, "members"),
        ("churn", churn, "share", "1 - retention", True, "members"),
        ("redemption", redemption, "census", "points redeemed / points earned", False,
         "members earning points"),
        ("spend_per_member", spend, "census", "member revenue / active members", False,
         "members"),
        ("member_ticket", member_ticket, "mean", "mean member transaction", True,
         "transactions"),
        ("non_member_ticket", non_member_ticket, "mean", "mean non-member transaction", True,
         "transactions"),
        ("revenue", revenue, "census", "sum of transactions", False, "transactions"),
    ]
    out = []
    for key, est, kind, note, sampled, n_unit in specs:
        out.append(_kpi(key, period, est["cur"], kind=kind, cfg=cfg, note=note,
                        ignored=ignored, sampled=sampled, compare=(compare, est["cmp"]),
                        yoy=(yoy, est["yoy"]) if yoy else None, n_unit=n_unit))
    if filters.segment and "segment" not in ignored:
        out = [k if k.key != "non_member_ticket" else _not_applicable(
            k, "non-members have no segment") for k in out]
    reason = not_applicable_reason(missing_txn_values(conn, filters))
    if reason:
        out = [_not_applicable(k, reason) for k in out]
    return out


def _not_applicable(kpi: Kpi, reason: str) -> Kpi:
    """`kpi` emptied because it cannot be computed for the filters, with the reason."""
    return replace(kpi, value=None, n=0, moe=None, low=None, high=None, compare=None, yoy=None,
                   low_sample=False, flags=("not_applicable",), not_applicable=reason,
                   note=reason)


def _employee_kpis(conn: Connection, period: Month, filters: Filters,
                   cfg: Settings) -> list[Kpi]:
    ignored = _ignored(filters, ())
    wave = latest_wave(conn, before=period.end, unit=filters.unit)
    prev_wave = latest_wave(conn, before=period.end, unit=filters.unit,
                            exclude_from=wave) if wave else None
    cur = wave_counts(conn, wave=wave, unit=filters.unit) if wave else None
    prev = wave_counts(conn, wave=prev_wave, unit=filters.unit) if prev_wave else None

    def ests(w: WaveCounts | None) -> dict[str, Estimate]:
        if w is None or w.respondents == 0:
            empty = Estimate(None, 0, None, None)
            return {"engagement": empty, "enps": empty, "participation": empty}
        return {
            "engagement": metrics.engagement(w.respondents, list(w.item_shares.values())),
            "enps": metrics.nps(w.enps_n, w.enps_promoters, w.enps_detractors),
            "participation": Estimate(
                100 * w.respondents / w.headcount if w.headcount else None,
                w.respondents, None, None),
        }

    now_e, prev_e = ests(cur), ests(prev)

    def hidden_by_siblings(w: dt.date | None) -> bool:
        # A unit shown beside a hidden sibling would reveal it by subtraction.
        from queries.employees import hidden_in_wave

        if w is None or filters.unit is None:
            return False
        units = {filters.unit} if isinstance(filters.unit, str) else set(filters.unit)
        return bool(units & hidden_in_wave(conn, wave=w, minimum=cfg.anonymity_min))

    hidden = cur is not None and (0 < cur.respondents < cfg.anonymity_min
                                  or hidden_by_siblings(wave))
    prev_hidden = (prev is None or prev.respondents < cfg.anonymity_min
                   or hidden_by_siblings(prev_wave))
    note = f"wave of {wave:%B %Y}" if wave else "no engagement wave yet"
    out = []
    for key, kind in (("engagement", "share"), ("enps", "nps"), ("participation", "census")):
        est = now_e[key]
        cmp = None
        if prev_wave is not None and not prev_hidden:
            cmp = (Month.of(prev_wave), prev_e[key])
        kpi = _kpi(key, period, est, kind=kind, cfg=cfg, note=note, ignored=ignored,
                   compare=cmp, sampled=key != "participation", n_unit="respondents")
        if hidden:
            # Fewer respondents than the anonymity minimum: nothing about the group is shown.
            kpi = replace(kpi, value=None, moe=None, low=None, high=None, compare=None,
                          hidden=True, low_sample=False,
                          flags=("hidden",), note=f"fewer than {cfg.anonymity_min} respondents")
        out.append(kpi)
    return out


def org_units(conn: Connection) -> list[dict[str, object]]:
    """All org units (id, name, kind, parent_id), parents before children."""
    order = case({"company": 0, "region": 1, "store": 2, "team": 3}, value=ou.c.kind)
    rows = conn.execute(select(ou.c.id, ou.c.name, ou.c.kind, ou.c.parent_id)
                        .order_by(order, ou.c.name)).mappings().all()
    return [dict(r) for r in rows]


def overview_kpis(conn: Connection, *, period: Month, compare: Month | None = None,
                  unit: str | None = None, min_n: int = 30, anonymity_min: int = 5,
                  active_days: int = 90) -> list[Kpi]:
    """The six headline KPIs of the overview (NPS, CSAT, CES, active members, engagement,
    revenue): a convenience over `kpis`."""
    wanted = ("nps", "csat", "ces", "active_members", "engagement", "revenue")
    every = kpis(conn, period=period, compare=compare, filters=Filters(unit=unit),
                 settings=Settings(min_n, anonymity_min, active_days))
    by_key = {k.key: k for k in every}
    return [by_key[k] for k in wanted]
