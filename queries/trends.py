"""Monthly series of the KPIs (sparklines, trend charts), one grouped query per source."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection, func, select

from queries import metrics, schema
from queries.kpis import (
    CES_SCALE,
    SURVEY_DIMS,
    TXN_DIMS,
    Filters,
    _dims,
    in_scope,
    member_activity_series,
    sales_rollup,
    survey_rollup,
)
from queries.periods import Month

aeu = schema.agg_engagement_unit
aei = schema.agg_engagement


def kpi_trend(conn: Connection, *, end: Month, months: int = 13,
              filters: Filters | None = None, active_days: int = 90) -> pd.DataFrame:
    """One row per month up to `end`: NPS, CSAT, CES (values, n, margins), revenue, active
    members and retention; months without data hold NaN, never zero."""
    filters = filters or Filters()
    span = [end.shift(-i) for i in range(months - 1, -1, -1)]
    keys = [str(m) for m in span]
    cols = ("nps_n", "nps_promoters", "nps_detractors", "csat_n", "csat_top2", "ces_n",
            "ces_sum", "ces_sumsq")
    asd, atd = survey_rollup(filters), sales_rollup(filters)
    survey = conn.execute(
        select(asd.c.month, *[func.sum(asd.c[c]).label(c) for c in cols])
        .where(asd.c.month.in_(keys), *_dims(asd, filters, SURVEY_DIMS))
        .group_by(asd.c.month)
    ).mappings().all()
    sales = dict(conn.execute(
        select(atd.c.month, func.sum(atd.c.revenue))
        .where(atd.c.month.in_(keys), *_dims(atd, filters, TXN_DIMS)).group_by(atd.c.month)
    ).all())
    by_month = {r["month"]: r for r in survey}
    series = member_activity_series(conn, pairs=[(m.end, m.shift(-1).end) for m in span],
                                    window_days=active_days, filters=filters)
    rows = []
    for m, activity in zip(span, series, strict=True):
        r = by_month.get(str(m))
        nps = metrics.nps(r["nps_n"], r["nps_promoters"], r["nps_detractors"]) if r else None
        csat = metrics.share(r["csat_n"], r["csat_top2"]) if r else None
        ces = (metrics.mean_t(r["ces_n"], r["ces_sum"], r["ces_sumsq"], CES_SCALE) if r
               else None)
        retention = metrics.share(activity.active_before, activity.retained)
        rows.append({
            "month": str(m), "label": m.start.strftime("%b %Y"),
            "nps": nps.value if nps else None, "nps_n": nps.n if nps else 0,
            "nps_moe": nps.moe if nps else None,
            "csat": csat.value if csat else None, "csat_n": csat.n if csat else 0,
            "csat_moe": csat.moe if csat else None,
            "ces": ces.value if ces else None, "ces_n": ces.n if ces else 0,
            "ces_moe": ces.moe if ces else None,
            "revenue": sales.get(str(m)), "active_members": activity.active or None,
            "retention": retention.value,
        })
    frame = pd.DataFrame(rows)
    numeric = [c for c in frame.columns if c not in ("month", "label")]
    frame[numeric] = frame[numeric].astype("Float64")
    return frame


def _hidden_unit(conn: Connection, wave: object, unit: str | tuple[str, ...] | None,
                 minimum: int) -> bool:
    import datetime as dt

    from queries.employees import hidden_in_wave

    if unit is None:
        return False
    day = wave if isinstance(wave, dt.date) else dt.date.fromisoformat(str(wave)[:10])
    units = {unit} if isinstance(unit, str) else set(unit)
    return bool(units & hidden_in_wave(conn, wave=day, minimum=minimum))


def engagement_trend(conn: Connection, *, end: Month, unit: str | None = None,
                     anonymity_min: int = 5) -> pd.DataFrame:
    """Engagement % favourable and eNPS per wave up to `end` (hidden waves hold NaN)."""
    waves = conn.execute(
        select(aeu.c.wave, func.sum(aeu.c.respondents), func.sum(aeu.c.enps_n),
               func.sum(aeu.c.enps_promoters), func.sum(aeu.c.enps_detractors))
        .where(aeu.c.wave < end.end.date(), in_scope(aeu.c.org_unit_id, unit))
        .group_by(aeu.c.wave).order_by(aeu.c.wave)
    ).all()
    items = conn.execute(
        select(aei.c.wave, aei.c.item, func.sum(aei.c.n), func.sum(aei.c.favourable))
        .where(aei.c.wave < end.end.date(), in_scope(aei.c.org_unit_id, unit))
        .group_by(aei.c.wave, aei.c.item)
    ).all()
    shares: dict[str, list[float]] = {}
    for wave, _item, n, fav in items:
        if n:
            shares.setdefault(str(wave)[:10], []).append(fav / n)
    rows = []
    for wave, resp, n, pro, det in waves:
        key = str(wave)[:10]
        hidden = resp < anonymity_min or _hidden_unit(conn, wave, unit, anonymity_min)
        eng = metrics.engagement(resp, shares.get(key, []))
        enps = metrics.nps(n, pro, det)
        rows.append({"wave": key, "respondents": None if hidden else resp,
                     "engagement": None if hidden else eng.value,
                     "engagement_moe": None if hidden else eng.moe,
                     "enps": None if hidden else enps.value, "hidden": hidden})
    frame = pd.DataFrame(rows, columns=["wave", "respondents", "engagement", "engagement_moe",
                                        "enps", "hidden"])
    frame[["respondents", "engagement", "engagement_moe", "enps"]] = frame[
        ["respondents", "engagement", "engagement_moe", "enps"]].astype("Float64")
    return frame
