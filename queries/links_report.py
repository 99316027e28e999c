"""The experience-to-revenue and employee-to-customer links as one JSON-ready report
(`python -m queries links`): the same functions the Revenue and Employees pages call."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection

from queries.kpis import Filters
from queries.links import (
    engagement_vs_cx,
    key_drivers,
    revenue_after_survey,
    unit_cx_revenue,
    value_by_nps_group,
)
from queries.periods import Month
from queries.stats import Correlation


def _corr(c: Correlation) -> dict[str, Any]:
    return {"r": c.r, "n": c.n, "low": c.low, "high": c.high, "p": c.p, "slope": c.slope,
            "intercept": c.intercept, "significant": c.significant}


def links_report(conn: Connection, *, period: Month, months: int = 12,
                 filters: Filters | None = None, window_days: int | None = None,
                 churn_days: int = 90) -> dict[str, Any]:
    """Revenue after survey answers by NPS group, ticket and visit frequency by NPS group,
    store CX against revenue growth (lag 0
    and 1), engagement against CSAT and NPS, and the key drivers of NPS, for the `months`
    months ending with `period`."""
    filters = filters or Filters()
    dims = {k: v for k, v in asdict(filters).items() if v}
    first = period.shift(-(months - 1))
    window = window_days or 180
    revenue = revenue_after_survey(conn, start=first.start, end=period.end, window_days=window,
                                   churn_days=churn_days, **dims)
    span = [first.shift(i) for i in range(months)]
    growth = {f"lag{lag}": unit_cx_revenue(conn, months=span, lag=lag, **dims)
              for lag in (0, 1)}
    engagement = {outcome: engagement_vs_cx(conn, start=first.start, end=period.end,
                                            outcome=outcome, **dims)
                  for outcome in ("csat", "nps")}
    drivers = key_drivers(conn, start=first.start, end=period.end, outcome="nps", **dims)
    value = value_by_nps_group(conn, start=first.start, end=period.end, window_days=window,
                               **dims)
    groups = revenue.frame().to_dict("records")
    return {
        "period": str(period), "months": months, "filters": filters.active(),
        "revenue_after_survey": {
            "window_days": window, "churn_days": churn_days, "responses": revenue.responses,
            "unlinked": revenue.unlinked, "left_out": revenue.left_out, "n": revenue.n,
            "groups": groups,
            "gap_promoter_minus_detractor": asdict(revenue.gap),
            "churn_gap_detractor_minus_promoter": asdict(revenue.churn_gap),
            "detractor_revenue": revenue.detractor_revenue,
            "revenue_at_risk": revenue.revenue_at_risk,
        },
        "ticket_and_visits_by_nps_group": {
            "basis": value.basis, "window_days": value.window_days,
            "groups": value.frame().to_dict("records"),
            "gaps": value.gaps_frame().to_dict("records"),
            "driver": value.driver, "frequency_share_of_value_gap": value.frequency_share,
            "sentence": value.sentence,
        },
        "cx_vs_revenue_growth": {k: {"correlation": _corr(v.correlation),
                                     "points": len(v.points)} for k, v in growth.items()},
        "engagement_vs_cx": {k: {"correlation": _corr(v.correlation),
                                 "stores": len(v.points), "excluded": v.excluded,
                                 "suppressed": v.suppressed} for k, v in engagement.items()},
        "key_drivers_nps": {"r_squared": drivers.r_squared, "n": drivers.n,
                            "drivers": drivers.frame.to_dict("records")
                            if drivers.frame is not None else []},
    }
