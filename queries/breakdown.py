"""Breakdowns: every survey metric per child unit, or per value of a survey dimension.

The drill-down of the segments page. One GROUP BY over the survey rollup per period (and
one over the sales rollup), each child unit standing for its whole subtree, so the counts of
the rows add up exactly to their parent's: any metric of the parent re-aggregates from them.
Values come from `queries.metrics`, the same formulas as the KPI cards.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
from sqlalchemy import Connection, Integer, Select, Table, func, literal_column, select
from sqlalchemy.sql import ColumnElement

from queries import metrics, schema
from queries.kpis import (
    CES_SCALE,
    SURVEY_DIMS,
    TXN_DIMS,
    Filters,
    Settings,
    _dims,
    missing_txn_values,
    not_applicable_reason,
    sales_rollup,
    survey_rollup,
)
from queries.periods import Month

ou = schema.org_unit

BY = ("unit", *SURVEY_DIMS)
COUNTS = ("responses", "nps_n", "nps_promoters", "nps_detractors", "csat_n", "csat_top2",
          "ces_n", "ces_sum", "ces_sumsq", "ces_agree")
COLUMNS = [
    "key", "name", "kind", "has_children", "direct",
    "responses", "nps", "nps_moe", "nps_n", "nps_promoters", "nps_detractors",
    "csat", "csat_moe", "csat_n", "csat_top2",
    "ces", "ces_moe", "ces_n", "ces_sum", "ces_sumsq",
    "ces_agree", "ces_agree_moe", "ces_agree_count",
    "nps_compare", "nps_compare_n", "nps_delta", "nps_z", "nps_significant",
    "csat_compare", "csat_delta", "csat_significant",
    "ces_compare", "ces_delta", "ces_significant",
    "nps_untested", "csat_untested", "ces_untested",
    "revenue", "revenue_na", "low_sample", "nps_low", "csat_low", "ces_low",
]
MISSING_LABEL = "Not recorded"


def _selection_root(conn: Connection, unit: str | tuple[str, ...] | None
                    ) -> tuple[str | None, list[dict]]:
    """The unit whose children are broken down (the single root for the whole company) and
    those children, by name: (parent id or None, [{id, name, kind, has_children}]). A set
    of several units (a scope) breaks down into those units themselves."""
    if isinstance(unit, tuple | list):
        if len(unit) != 1:
            cond = ou.c.id.in_(sorted(unit))
            return None, _units_where(conn, cond)
        unit = unit[0]
    parent = unit
    if parent is None:
        roots = conn.execute(select(ou.c.id).where(ou.c.parent_id.is_(None))).scalars().all()
        if len(roots) == 1:
            parent = roots[0]
    cond = ou.c.parent_id.is_(None) if parent is None else ou.c.parent_id == parent
    return parent, _units_where(conn, cond)


def _units_where(conn: Connection, cond: ColumnElement[bool]) -> list[dict]:
    child = ou.alias("child")
    grandchildren = (select(func.count()).select_from(child)
                     .where(child.c.parent_id == ou.c.id).scalar_subquery())
    rows = conn.execute(
        select(ou.c.id, ou.c.name, ou.c.kind, (grandchildren > 0).label("has_children"))
        .where(cond).order_by(ou.c.name, ou.c.id)
    ).mappings().all()
    return [dict(r) for r in rows]


def _subtree_map(children: list[str]) -> Select:
    """(child_id, unit_id): each child paired with itself and every unit below it."""
    walk = (select(ou.c.id.label("child_id"), ou.c.id.label("unit_id"),
                   literal_column("0", Integer).label("depth"))
            .where(ou.c.id.in_(children)).cte("subtree", recursive=True))
    below = ou.alias("below")
    # The depth guard stops a (mis-loaded) cycle in the org chart from recursing forever.
    walk = walk.union_all(
        select(walk.c.child_id, below.c.id, walk.c.depth + 1)
        .where(below.c.parent_id == walk.c.unit_id, walk.c.depth < 32))
    return select(walk.c.child_id, walk.c.unit_id).subquery("subtree_map")


def _survey_sums(asd: Table) -> list[ColumnElement]:
    return [func.coalesce(func.sum(asd.c[c]), 0).label(c) for c in COUNTS]


def _survey_counts(conn: Connection, month: Month, filters: Filters, by: str,
                   children: list[str], parent: str | None) -> dict[object, dict[str, int]]:
    """Rollup counts of `month` per group key: a child unit id (with the key `None` for
    answers recorded on the parent itself) or a dimension value."""
    # Units side by side without a dimension filter read the unit-month rollup.
    asd = survey_rollup(filters) if by == "unit" else schema.agg_survey_daily
    dims = _dims(asd, replace(filters, unit=None), SURVEY_DIMS)
    if by == "unit":
        if not children:
            out: dict[object, dict[str, int]] = {}
        else:
            tree = _subtree_map(children)
            rows = conn.execute(
                select(tree.c.child_id, *_survey_sums(asd))
                .select_from(asd.join(tree, tree.c.unit_id == asd.c.org_unit_id))
                .where(asd.c.month == str(month), *dims)
                .group_by(tree.c.child_id)
            ).mappings().all()
            out = {r["child_id"]: dict(r) for r in rows}
        if parent is not None:
            own = conn.execute(select(*_survey_sums(asd)).where(
                asd.c.month == str(month), asd.c.org_unit_id == parent, *dims)).mappings().one()
            if own["responses"]:
                out[None] = dict(own)
        return out
    column = asd.c[by]
    rows = conn.execute(
        select(column.label("key"), *_survey_sums(asd))
        .where(asd.c.month == str(month), *_dims(asd, filters, SURVEY_DIMS))
        .group_by(column)
    ).mappings().all()
    return {r["key"]: dict(r) for r in rows}


def _revenue(conn: Connection, month: Month, filters: Filters, by: str,
             children: list[str], parent: str | None) -> dict[object, float] | None:
    """Sales revenue per group key, or None where sales cannot honour the breakdown."""
    if by not in ("unit", *TXN_DIMS) or any(k not in ("unit", *TXN_DIMS)
                                           for k in filters.active()):
        return None
    atd = sales_rollup(filters) if by == "unit" else schema.agg_txn_daily
    if by == "unit":
        dims = _dims(atd, replace(filters, unit=None), TXN_DIMS)
        out: dict[object, float] = {}
        if children:
            tree = _subtree_map(children)
            out = dict(conn.execute(
                select(tree.c.child_id, func.sum(atd.c.revenue))
                .select_from(atd.join(tree, tree.c.unit_id == atd.c.org_unit_id))
                .where(atd.c.month == str(month), *dims).group_by(tree.c.child_id)
            ).all())
        if parent is not None:
            own = conn.execute(select(func.sum(atd.c.revenue)).where(
                atd.c.month == str(month), atd.c.org_unit_id == parent, *dims)).scalar()
            if own:
                out[None] = float(own)
        return {k: float(v or 0.0) for k, v in out.items()}
    column = atd.c[by]
    return {k: float(v or 0.0) for k, v in conn.execute(
        select(column, func.sum(atd.c.revenue))
        .where(atd.c.month == str(month), *_dims(atd, filters, TXN_DIMS)).group_by(column)
    ).all()}


def _metrics(c: dict[str, int] | None, prev: dict[str, int] | None,
             min_n: int) -> dict[str, object]:
    c = {k: int((c or {}).get(k) or 0) for k in COUNTS}
    p = {k: int((prev or {}).get(k) or 0) for k in COUNTS}
    nps = metrics.nps(c["nps_n"], c["nps_promoters"], c["nps_detractors"])
    csat = metrics.share(c["csat_n"], c["csat_top2"])
    ces = metrics.mean_t(c["ces_n"], c["ces_sum"], c["ces_sumsq"], CES_SCALE)
    agree = metrics.share(c["ces_n"], c["ces_agree"])
    nps_prev = metrics.nps(p["nps_n"], p["nps_promoters"], p["nps_detractors"])
    csat_prev = metrics.share(p["csat_n"], p["csat_top2"])
    ces_prev = metrics.mean_t(p["ces_n"], p["ces_sum"], p["ces_sumsq"], CES_SCALE)
    # The one significance rule (metrics.untestable): no claim below min_n answers.
    chg = metrics.change(nps, nps_prev, min_n=min_n)
    csat_chg = metrics.change_share(csat, csat_prev, min_n=min_n)
    ces_chg = metrics.change(ces, ces_prev, min_n=min_n)
    return {
        "responses": c["responses"],
        "nps": nps.value, "nps_moe": nps.moe, "nps_n": c["nps_n"],
        "nps_promoters": c["nps_promoters"], "nps_detractors": c["nps_detractors"],
        "csat": csat.value, "csat_moe": csat.moe, "csat_n": c["csat_n"],
        "csat_top2": c["csat_top2"],
        "ces": ces.value, "ces_moe": ces.moe, "ces_n": c["ces_n"], "ces_sum": c["ces_sum"],
        "ces_sumsq": c["ces_sumsq"],
        "ces_agree": agree.value, "ces_agree_moe": agree.moe, "ces_agree_count": c["ces_agree"],
        "nps_compare": nps_prev.value, "nps_compare_n": p["nps_n"],
        "nps_delta": chg.delta, "nps_z": chg.z, "nps_significant": chg.significant,
        "csat_compare": csat_prev.value, "csat_delta": csat_chg.delta,
        "csat_significant": csat_chg.significant,
        "ces_compare": ces_prev.value, "ces_delta": ces_chg.delta,
        "ces_significant": ces_chg.significant,
        "nps_untested": chg.reason, "csat_untested": csat_chg.reason,
        "ces_untested": ces_chg.reason,
        "low_sample": c["nps_n"] < min_n, "nps_low": c["nps_n"] < min_n,
        "csat_low": c["csat_n"] < min_n, "ces_low": c["ces_n"] < min_n,
    }


def breakdown(conn: Connection, *, period: Month, compare: Month, filters: Filters,
              by: str = "unit", settings: Settings) -> pd.DataFrame:
    """Every survey metric of `period` per child of `filters.unit` (`by="unit"`; the whole
    company breaks down into the root's children, a set of several units into those units)
    or per value of the dimension `by`
    (segment, channel, device, interaction, touchpoint) within the filters.

    One row per group: `key` (unit id or dimension value, None for 'not recorded'),
    `name`, `kind` (the unit's kind, or the dimension), `has_children`, `direct` (True for
    the row of answers recorded on the parent unit itself, shown only when there are any),
    responses; NPS, CSAT top-2 %, CES mean and CES % agree (5-7) with n, 95% margins and
    their counts; NPS in `compare` with the change and its z-test (and the changes of CSAT
    and CES with their significance, None with `*_untested` giving the reason when too few
    answers allow no test); `revenue` from the sales
    rollup (NaN when the breakdown or a filter is a dimension sales do not record: device,
    interaction, touchpoint, or a value no transaction carries, `revenue_na` saying why;
    0 for a unit without sales); `low_sample` (NPS n below
    `settings.min_n`) and per-metric `*_low` flags. Units come by name, every child listed
    even without answers; dimension values by answers, most first. The counts of the rows
    add up to the selection's, so every metric of the parent re-aggregates exactly.
    """
    if by not in BY:
        raise ValueError(f"by must be one of {BY}, got {by!r}")
    children: list[dict] = []
    parent: str | None = None
    if by == "unit":
        parent, children = _selection_root(conn, filters.unit)
    ids = [c["id"] for c in children]
    cur = _survey_counts(conn, period, filters, by, ids, parent)
    prev = _survey_counts(conn, compare, filters, by, ids, parent)
    revenue = _revenue(conn, period, filters, by, ids, parent)
    # Why revenue is n/a (never a made-up 0): the filter's value no transaction carries, or
    # a breakdown / filter by a dimension sales do not record.
    revenue_na = not_applicable_reason(missing_txn_values(conn, filters))
    if revenue_na:
        revenue = None
    elif revenue is None:
        dims = [d for d in (by, *filters.active()) if d not in ("unit", *TXN_DIMS)]
        revenue_na = f"sales do not record {', '.join(dict.fromkeys(dims))}"

    def revenue_of(key: object) -> float:
        if revenue is None:
            return float("nan")
        if by == "unit":
            return revenue.get(key, 0.0)
        return revenue.get(key, float("nan"))

    rows: list[dict[str, object]] = []
    if by == "unit":
        for c in children:
            rows.append({"key": c["id"], "name": c["name"], "kind": c["kind"],
                         "has_children": bool(c["has_children"]), "direct": False,
                         **_metrics(cur.get(c["id"]), prev.get(c["id"]), settings.min_n),
                         "revenue": revenue_of(c["id"]), "revenue_na": revenue_na})
        if None in cur:
            name = conn.execute(select(ou.c.name).where(ou.c.id == parent)).scalar()
            rows.append({"key": parent, "name": f"{name} itself",
                         "kind": "direct", "has_children": False, "direct": True,
                         **_metrics(cur[None], prev.get(None), settings.min_n),
                         "revenue": revenue_of(None), "revenue_na": revenue_na})
    else:
        keys = sorted(cur, key=lambda k: (-int(cur[k]["responses"]), k is None, str(k)))
        for key in keys:
            rows.append({"key": key, "name": MISSING_LABEL if key is None else str(key),
                         "kind": by, "has_children": False, "direct": False,
                         **_metrics(cur[key], prev.get(key), settings.min_n),
                         "revenue": revenue_of(key), "revenue_na": revenue_na})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    floats = ["nps", "nps_moe", "csat", "csat_moe", "ces", "ces_moe", "ces_agree",
              "ces_agree_moe", "nps_compare", "nps_delta", "nps_z", "csat_compare", "csat_delta",
              "ces_compare", "ces_delta", "revenue"]
    frame[floats] = frame[floats].astype(float)
    return frame


__all__ = ["BY", "breakdown"]
