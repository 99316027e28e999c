"""Tying experience to revenue: what a promoter is worth, and whether better units grow more.

Every function aggregates in the database (GROUP BY with counts, sums and sums of squares
or products) and brings back at most a few hundred rows: one per NPS answer, per unit and
month, or per unit and wave. `queries.stats` finishes the statistics. The definitions are
those of `shared/METRICS.md`, "Tying experience to revenue".

Survey filters (`unit` with everything below it, `segment`, `channel`, `device`,
`interaction`, `touchpoint`) take one value or a list of values.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Integer,
    Row,
    Table,
    and_,
    case,
    false,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.sql import ColumnElement, Select, Subquery

from queries import metrics, schema, stats
from queries.employees import hidden_in_wave
from queries.kpis import unit_scope
from queries.periods import Month, whole_months
from queries.sqlfuncs import add_days
from queries.sqlfuncs import rescaled as rescaled_sql
from queries.stats import Correlation, MeanCI, Test

ou = schema.org_unit
sr = schema.survey_response
rt = schema.survey_rating
tx = schema.loyalty_transaction
cust = schema.customer
asd = schema.agg_survey_daily
atd = schema.agg_txn_daily
aei = schema.agg_engagement
aeu = schema.agg_engagement_unit

Dim = str | Sequence[str] | None
GROUPS = ("promoter", "passive", "detractor")
LEVELS = ("company", "region", "store", "team")
OUTCOMES = ("nps", "csat")
# A rating as the key-driver model uses it: rescaled onto 1-5 when asked on another scale
# (the ETL's `agg_driver_moments` sums the same expression).
DRIVER_RATING = rescaled_sql(rt.c.rating, rt.c.scale_min, rt.c.scale_max, (1, 5), (1, 5))


# --------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------


def _match(column: ColumnElement, value: Dim) -> ColumnElement[bool] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return column == value
    return column.in_(list(value))


def _conditions(unit_col: ColumnElement, dims: dict[str, ColumnElement], unit: str | None,
                values: dict[str, Dim]) -> list[ColumnElement[bool]]:
    """Scope and dimension filters; a dimension the table lacks must not be asked for."""
    conds: list[ColumnElement[bool]] = []
    scope = unit_scope(unit)
    if scope is not None:
        conds.append(unit_col.in_(scope))
    for name, value in values.items():
        if value is None:
            continue
        if name not in dims:
            raise ValueError(f"filter {name!r} does not apply here")
        cond = _match(dims[name], value)
        if cond is not None:
            conds.append(cond)
    return conds


def _fact_filters(unit: str | None, values: dict[str, Dim]) -> list[ColumnElement[bool]]:
    """Filters on survey_response outer-joined to customer (segment is the customer's)."""
    dims = {"segment": cust.c.segment, "channel": sr.c.channel, "device": sr.c.device,
            "interaction": sr.c.interaction, "touchpoint": sr.c.touchpoint}
    return _conditions(sr.c.org_unit_id, dims, unit, values)


def _agg_filters(table: Table, unit: str | None,
                 values: dict[str, Dim]) -> list[ColumnElement[bool]]:
    dims = {name: table.c[name] for name in
            ("segment", "channel", "device", "interaction", "touchpoint") if name in table.c}
    return _conditions(table.c.org_unit_id, dims, unit, values)


def _level_map(level: str) -> Subquery:
    """(unit_id, level_id): every org unit paired with its ancestor-or-self of kind `level`."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    walk = select(ou.c.id.label("unit_id"), ou.c.id.label("anc_id"),
                  ou.c.kind.label("anc_kind"), ou.c.parent_id.label("next_id"),
                  literal_column("0", Integer).label("depth")).cte(recursive=True)
    parent = ou.alias("parent")
    # The depth guard stops a (mis-loaded) cycle in the org chart from recursing forever.
    walk = walk.union_all(
        select(walk.c.unit_id, parent.c.id, parent.c.kind, parent.c.parent_id, walk.c.depth + 1)
        .where(parent.c.id == walk.c.next_id, walk.c.depth < 32)
    )
    return (select(walk.c.unit_id, walk.c.anc_id.label("level_id"))
            .where(walk.c.anc_kind == level).subquery("level_map"))


def _as_datetime(value: object) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):  # SQLite may hand back the stored text of an aggregate
        return dt.datetime.fromisoformat(value)
    raise TypeError(f"unexpected timestamp {value!r}")


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _day_bound(moment: dt.datetime) -> dt.date:
    """First whole day at or after `moment`: rollups know days, not times."""
    day = moment.date()
    return day if moment == dt.datetime.combine(day, dt.time()) else day + dt.timedelta(days=1)


def _unit_names(conn: Connection, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    return dict(conn.execute(select(ou.c.id, ou.c.name).where(ou.c.id.in_(ids))).all())


def _nps_group(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


# --------------------------------------------------------------------------
# a. Revenue after the survey, by promoter / passive / detractor
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRevenue:
    """One NPS group: revenue per response in the window and churn after the survey.

    `mean`, `sd`, `low`, `high`: revenue per response with its t-based interval; `total`:
    the group's revenue in the window; `churned`/`churn`: responses (share) whose customer
    had no transaction in the churn window, with its Wilson interval.
    """

    group: str
    n: int
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None
    total: float
    churned: int
    churn: float | None
    churn_low: float | None
    churn_high: float | None


@dataclass(frozen=True)
class RevenueLink:
    """Revenue and churn after a survey answer, by NPS group, and what detractors put at risk.

    Counts: `responses` NPS answers in the selection; `unlinked` of them without a customer
    known to the loyalty programme; `left_out` linked answers whose window is not fully
    observed yet (it ends after `observed_until`, the latest transaction); `n` analysed.
    `gap`: Welch test of promoter - detractor mean revenue. `churn_gap`: two-proportion
    z-test of detractor - promoter churn. `detractor_revenue`: detractors' revenue in the
    window. `revenue_at_risk` (the product's one definition of the phrase) = churn gap x
    detractor revenue: what detractors' extra churn, compared with promoters', puts at
    risk; None when the churn gap cannot be computed, negative when detractors churn less.
    """

    start: dt.datetime
    end: dt.datetime
    window_days: int
    churn_days: int
    observed_until: dt.datetime | None
    responses: int
    unlinked: int
    left_out: int
    n: int
    promoter: GroupRevenue
    passive: GroupRevenue
    detractor: GroupRevenue
    gap: Test
    churn_gap: Test
    detractor_revenue: float
    revenue_at_risk: float | None

    def frame(self) -> pd.DataFrame:
        """One row per group, promoters first."""
        return pd.DataFrame([vars(g) for g in (self.promoter, self.passive, self.detractor)])


def answer_purchases(window_days: int, churn_days: int) -> Select:
    """Each NPS answer by a customer the loyalty programme knows, with that customer's
    purchases after it: `revenue` and `purchases` in (submitted_at, submitted_at +
    window_days], `active` 1 when any came in (submitted_at, submitted_at + churn_days].
    Columns response_pk, nps, revenue, purchases, active; add filters with `.where`.

    The one definition of an answer's revenue window: the readers below join it live, and
    the ETL stores it per answer (`answer_revenue`) for them to sum instead."""
    in_window = tx.c.occurred_at <= add_days(sr.c.submitted_at, window_days)
    horizon = max(window_days, churn_days)
    return (
        select(
            sr.c.id.label("response_pk"),
            sr.c.nps,
            func.coalesce(func.sum(case((in_window, tx.c.amount), else_=0)), 0)
            .label("revenue"),
            func.coalesce(func.sum(case((in_window, 1), else_=0)), 0).label("purchases"),
            func.coalesce(func.max(case(
                (tx.c.occurred_at <= add_days(sr.c.submitted_at, churn_days), 1),
                else_=0)), 0).label("active"),
        )
        # The join already bounds the purchases to the longer window.
        .select_from(sr.join(cust, cust.c.id == sr.c.customer_id).outerjoin(tx, and_(
            tx.c.customer_id == sr.c.customer_id,
            tx.c.occurred_at > sr.c.submitted_at,
            tx.c.occurred_at <= add_days(sr.c.submitted_at, horizon),
        )))
        .where(sr.c.nps.is_not(None))
        .group_by(sr.c.id, sr.c.nps)
    )


def revenue_after_survey(
    conn: Connection,
    *,
    start: dt.datetime,
    end: dt.datetime,
    window_days: int = 180,
    churn_days: int = 90,
    unit: str | None = None,
    segment: Dim = None,
    channel: Dim = None,
    device: Dim = None,
    interaction: Dim = None,
    touchpoint: Dim = None,
    confidence: float = 0.95,
    stored: bool = True,
) -> RevenueLink:
    """Revenue per customer in the `window_days` after a survey, by promoter (9-10) / passive
    (7-8) / detractor (0-6), and churn after it.

    Unit of analysis: an NPS answer submitted in [start, end) by a customer the loyalty
    programme knows. Its revenue is the sum of that customer's transaction amounts (any
    unit) in (submitted_at, submitted_at + window_days]; it churned when the customer has no
    transaction in (submitted_at, submitted_at + churn_days]. Only answers whose whole
    window (the longer of the two) ends by the latest transaction in the database count;
    the others are reported as `left_out`. Detractor revenue = detractors' total revenue in
    the window; revenue at risk = (detractor churn - promoter churn) x that revenue.

    Whole months without a dimension filter are summed from the ETL's `agg_answer_month`
    when it holds them; other answers' purchases come from the ETL's `answer_revenue` when
    it holds every answer counted here with these windows (`stored=False`: always joined
    from the sales).
    """
    if window_days < 1 or churn_days < 1:
        raise ValueError("window_days and churn_days must be at least 1")
    dims = {"segment": segment, "channel": channel, "device": device,
            "interaction": interaction, "touchpoint": touchpoint}
    filters = _fact_filters(unit, dims)
    horizon = max(window_days, churn_days)
    latest = _as_datetime(conn.execute(select(func.max(tx.c.occurred_at))).scalar())
    cut = latest - dt.timedelta(days=horizon) if latest is not None else None
    base = [sr.c.submitted_at >= start, sr.c.submitted_at < end, sr.c.nps.is_not(None),
            *filters]
    responses = linked_n = observed_n = 0
    rows: list[Sequence[object]] = []
    live_months: list[Month] = []
    split = _answer_month_split(conn, start, end, unit, dims) if stored else None
    if split is not None:
        held, live_months = split
        partial: list[Month] = []
        for month, got in held.items():
            # Held months know their answers and linked answers whatever is observed.
            responses += sum(r.responses for r in got)
            linked_n += sum(r.linked for r in got)
            if cut is None or month.start > cut:
                continue  # none of it observed yet
            if month.end <= cut and all(r.kept == r.linked and r.window_days == window_days
                                        and r.churn_days == churn_days for r in got):
                observed_n += sum(r.linked for r in got)
                rows += [(r.nps, r.kept, r.revenue_sum, r.revenue_sumsq, r.churned)
                         for r in got]
            else:
                partial.append(month)  # the observation boundary: its observed answers live
        if partial:
            assert cut is not None
            got_rows = _observed_revenue(
                conn, [*base, _in_months(sr.c.submitted_at, partial), sr.c.submitted_at <= cut],
                window_days=window_days, churn_days=churn_days, stored=stored)
            observed_n += sum(int(r[1]) for r in got_rows)
            rows += got_rows
        base.append(_in_months(sr.c.submitted_at, live_months))
    if split is None or live_months:
        (live_responses, live_linked, live_observed), live_rows = _live_revenue(
            conn, base, cut, window_days=window_days, churn_days=churn_days, stored=stored)
        responses += live_responses
        linked_n += live_linked
        observed_n += live_observed
        rows += live_rows
    sums = {g: [0, 0.0, 0.0, 0] for g in GROUPS}
    for score, n, total, total_sq, churned in rows:
        acc = sums[_nps_group(int(score))]
        acc[0] += int(n)
        acc[1] += float(total or 0)
        acc[2] += float(total_sq or 0)
        acc[3] += int(churned or 0)

    groups: dict[str, GroupRevenue] = {}
    means: dict[str, MeanCI] = {}
    for g, (n, total, total_sq, churned) in sums.items():
        m = stats.mean_ci(n, total, total_sq, confidence)
        means[g] = m
        lo, hi = stats.wilson(churned, n, confidence) if n else (None, None)
        groups[g] = GroupRevenue(g, n, m.mean, m.sd, m.low, m.high, total, churned,
                                 churned / n if n else None, lo, hi)

    pro, det = means["promoter"], means["detractor"]
    gap = stats.welch_t(pro.mean, None if pro.sd is None else pro.sd**2, pro.n,
                        det.mean, None if det.sd is None else det.sd**2, det.n, confidence)
    churn_gap = stats.two_proportion_z(groups["detractor"].churned, det.n,
                                       groups["promoter"].churned, pro.n, confidence)
    det_revenue = groups["detractor"].total
    return RevenueLink(
        start=start, end=end, window_days=window_days, churn_days=churn_days,
        observed_until=latest, responses=responses, unlinked=responses - linked_n,
        left_out=linked_n - observed_n, n=sum(s[0] for s in sums.values()),
        promoter=groups["promoter"], passive=groups["passive"], detractor=groups["detractor"],
        gap=gap, churn_gap=churn_gap, detractor_revenue=det_revenue,
        revenue_at_risk=None if churn_gap.diff is None else churn_gap.diff * det_revenue,
    )


def _in_months(column: ColumnElement, months: Sequence[Month]) -> ColumnElement[bool]:
    if not months:
        return false()
    return or_(*[and_(column >= m.start, column < m.end) for m in months])


def _answer_month_split(conn: Connection, start: dt.datetime, end: dt.datetime,
                        unit: str | None, dims: dict[str, Dim]
                        ) -> tuple[dict[Month, list[Row]], list[Month]] | None:
    """The ETL's month sums (`agg_answer_month`) for [start, end) within `unit`, by month,
    and the months they cannot answer (to count from the answers); None when they cannot
    serve the question at all (a dimension filter, or a window that is not whole months).

    A month is held when it has rows and its summed responses equal `agg_survey_monthly`'s
    NPS answers in the same scope (the survey batch keeps that one in its own transaction):
    a month a batch changed since the completion, or never summed, then counts live.
    """
    if any(v is not None for v in dims.values()):
        return None
    if start.time() != dt.time() or end.time() != dt.time():
        return None
    months = whole_months(start.date(), end.date())
    if months is None:
        return None
    am, asm = schema.agg_answer_month, schema.agg_survey_monthly
    scope = unit_scope(unit)
    in_am = [am.c.month.in_(months)] + ([am.c.org_unit_id.in_(scope)] if scope is not None
                                        else [])
    in_asm = [asm.c.month.in_(months)] + ([asm.c.org_unit_id.in_(scope)]
                                          if scope is not None else [])
    want = {m: int(n or 0) for m, n in conn.execute(
        select(asm.c.month, func.sum(asm.c.nps_n)).where(*in_asm).group_by(asm.c.month))}
    measures = [c for c in am.columns if c.name not in ("month", "org_unit_id", "nps",
                                                       "window_days", "churn_days")]
    got: dict[str, list[Row]] = {}
    for row in conn.execute(
            select(am.c.month, am.c.nps, *[func.sum(c).label(c.name) for c in measures],
                   func.min(am.c.window_days).label("window_days"),
                   func.max(am.c.window_days).label("window_days_max"),
                   func.min(am.c.churn_days).label("churn_days"),
                   func.max(am.c.churn_days).label("churn_days_max"))
            .where(*in_am).group_by(am.c.month, am.c.nps)):
        got.setdefault(row.month, []).append(row)
    held: dict[Month, list[Row]] = {}
    live: list[Month] = []
    for m in months:
        rows = [r for r in got.get(m, [])
                if r.window_days == r.window_days_max and r.churn_days == r.churn_days_max]
        # A month without rows counts live: if it really has no answers, that is an
        # empty index range, and the facts may hold answers no rollup saw yet.
        if rows and len(rows) == len(got[m]) \
                and sum(int(r.responses) for r in rows) == want.get(m, 0):
            held[Month.parse(m)] = rows
        else:
            live.append(Month.parse(m))
    return held, live


def _moment_row(row: Row, measures: Sequence[str]) -> tuple[object, ...]:
    """(nps, n, sum, sum of squares of each measure) of a month-sum row."""
    return (row.nps, *(getattr(row, f"{m}_{s}") for m in measures
                       for s in ("n", "sum", "sumsq")))


def _live_revenue(conn: Connection, base: list[ColumnElement[bool]],
                  cut: dt.datetime | None, *, window_days: int, churn_days: int,
                  stored: bool) -> tuple[tuple[int, int, int], list[Sequence[object]]]:
    """`revenue_after_survey` counted from the answers matching `base`: (responses, linked,
    observed) and rows by NPS score (n, revenue, revenue squared, churned)."""
    linked = cust.c.id.is_not(None)
    observed = sr.c.submitted_at <= cut if cut is not None else false()
    counts = conn.execute(
        select(func.count(),
               func.coalesce(func.sum(case((linked, 1), else_=0)), 0),
               func.coalesce(func.sum(case((and_(linked, observed), 1), else_=0)), 0))
        .select_from(sr.outerjoin(cust, cust.c.id == sr.c.customer_id))
        .where(*base)
    ).one()
    rows = _observed_revenue(conn, [*base, observed], window_days=window_days,
                             churn_days=churn_days, stored=stored)
    return (int(counts[0]), int(counts[1]), int(counts[2])), rows


def _observed_revenue(conn: Connection, where: list[ColumnElement[bool]], *, window_days: int,
                      churn_days: int, stored: bool) -> list[Sequence[object]]:
    """Rows by NPS score (n, revenue, revenue squared, churned) of the linked answers
    matching `where` (which must keep only observed ones): summed from `answer_revenue` when
    it holds them all, else joined from the sales."""
    rows = _stored_revenue(conn, where, window_days=window_days,
                           churn_days=churn_days) if stored else None
    if rows is None:
        # One row per response: its revenue in the window and whether it bought in the
        # churn window.
        p = answer_purchases(window_days, churn_days).where(*where).subquery("per_response")
        rows = conn.execute(
            select(p.c.nps, func.count(), func.sum(p.c.revenue),
                   func.sum(p.c.revenue * p.c.revenue), func.sum(1 - p.c.active))
            .group_by(p.c.nps)
        ).all()
    return list(rows)


def _stored_revenue(conn: Connection, where: list[ColumnElement[bool]], *, window_days: int,
                    churn_days: int) -> list[Sequence[object]] | None:
    """`revenue_after_survey`'s rows by NPS score (n, revenue, revenue squared, churned)
    summed from `answer_revenue`, or None when it lacks a row of an answer counted."""
    ar = schema.answer_revenue
    on = and_(ar.c.response_pk == sr.c.id, ar.c.window_days == window_days,
              ar.c.churn_days == churn_days)
    got = conn.execute(
        select(sr.c.nps, func.count(), func.count(ar.c.response_pk), func.sum(ar.c.revenue),
               func.sum(ar.c.revenue * ar.c.revenue), func.sum(1 - ar.c.active))
        .select_from(sr.join(cust, cust.c.id == sr.c.customer_id).outerjoin(ar, on))
        .where(*where)
        .group_by(sr.c.nps)
    ).all()
    if any(r[1] != r[2] for r in got):
        return None
    return [(r[0], r[1], *r[3:]) for r in got]


# --------------------------------------------------------------------------
# a2. Ticket and visit frequency by promoter / passive / detractor
# --------------------------------------------------------------------------

MEASURES = ("ticket", "visits", "value")


@dataclass(frozen=True)
class GroupValue:
    """One NPS group: mean ticket, mean visits and mean value (ticket x visits) per answer,
    each with its t-based interval (`MeanCI`, n = answers carrying that measure)."""

    group: str
    ticket: MeanCI
    visits: MeanCI
    value: MeanCI


@dataclass(frozen=True)
class ValueByGroup:
    """Ticket, visit frequency and their product by NPS group, and what separates the groups.

    `basis`: "survey" (the answers' own `spend` and `visits` fields), "transactions" (each
    linked answer's loyalty purchases in the `window_days` after it: ticket = revenue /
    purchases, visits = purchases, value = revenue), or "none". `gaps[(measure, other)]`:
    Welch test of promoter - `other` (passive, detractor) on that measure. `driver`:
    "frequency", "ticket", "both" or "neither" separates promoters from passives;
    `frequency_share`: share of the promoter / detractor gap in value that visit frequency
    explains (log decomposition: ln(value ratio) = ln(ticket ratio) + ln(visits ratio)).
    `sentence` says it in words.
    """

    basis: str
    window_days: int | None
    groups: dict[str, GroupValue]
    gaps: dict[tuple[str, str], Test]
    driver: str | None
    frequency_share: float | None
    sentence: str

    def frame(self) -> pd.DataFrame:
        """One row per group and measure: n, mean, 95% interval."""
        rows = []
        for g in GROUPS:
            for m in MEASURES:
                ci: MeanCI = getattr(self.groups[g], m)
                rows.append({"group": g, "measure": m, "n": ci.n, "mean": ci.mean,
                             "ci95_low": ci.low, "ci95_high": ci.high})
        return pd.DataFrame(rows, columns=["group", "measure", "n", "mean", "ci95_low",
                                           "ci95_high"])

    def gaps_frame(self) -> pd.DataFrame:
        """One row per measure and comparison: promoter - other, its interval and p."""
        rows = [{"measure": m, "promoter_minus": other, "diff": t.diff, "ci95_low": t.low,
                 "ci95_high": t.high, "p": t.p, "significant": t.significant}
                for (m, other), t in self.gaps.items()]
        return pd.DataFrame(rows, columns=["measure", "promoter_minus", "diff", "ci95_low",
                                           "ci95_high", "p", "significant"])


def _sums_by_group(rows: Sequence[Sequence[object]]) -> dict[str, list[float]]:
    """Add up per-score sums into groups: (score, n_t, s_t, q_t, n_v, s_v, q_v, n_x, s_x, q_x)."""
    out = {g: [0.0] * 9 for g in GROUPS}
    for score, *values in rows:
        acc = out[_nps_group(int(score))]
        for i, v in enumerate(values):
            acc[i] += float(v or 0)
    return out


def value_by_nps_group(
    conn: Connection,
    *,
    start: dt.datetime,
    end: dt.datetime,
    window_days: int = 180,
    basis: str | None = None,
    unit: str | None = None,
    segment: Dim = None,
    channel: Dim = None,
    device: Dim = None,
    interaction: Dim = None,
    touchpoint: Dim = None,
    confidence: float = 0.95,
    stored: bool = True,
) -> ValueByGroup:
    """Mean ticket, visit frequency and value per customer (ticket x visits) by promoter
    (9-10) / passive (7-8) / detractor (0-6), for NPS answers submitted in [start, end).

    Survey basis (used when the answers carry `spend` or `visits`): ticket = the answer's
    spend, visits = its stated visits, value = spend x visits on answers carrying both.
    Transactions basis (otherwise): for answers by customers the loyalty programme knows,
    purchases in (submitted_at, submitted_at + window_days]: visits = their number, value =
    their revenue, ticket = revenue / purchases (answers with at least one purchase). Each
    mean has a t interval; promoters are compared with passives and with detractors by
    Welch's t-test. Whole months come from the ETL's month sums and purchases per answer
    from its `answer_revenue`, as in `revenue_after_survey` (`stored=False`: always joined
    from the sales).
    """
    dims = {"segment": segment, "channel": channel, "device": device,
            "interaction": interaction, "touchpoint": touchpoint}
    filters = _fact_filters(unit, dims)
    base = [sr.c.submitted_at >= start, sr.c.submitted_at < end, sr.c.nps.is_not(None),
            *filters]
    joined = sr.outerjoin(cust, cust.c.id == sr.c.customer_id)
    # Whole months the ETL summed are read from `agg_answer_month`; the rest (and any
    # question it cannot answer) is counted from the answers below, restricted to them.
    split = _answer_month_split(conn, start, end, unit, dims) if stored else None
    held, live_months = split if split is not None else ({}, [])

    def live_where() -> list[ColumnElement[bool]]:
        return base if split is None else [*base, _in_months(sr.c.submitted_at, live_months)]

    if basis is None:
        carried = sum(int(r.spend_n) + int(r.visits_n) for got in held.values() for r in got)
        if split is None or live_months:
            carried += conn.execute(select(func.count(sr.c.spend) + func.count(sr.c.visits))
                                    .select_from(joined).where(*live_where())).scalar() or 0
        basis = "survey" if carried else "transactions"
    summed: list[Sequence[object]] = []
    live_rows: list[Sequence[object]] | None = None
    if basis == "survey":
        summed = [_moment_row(r, ("spend", "visits", "value"))
                  for got in held.values() for r in got]
        ticket, visits = sr.c.spend, sr.c.visits
        product = ticket * visits
        stmt = (select(sr.c.nps, *_moments(ticket), *_moments(visits), *_moments(product))
                .select_from(joined).where(*live_where()).group_by(sr.c.nps))
        window = None
    elif basis == "transactions":
        latest = _as_datetime(conn.execute(select(func.max(tx.c.occurred_at))).scalar())
        cut = latest - dt.timedelta(days=window_days) if latest is not None else None
        for month, got in held.items():
            if cut is None or month.start > cut:
                continue  # nothing of it observed yet
            if month.end <= cut and all(r.kept == r.linked and r.window_days == window_days
                                        for r in got):
                summed += [_moment_row(r, ("ticket", "purchases", "revenue")) for r in got]
            else:
                live_months.append(month)
        # Only answers whose whole window is observed: a half window undercounts visits.
        observed = sr.c.submitted_at <= cut if cut is not None else false()
        where = live_where()
        ar = schema.answer_revenue
        kept = (
            select(sr.c.id, sr.c.nps, ar.c.purchases.label("visits"),
                   ar.c.revenue.label("revenue"), ar.c.response_pk.label("kept"))
            .select_from(joined.outerjoin(ar, and_(ar.c.response_pk == sr.c.id,
                                                   ar.c.window_days == window_days)))
            .where(*where, cust.c.id.is_not(None), observed)
            .subquery("per_answer")
        )
        live = answer_purchases(window_days, window_days).where(*where, observed) \
            .subquery("per_answer")
        per = select(live.c.nps, live.c.purchases.label("visits"), live.c.revenue) \
            .subquery("per_answer_visits")

        def by_score(answers: Subquery) -> Select:
            a = answers.c
            ticket = case((a.visits > 0, a.revenue / a.visits), else_=None)
            return (select(a.nps, *_moments(ticket), *_moments(a.visits),
                           *_moments(a.revenue)).group_by(a.nps))

        stmt = by_score(per)
        if stored and (split is None or live_months):
            # The table's sums and, in the same pass, whether it held every answer counted.
            got_rows = conn.execute(by_score(kept).add_columns(func.count(),
                                                               func.count(kept.c.kept))).all()
            if all(r[-2] == r[-1] for r in got_rows):
                live_rows = [r[:-2] for r in got_rows]
        window = window_days
    else:
        raise ValueError(f"basis must be 'survey' or 'transactions', got {basis!r}")
    if live_rows is None:
        live_rows = conn.execute(stmt).all() if split is None or live_months else []
    sums = _sums_by_group([*summed, *live_rows])
    groups = {g: GroupValue(g, *(stats.mean_ci(int(v[i]), v[i + 1], v[i + 2], confidence)
                                 for i in (0, 3, 6)))
              for g, v in sums.items()}
    gaps: dict[tuple[str, str], Test] = {}
    for m in MEASURES:
        p = getattr(groups["promoter"], m)
        for other in ("passive", "detractor"):
            o = getattr(groups[other], m)
            gaps[(m, other)] = stats.welch_t(
                p.mean, None if p.sd is None else p.sd ** 2, p.n,
                o.mean, None if o.sd is None else o.sd ** 2, o.n, confidence)
    if not any(getattr(groups[g], m).n for g in GROUPS for m in MEASURES):
        basis = "none"
    driver, share = _driver(groups, gaps)
    return ValueByGroup(basis, window, groups, gaps, driver, share,
                        _value_sentence(basis, groups, gaps, driver, share))


def _moments(expr: ColumnElement) -> tuple[ColumnElement, ColumnElement, ColumnElement]:
    return (func.count(expr), func.coalesce(func.sum(expr), 0),
            func.coalesce(func.sum(expr * expr), 0))


def _up(test: Test) -> bool:
    return bool(test.significant) and (test.diff or 0) > 0


def _driver(groups: dict[str, GroupValue], gaps: dict[tuple[str, str], Test]
            ) -> tuple[str | None, float | None]:
    ticket, visits = gaps[("ticket", "passive")], gaps[("visits", "passive")]
    if ticket.significant is None and visits.significant is None:
        driver = None
    elif _up(visits) and _up(ticket):
        driver = "both"
    elif _up(visits):
        driver = "frequency"
    elif _up(ticket):
        driver = "ticket"
    else:
        driver = "neither"
    p, d = groups["promoter"], groups["detractor"]
    share = None
    if all(x is not None and x > 0 for x in (p.ticket.mean, d.ticket.mean, p.visits.mean,
                                              d.visits.mean)):
        lt = float(np.log(p.ticket.mean / d.ticket.mean))  # type: ignore[operator]
        lv = float(np.log(p.visits.mean / d.visits.mean))  # type: ignore[operator]
        if abs(lt + lv) > 1e-12:
            share = lv / (lt + lv)
    return driver, share


def _value_sentence(basis: str, groups: dict[str, GroupValue],
                    gaps: dict[tuple[str, str], Test], driver: str | None,
                    share: float | None) -> str:
    from queries.formatting import money, number

    if basis == "none" or driver is None:
        return ("No ticket or visit data for this selection: map `spend` and `visits` in the "
                "survey source, or load loyalty transactions.")
    p, a, d = (groups[g] for g in GROUPS)

    def m(ci: MeanCI) -> str:
        return "n/a" if ci.mean is None else money(ci.mean)

    def v(ci: MeanCI) -> str:
        return "n/a" if ci.mean is None else number(ci.mean, 1)

    tickets = f"{m(p.ticket)} vs {m(a.ticket)}"
    visits = f"{v(p.visits)} vs {v(a.visits)} visits"
    lead = {
        "frequency": (f"Visit frequency, not ticket, separates promoters from passives: "
                      f"promoters' ticket is no larger ({tickets}) but they visit more often "
                      f"({visits})."),
        "ticket": (f"Ticket, not visit frequency, separates promoters from passives: "
                   f"promoters spend more per visit ({tickets}) but do not visit more often "
                   f"({visits})."),
        "both": (f"Promoters both spend more per visit ({tickets}) and visit more often "
                 f"({visits}) than passives."),
        "neither": (f"Neither ticket ({tickets}) nor visit frequency ({visits}) differs "
                    f"significantly between promoters and passives."),
    }[driver]
    tail = (f" Detractors: ticket {m(d.ticket)}, {v(d.visits)} visits. ")
    if share is not None:
        source = "frequency" if share >= 0.5 else "ticket"
        tail += (f"Of the promoter-detractor gap in value per customer ({m(p.value)} vs "
                 f"{m(d.value)}), {100 * share:.0f}% comes from visit frequency and "
                 f"{100 * (1 - share):.0f}% from ticket: {source} drives the revenue gap.")
    return (lead + tail).strip()


# --------------------------------------------------------------------------
# Unit-level links: points per unit, a correlation and a regression line
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class UnitLink:
    """Points of a unit-level scatter (columns `x` against `y` of `points`) and their Pearson
    correlation with its Fisher-z interval and regression line.

    `excluded`: points left out (too few answers, no value); `suppressed`: of those, units
    below the anonymity threshold, which are never shown.
    """

    x: str
    y: str
    points: pd.DataFrame
    correlation: Correlation
    excluded: int = 0
    suppressed: int = 0


def _month_list(months: Sequence[Month] | None, start: dt.datetime | None,
                end: dt.datetime | None) -> list[Month]:
    if months is not None:
        out = sorted(set(months))
    elif start is not None and end is not None:
        out, m = [], Month.of(start.date())
        while m.start < end:
            out.append(m)
            m = m.shift(1)
    else:
        raise ValueError("give `months` or both `start` and `end`")
    if not out:
        raise ValueError("no month selected")
    return out


def _score(metric: str, n: int, promoters: int, detractors: int, csat_n: int, top2: int
           ) -> tuple[float | None, int]:
    if metric == "nps":
        return metrics.nps(n, promoters, detractors).value, n
    return metrics.share(csat_n, top2).value, csat_n


def unit_cx_revenue(
    conn: Connection,
    *,
    months: Sequence[Month] | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    metric: str = "nps",
    lag: int = 0,
    level: str = "store",
    min_n: int = 1,
    unit: str | None = None,
    segment: Dim = None,
    channel: Dim = None,
    device: Dim = None,
    interaction: Dim = None,
    touchpoint: Dim = None,
    confidence: float = 0.95,
) -> UnitLink:
    """Per unit (`level`: store or region) and month m: the CX score of month m - `lag`
    against revenue growth in m, and their correlation.

    Score: NPS, or CSAT top-2-box % (`metric="csat"`), from the survey rollup; `n` its
    answers. Growth = revenue(m) / revenue(m - 1) - 1 from the transaction rollup (all of
    the unit's revenue; `segment` and `channel` narrow it as they do the overview's
    revenue). Months are `months` or those overlapping [start, end). A point needs a score
    from at least `min_n` answers and revenue in m - 1; the others count as `excluded`.
    Points: unit, name, month, score_month, score, n, revenue, prev_revenue, growth.
    """
    if metric not in OUTCOMES:
        raise ValueError(f"metric must be one of {OUTCOMES}, got {metric!r}")
    if lag < 0:
        raise ValueError("lag must be >= 0")
    wanted = _month_list(months, start, end)
    first = wanted[0].shift(-max(lag, 1))
    span = [str(first.shift(i)) for i in
            range((wanted[-1].year - first.year) * 12 + wanted[-1].month - first.month + 1)]
    dims = {"segment": segment, "channel": channel, "device": device,
            "interaction": interaction, "touchpoint": touchpoint}

    # Without a dimension filter the unit-month rollups answer (thousands of rows, not
    # millions of daily ones).
    asd = schema.agg_survey_daily if any(dims.values()) else schema.agg_survey_monthly
    lm = _level_map(level)
    survey = conn.execute(
        select(lm.c.level_id, asd.c.month, func.sum(asd.c.nps_n), func.sum(asd.c.nps_promoters),
               func.sum(asd.c.nps_detractors), func.sum(asd.c.csat_n), func.sum(asd.c.csat_top2))
        .select_from(asd.join(lm, lm.c.unit_id == asd.c.org_unit_id))
        .where(asd.c.month.in_(span), *_agg_filters(asd, unit, dims))
        .group_by(lm.c.level_id, asd.c.month)
    ).all()
    scores = {(u, m): _score(metric, *(int(v or 0) for v in rest)) for u, m, *rest in survey}

    lm = _level_map(level)
    txn_dims = {"segment": segment, "channel": channel}
    atd = schema.agg_txn_daily if any(txn_dims.values()) else schema.agg_txn_monthly
    revenue = dict(((u, m), float(v or 0)) for u, m, v in conn.execute(
        select(lm.c.level_id, atd.c.month, func.sum(atd.c.revenue))
        .select_from(atd.join(lm, lm.c.unit_id == atd.c.org_unit_id))
        .where(atd.c.month.in_(span), *_agg_filters(atd, unit, txn_dims))
        .group_by(lm.c.level_id, atd.c.month)
    ).all())

    units = sorted({u for u, _ in scores} | {u for u, _ in revenue})
    names = _unit_names(conn, units)
    points, excluded = [], 0
    for u in units:
        for m in wanted:
            score, n = scores.get((u, str(m.shift(-lag))), (None, 0))
            rev, prev = revenue.get((u, str(m))), revenue.get((u, str(m.shift(-1))))
            if score is None or n < max(min_n, 1) or not prev or rev is None:
                excluded += 1
                continue
            points.append({"unit": u, "name": names.get(u, u), "month": str(m),
                           "score_month": str(m.shift(-lag)), "score": score, "n": n,
                           "revenue": rev, "prev_revenue": prev, "growth": rev / prev - 1})
    frame = pd.DataFrame(points, columns=["unit", "name", "month", "score_month", "score", "n",
                                          "revenue", "prev_revenue", "growth"])
    corr = stats.pearson(frame["score"].to_numpy(float), frame["growth"].to_numpy(float),
                         confidence)
    return UnitLink("score", "growth", frame, corr, excluded, 0)


# --------------------------------------------------------------------------
# Employee engagement against customer experience (the service-profit chain)
# --------------------------------------------------------------------------


def engagement_vs_cx(
    conn: Connection,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    waves: Sequence[dt.date] | None = None,
    outcome: str = "csat",
    min_respondents: int = 5,
    unit: str | None = None,
    segment: Dim = None,
    channel: Dim = None,
    device: Dim = None,
    interaction: Dim = None,
    touchpoint: Dim = None,
    confidence: float = 0.95,
) -> UnitLink:
    """Per store: engagement (% favourable) against CSAT top-2-box % or NPS, and their r.

    Engagement = mean over items of favourable / answers, counts summed over the selected
    waves. Waves: `waves`, else those dated in [start, end); the customer side covers
    [start, end) or, given waves only, the months of the first to the last wave (whole
    days: the rollups know days). Anonymity: a store-wave with fewer than
    `min_respondents` respondents contributes nothing (so no value reveals it by
    difference) and a store left with no wave is excluded and counted in `suppressed`.
    Stores without customer answers are `excluded` too. Survey filters narrow the customer
    side only. Points: unit, name, engagement, respondents, waves, score, n.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    if start is None or end is None:
        if not waves:
            raise ValueError("give `waves` or both `start` and `end`")
        days = sorted(_as_date(w) for w in waves)
        start = start or Month.of(days[0]).start
        end = end or Month.of(days[-1]).end
    assert start is not None and end is not None
    first_day, end_day = _day_bound(start), _day_bound(end)
    if waves is not None:
        wave_cond = aeu.c.wave.in_(sorted({_as_date(w) for w in waves}))
        item_wave_cond = aei.c.wave.in_(sorted({_as_date(w) for w in waves}))
    else:
        wave_cond = and_(aeu.c.wave >= first_day, aeu.c.wave < end_day)
        item_wave_cond = and_(aei.c.wave >= first_day, aei.c.wave < end_day)

    lm = _level_map("store")
    respondents = {(u, _as_date(w)): int(n) for u, w, n in conn.execute(
        select(lm.c.level_id, aeu.c.wave, func.sum(aeu.c.respondents))
        .select_from(aeu.join(lm, lm.c.unit_id == aeu.c.org_unit_id))
        .where(wave_cond, *_conditions(aeu.c.org_unit_id, {}, unit, {}))
        .group_by(lm.c.level_id, aeu.c.wave)
    ).all()}
    lm = _level_map("store")
    items = conn.execute(
        select(lm.c.level_id, aei.c.wave, aei.c.item, func.sum(aei.c.n),
               func.sum(aei.c.favourable))
        .select_from(aei.join(lm, lm.c.unit_id == aei.c.org_unit_id))
        .where(item_wave_cond, *_conditions(aei.c.org_unit_id, {}, unit, {}))
        .group_by(lm.c.level_id, aei.c.wave, aei.c.item)
    ).all()
    lm = _level_map("store")
    dims = {"segment": segment, "channel": channel, "device": device,
            "interaction": interaction, "touchpoint": touchpoint}
    months = whole_months(first_day, end_day)
    if months is not None and not any(dims.values()):
        # Whole months, no dimension: the unit-month rollup holds the same sums.
        agg = schema.agg_survey_monthly
        when = agg.c.month.in_(months)
    else:
        agg = asd
        when = and_(asd.c.day >= first_day, asd.c.day < end_day)
    cx = {u: _score(outcome, *(int(v or 0) for v in rest)) for u, *rest in conn.execute(
        select(lm.c.level_id, func.sum(agg.c.nps_n), func.sum(agg.c.nps_promoters),
               func.sum(agg.c.nps_detractors), func.sum(agg.c.csat_n), func.sum(agg.c.csat_top2))
        .select_from(agg.join(lm, lm.c.unit_id == agg.c.org_unit_id))
        .where(when, *_agg_filters(agg, unit, dims))
        .group_by(lm.c.level_id)
    ).all()}

    # Complementary suppression too: a store shown beside a hidden sibling would reveal it.
    hidden = {w: hidden_in_wave(conn, wave=w, minimum=min_respondents)
              for w in {w for _, w in respondents}}
    shown = {key for key, n in respondents.items()
             if n >= min_respondents and key[0] not in hidden[key[1]]}
    per_item: dict[str, dict[str, list[int]]] = {}
    for u, w, item, n, fav in items:
        if (u, _as_date(w)) not in shown:
            continue
        acc = per_item.setdefault(u, {}).setdefault(item, [0, 0])
        acc[0] += int(n or 0)
        acc[1] += int(fav or 0)
    stores = sorted({u for u, _ in respondents})
    names = _unit_names(conn, stores)
    points, excluded, suppressed = [], 0, 0
    for u in stores:
        kept = sorted(w for (v, w) in shown if v == u)
        shares = [fav / n for n, fav in per_item.get(u, {}).values() if n > 0]
        if not kept or not shares:
            suppressed += 1
            excluded += 1
            continue
        score, n = cx.get(u, (None, 0))
        if score is None:
            excluded += 1
            continue
        points.append({"unit": u, "name": names.get(u, u),
                       "engagement": 100 * float(np.mean(shares)),
                       "respondents": sum(respondents[(u, w)] for w in kept),
                       "waves": len(kept), "score": score, "n": n})
    frame = pd.DataFrame(points, columns=["unit", "name", "engagement", "respondents", "waves",
                                          "score", "n"])
    corr = stats.pearson(frame["engagement"].to_numpy(float), frame["score"].to_numpy(float),
                         confidence)
    return UnitLink("engagement", "score", frame, corr, excluded, suppressed)


# --------------------------------------------------------------------------
# Key drivers: importance against performance
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Drivers:
    """Key-driver analysis of attribute ratings against an outcome (NPS 0-10 or CSAT 1-5).

    `frame` (most important first): attribute, importance (% of R^2), weight (raw relative
    weight, sums to R^2), r (correlation with the outcome), performance (mean rating),
    sd, n (ratings), coverage (share of the selection rating it). `r_squared` and `n`
    (complete cases) describe the model; `responses` is the selection; `dropped` the
    attributes below the coverage threshold.
    """

    outcome: str
    frame: pd.DataFrame
    r_squared: float | None
    n: int
    responses: int
    dropped: tuple[str, ...]


def _outcome_column(outcome: str) -> ColumnElement:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    return sr.c[outcome]


@dataclass(frozen=True)
class _DriverSums:
    """What the key-driver model is computed from: the selection's size, each attribute's
    (n, sum, sum of squares) and, for the attributes kept, the complete cases' n, sums of
    (outcome, *kept) and their cross-products."""

    responses: int
    per_attr: dict[str, tuple[int, float, float]]
    kept: list[str]
    n: int
    sums: list[float]
    cross: np.ndarray


def _kept(per_attr: dict[str, tuple[int, float, float]], responses: int,
          min_coverage: float) -> list[str]:
    return [a for a, (n, _, _) in per_attr.items() if responses and n / responses >= min_coverage]


def _live_driver_sums(conn: Connection, sel: list[ColumnElement[bool]], y: ColumnElement,
                      min_coverage: float) -> _DriverSums:
    """The model's sums counted from the answers and ratings of the selection."""
    joined = sr.outerjoin(cust, cust.c.id == sr.c.customer_id)
    responses = int(conn.execute(select(func.count()).select_from(joined).where(*sel))
                    .scalar_one())
    rating = DRIVER_RATING
    per_attr = {a: (int(n), float(s), float(s2)) for a, n, s, s2 in conn.execute(
        select(rt.c.attribute, func.count(), func.sum(rating), func.sum(rating * rating))
        .select_from(joined.join(rt, rt.c.response_pk == sr.c.id))
        .where(*sel)
        .group_by(rt.c.attribute)
        .order_by(rt.c.attribute)
    ).all()}
    kept = _kept(per_attr, responses, min_coverage)
    if not kept:
        return _DriverSums(responses, per_attr, kept, 0, [], np.zeros((0, 0)))
    # Pivot to one row per response (outcome, then each attribute), then sum the variables
    # and their pairwise products over the complete cases.
    pivot = (
        select(y.label("v0"), *[
            func.max(case((rt.c.attribute == a, rating))).label(f"v{i + 1}")
            for i, a in enumerate(kept)])
        .select_from(joined.join(rt, rt.c.response_pk == sr.c.id))
        .where(*sel, rt.c.attribute.in_(kept))
        .group_by(sr.c.id, y)
        .subquery("pivot")
    )
    v = [pivot.c[f"v{i}"] for i in range(len(kept) + 1)]
    pairs = [(i, j) for i in range(len(v)) for j in range(i, len(v))]
    row = conn.execute(
        select(func.count(), *[func.sum(c) for c in v],
               *[func.sum(v[i] * v[j]) for i, j in pairs])
        .where(and_(*[c.is_not(None) for c in v]))
    ).one()
    cross = np.zeros((len(v), len(v)))
    for (i, j), total in zip(pairs, row[1 + len(v):], strict=True):
        cross[i, j] = cross[j, i] = float(total or 0)
    return _DriverSums(responses, per_attr, kept, int(row[0]),
                       [float(t or 0) for t in row[1:1 + len(v)]], cross)


_MOMENTS_OPEN, _MOMENTS_SPLIT, _MOMENTS_CLOSE = '{"s":[', '],"ss":[', "]}"


def pack_driver_moments(names: Sequence[str], sums: Sequence[float],
                        upper: Sequence[float]) -> tuple[str, str]:
    """`agg_driver_moments`' pattern and moments of a group of answers that rated exactly
    the attributes `names`: the sums of (outcome, *names) and the upper triangle, row by
    row, of their products. The one definition of the stored form (its reader is below)."""
    text = json.dumps({"s": [float(v) for v in sums], "ss": [float(v) for v in upper]},
                      separators=(",", ":"))
    assert text.startswith(_MOMENTS_OPEN) and text.endswith(_MOMENTS_CLOSE)
    return "|".join(names), text


def _moment_parts(moments: str) -> tuple[list[float], list[float]]:
    m = json.loads(moments)
    return m["s"], m["ss"]


def _sum_driver_moments(rows: Sequence[tuple[str, int, str]]
                        ) -> dict[tuple[str, ...], tuple[int, np.ndarray, np.ndarray]]:
    """`agg_driver_moments` rows (pattern, n, moments) added up per pattern: answers, sums
    and upper triangle. Each pattern's moments are parsed at once into one numpy array (C,
    no Python float per number) and summed down: a company's quarter at the large size is
    14,000 unit-month-pattern rows, and parsing them one by one (json.loads, a Python
    object per number and the collector walking a web worker's heap) was most of the
    drivers page's time."""
    texts_of: dict[str, list[str]] = {}
    n_of: dict[str, int] = {}
    for pattern, n, moments in rows:
        texts_of.setdefault(pattern, []).append(moments)
        n_of[pattern] = n_of.get(pattern, 0) + int(n)
    out = {}
    for pattern, texts in texts_of.items():
        names = tuple(pattern.split("|")) if pattern else ()
        k = len(names) + 1
        width = k + k * (k + 1) // 2
        numbers = (",".join(texts).replace(" ", "").replace(_MOMENTS_OPEN, "")
                   .replace(_MOMENTS_SPLIT, ",").replace(_MOMENTS_CLOSE, ""))
        try:
            flat = np.fromstring(numbers, dtype=float, sep=",")
        except ValueError:
            flat = np.empty(0)
        if flat.size != width * len(texts):
            # Not in the stored form (written some other way): read as the JSON it is.
            flat = np.asarray([v for t in texts for part in _moment_parts(t) for v in part],
                              dtype=float)
        total = flat.reshape(len(texts), width).sum(axis=0)
        out[names] = (n_of[pattern], total[:k], total[k:])
    return out


def _stored_driver_sums(conn: Connection, *, months: list[str], unit: str | None,
                        outcome: str, min_coverage: float) -> _DriverSums | None:
    """The model's sums re-aggregated from the ETL's `agg_driver_moments`, or None when it
    does not hold every answer of the selection (a month not counted yet)."""
    dm, asm = schema.agg_driver_moments, schema.agg_survey_monthly
    scope = _conditions(dm.c.org_unit_id, {}, unit, {})
    rows = conn.execute(select(dm.c.pattern, dm.c.n, dm.c.moments).where(
        dm.c.month.in_(months), dm.c.outcome == outcome, *scope)).all()
    answered = asm.c.nps_n if outcome == "nps" else asm.c.csat_n
    expected = conn.execute(select(func.coalesce(func.sum(answered), 0)).where(
        asm.c.month.in_(months), *_conditions(asm.c.org_unit_id, {}, unit, {}))).scalar_one()
    # Nothing expected may also mean rollups not built (a database filled by hand): the
    # ratings then answer, and cheaply when there really is nothing.
    if not expected or sum(int(n) for _, n, _ in rows) != int(expected):
        return None
    # Same pattern, same variables: add their arrays first.
    by_pattern = _sum_driver_moments(rows)
    responses = sum(acc[0] for acc in by_pattern.values())
    full: dict[tuple[str, ...], tuple[int, np.ndarray, np.ndarray]] = {}
    per_attr: dict[str, list] = {}
    for names, (n, sums, upper) in by_pattern.items():
        k = len(names) + 1
        square = np.zeros((k, k))
        square[np.triu_indices(k)] = upper
        square = square + np.triu(square, 1).T
        full[names] = (n, sums, square)
        for i, a in enumerate(names, start=1):
            acc = per_attr.setdefault(a, [0, 0.0, 0.0])
            acc[0] += n
            acc[1] += sums[i]
            acc[2] += square[i, i]
    per = {a: (int(v[0]), float(v[1]), float(v[2])) for a, v in sorted(per_attr.items())}
    kept = _kept(per, responses, min_coverage)
    n, total, cross = 0, np.zeros(len(kept) + 1), np.zeros((len(kept) + 1, len(kept) + 1))
    for names, (count, sums, square) in full.items():
        if kept and set(kept) <= set(names):
            idx = [0] + [1 + names.index(a) for a in kept]
            n += count
            total += sums[idx]
            cross += square[np.ix_(idx, idx)]
    return _DriverSums(responses, per, kept, n, [float(t) for t in total], cross)


def key_drivers(
    conn: Connection,
    *,
    start: dt.datetime,
    end: dt.datetime,
    outcome: str = "nps",
    unit: str | None = None,
    segment: Dim = None,
    channel: Dim = None,
    device: Dim = None,
    interaction: Dim = None,
    touchpoint: Dim = None,
    min_coverage: float = 0.5,
    stored: bool = True,
) -> Drivers:
    """Importance (Johnson relative weight, % of R^2) and performance (mean rating) of each
    attribute against NPS (0-10) or CSAT (1-5): the priority matrix.

    Selection: responses submitted in [start, end) in the filters, with the outcome
    answered. Attributes rated by at least `min_coverage` of the selection enter the model;
    it is fitted on the complete cases (outcome and every such attribute answered), from
    the correlation matrix of their SQL sums. r is each attribute's correlation with the
    outcome on those cases; performance and n use every rating in the selection.

    Whole months without a dimension filter read the sums from the ETL's
    `agg_driver_moments` when it holds every answer of the selection (`stored=False`:
    always counted from the ratings).
    """
    y = _outcome_column(outcome)
    frame_cols = ["attribute", "importance", "weight", "r", "performance", "sd", "n", "coverage"]
    values = {"segment": segment, "channel": channel, "device": device,
              "interaction": interaction, "touchpoint": touchpoint}
    got = None
    months = whole_months(start.date(), end.date()) \
        if start == dt.datetime.combine(start.date(), dt.time()) \
        and end == dt.datetime.combine(end.date(), dt.time()) else None
    if stored and months is not None and not any(values.values()):
        got = _stored_driver_sums(conn, months=months, unit=unit, outcome=outcome,
                                  min_coverage=min_coverage)
    if got is None:
        sel = [sr.c.submitted_at >= start, sr.c.submitted_at < end, y.is_not(None),
               *_fact_filters(unit, values)]
        got = _live_driver_sums(conn, sel, y, min_coverage)
    perf = {a: (n, stats.mean_ci(n, s, s2)) for a, (n, s, s2) in got.per_attr.items()}
    kept = got.kept
    dropped = tuple(a for a in perf if a not in kept)
    if not kept:
        return Drivers(outcome, pd.DataFrame(columns=frame_cols), None, 0, got.responses,
                       dropped)
    n, sums, cross = got.n, got.sums, got.cross
    r = np.full(len(kept), np.nan)
    weights = rescaled = [np.nan] * len(kept)
    r_squared = None
    if n > len(kept) + 1:
        corr = stats.correlation_from_sums(n, sums, cross).corr
        r = corr[1:, 0]
        rxx = corr[1:, 1:]
        if np.isfinite(rxx).all() and np.isfinite(r).all():
            rw = stats.relative_weights(rxx, r)
            weights, rescaled, r_squared = list(rw.weights), list(rw.rescaled), rw.r_squared
    rows = [{"attribute": a, "importance": rescaled[k], "weight": weights[k], "r": float(r[k]),
             "performance": perf[a][1].mean, "sd": perf[a][1].sd, "n": perf[a][0],
             "coverage": perf[a][0] / got.responses} for k, a in enumerate(kept)]
    frame = (pd.DataFrame(rows, columns=frame_cols)
             .sort_values(["importance", "attribute"], ascending=[False, True],
                          na_position="last", kind="stable")
             .reset_index(drop=True))
    return Drivers(outcome, frame, r_squared, n, got.responses, dropped)


__all__ = [
    "Drivers",
    "GroupRevenue",
    "RevenueLink",
    "UnitLink",
    "engagement_vs_cx",
    "key_drivers",
    "revenue_after_survey",
    "unit_cx_revenue",
]
